/** bench/processors' verdicts: the goals judged on a run's report, its note, and the table it prints. */
import type { Pass, Restart } from './processor-passes.ts';

const GOALS = { differ_min_ratio_to_ceiling: 0.5, max_peak_rss_mb: 400 };

/** Adds the goals (steady differ ratio to the ceiling, peak RSS) and how the figures were taken to the report. */
export function addGoals(report: Record<string, unknown>): void {
  const differ = report.differ as { cycles: Array<Pass & { ratio_to_ceiling: number }>; restart: Restart } | undefined;
  const steadyRatio = differ ? differ.cycles[1]!.ratio_to_ceiling : null;
  const differPeak = differ ? Math.max(...differ.cycles.map((c) => c.peak_rss_mb), differ.restart.peak_rss_mb) : null;
  const dedupe = report.dedupe as { passes: Array<{ peak_rss_mb: number }>; restart: { peak_rss_mb: number } } | undefined;
  const dedupePeak = dedupe ? Math.max(...dedupe.passes.map((p) => p.peak_rss_mb), dedupe.restart.peak_rss_mb) : null;
  report.goals = {
    ...GOALS,
    differ_steady_ratio_to_ceiling: steadyRatio,
    differ_ratio_met: steadyRatio === null ? null : steadyRatio >= GOALS.differ_min_ratio_to_ceiling,
    differ_peak_rss_mb: differPeak,
    differ_rss_met: differPeak === null ? null : differPeak < GOALS.max_peak_rss_mb,
    dedupe_peak_rss_mb: dedupePeak,
    dedupe_rss_met: dedupePeak === null ? null : dedupePeak < GOALS.max_peak_rss_mb,
  };
  report.note =
    'Each pass is timed from the group assignment of a new process (or from SIGCONT of a process stopped while the input was ' +
    'published) until the group committed offsets reached the end of the input. ' +
    'The ceiling is a decode-only consumer of the same topic in its own process (read_committed, same fetch size, offsets committed ' +
    'per fetch, nothing produced), run just before the processor on the same input; ratio = processor rows/s / ceiling rows/s. ' +
    'CPU seconds are the process user+sys over the pass; peak RSS is VmHWM over the pass (reset through clear_refs) or over the life ' +
    'of a new process. Everything shares the machine with Kafka, the registry and other users.';
}

export function printTable(report: Record<string, unknown>): void {
  type Row = {
    wall_seconds: number;
    cpu_seconds: number;
    peak_rss_mb: number;
    rows?: number;
    lines?: number;
    rows_per_second?: number;
    lines_per_second?: number;
  };
  const rate = (r: Row) => r.rows_per_second ?? r.lines_per_second ?? 0;
  const out: string[][] = [['pass', 'rows', 'wall s', 'rows/s', 'CPU s', 'peak RSS MB', 'ceiling rows/s', 'ceiling CPU s', 'ratio']];
  const add = (label: string, r: Row & { ceiling?: Row; ratio_to_ceiling?: number }) =>
    out.push([
      label,
      String(r.rows ?? r.lines),
      r.wall_seconds.toFixed(2),
      String(rate(r)),
      r.cpu_seconds.toFixed(2),
      String(r.peak_rss_mb),
      r.ceiling ? String(rate(r.ceiling)) : '',
      r.ceiling ? r.ceiling.cpu_seconds.toFixed(2) : '',
      r.ratio_to_ceiling?.toFixed(2) ?? '',
    ]);
  const differ = report.differ as
    | { cycles: Array<Row & { cycle: number }>; restart: Row & { load_seconds: number; state_records: number } }
    | undefined;
  if (differ) {
    for (const c of differ.cycles) add(`differ cycle ${c.cycle}`, c);
    add(`differ restart (load ${differ.restart.load_seconds} s, ${differ.restart.state_records} state records) + cycle 3`, differ.restart);
  }
  const dedupe = report.dedupe as
    | { passes: Array<Row & { read: number }>; restart: Row & { load_seconds: number; state_records: number } }
    | undefined;
  if (dedupe) {
    for (const p of dedupe.passes) add(`dedupe read ${p.read}`, p);
    add(`dedupe restart (load ${dedupe.restart.load_seconds} s, ${dedupe.restart.state_records} state records) + read 3`, dedupe.restart);
  }
  const widths = out[0]!.map((_, i) => Math.max(...out.map((r) => r[i]!.length)));
  for (const r of out)
    process.stdout.write(`${r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')}\n`);
  process.stdout.write(`goals: ${JSON.stringify(report.goals)}\n`);
}
