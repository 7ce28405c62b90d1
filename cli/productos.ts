/**
 * `fluxion productos refresh` and the scheduled job productos-refresh: each store's catalogue
 * read from its POS (extractors/extract-run.ts) and written into productos where it differs
 * (sinks/productos-refresh.ts, which says why the job exists beside the live sink). Wired here
 * because a POS read and a PostgreSQL write belong to two components that never import each
 * other.
 *
 * Each store is read and written on its own, under its own deadline: a store that fails
 * (POS unreachable, bad data, PostgreSQL refusing its rows) is reported and writes nothing,
 * the others land, and the run exits 1.
 */
import type { Command } from 'commander';
import type { Ubicacion } from '../core/config/ubicaciones.ts';
import { DeadlineExceededError, FluxionError, errorMessage } from '../core/errors.ts';
import { scrubSecrets } from '../core/logger.ts';
import type { Pool } from '../core/postgres.ts';
import {
  EXTRACTION_DEFAULTS,
  mapLimit,
  readStoreInventario,
  type ExtractionOptions,
  type PosReadDeps,
} from '../extractors/extract-run.ts';
import { findJob, loadScheduleFile } from '../ops/schedule-config.ts';
import { createCheckins, withCheckin } from '../ops/sentry-checkins.ts';
import { assertProductosTable, refreshCatalogue, type CatalogueRefresh } from '../sinks/productos-refresh.ts';
import type { CommandContext } from './context.ts';
import { positiveInt, selection, type SelectionOptions } from './extract.ts';
import { lockedJob } from './job-lock.ts';
import type { ProgramIo } from './program-io.ts';

export interface ProductosRefreshDeps extends PosReadDeps {
  pool: Pool;
  now?: () => Date;
}

export type ProductosRefreshOptions = Pick<ExtractionOptions, 'concurrency' | 'storeDeadlineMs' | 'requestTimeoutMs' | 'retry' | 'signal'>;

export interface ProductosOutcome {
  ubicacionId: string;
  source: 'KLK' | 'STELLAR';
  status: 'OK' | 'FAILED';
  /** null when the store failed. */
  result: CatalogueRefresh | null;
  durationMs: number;
  errorClass: string | null;
  errorMessage: string | null;
}

/**
 * Two stores at a time: each holds a PostgreSQL connection while its POS is read, and this
 * is a background reconciliation that must leave the pool and the VPN to the inventory runs.
 */
export const PRODUCTOS_REFRESH_DEFAULTS = { concurrency: 2, storeDeadlineMs: EXTRACTION_DEFAULTS.storeDeadlineMs } as const;

/**
 * Refreshes productos from each store's POS; one outcome per store, in input order. Throws
 * only when PostgreSQL is unreachable or not migrated (then no store is read).
 */
export async function refreshProductos(
  stores: Ubicacion[],
  deps: ProductosRefreshDeps,
  opts: ProductosRefreshOptions = {},
): Promise<ProductosOutcome[]> {
  const now = deps.now ?? (() => new Date());
  const deadlineMs = opts.storeDeadlineMs ?? PRODUCTOS_REFRESH_DEFAULTS.storeDeadlineMs;
  const log = deps.logger.child({ component: 'productos-refresh' });
  // A database that cannot take the rows fails the run as a whole, before any POS is read.
  await assertProductosTable(deps.pool);
  return mapLimit(stores, opts.concurrency ?? PRODUCTOS_REFRESH_DEFAULTS.concurrency, async (u): Promise<ProductosOutcome> => {
    const source = u.pos === 'klk' ? 'KLK' : 'STELLAR';
    const storeLog = log.child({ ubicacion: u.id, source });
    const started = now();
    const controller = new AbortController();
    const timer = setTimeout(
      () =>
        controller.abort(
          new DeadlineExceededError(
            `${u.id}: the ${source} catalogue read did not finish within its deadline of ${deadlineMs} ms and was stopped`,
            { context: { ubicacion: u.id } },
          ),
        ),
      deadlineMs,
    );
    const onOuterAbort = () => controller.abort(opts.signal?.reason);
    opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
    const elapsed = () => now().getTime() - started.getTime();
    try {
      const rows = readStoreInventario(u, deps, opts, controller.signal);
      const result = await refreshCatalogue(deps.pool, u.id, rows, started);
      storeLog.info({ ...result, ms: elapsed() }, 'productos refreshed from the POS catalogue');
      // Nothing is deleted from productos, so an empty answer harms nothing, but it is worth a look.
      if (result.read === 0) storeLog.warn('the POS reported no products: productos keeps what it had of this store');
      return { ubicacionId: u.id, source, status: 'OK', result, durationMs: elapsed(), errorClass: null, errorMessage: null };
    } catch (err) {
      const errorClass = err instanceof FluxionError ? err.code : 'UNEXPECTED';
      storeLog.error({ err, error_class: errorClass, ms: elapsed() }, 'productos refresh of the store failed; nothing of it was written');
      return {
        ubicacionId: u.id,
        source,
        status: 'FAILED',
        result: null,
        durationMs: elapsed(),
        errorClass,
        errorMessage: scrubSecrets(errorMessage(err)),
      };
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onOuterAbort);
    }
  });
}

/** The per-store table `fluxion productos refresh` prints; its last line is the run's summary. */
export function productosSummary(outcomes: ProductosOutcome[]): string[] {
  const head = ['store', 'source', 'read', 'products', 'inserted', 'updated', 'unchanged', 'duration', 'result'];
  const rows = outcomes.map((o) => [
    o.ubicacionId,
    o.source,
    ...(o.result
      ? [o.result.read, o.result.productos, o.result.inserted, o.result.updated, o.result.unchanged].map(String)
      : ['-', '-', '-', '-', '-']),
    `${(o.durationMs / 1000).toFixed(1)} s`,
    o.status === 'OK'
      ? o.result!.newerKept
        ? `OK (${o.result!.newerKept} already newer or equal)`
        : 'OK'
      : `FAILED ${o.errorClass}: ${o.errorMessage}`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (i < head.length - 1 ? r[i]!.length : 0))));
  const fmt = (r: string[]) =>
    r.map((c, i) => (i === r.length - 1 ? c : i >= 2 && i <= 6 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  const ok = outcomes.filter((o) => o.status === 'OK');
  const sum = (k: 'inserted' | 'updated' | 'unchanged') => ok.reduce((n, o) => n + o.result![k], 0);
  const failed = outcomes.length - ok.length;
  return [
    fmt(head),
    ...rows.map(fmt),
    `productos: ${ok.length} of ${outcomes.length} stores OK${failed ? `, ${failed} FAILED` : ''}; ${sum('inserted')} inserted, ` +
      `${sum('updated')} updated, ${sum('unchanged')} unchanged`,
  ];
}

/** With SENTRY_DSN set, reports to the productos-refresh monitor, as the other one-shot jobs do. */
async function checkedIn(c: CommandContext, run: () => Promise<ProductosOutcome[]>): Promise<ProductosOutcome[]> {
  const options = c.config.sentry;
  if (!options.dsn) return run();
  const checkins = createCheckins({ ...options, logger: c.logger });
  try {
    return await withCheckin(checkins, findJob(loadScheduleFile(), 'productos-refresh').monitor, run, {
      isOk: (o) => o.every((x) => x.status === 'OK'),
    });
  } finally {
    await checkins.flush();
  }
}

export function registerProductosCommand(program: Command, io: ProgramIo): void {
  const productos = program.command('productos').description('the product catalogue (productos)');
  productos
    .command('refresh')
    .description(
      "read each store's catalogue from its POS and write into productos the products that differ (the 6-hourly productos-refresh job)",
    )
    .option('--todas', 'every active store')
    .option('--tienda <id>', 'one store (repeatable)', (value: string, previous: string[] = []) => [...previous, value])
    .option('--concurrency <n>', 'stores read at the same time', String(PRODUCTOS_REFRESH_DEFAULTS.concurrency))
    .option('--deadline-seconds <n>', 'a store still running after this fails', String(PRODUCTOS_REFRESH_DEFAULTS.storeDeadlineMs / 1000))
    .action(async (opts: SelectionOptions) => {
      const concurrency = positiveInt(opts.concurrency, '--concurrency');
      const storeDeadlineMs = positiveInt(opts.deadlineSeconds, '--deadline-seconds') * 1000;
      const c = io.context();
      const stores = selection(c.ubicaciones(), opts);
      const deps = { pool: c.pool(), env: c.env, logger: c.logger };
      const outcomes = await lockedJob(c, 'productos-refresh', () =>
        checkedIn(c, () => refreshProductos(stores, deps, { concurrency, storeDeadlineMs })),
      );
      for (const line of productosSummary(outcomes)) io.out(line);
      if (outcomes.some((o) => o.status === 'FAILED')) io.fail(1);
    });
}
