/**
 * PostgreSQL pool with the defaults node-postgres lacks (docs/pitfalls.md): connection and
 * query timeouts, a statement_timeout just below the client's, and a listener for idle
 * clients' errors (without one, a restarting server kills the process).
 */
import pg from 'pg';
import { ServiceUnavailableError } from './errors.ts';
import type { Logger } from './logger.ts';
import { scrubSecrets } from './logger.ts';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

export interface PoolOptions {
  connectionString: string;
  logger: Logger;
  max?: number;
  applicationName?: string;
  queryTimeoutMs?: number;
}

/** SQLSTATE classes that mean "the server is not there right now", not "your data is bad". */
const UNAVAILABLE_SQLSTATE = /^(08|57P0[1-3]|53)/;

/** Node's socket error codes for a server that is not there (or went away). */
const UNAVAILABLE_NETWORK_CODES = ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND'];

/**
 * node-postgres (pg and pg-pool) reports a lost or unreachable server with plain Errors that
 * carry no code: "Connection terminated unexpectedly", "timeout exceeded when trying to
 * connect", "Client has encountered a connection error and is not queryable", "Client was
 * closed and is not queryable". Their text is all there is to tell them by, so this is the one
 * place that reads a PostgreSQL error's message; everything else branches on SQLSTATEs, codes
 * or classes (core/errors.ts).
 */
const PG_CONNECTION_MESSAGES = new RegExp(
  [
    'Connection terminated',
    'timeout exceeded when trying to connect',
    'connection error and is not queryable',
    'Client was closed and is not queryable',
  ].join('|'),
  'i',
);
function isPgConnectionLoss(err: unknown): boolean {
  return PG_CONNECTION_MESSAGES.test((err as Error)?.message ?? '');
}

export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: string })?.code ?? '';
  return UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_NETWORK_CODES.includes(code) || isPgConnectionLoss(err);
}

export function createPool(options: PoolOptions): Pool {
  const queryTimeout = options.queryTimeoutMs ?? 120_000;
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 4,
    application_name: options.applicationName ?? 'fluxion',
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
    query_timeout: queryTimeout,
    statement_timeout: Math.max(1_000, queryTimeout - 2_000),
    keepAlive: true,
  });
  pool.on('error', (err) => {
    options.logger.warn(
      { err: { message: scrubSecrets(err.message), code: (err as { code?: string }).code } },
      'idle PostgreSQL client failed; the pool will replace it',
    );
  });
  // A checked-out client's error is reported through the query that fails; without a
  // listener it would also be thrown as an uncaught exception. Once per client, not per use.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  return pool;
}

/** Where the connection string points, without its password, for messages. */
export function describeDatabase(connectionString: string): string {
  try {
    const u = new URL(connectionString);
    return `${u.username ? `${u.username}@` : ''}${u.host}${u.pathname}`;
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}

/** Runs `work` in one transaction on one client; rolls back on any error. */
export async function withTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>, connectionString?: string): Promise<T> {
  let client: PoolClient;
  try {
    client = await pool.connect();
  } catch (cause) {
    throw new ServiceUnavailableError(
      `PostgreSQL${connectionString ? ` at ${describeDatabase(connectionString)}` : ''} is not reachable: ` +
        `${scrubSecrets((cause as Error).message)}`,
      { cause, service: 'postgres' },
    );
  }
  try {
    return await inTransaction(client, work);
  } finally {
    client.release();
  }
}

/** Runs `work` in one transaction on a client the caller holds (and releases); rolls back on any error. */
export async function inTransaction<T>(client: PoolClient, work: (client: PoolClient) => Promise<T>): Promise<T> {
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
