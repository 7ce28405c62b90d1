/**
 * bench/e2e.ts's report: the goals, the figures of the run before (Kafka bytes, pipeline
 * CPU), and the lines printed per cycle and at the end.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../core/paths.ts';
import { median, round } from './stats.ts';
import {
  fmt,
  out,
} from './e2e-processes.ts';

/** Issue 16's goals (bench/README.md reads the results against them). */
export const GOALS = {
  max_ratio_to_legacy: 0.8,
  max_cycle1_ratio_to_legacy: 2,
  min_fewer_rows_factor: 15,
  max_freshness_p95_seconds: 2,
  max_write_amplification: 1.05,
  max_fluxion_rss_mb: 300,
  max_national_cycle_seconds: 600,
  max_restart_seconds: 30,
  max_kafka_bytes_share: 0.25,
};
/** The last chain run before issue 16 (no compression): the Kafka-bytes goal's baseline. */
export const BEFORE_FILE = join(PROJECT_ROOT, 'bench', 'results', '2026-11-29-chain.json');
export const PIPELINE_CPU = ['differ', 'dedupe', 'phantom', 'sink', 'kafka'];

/** CPU seconds of the pipeline in a cycle: the extractors, the processors, the sink and Kafka. */
export function pipelineCpu(r: Record<string, unknown>): number {
  const cpu = r.cpu_seconds as Record<string, number>;
  const extract = ((r.ours as { stages: { extract: { cpu_seconds: number | null } } }).stages.extract.cpu_seconds) ?? 0;
  return PIPELINE_CPU.reduce((sum, k) => sum + (cpu[k] ?? 0), extract);
}

/** Steady medians of Kafka bytes and pipeline CPU in BEFORE_FILE, or null when it is not there. */
export function before(): { kafka_bytes: number; pipeline_cpu_seconds: number; file: string } | null {
  if (!existsSync(BEFORE_FILE)) return null;
  const cycles = (JSON.parse(readFileSync(BEFORE_FILE, 'utf8')) as { cycles: Array<Record<string, unknown>> }).cycles.filter((c) => c.steady);
  return {
    kafka_bytes: median(cycles.map((c) => (c.ours as { kafka_bytes: number }).kafka_bytes)),
    pipeline_cpu_seconds: round(median(cycles.map(pipelineCpu))),
    file: BEFORE_FILE.slice(PROJECT_ROOT.length + 1),
  };
}

// ---------------------------------------------------------------------------------------
// Printing.
// ---------------------------------------------------------------------------------------

export function printCycle(r: Record<string, unknown>): void {
  const ours = r.ours as { wall_seconds: number; rows_written: number; kafka_bytes: number | null; stages: Record<string, StageFigures & Record<string, unknown>>; freshness_seconds: { p50: number; p95: number; max: number; stores: number } };
  const legacy = r.legacy as { read_seconds: number; write_seconds: number; total_seconds: number; rows_written: number };
  const copy = r.copy as { seconds: number; rows: number };
  const ratios = r.ratios as Record<string, number>;
  const pgm = r.postgres as { cpu_seconds: number; peak_rss_sum_mb: number; peak_anon_plus_shared_mb: number };
  const cpu = r.cpu_seconds as Record<string, number>;
  const peaks = r.peak_rss_mb as Record<string, number | null>;
  out('');
  out(`cycle ${r.cycle}${r.steady ? '' : ' (loads everything)'}: ours ${ours.wall_seconds} s | legacy ${legacy.total_seconds} s (read ${legacy.read_seconds} + write ${legacy.write_seconds}) | COPY ${copy.seconds} s (${fmt(copy.rows)} rows)`);
  out(`  ratios: ours/legacy ${ratios.ours_to_legacy_wall}, ours/COPY ${ratios.ours_to_copy_wall}; rows written: ours ${fmt(ours.rows_written)}, legacy ${fmt(legacy.rows_written)} (${ratios.legacy_to_ours_rows_written}x fewer)`);
  out(`  freshness (${ours.freshness_seconds.stores} stores): p50 ${ours.freshness_seconds.p50} s, p95 ${ours.freshness_seconds.p95} s, max ${ours.freshness_seconds.max} s; Kafka ${ours.kafka_bytes === null ? 'n/a' : `${(ours.kafka_bytes / 2 ** 20).toFixed(1)} MB`}`);
  out(`  ${'stage'.padEnd(8)} ${'rows'.padStart(10)} ${'done s'.padStart(7)} ${'tail s'.padStart(7)} ${'rows/s'.padStart(9)} ${'CPU s'.padStart(7)} ${'peak MB'.padStart(8)}`);
  for (const [name, s] of Object.entries(ours.stages)) {
    out(`  ${name.padEnd(8)} ${fmt(s.rows).padStart(10)} ${String(s.done_seconds).padStart(7)} ${String(s.tail_seconds).padStart(7)} ${fmt(s.rows_per_second).padStart(9)} ${String(s.cpu_seconds ?? '-').padStart(7)} ${String(s.peak_rss_mb ?? '-').padStart(8)}`);
  }
  const x = ours.stages.extract as Record<string, unknown>;
  out(`  extractors: inventario ${x.inventario_seconds} s (node start-up to first read ${x.inventario_startup_seconds} s), ventas ${x.ventas_seconds} s (start-up ${x.ventas_startup_seconds} s); bench process ${cpu.bench} s CPU (end tracker, polling)`);
  const svc = ['simulate-klk', 'simulate-stellar', 'kafka', 'registry'].filter((k) => k in cpu).map((k) => `${k} ${cpu[k]} s / ${peaks[k]} MB`);
  out(`  others (CPU s / peak RSS): ${[...svc, `postgresql ${pgm.cpu_seconds} s / ${pgm.peak_rss_sum_mb} MB summed (${pgm.peak_anon_plus_shared_mb} MB private+shared)`].join(', ')}`);
}

export function printSummary(report: { steady_medians: Record<string, unknown>; goals: Record<string, { goal: string; applies: boolean; met: boolean } & Record<string, unknown>> }): void {
  const m = report.steady_medians as Record<string, number>;
  out('');
  out(`medians over cycles ${JSON.stringify(m.cycles)}: ours ${m.ours_wall_seconds} s, legacy ${m.legacy_total_seconds} s (read ${m.legacy_read_seconds} + write ${m.legacy_write_seconds}), COPY ${m.copy_seconds} s`);
  out(`  ours/legacy ${m.ours_to_legacy_wall}, ours/COPY ${m.ours_to_copy_wall}, rows written ours ${fmt(m.ours_rows_written ?? 0)} vs legacy ${fmt(m.legacy_rows_written ?? 0)} (${m.legacy_to_ours_rows_written}x fewer)`);
  out('goals:');
  for (const [name, g] of Object.entries(report.goals)) {
    const { goal, applies, met, ...figures } = g;
    out(`  ${applies ? (met ? 'MET   ' : 'MISSED') : 'n/a   '} ${name}: ${goal}: ${JSON.stringify(figures)}`);
  }
}

export interface StageFigures {
  rows: number;
  /** Seconds from the cycle's start until the stage reached the end of its input. */
  done_seconds: number;
  /** rows / done_seconds. */
  rows_per_second: number;
  /** done_seconds minus the upstream stage's: the time the stage adds after its input ended. */
  tail_seconds: number;
  cpu_seconds: number | null;
  peak_rss_mb: number | null;
}
