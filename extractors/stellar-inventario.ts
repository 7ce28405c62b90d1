/**
 * Reads one Stellar warehouse's inventory with the query in
 * sql/stellar/query_inventario_generic.sql, streamed row by row with backpressure (a CEDI
 * has 20,000-60,000 products: the result is never buffered whole). Connections cross a VPN
 * that drops idle sessions: timeouts are explicit, and every socket carries the TCP
 * keepalive of extractors/tcp-keepalive.ts (tedious stops its request timer at the first
 * packet, so only keepalive notices a server that vanished mid-stream). TLS is per store
 * (encrypt, a CA file, or trust_server_certificate for legacy self-signed servers).
 * The SQL password never appears in an error or a log line.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import sql from 'mssql';
import type { StellarTls } from '../core/config/ubicaciones.ts';
import { PosAuthError, PosDataError, PosUnavailableError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { PROJECT_ROOT } from '../core/paths.ts';
import { toInventoryRow, type InventoryRow } from './inventory-row.ts';
import { keepAliveConnector } from './tcp-keepalive.ts';

export const STELLAR_INVENTARIO_SQL = readFileSync(join(PROJECT_ROOT, 'sql', 'stellar', 'query_inventario_generic.sql'), 'utf8');

export interface StellarConnectionOptions {
  ubicacionId: string;
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
  /** Name of the variable holding the password, for messages. */
  passwordEnv: string;
  /** The store's TLS, its CA file already read (core/config/ubicaciones.ts readStellarTls). */
  tls: StellarTls;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  signal: AbortSignal;
  logger: Logger;
}

/** Rows queued before the driver is paused; resumed below the low mark. */
const HIGH_WATER = 2_000;
const LOW_WATER = 200;
const SCALE: Record<string, number> = { cantidad: 3, costo: 4, precio: 4 };

/**
 * The driver hands decimals over as JS numbers: exact only while the unscaled value stays
 * below 2^53, which any real stock or price does. Anything beyond is refused, never rounded.
 */
function exactDecimal(value: unknown, scale: number): unknown {
  if (typeof value !== 'number') return value;
  if (!Number.isFinite(value) || Math.abs(value) * 10 ** scale >= Number.MAX_SAFE_INTEGER) return `${value} (beyond exact range)`;
  return value.toFixed(scale);
}

function translate(err: unknown, o: StellarConnectionOptions, action: string): Error {
  const e = err as { code?: string; number?: number; message?: string };
  const where = `${o.ubicacionId}: Stellar ${o.host}:${o.port}/${o.database}`;
  if (e.code === 'ELOGIN')
    return new PosAuthError(`${where} refused the login of ${o.user}: check ${o.passwordEnv}`, {
      cause: err,
      context: { ubicacion: o.ubicacionId },
    });
  if (e.code === 'EREQUEST')
    return new PosDataError(`${where}: SQL Server error ${e.number ?? '?'} while ${action}: ${e.message}`, {
      cause: err,
      context: { ubicacion: o.ubicacionId },
    });
  return new PosUnavailableError(`${where} failed while ${action}: ${e.message ?? String(err)}`, {
    cause: err,
    code: e.code ?? 'POS_UNAVAILABLE',
    context: { ubicacion: o.ubicacionId },
  });
}

/** The driver's configuration for one store: addresses, timeouts, TLS and the keepalive connector. */
export function stellarPoolConfig(o: Omit<StellarConnectionOptions, 'signal' | 'logger' | 'ubicacionId' | 'passwordEnv'>): sql.config {
  return {
    server: o.host,
    port: o.port,
    database: o.database,
    user: o.user,
    password: o.password,
    connectionTimeout: o.connectTimeoutMs,
    requestTimeout: o.requestTimeoutMs,
    pool: { max: 1, min: 0, idleTimeoutMillis: 1_000 },
    options: {
      encrypt: o.tls.encrypt,
      trustServerCertificate: o.tls.trustServerCertificate,
      // The store's CA replaces the public ones, as KAFKA_SSL_CA_FILE does for the brokers
      // (tedious builds its secure context from these options).
      ...(o.tls.ca ? { cryptoCredentialsDetails: { ca: o.tls.ca } } : {}),
      enableArithAbort: true,
      useUTC: true,
      // A cancel over a dead VPN link is never acknowledged: do not wait tedious's default 5 s.
      cancelTimeout: 1_000,
      connector: keepAliveConnector() as unknown as () => Promise<Socket>,
    },
  };
}

export async function* stellarInventario(o: StellarConnectionOptions, deposito: string): AsyncGenerator<InventoryRow> {
  const log = o.logger.child({ component: 'stellar', ubicacion: o.ubicacionId, deposito });
  const pool = new sql.ConnectionPool(stellarPoolConfig(o));
  pool.on('error', (err: unknown) => log.warn({ err: { message: (err as Error).message } }, 'Stellar pool error'));
  let request: sql.Request | undefined;
  let finished = false;
  let paused = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  // A stalled result never ends by itself (tedious stops its timer at the first packet):
  // the store's deadline aborts, which must wake the reader and drop the connection.
  const onAbort = () => {
    notify();
    void pool.close().catch(() => undefined);
  };
  o.signal.addEventListener('abort', onAbort, { once: true });
  try {
    try {
      await pool.connect();
    } catch (err) {
      if (o.signal.aborted) throw o.signal.reason;
      throw translate(err, o, 'connecting');
    }
    const req = pool.request();
    request = req;
    req.stream = true;
    req.input('codigo_deposito', sql.VarChar(10), deposito);

    const queue: Record<string, unknown>[] = [];
    let done = false;
    let failure: unknown;
    req.on('row', (row: Record<string, unknown>) => {
      queue.push(row);
      if (!paused && queue.length >= HIGH_WATER) {
        paused = true;
        req.pause();
      }
      notify();
    });
    req.on('error', (err: unknown) => {
      failure ??= err;
      notify();
    });
    req.on('done', () => {
      done = true;
      finished = true;
      notify();
    });
    req.query(STELLAR_INVENTARIO_SQL).catch(() => undefined); // failures arrive as 'error' events

    let n = 0;
    for (;;) {
      if (o.signal.aborted) throw o.signal.reason;
      const row = queue.shift();
      if (row) {
        n++;
        if (paused && queue.length <= LOW_WATER) {
          paused = false;
          req.resume();
        }
        const item: Record<string, unknown> = { ...row, deposito, producto_id: row.codigo_producto, activo: true, actualizado_en: null };
        for (const [field, scale] of Object.entries(SCALE)) item[field] = exactDecimal(row[field], scale);
        yield toInventoryRow(item as never, { ubicacionId: o.ubicacionId, place: `deposito ${deposito}, row ${n}` });
        continue;
      }
      if (failure) throw o.signal.aborted ? o.signal.reason : translate(failure, o, `reading deposito ${deposito} (after ${n} rows)`);
      if (done) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        if (o.signal.aborted) resolve();
      });
    }
    log.debug({ rows: n }, 'Stellar inventory read');
  } finally {
    o.signal.removeEventListener('abort', onAbort);
    // Leaving early (a bad row, the deadline): cancel the streaming request first, or
    // closing the pool would wait for a connection that is still busy.
    if (request && !finished) {
      request.cancel();
      if (paused) request.resume();
    }
    await pool.close().catch(() => undefined);
  }
}
