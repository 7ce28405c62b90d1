/**
 * The ABC classification of productos_abc_cache (docs/architecture.md): per store and
 * chain-wide ('cadena'), class A/B/C by sales value over a trailing window of ventas.
 *
 * The computation and the atomic replace live in PostgreSQL (productos_abc_recalcular() in
 * sql/postgres/005_abc.sql, where the exact rules are written down): the data is there, window
 * functions rank it in one pass, and one transaction swaps the whole cache, so no reader ever
 * sees a half-written one. This module calls it and reports what it wrote.
 *
 *   const result = await recalcAbc(pool, { logger });                 // now, 90 days
 *   const result = await recalcAbc(pool, { asOf, windowDays: 30, logger, signal });
 *
 * Three callers: `fluxion abc recalc`, the scheduler's 04:00 `abc` job, and the PostgreSQL
 * sink after it commits new ventas, debounced by createAbcDebouncer() below.
 */
import { ConfigError, FluxionError, type FluxionErrorOptions } from '../core/errors.ts';
import { scrubSecrets, type Logger } from '../core/logger.ts';
import { isConnectionError, type Pool, type PoolClient } from '../core/postgres.ts';
import { ABC_MAX_WINDOW_DAYS, abcConfigSchema } from './config.ts';

/** The chain-wide alcance of productos_abc_cache (the others are ubicacion_ids). */
export const ABC_CADENA = 'cadena';
export const ABC_CLASES = ['A', 'B', 'C'] as const;
export type AbcClase = (typeof ABC_CLASES)[number];

// The settings, their bounds and defaults are declared once, in sinks/config.ts; re-exported
// here for the callers that already import them from this module.
export { ABC_DEFAULTS, ABC_MAX_WINDOW_DAYS, abcConfigSchema, type AbcConfig } from './config.ts';

/** A recalculation failed; `context.sqlstate` says how, when PostgreSQL answered. */
export class AbcRecalcError extends FluxionError {
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'ABC_RECALC', ...options });
  }
}

export interface AbcRecalcOptions {
  /** The instant whose business date (America/Caracas) ends the window; default now. */
  asOf?: Date;
  /** Business days in the window, the as-of date included; default 90. */
  windowDays?: number;
  logger: Logger;
  /** Aborting cancels the running statement on the server (the cache stays as it was). */
  signal?: AbortSignal;
}

export interface AbcScopeSummary {
  /** 'cadena' or a ubicacion_id. */
  alcance: string;
  productos: Record<AbcClase, number>;
  /** Summed sales value per class, exact (numeric as text, 4 decimals). */
  valor: Record<AbcClase, string>;
}

export interface AbcRecalcResult {
  asOf: Date;
  windowDays: number;
  /** First and last business date of the window, both included (YYYY-MM-DD). */
  ventanaDesde: string;
  ventanaHasta: string;
  /** The calculado_en written on every row. */
  calculadoEn: Date;
  /** 'cadena' first, then the stores in byte order; each with all three classes. */
  alcances: AbcScopeSummary[];
  /** Rows written per class, over all alcances. */
  totales: Record<AbcClase, number>;
  /** Rows written in all. */
  filas: number;
  durationMs: number;
}

interface SummaryRow {
  alcance: string;
  clase: AbcClase;
  productos: number;
  valor: string;
  ventana_desde: string;
  ventana_hasta: string;
  calculado_en: Date;
}

// Dates and numerics as text: node-postgres would turn a date into a local-midnight Date and
// a numeric is exact only as a string.
const RECALC_SQL = `SELECT alcance, clase, productos::int AS productos, valor_ventas::text AS valor,
  ventana_desde::text AS ventana_desde, ventana_hasta::text AS ventana_hasta, calculado_en
FROM productos_abc_recalcular($1::timestamptz, $2::integer)`;

/** SQLSTATEs after which the same call may well succeed: serialization failure, deadlock, lock timeout. */
const RETRIABLE_SQLSTATE = new Set(['40001', '40P01', '55P03']);

/** Checks the options before any I/O; a bad window is a configuration problem (exit code 2). */
export function validateAbcOptions(options: { asOf?: Date; windowDays?: number }): { asOf: Date; windowDays: number } {
  // The schema of FLUXION_ABC_WINDOW_DAYS judges the window and supplies its default.
  const window = abcConfigSchema.shape.windowDays.safeParse(options.windowDays);
  const windowDays = window.success ? window.data : (options.windowDays as number);
  const asOf = options.asOf ?? new Date();
  const problems: string[] = [];
  if (!window.success) problems.push(`ABC windowDays=${windowDays}: must be a whole number of days from 1 to ${ABC_MAX_WINDOW_DAYS}`);
  if (!(asOf instanceof Date) || Number.isNaN(asOf.getTime())) problems.push(`ABC asOf=${String(asOf)}: must be a valid instant`);
  if (problems.length) throw new ConfigError(problems);
  return { asOf, windowDays };
}

/**
 * Recomputes productos_abc_cache as of `asOf` over `windowDays` business days and replaces it
 * in one transaction. Throws AbcRecalcError (the cache then stays as it was).
 */
export async function recalcAbc(pool: Pool, options: AbcRecalcOptions): Promise<AbcRecalcResult> {
  const { asOf, windowDays } = validateAbcOptions(options);
  const log = options.logger.child({ component: 'abc' });
  const what = `ABC recalculation of productos_abc_cache (as of ${asOf.toISOString()}, ${windowDays}-day window)`;
  const context = { table: 'productos_abc_cache', asOf: asOf.toISOString(), windowDays };
  const signal = options.signal;
  if (signal?.aborted) throw new AbcRecalcError(`${what} was cancelled before it started`, { context });

  const started = Date.now();
  let client: PoolClient;
  try {
    client = await pool.connect();
  } catch (cause) {
    throw new AbcRecalcError(`${what} failed: PostgreSQL is not reachable: ${scrubSecrets((cause as Error).message)}`, {
      cause,
      retriable: true,
      service: 'postgres',
      context,
    });
  }
  client.on('error', () => {
    // Reported through the query that fails; without a listener it would crash the process.
  });
  // Cancelling needs the backend's pid, and a second connection to ask for it.
  const pid = (client as unknown as { processID: number | null }).processID;
  const cancel = () => {
    if (pid === null) return;
    log.warn({ pid }, 'ABC recalculation aborted: cancelling its statement');
    pool.query('SELECT pg_cancel_backend($1)', [pid]).catch((err: unknown) => log.warn({ err }, 'could not cancel the ABC recalculation'));
  };
  signal?.addEventListener('abort', cancel, { once: true });
  if (signal?.aborted) {
    signal.removeEventListener('abort', cancel);
    client.release();
    throw new AbcRecalcError(`${what} was cancelled before it started`, { context });
  }

  let rows: SummaryRow[];
  try {
    // One statement outside any explicit transaction: it is its own transaction, so the
    // DELETE and INSERT inside the function commit together or not at all.
    rows = (await client.query<SummaryRow>(RECALC_SQL, [asOf, windowDays])).rows;
  } catch (cause) {
    throw translate(cause, what, context, signal?.aborted === true);
  } finally {
    signal?.removeEventListener('abort', cancel);
    // After an abort, a cancel request may still be on its way to this backend: close the
    // connection rather than hand it to the next borrower, whose query it could cancel.
    client.release(signal?.aborted === true ? true : undefined);
  }

  const result = summarize(rows, asOf, windowDays, Date.now() - started);
  log.info(
    {
      asOf: result.asOf.toISOString(),
      windowDays,
      ventanaDesde: result.ventanaDesde,
      ventanaHasta: result.ventanaHasta,
      filas: result.filas,
      ...result.totales,
      alcances: result.alcances.length,
      ms: result.durationMs,
    },
    'productos_abc_cache recalculated',
  );
  return result;
}

function translate(cause: unknown, what: string, context: Record<string, unknown>, aborted: boolean): AbcRecalcError {
  const pgErr = cause as { code?: string; message?: string; severity?: string };
  // Only the server's errors carry a severity; a socket's code (EPIPE) is not a SQLSTATE.
  const sqlstate = pgErr.severity !== undefined && typeof pgErr.code === 'string' ? pgErr.code : undefined;
  const detail = `${scrubSecrets(pgErr.message ?? String(cause))}${sqlstate ? ` (SQLSTATE ${sqlstate})` : ''}`;
  const ctx = { ...context, ...(sqlstate ? { sqlstate } : {}) };
  if (aborted && sqlstate === '57014') return new AbcRecalcError(`${what} was cancelled; the cache is unchanged`, { cause, context: ctx });
  if (sqlstate === '42883' || sqlstate === '42P01') {
    return new AbcRecalcError(`${what} failed: ${detail}; the database lacks migration 005_abc.sql: run \`fluxion migrate\``, {
      cause,
      context: ctx,
    });
  }
  const lost = isConnectionError(cause);
  const retriable = lost || (sqlstate !== undefined && RETRIABLE_SQLSTATE.has(sqlstate));
  return new AbcRecalcError(`${what} failed: ${detail}`, {
    cause,
    retriable,
    context: ctx,
    ...(lost ? { service: 'postgres' as const } : {}),
  });
}

const zeroCounts = (): Record<AbcClase, number> => ({ A: 0, B: 0, C: 0 });

function summarize(rows: SummaryRow[], asOf: Date, windowDays: number, durationMs: number): AbcRecalcResult {
  const first = rows[0];
  // The function always reports the three classes of 'cadena', even on an empty database.
  if (!first)
    throw new AbcRecalcError('productos_abc_recalcular() returned no summary rows: is sql/postgres/005_abc.sql the applied version?');
  const byAlcance = new Map<string, AbcScopeSummary>();
  const totales = zeroCounts();
  for (const r of rows) {
    let scope = byAlcance.get(r.alcance);
    if (!scope) {
      scope = { alcance: r.alcance, productos: zeroCounts(), valor: { A: '0.0000', B: '0.0000', C: '0.0000' } };
      byAlcance.set(r.alcance, scope);
    }
    scope.productos[r.clase] = r.productos;
    scope.valor[r.clase] = r.valor;
    totales[r.clase] += r.productos;
  }
  return {
    asOf,
    windowDays,
    ventanaDesde: first.ventana_desde,
    ventanaHasta: first.ventana_hasta,
    calculadoEn: first.calculado_en,
    alcances: [...byAlcance.values()],
    totales,
    filas: totales.A + totales.B + totales.C,
    durationMs,
  };
}

/** One line for logs and the scheduler's run summary. */
export function describeAbcResult(r: AbcRecalcResult): string {
  const stores = r.alcances.filter((a) => a.alcance !== ABC_CADENA).length;
  return (
    `productos_abc_cache: ${r.filas} rows (A ${r.totales.A}, B ${r.totales.B}, C ${r.totales.C}) for the chain and ${stores} stores, ` +
    `window ${r.ventanaDesde}..${r.ventanaHasta} (${r.windowDays} days)`
  );
}

// ---------------------------------------------------------------------------------------------
// Debounced trigger

/**
 * What the caller should do now:
 * - run:  recalculate now, then call done(); the debouncer counts the run from this moment.
 * - wait: a recalculation is wanted but the last one started less than the interval ago:
 *         poll() again at `at` (set a timer).
 * - busy: a recalculation is running; done() says what follows it.
 * - idle: nothing is wanted.
 */
export type AbcTrigger = { action: 'run' } | { action: 'wait'; at: Date } | { action: 'busy' } | { action: 'idle' };

export interface AbcDebouncer {
  /** New ventas were committed: the cache is out of date. */
  request(): AbcTrigger;
  /** Asks again without new ventas (at a `wait`'s `at`). */
  poll(): AbcTrigger;
  /** The run a `run` answer allowed has ended; a failed run is wanted again (after the interval). */
  done(outcome: { ok: boolean }): AbcTrigger;
}

export interface AbcDebouncerOptions {
  /** Minimum time between the starts of two recalculations; default 5 minutes. */
  intervalMs?: number;
  now?: () => Date;
}

/**
 * Pure state (no timers, no I/O, an injected clock) for "recalculate after new ventas, at
 * most once per interval": the first request after a quiet period runs at once (leading
 * edge), requests within the interval collapse into one run at its end (trailing edge), so
 * the last ventas committed are always classified, and never two runs at once.
 */
export function createAbcDebouncer(options: AbcDebouncerOptions = {}): AbcDebouncer {
  // The schema of FLUXION_ABC_DEBOUNCE_MS judges the interval and supplies its default.
  const interval = abcConfigSchema.shape.debounceMs.safeParse(options.intervalMs);
  if (!interval.success) throw new ConfigError([`ABC debounce interval ${options.intervalMs} ms: must be a number of milliseconds >= 0`]);
  const intervalMs = interval.data;
  const now = options.now ?? (() => new Date());
  let wanted = false;
  let running = false;
  let lastStartMs: number | undefined;

  const poll = (): AbcTrigger => {
    if (running) return { action: 'busy' };
    if (!wanted) return { action: 'idle' };
    const t = now().getTime();
    if (lastStartMs !== undefined && t - lastStartMs < intervalMs) return { action: 'wait', at: new Date(lastStartMs + intervalMs) };
    wanted = false;
    running = true;
    lastStartMs = t;
    return { action: 'run' };
  };

  return {
    request() {
      wanted = true;
      return poll();
    },
    poll,
    done(outcome) {
      if (!running) throw new Error('AbcDebouncer.done() without a run in progress');
      running = false;
      if (!outcome.ok) wanted = true;
      return poll();
    },
  };
}
