/** `fluxion extract inventario|ventas`: the CLI wiring of the extractors. */
import type { Command } from 'commander';
import { selectUbicaciones, type Ubicacion } from '../core/config/ubicaciones.ts';
import { UsageError } from '../core/errors.ts';
import { ayerCaracas, fechaCaracas } from '../core/time.ts';
import type { StoreOutcome } from '../core/etl-run.ts';
import { EXTRACTION_DEFAULTS, extractInventario, extractVentas } from '../extractors/extract-run.ts';
import { jobFailureOfOutcomes, withFailureMail } from '../ops/job-failure-mail.ts';
import { findJob, loadScheduleFile, type ScheduledJobName } from '../ops/schedule-config.ts';
import { createCheckins, withCheckin } from '../ops/sentry-checkins.ts';
import type { CommandContext } from './context.ts';
import { jobAlertsOf } from './job-alerts.ts';
import { lockedJob } from './job-lock.ts';
import type { ProgramIo } from './program-io.ts';

/**
 * Runs an extraction; with SENTRY_DSN set it reports to the job's cron monitor, for
 * deployments where an external scheduler starts the container. A run that fails as a whole
 * (Kafka or the registry unreachable) mails the operators too (ops/job-failure-mail.ts).
 */
async function checkedIn(c: CommandContext, job: ScheduledJobName, extract: () => Promise<StoreOutcome[]>): Promise<StoreOutcome[]> {
  const run = () => withFailureMail(jobAlertsOf(c), job, extract, (o) => jobFailureOfOutcomes(job, o));
  const options = c.config.sentry;
  if (!options.dsn) return run();
  const checkins = createCheckins({ ...options, logger: c.logger });
  try {
    return await withCheckin(checkins, findJob(loadScheduleFile(), job).monitor, run, { isOk: (o) => o.every((x) => x.status === 'OK') });
  } finally {
    await checkins.flush();
  }
}

export interface SelectionOptions {
  todas?: boolean;
  tienda?: string[];
  concurrency: string;
  deadlineSeconds: string;
}

export function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} must be a whole number >= 1, got "${value}"`);
  return n;
}

export function selection(all: Ubicacion[], opts: SelectionOptions): Ubicacion[] {
  if (opts.todas && opts.tienda?.length) throw new UsageError('give either --todas or --tienda ID, not both');
  if (!opts.todas && !opts.tienda?.length) throw new UsageError('say which stores: --todas or --tienda ID [--tienda ID ...]');
  return selectUbicaciones(all, opts.todas ? 'todas' : opts.tienda!);
}

/** The per-store summary table every extraction prints. */
export function summaryTable(outcomes: StoreOutcome[]): string[] {
  const rows = outcomes.map((o) => [
    o.ubicacionId,
    o.source,
    String(o.rows),
    `${(o.durationMs / 1000).toFixed(1)} s`,
    o.status === 'OK' ? 'OK' : `FAILED ${o.errorClass}: ${o.errorMessage}`,
  ]);
  const head = ['store', 'source', 'rows', 'duration', 'result'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (i < 4 ? r[i]!.length : 0))));
  const fmt = (r: string[]) => r.map((c, i) => (i < 4 ? (i === 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)) : c)).join('  ');
  const failed = outcomes.filter((o) => o.status === 'FAILED').length;
  return [fmt(head), ...rows.map(fmt), `${outcomes.length - failed} of ${outcomes.length} stores OK${failed ? `, ${failed} FAILED` : ''}`];
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerExtractCommands(program: Command, io: ProgramIo): void {
  const extract = program.command('extract').description('read the POS systems and publish to Kafka (one transaction per store)');
  const common = (c: Command) =>
    c
      .option('--todas', 'every active store')
      .option('--tienda <id>', 'one store (repeatable)', collect)
      .option('--concurrency <n>', 'stores read at the same time', String(EXTRACTION_DEFAULTS.concurrency))
      .option('--deadline-seconds <n>', 'a store still running after this fails', String(EXTRACTION_DEFAULTS.storeDeadlineMs / 1000));

  common(extract.command('inventario').description('publish a full inventory snapshot of each store to pos.inventario.snapshots')).action(
    async (opts: SelectionOptions) => {
      const c = io.context();
      const stores = selection(c.ubicaciones(), opts);
      const options = {
        concurrency: positiveInt(opts.concurrency, '--concurrency'),
        storeDeadlineMs: positiveInt(opts.deadlineSeconds, '--deadline-seconds') * 1000,
      };
      const outcomes = await lockedJob(c, 'inventario', () =>
        checkedIn(c, 'inventario', () => extractInventario(stores, c.extractionDeps(), options)),
      );
      for (const line of summaryTable(outcomes)) io.out(line);
      if (outcomes.some((o) => o.status === 'FAILED')) io.fail(1);
    },
  );

  common(extract.command('ventas').description("publish a day's sales lines of each KLK store to pos.ventas.raw"))
    .option('--fecha <YYYY-MM-DD>', 'business date to read (default: today in America/Caracas)')
    .option('--recovery', "re-read yesterday's sales (America/Caracas), as the 03:00 job does")
    .action(async (opts: SelectionOptions & { fecha?: string; recovery?: boolean }) => {
      const c = io.context();
      if (opts.fecha && opts.recovery) throw new UsageError('give either --fecha or --recovery, not both');
      if (
        opts.fecha &&
        (!/^\d{4}-\d{2}-\d{2}$/.test(opts.fecha) || fechaCaracas(new Date(`${opts.fecha}T12:00:00-04:00`)) !== opts.fecha)
      ) {
        throw new UsageError(`--fecha must be a real date as YYYY-MM-DD, got "${opts.fecha}"`);
      }
      const now = new Date();
      const fecha = opts.fecha ?? (opts.recovery ? ayerCaracas(now) : fechaCaracas(now));
      let stores = selection(c.ubicaciones(), opts);
      if (opts.todas) stores = stores.filter((u) => u.pos === 'klk');
      const stellar = stores.filter((u) => u.pos !== 'klk');
      if (stellar.length)
        throw new UsageError(`${stellar.map((u) => u.id).join(', ')}: Stellar has no sales API; ventas come from KLK stores only`);
      const job = opts.recovery ? 'ventas-recovery' : 'ventas';
      const options = {
        concurrency: positiveInt(opts.concurrency, '--concurrency'),
        storeDeadlineMs: positiveInt(opts.deadlineSeconds, '--deadline-seconds') * 1000,
      };
      const outcomes = await lockedJob(c, job, () =>
        checkedIn(c, job, () => extractVentas(stores, fecha, opts.recovery ? 'VENTAS_RECOVERY' : 'VENTAS', c.extractionDeps(), options)),
      );
      io.out(`fecha ${fecha}`);
      for (const line of summaryTable(outcomes)) io.out(line);
      if (outcomes.some((o) => o.status === 'FAILED')) io.fail(1);
    });
}
