/**
 * The pipeline's freshness per store, judged against the schedule. Pure: the sampler reads
 * `etl_runs`, `inventario_historico` and the quarantine; this module says what they mean.
 *
 * - Last successful extraction: the newest OK run of each job (INVENTARIO, VENTAS) in
 *   `etl_runs` (written by the sink from ops.etl-runs, so it also waits for the sink).
 * - Last applied snapshot: the newest snapshot with a change in `inventario_historico`, i.e. a
 *   snapshot the differ applied and the sink wrote. A snapshot identical to the one before
 *   leaves no row, so outside opening hours this may rightly lag the last extraction.
 * - Missed polls: the ticks of the job's cron inside its active window (the opening hours)
 *   within the last `lookbackMs` (24 h) that no OK run of the store answered. A run answers the
 *   tick t when it started in [t − 1 min, t + interval); a tick is judged once that slot ended.
 *   inventario is expected from every active store, ventas from the KLK ones; disabled jobs
 *   expect nothing. Runs started by hand or by the control API count like scheduled ones.
 *   Ticks before the first run of the job recorded for any store are not judged: the
 *   pipeline was not running yet (a new deployment, the demo), and nothing was missed.
 *
 * - Stale snapshots: snapshots the differ did not apply because they were older than the
 *   store's last applied one (an overlapping or delayed run, a POS clock set back); the differ
 *   records each on pos.inventario.quarantine with status STALE. They wait for no decision,
 *   so they are counted apart from the quarantine, and they make the store WARN: its newest
 *   extraction did not change its stock.
 *
 * A store's status: ERR when its last two judged polls of a job were both missed (the store
 * has been dark for a whole interval); WARN when it missed one in the lookback, has a
 * snapshot in quarantine or a stale one; OK otherwise. Reasons are in the operators'
 * language (ops/dashboard/messages.ts).
 */
import { Cron } from 'croner';
import { DEFAULT_LOCALE, type Locale } from '../../core/i18n.ts';
import { isInWindow, type ScheduledJob, type ScheduledJobName } from '../schedule-config.ts';
import { jobIntervalMs } from './lag.ts';
import { dashboardMessages } from './messages.ts';

export type FreshnessStatus = 'OK' | 'WARN' | 'ERR';
export type PolledJob = 'INVENTARIO' | 'VENTAS';

/** The schedule's job for each etl_runs job that is polled during opening hours. */
export const POLLED_JOBS: Record<PolledJob, ScheduledJobName> = { INVENTARIO: 'inventario', VENTAS: 'ventas' };

export interface FreshnessRules {
  lookbackMs: number;
  /** A run that starts this much before its tick still answers it (clocks, cron jitter). */
  earlyMs: number;
}

export const DEFAULT_FRESHNESS_RULES: FreshnessRules = { lookbackMs: 24 * 3_600_000, earlyMs: 60_000 };

export interface RunInfo {
  runId: string;
  startedAt: Date;
  finishedAt: Date;
  rows: number;
  snapshotId: string | null;
  errorClass: string | null;
  errorMessage: string | null;
}

export interface StoreInputs {
  id: string;
  nombre: string;
  pos: 'klk' | 'stellar';
  /** Newest OK and newest FAILED run per job. */
  lastOk: Partial<Record<PolledJob, RunInfo>>;
  lastFailed: Partial<Record<PolledJob, RunInfo>>;
  /** Start times of the OK runs within the lookback, per job. */
  okStarts: Partial<Record<PolledJob, Date[]>>;
  /** Start of the first run of each job recorded for any store (null: none yet): ticks before it are not judged. */
  monitoredSince: Partial<Record<PolledJob, Date | null>>;
  lastApplied: { snapshotId: string; takenAt: Date } | null;
  /** Snapshots waiting for a decision (QUARANTINED, RELEASE_REQUESTED). */
  quarantined: number;
  /** Snapshots not applied because an older one than the last applied (STALE); 0 when unknown. */
  stale?: number;
  openAlerts: number;
}

export interface PollCount {
  /** Ticks judged in the lookback. */
  expected: number;
  missed: number;
  /** Missed ticks in a row, counting back from the newest judged tick. */
  missedInARow: number;
  lastMissedAt: Date | null;
}

export interface StoreFreshness {
  id: string;
  nombre: string;
  pos: 'klk' | 'stellar';
  status: FreshnessStatus;
  reasons: string[];
  lastSuccess: Partial<Record<PolledJob, RunInfo>>;
  lastFailure: Partial<Record<PolledJob, RunInfo>>;
  lastApplied: { snapshotId: string; takenAt: Date } | null;
  /** Whether the newest OK inventory extraction is the last applied snapshot (null: nothing to compare). */
  lastExtractionApplied: boolean | null;
  polls: Partial<Record<PolledJob, PollCount>>;
  quarantined: number;
  stale: number;
  openAlerts: number;
}

/** The job's ticks in [from, to) that fall inside its window. */
export function scheduledTicks(job: ScheduledJob, from: Date, to: Date): Date[] {
  if (!job.enabled) return [];
  const cron = new Cron(job.cron, { timezone: job.timezone, paused: true, mode: '5-part' });
  const ticks: Date[] = [];
  try {
    // nextRun is strictly after its argument: start a millisecond early to include `from`.
    let at: Date | null = new Date(from.getTime() - 1);
    for (let i = 0; i < 100_000; i++) {
      at = cron.nextRun(at);
      if (!at || at.getTime() >= to.getTime()) break;
      if (isInWindow(job.window, at, job.timezone)) ticks.push(at);
    }
  } finally {
    cron.stop();
  }
  return ticks;
}

/** Counts the ticks of the lookback that no run answered (see the header). */
export function countMissedPolls(
  job: ScheduledJob,
  okStarts: Date[],
  now: Date,
  rules: FreshnessRules = DEFAULT_FRESHNESS_RULES,
  monitoredSince: Date | null = new Date(0),
): PollCount {
  const interval = jobIntervalMs(job);
  if (interval === null || monitoredSince === null) return { expected: 0, missed: 0, missedInARow: 0, lastMissedAt: null };
  const from = Math.max(now.getTime() - rules.lookbackMs, monitoredSince.getTime() - rules.earlyMs);
  const judged = scheduledTicks(job, new Date(from), now).filter((t) => t.getTime() + interval <= now.getTime());
  const starts = okStarts.map((d) => d.getTime()).sort((a, b) => a - b);
  let missed = 0;
  let missedInARow = 0;
  let lastMissedAt: Date | null = null;
  for (const tick of judged) {
    const from = tick.getTime() - rules.earlyMs;
    const to = tick.getTime() + interval;
    const answered = starts.some((s) => s >= from && s < to);
    if (answered) {
      missedInARow = 0;
    } else {
      missed++;
      missedInARow++;
      lastMissedAt = tick;
    }
  }
  return { expected: judged.length, missed, missedInARow, lastMissedAt };
}

/** The jobs a store is polled by. */
export function polledJobsOf(pos: 'klk' | 'stellar'): PolledJob[] {
  return pos === 'klk' ? ['INVENTARIO', 'VENTAS'] : ['INVENTARIO'];
}

export function storeFreshness(
  store: StoreInputs,
  jobs: ScheduledJob[],
  now: Date,
  rules: FreshnessRules = DEFAULT_FRESHNESS_RULES,
  locale: Locale = DEFAULT_LOCALE,
): StoreFreshness {
  const m = dashboardMessages(locale);
  const polls: Partial<Record<PolledJob, PollCount>> = {};
  const reasons: string[] = [];
  let status: FreshnessStatus = 'OK';
  const raise = (s: FreshnessStatus, reason: string) => {
    if (s === 'ERR' || (s === 'WARN' && status === 'OK')) status = s;
    reasons.push(reason);
  };
  for (const job of polledJobsOf(store.pos)) {
    const scheduled = jobs.find((j) => j.name === POLLED_JOBS[job]);
    if (!scheduled?.enabled) continue;
    const count = countMissedPolls(
      scheduled,
      store.okStarts[job] ?? [],
      now,
      rules,
      store.monitoredSince[job] === undefined ? new Date(0) : store.monitoredSince[job],
    );
    polls[job] = count;
    const name = job.toLowerCase();
    if (count.missedInARow >= 2) raise('ERR', m.freshMissedInARow(name, count.missedInARow));
    else if (count.missed > 0) raise('WARN', m.freshMissed(name, count.missed, count.expected, Math.round(rules.lookbackMs / 3_600_000)));
  }
  if (store.quarantined > 0) raise('WARN', m.freshQuarantined(store.quarantined));
  const stale = store.stale ?? 0;
  if (stale > 0) raise('WARN', m.freshStale(stale));
  const lastInventory = store.lastOk.INVENTARIO;
  return {
    id: store.id,
    nombre: store.nombre,
    pos: store.pos,
    status,
    reasons,
    lastSuccess: store.lastOk,
    lastFailure: store.lastFailed,
    lastApplied: store.lastApplied,
    lastExtractionApplied:
      lastInventory?.snapshotId && store.lastApplied ? lastInventory.snapshotId === store.lastApplied.snapshotId : null,
    polls,
    quarantined: store.quarantined,
    stale,
    openAlerts: store.openAlerts,
  };
}
