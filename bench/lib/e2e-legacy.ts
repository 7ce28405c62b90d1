/**
 * bench/e2e.ts's legacy pass, the system Fluxion replaces: read every store with the
 * extractors' reading code, then UPSERT (unnest or VALUES) or COPY every row of every snapshot.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { readSecret, readStellarTls, type Ubicacion } from '../../core/config/ubicaciones.ts';
import { createLogger } from '../../core/logger.ts';
import { DEFAULT_RETRY } from '../../core/retry.ts';
import { createKlkApi } from '../../extractors/klk-api.ts';
import type { InventoryRow } from '../../extractors/inventory-row.ts';
import type { VentaLinea } from '../../extractors/venta-line.ts';
import { INVENTARIO_ACTUAL_COLUMNS } from '../../sinks/sink-batch.ts';
import {
  copyField,
  copyInto,
  createActualShapedTable,
  INVENTARIO_ACTUAL_TYPES,
  INVENTARIO_KEY,
  unnestUpsert,
  valuesUpsert,
} from './pg-writes.ts';
import { procCpuSeconds } from './proc.ts';
import { round } from './stats.ts';

// ---------------------------------------------------------------------------------------
// The replaced system: read every store (the extractors' reading code), UPSERT every row.
// ---------------------------------------------------------------------------------------

export const LEGACY_INV = 'bench_legacy_inventario';
export const LEGACY_VENTAS = 'bench_legacy_ventas';
export const COPY_INV = 'bench_copy_inventario';
export const COPY_VENTAS = 'bench_copy_ventas';
export const VENTAS_COLUMNS = [
  'ubicacion_id',
  'numero_factura',
  'linea',
  'fecha',
  'fecha_hora',
  'producto_id',
  'cantidad',
  'precio_unitario',
  'descuento',
  'total',
  'caja',
  'anulada',
  'extracted_at',
] as const;
export const VENTAS_TYPES = [
  'text',
  'text',
  'integer',
  'date',
  'timestamptz',
  'text',
  'numeric',
  'numeric',
  'numeric',
  'numeric',
  'text',
  'boolean',
  'timestamptz',
];
export const VENTAS_KEY = ['ubicacion_id', 'numero_factura', 'linea'];

export type Cell = string | number | boolean | Date | null;
export interface StoreRead {
  ubicacion: string;
  inventario: Cell[][];
  ventas: Cell[][];
}

export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]!);
      }
    }),
  );
  return results;
}

export async function legacyRead(stores: Ubicacion[], fecha: string, env: NodeJS.ProcessEnv, concurrency: number): Promise<StoreRead[]> {
  const logger = createLogger({ level: 'warn', destination: 2 });
  const { stellarInventario } = await import('../../extractors/stellar-inventario.ts');
  return mapLimit(stores, concurrency, async (u) => {
    const signal = AbortSignal.timeout(15 * 60_000);
    const snapshotId = randomUUID();
    const takenAt = new Date();
    const inv = new Map<string, Cell[]>();
    const add = (r: InventoryRow) =>
      inv.set(`${r.deposito}\u0000${r.producto_id}`, [
        u.id,
        r.deposito,
        r.producto_id,
        r.cantidad,
        r.costo,
        r.precio,
        r.activo,
        snapshotId,
        takenAt,
      ]);
    const ventas = new Map<string, Cell[]>();
    if (u.pos === 'klk') {
      const api = createKlkApi({
        ubicacionId: u.id,
        baseUrl: u.klk.baseUrl,
        apiKey: readSecret(env, u.klk.apiKeyEnv, u.id),
        apiKeyEnv: u.klk.apiKeyEnv,
        pageSize: u.klk.pageSize,
        requestTimeoutMs: u.klk.timeoutMs,
        retry: DEFAULT_RETRY,
        signal,
        logger,
      });
      for (const d of u.depositos) for await (const r of api.inventario(d)) add(r);
      const extractedAt = new Date();
      for await (const l of api.ventas(fecha) as AsyncGenerator<VentaLinea>) {
        ventas.set(`${l.numero_factura}\u0000${l.linea}`, [
          u.id,
          l.numero_factura,
          l.linea,
          l.fecha,
          l.fecha_hora,
          l.producto_id,
          l.cantidad,
          l.precio_unitario,
          l.descuento,
          l.total,
          l.caja,
          l.anulada,
          extractedAt,
        ]);
      }
    } else {
      for (const d of u.depositos) {
        const rows = stellarInventario(
          {
            ubicacionId: u.id,
            host: u.stellar.host,
            port: u.stellar.port,
            database: u.stellar.database,
            user: readSecret(env, u.stellar.userEnv, u.id),
            password: readSecret(env, u.stellar.passwordEnv, u.id),
            passwordEnv: u.stellar.passwordEnv,
            tls: readStellarTls(u, env),
            connectTimeoutMs: u.stellar.connectTimeoutMs,
            requestTimeoutMs: u.stellar.requestTimeoutMs,
            signal,
            logger,
          },
          d,
        );
        for await (const r of rows) add(r);
      }
    }
    return { ubicacion: u.id, inventario: [...inv.values()], ventas: [...ventas.values()] };
  });
}

export async function createLegacyTables(db: pg.Pool): Promise<void> {
  await createActualShapedTable(db, LEGACY_INV);
  await db.query(`DROP TABLE IF EXISTS ${LEGACY_VENTAS}`);
  // ventas' columns, key and indexes, without what the dedupe adds.
  await db.query(`CREATE TABLE ${LEGACY_VENTAS} (LIKE ventas INCLUDING ALL)`);
  await db.query(`ALTER TABLE ${LEGACY_VENTAS} DROP COLUMN fingerprint, DROP COLUMN first_seen_at, DROP COLUMN version`);
}

export interface WritePass {
  seconds: number;
  rows_written: number;
  statements: number;
  pg_cpu_seconds: number;
}

/** Every store in its own transaction: its inventory and its day of sales upserted. */
export async function legacyWrite(client: pg.Client, reads: StoreRead[], style: 'unnest' | 'values', batch: number): Promise<WritePass> {
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const touch = 'actualizado_en = now()';
  const statement = (
    table: string,
    columns: readonly string[],
    types: readonly string[],
    key: readonly string[],
    rows: number,
    extra: string,
  ) => (style === 'unnest' ? unnestUpsert(table, columns, types, key, extra) : valuesUpsert(table, columns, key, rows, extra));
  const params = (rows: Cell[][], width: number): unknown[] =>
    style === 'unnest' ? Array.from({ length: width }, (_, c) => rows.map((r) => r[c])) : rows.flat();
  const cpu0 = procCpuSeconds(pid);
  const t0 = performance.now();
  let written = 0;
  let statements = 0;
  for (const s of reads) {
    await client.query('BEGIN');
    for (const [table, columns, types, key, rows, extra] of [
      [LEGACY_INV, INVENTARIO_ACTUAL_COLUMNS, INVENTARIO_ACTUAL_TYPES, INVENTARIO_KEY, s.inventario, touch],
      [LEGACY_VENTAS, VENTAS_COLUMNS, VENTAS_TYPES, VENTAS_KEY, s.ventas, ''],
    ] as const) {
      for (let i = 0; i < rows.length; i += batch) {
        const slice = rows.slice(i, i + batch);
        const r = await client.query(statement(table, columns, types, key, slice.length, extra), params(slice, columns.length));
        written += r.rowCount ?? 0;
        statements++;
      }
    }
    await client.query('COMMIT');
  }
  return {
    seconds: (performance.now() - t0) / 1000,
    rows_written: written,
    statements,
    pg_cpu_seconds: round(procCpuSeconds(pid) - cpu0),
  };
}

export function copyChunks(rows: Iterable<Cell[]>): Buffer[] {
  const chunks: Buffer[] = [];
  let lines: string[] = [];
  for (const r of rows) {
    lines.push(`${r.map(copyField).join('\t')}\n`);
    if (lines.length === 1_000) {
      chunks.push(Buffer.from(lines.join('')));
      lines = [];
    }
  }
  if (lines.length) chunks.push(Buffer.from(lines.join('')));
  return chunks;
}

/** COPY of the same rows into empty tables shaped like the legacy ones (the ceiling). */
export async function copyPass(client: pg.Client, reads: StoreRead[]): Promise<WritePass> {
  await createActualShapedTable(client, COPY_INV);
  await client.query(`DROP TABLE IF EXISTS ${COPY_VENTAS}`);
  await client.query(`CREATE TABLE ${COPY_VENTAS} (LIKE ${LEGACY_VENTAS} INCLUDING ALL)`);
  const inv = copyChunks(reads.flatMap((s) => s.inventario));
  const ven = copyChunks(reads.flatMap((s) => s.ventas));
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const cpu0 = procCpuSeconds(pid);
  const t0 = performance.now();
  let written = await copyInto(client, COPY_INV, inv);
  written += await copyInto(client, COPY_VENTAS, ven, [...VENTAS_COLUMNS]);
  return {
    seconds: (performance.now() - t0) / 1000,
    rows_written: written,
    statements: 2,
    pg_cpu_seconds: round(procCpuSeconds(pid) - cpu0),
  };
}
