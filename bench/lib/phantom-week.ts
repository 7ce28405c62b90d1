/**
 * bench/phantom.ts's week and its scoring: the schedule's ticks over the simulated days,
 * the detector's settings from the command line, a recording of its input saved and loaded,
 * the alerts scored against the simulation's labels, a sweep replayed over one recording.
 */
import { mkdirSync, readFileSync, writeFileSync, createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Cron } from 'croner';
import type { PhantomAlert } from '../../core/records.ts';
import { fechaCaracas } from '../../core/time.ts';
import { findJob, isInWindow, loadScheduleFile, type ScheduledJob } from '../../ops/schedule-config.ts';
import { phantomSettingsProblems } from '../../processors/phantom-detector.ts';
import { DEFAULT_PHANTOM_CONFIG, type PhantomConfig } from '../../processors/phantom-rules.ts';
import { replayDetector, type RecordedInput } from './phantom-replay.ts';
import { alertsFromRecords, scorePhantomAlerts, type PhantomScore, type ScoredLabel } from '../../simulators/data/anomaly-score.ts';

export class UsageFailure extends Error {}

export const round = (n: number, digits = 2) => Number(n.toFixed(digits));
export const SNAPSHOT_MS = 30 * 60_000;
export const JOBS = ['inventario', 'ventas', 'ventas-recovery'] as const;
export type Job = (typeof JOBS)[number];

export const DECIMAL_PARAMS = new Set<keyof PhantomConfig>(['dropThreshold', 'sellingAtZeroMinSales']);

/** One PhantomConfig value from the command line: decimals as exact strings, shares and counts as numbers. */
export function configValue(param: string, raw: unknown): [keyof PhantomConfig, unknown] {
  const name = param.split('.').pop()! as keyof PhantomConfig;
  if (!(name in DEFAULT_PHANTOM_CONFIG))
    throw new UsageFailure(`${param} is not a PhantomConfig parameter (${Object.keys(DEFAULT_PHANTOM_CONFIG).join(', ')})`);
  if (DECIMAL_PARAMS.has(name)) {
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) throw new UsageFailure(`${param} must be a non-negative decimal, got ${String(raw)}`);
    return [name, n.toFixed(3)];
  }
  if (typeof DEFAULT_PHANTOM_CONFIG[name] === 'number') {
    const n = Number(raw);
    if (!Number.isFinite(n)) throw new UsageFailure(`${param} must be a number, got ${String(raw)}`);
    return [name, n];
  }
  return [name, raw];
}

export function phantomConfig(base: PhantomConfig, overrides: Record<string, unknown>): PhantomConfig {
  const config = { ...base, ...Object.fromEntries(Object.entries(overrides).map(([k, v]) => configValue(k, v))) } as PhantomConfig;
  const problems = phantomSettingsProblems(config);
  if (problems.length) throw new UsageFailure(`PhantomConfig: ${problems.join('; ')}`);
  return config;
}

// ---------------------------------------------------------------------------------------
// The week: schedule ticks.
// ---------------------------------------------------------------------------------------

/** Every tick of the enabled jobs in [from, to), with the jobs due at it. */
export function scheduleTicks(from: Date, to: Date): Array<{ at: Date; jobs: Set<Job> }> {
  const schedule = loadScheduleFile();
  const byInstant = new Map<number, Set<Job>>();
  for (const name of JOBS) {
    const job: ScheduledJob = findJob(schedule, name);
    if (!job.enabled) continue;
    const cron = new Cron(job.cron, { timezone: job.timezone, paused: true });
    for (let t = cron.nextRun(new Date(from.getTime() - 1)); t && t < to; t = cron.nextRun(t)) {
      if (!isInWindow(job.window, t, job.timezone)) continue;
      (byInstant.get(t.getTime()) ?? byInstant.set(t.getTime(), new Set()).get(t.getTime())!).add(name);
    }
  }
  return [...byInstant].sort((a, b) => a[0] - b[0]).map(([ms, jobs]) => ({ at: new Date(ms), jobs }));
}

/** Store-local dates from `from` for `days` days. */
export function datesOf(from: Date, days: number): string[] {
  return Array.from({ length: days }, (_, d) => fechaCaracas(new Date(from.getTime() + d * 86_400_000)));
}

// ---------------------------------------------------------------------------------------
// What a run leaves behind for replays: .cache/bench-phantom/<run>/.
// ---------------------------------------------------------------------------------------

export interface Recording {
  dir: string;
  inputs: RecordedInput[];
  labels: ScoredLabel[];
  alerts: PhantomAlert[];
  departments: Record<string, Record<string, string | null>>;
  snapshotTimes: Record<string, string[]>;
  stores: string[];
  days: string[];
  config: PhantomConfig;
  parameters: Record<string, unknown>;
}

export async function saveRecording(r: Recording): Promise<void> {
  mkdirSync(r.dir, { recursive: true });
  const stream = createWriteStream(join(r.dir, 'inputs.jsonl'));
  for (const i of r.inputs) if (!stream.write(`${JSON.stringify(i)}\n`)) await new Promise<void>((ok) => stream.once('drain', () => ok()));
  await new Promise<void>((ok, fail) => stream.end((err?: Error | null) => (err ? fail(err) : ok())));
  const { inputs: _i, dir: _d, ...rest } = r;
  writeFileSync(join(r.dir, 'run.json'), `${JSON.stringify(rest)}\n`);
}

export function loadRecording(dir: string): Recording {
  const revive = (k: string, v: unknown) =>
    typeof v === 'string' && ['start', 'end', 'opened_at', 'updated_at'].includes(k) ? new Date(v) : v;
  const run = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'), revive) as Omit<Recording, 'dir' | 'inputs'>;
  const inputs = readFileSync(join(dir, 'inputs.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as RecordedInput);
  return { ...run, dir, inputs };
}

// ---------------------------------------------------------------------------------------
// Scoring and sweeps.
// ---------------------------------------------------------------------------------------

export function score(rec: Recording, records: PhantomAlert[]): PhantomScore {
  return scorePhantomAlerts(rec.labels, alertsFromRecords(records), {
    graceMs: SNAPSHOT_MS,
    departmentOf: (u, p) => rec.departments[u]?.[p] ?? null,
    snapshotTimes: new Map(Object.entries(rec.snapshotTimes).map(([u, ts]) => [u, ts.map((t) => new Date(t))])),
    stores: rec.stores,
    days: rec.days,
  });
}

export function sweep(rec: Recording, base: PhantomConfig, specs: Array<{ param: keyof PhantomConfig; values: unknown[] }>) {
  const points: Array<Record<string, unknown>> = [];
  for (const spec of specs) {
    for (const value of spec.values) {
      const config = phantomConfig(base, { [spec.param]: value });
      const t0 = performance.now();
      const s = score(rec, replayDetector(rec.inputs, config));
      points.push({
        param: spec.param,
        value,
        precision: s.precision,
        recall: s.recall,
        median_ttd_minutes: s.median_ttd_minutes,
        alerts: s.alerts,
        alerts_per_store_day: s.alerts_per_store_day,
        by_rule: Object.fromEntries(
          Object.entries(s.by_rule).map(([r, x]) => [r, { alerts: x.alerts, precision: x.precision, recall: x.recall }]),
        ),
        false_positives_by_kind: Object.fromEntries(
          Object.entries(s.by_kind)
            .filter(([, k]) => k.false_positives > 0)
            .map(([k, x]) => [k, x.false_positives]),
        ),
        seconds: round((performance.now() - t0) / 1000),
      });
    }
  }
  return points;
}

export const pct = (x: number | null) => (x === null ? 'n/a' : x.toFixed(3));

export function summary(s: PhantomScore): string[] {
  const lines = [
    `precision ${pct(s.precision)} (${s.true_positives} of ${s.alerts} alerts), recall ${pct(s.recall)} (${s.labels.detected} of ` +
      `${s.labels.considered} phantom zeros a snapshot saw; ${s.labels.unobservable} unseen left out), median time to detect ` +
      `${s.median_ttd_minutes ?? 'n/a'} min`,
    `alerts per store per day: mean ${s.alerts_per_store_day.mean}, max ${s.alerts_per_store_day.max} ` +
      `(${s.alerts_per_store_day.stores} stores x ${s.alerts_per_store_day.days} days)`,
  ];
  for (const [rule, r] of Object.entries(s.by_rule)) {
    lines.push(
      `  ${rule.padEnd(17)} ${String(r.alerts).padStart(6)} alerts, precision ${pct(r.precision)}, recall ${pct(r.recall)}, first on ` +
        `${r.first_detections}, median ttd ${r.median_ttd_minutes ?? 'n/a'} min`,
    );
  }
  const fp = Object.entries(s.by_kind)
    .filter(([, k]) => k.false_positives > 0)
    .map(([k, x]) => `${k} ${x.false_positives}`);
  lines.push(`false positives by kind: ${fp.join(', ') || 'none'}`);
  return lines;
}

export function sweepLines(points: Array<Record<string, unknown>>): string[] {
  return points.map(
    (p) =>
      `  ${String(p.param)}=${String(p.value)}: precision ${pct(p.precision as number | null)}, recall ` +
      `${pct(p.recall as number | null)}, ${String(p.alerts)} alerts, ${(p.alerts_per_store_day as { mean: number }).mean} per ` +
      `store-day`,
  );
}
