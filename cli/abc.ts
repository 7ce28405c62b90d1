/** `fluxion abc recalc`: recompute productos_abc_cache now (see sinks/abc-recalc.ts). */
import type { Command } from 'commander';
import { UsageError } from '../core/errors.ts';
import { fechaCaracas } from '../core/time.ts';
import { withFailureMail } from '../ops/job-failure-mail.ts';
import { findJob, loadScheduleFile } from '../ops/schedule-config.ts';
import { createCheckins, withCheckin } from '../ops/sentry-checkins.ts';
import { ABC_CADENA, ABC_DEFAULTS, ABC_MAX_WINDOW_DAYS, describeAbcResult, recalcAbc, type AbcRecalcResult } from '../sinks/abc-recalc.ts';
import type { CommandContext } from './context.ts';
import { jobAlertsOf } from './job-alerts.ts';
import { lockedJob } from './job-lock.ts';
import type { ProgramIo } from './program-io.ts';

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
// An instant must say its offset: "04:00" alone would mean the machine's zone, not the stores'.
const INSTANT = /^(\d{4})-(\d{2})-(\d{2})T([01]\d|2[0-3]):([0-5]\d)(:[0-5]\d(\.\d{1,9})?)?(Z|[+-]([01]\d|2[0-3]):?[0-5]\d)$/;

function isRealDate(y: string, m: string, d: string): boolean {
  const t = new Date(Date.UTC(Number(y), Number(m) - 1, Number(d)));
  // Date.UTC rolls 2026-02-30 over to March; a real date survives the round trip.
  return t.getUTCFullYear() === Number(y) && t.getUTCMonth() === Number(m) - 1 && t.getUTCDate() === Number(d);
}

/**
 * --as-of: a business date (YYYY-MM-DD, America/Caracas), meaning the window ends on that
 * date, or an instant with its offset (2026-03-01T04:00:00-04:00 or ...Z), whose business
 * date ends the window.
 */
export function parseAsOf(value: string): Date {
  const usage = () =>
    new UsageError(
      `--as-of must be a date YYYY-MM-DD (a business day in America/Caracas) or an instant with its offset, e.g. ` +
        `2026-03-01T04:00:00-04:00 or 2026-03-01T08:00:00Z; got "${value}"`,
    );
  const date = DATE.exec(value);
  if (date) {
    if (!isRealDate(date[1]!, date[2]!, date[3]!)) throw usage();
    // Noon in Caracas is inside that business date whatever the machine's time zone.
    const instant = new Date(`${value}T12:00:00-04:00`);
    if (fechaCaracas(instant) !== value) throw usage();
    return instant;
  }
  const parsed = instantOrNull(value);
  if (!parsed) throw usage();
  return parsed;
}

function instantOrNull(value: string): Date | null {
  const instant = INSTANT.exec(value);
  if (!instant || !isRealDate(instant[1]!, instant[2]!, instant[3]!)) return null;
  const parsed = new Date(value);
  return Number.isNaN(parsed.getTime()) ? null : parsed;
}

/** An option that must be an instant with its offset (a bare local time would mean the machine's zone). */
export function parseInstant(option: string, value: string): Date {
  const parsed = instantOrNull(value);
  if (!parsed)
    throw new UsageError(
      `${option} must be an instant with its offset, e.g. 2026-11-01T00:00:00-04:00 or 2026-11-01T04:00:00Z; got "${value}"`,
    );
  return parsed;
}

export function parseWindowDays(value: string): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > ABC_MAX_WINDOW_DAYS) {
    throw new UsageError(`--window-days must be a whole number of days from 1 to ${ABC_MAX_WINDOW_DAYS}, got "${value}"`);
  }
  return n;
}

/** The table `fluxion abc recalc` prints: rows per class for the chain and each store. */
export function abcSummaryLines(r: AbcRecalcResult): string[] {
  const head = ['alcance', 'A', 'B', 'C', 'total'];
  const rows = r.alcances.map((a) => [
    a.alcance,
    String(a.productos.A),
    String(a.productos.B),
    String(a.productos.C),
    String(a.productos.A + a.productos.B + a.productos.C),
  ]);
  rows.push(['(all)', String(r.totales.A), String(r.totales.B), String(r.totales.C), String(r.filas)]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const fmt = (row: string[]) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [
    `abc: window ${r.ventanaDesde}..${r.ventanaHasta} (${r.windowDays} days, as of ${r.asOf.toISOString()}), computed at ` +
      `${r.calculadoEn.toISOString()} in ${(r.durationMs / 1000).toFixed(1)} s`,
    fmt(head),
    ...rows.map(fmt),
    describeAbcResult(r),
  ];
}

/**
 * With SENTRY_DSN set, reports to the abc job's cron monitor, as the extract commands do; a
 * failed recalculation mails the operators too (ops/job-failure-mail.ts).
 */
async function checkedIn(c: CommandContext, recalc: () => Promise<AbcRecalcResult>): Promise<AbcRecalcResult> {
  const run = () => withFailureMail(jobAlertsOf(c), 'abc', recalc);
  const options = c.config.sentry;
  if (!options.dsn) return run();
  const checkins = createCheckins({ ...options, logger: c.logger });
  try {
    return await withCheckin(checkins, findJob(loadScheduleFile(), 'abc').monitor, run);
  } finally {
    await checkins.flush();
  }
}

export function registerAbcCommand(program: Command, io: ProgramIo): void {
  const abc = program.command('abc').description(`ABC classification of products (productos_abc_cache: per store and '${ABC_CADENA}')`);
  abc
    .command('recalc')
    .description('recompute productos_abc_cache now: A/B/C by sales value over the trailing window, replaced atomically')
    .option('--window-days <n>', 'business days of ventas in the window, the as-of date included', String(ABC_DEFAULTS.windowDays))
    .option('--as-of <date|instant>', 'end of the window: YYYY-MM-DD (America/Caracas) or an ISO instant with offset (default: now)')
    .action(async (opts: { windowDays: string; asOf?: string }) => {
      // Arguments first: a typo must not wait for (or depend on) the database.
      const windowDays = parseWindowDays(opts.windowDays);
      const asOf = opts.asOf === undefined ? new Date() : parseAsOf(opts.asOf);
      const c = io.context();
      const result = await lockedJob(c, 'abc', () => checkedIn(c, () => recalcAbc(c.pool(), { asOf, windowDays, logger: c.logger })));
      for (const line of abcSummaryLines(result)) io.out(line);
    });
}
