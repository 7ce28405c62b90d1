/**
 * bench/e2e.ts's report: the goals, the figures of the run before (Kafka bytes, pipeline
 * CPU), and the lines printed per cycle and at the end.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../core/paths.ts';
import { median, percentile, round } from './stats.ts';
import { fmt, out } from './e2e-processes.ts';

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
  const extract = (r.ours as { stages: { extract: { cpu_seconds: number | null } } }).stages.extract.cpu_seconds ?? 0;
  return PIPELINE_CPU.reduce((sum, k) => sum + (cpu[k] ?? 0), extract);
}

/** Steady medians of Kafka bytes and pipeline CPU in BEFORE_FILE, or null when it is not there. */
export function before(): { kafka_bytes: number; pipeline_cpu_seconds: number; file: string } | null {
  if (!existsSync(BEFORE_FILE)) return null;
  const cycles = (JSON.parse(readFileSync(BEFORE_FILE, 'utf8')) as { cycles: Array<Record<string, unknown>> }).cycles.filter(
    (c) => c.steady,
  );
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
  const ours = r.ours as {
    wall_seconds: number;
    rows_written: number;
    kafka_bytes: number | null;
    stages: Record<string, StageFigures & Record<string, unknown>>;
    freshness_seconds: { p50: number; p95: number; max: number; stores: number };
  };
  const legacy = r.legacy as { read_seconds: number; write_seconds: number; total_seconds: number; rows_written: number };
  const copy = r.copy as { seconds: number; rows: number };
  const ratios = r.ratios as Record<string, number>;
  const pgm = r.postgres as { cpu_seconds: number; peak_rss_sum_mb: number; peak_anon_plus_shared_mb: number };
  const cpu = r.cpu_seconds as Record<string, number>;
  const peaks = r.peak_rss_mb as Record<string, number | null>;
  out('');
  out(
    `cycle ${r.cycle}${r.steady ? '' : ' (loads everything)'}: ours ${ours.wall_seconds} s | legacy ${legacy.total_seconds} s (read ` +
      `${legacy.read_seconds} + write ${legacy.write_seconds}) | COPY ${copy.seconds} s (${fmt(copy.rows)} rows)`,
  );
  out(
    `  ratios: ours/legacy ${ratios.ours_to_legacy_wall}, ours/COPY ${ratios.ours_to_copy_wall}; rows written: ours ` +
      `${fmt(ours.rows_written)}, legacy ${fmt(legacy.rows_written)} (${ratios.legacy_to_ours_rows_written}x fewer)`,
  );
  out(
    `  freshness (${ours.freshness_seconds.stores} stores): p50 ${ours.freshness_seconds.p50} s, p95 ${ours.freshness_seconds.p95} s, ` +
      `max ${ours.freshness_seconds.max} s; Kafka ${ours.kafka_bytes === null ? 'n/a' : `${(ours.kafka_bytes / 2 ** 20).toFixed(1)} MB`}`,
  );
  out(
    `  ${'stage'.padEnd(8)} ${'rows'.padStart(10)} ${'done s'.padStart(7)} ${'tail s'.padStart(7)} ${'rows/s'.padStart(9)} ` +
      `${'CPU s'.padStart(7)} ${'peak MB'.padStart(8)}`,
  );
  for (const [name, s] of Object.entries(ours.stages)) {
    out(
      `  ${name.padEnd(8)} ${fmt(s.rows).padStart(10)} ${String(s.done_seconds).padStart(7)} ${String(s.tail_seconds).padStart(7)} ` +
        `${fmt(s.rows_per_second).padStart(9)} ${String(s.cpu_seconds ?? '-').padStart(7)} ${String(s.peak_rss_mb ?? '-').padStart(8)}`,
    );
  }
  const x = ours.stages.extract as Record<string, unknown>;
  out(
    `  extractors: inventario ${x.inventario_seconds} s (node start-up to first read ${x.inventario_startup_seconds} s), ventas ` +
      `${x.ventas_seconds} s (start-up ${x.ventas_startup_seconds} s); bench process ${cpu.bench} s CPU (end tracker, polling)`,
  );
  const svc = ['simulate-klk', 'simulate-stellar', 'kafka', 'registry']
    .filter((k) => k in cpu)
    .map((k) => `${k} ${cpu[k]} s / ${peaks[k]} MB`);
  const pgRss = `${pgm.peak_rss_sum_mb} MB summed (${pgm.peak_anon_plus_shared_mb} MB private+shared)`;
  const postgres = `postgresql ${pgm.cpu_seconds} s / ${pgRss}`;
  out(`  others (CPU s / peak RSS): ${[...svc, postgres].join(', ')}`);
}

export function printSummary(report: {
  steady_medians: Record<string, unknown>;
  goals: Record<string, { goal: string; applies: boolean; met: boolean } & Record<string, unknown>>;
}): void {
  const m = report.steady_medians as Record<string, number>;
  out('');
  out(
    `medians over cycles ${JSON.stringify(m.cycles)}: ours ${m.ours_wall_seconds} s, legacy ${m.legacy_total_seconds} s (read ` +
      `${m.legacy_read_seconds} + write ${m.legacy_write_seconds}), COPY ${m.copy_seconds} s`,
  );
  out(
    `  ours/legacy ${m.ours_to_legacy_wall}, ours/COPY ${m.ours_to_copy_wall}, rows written ours ${fmt(m.ours_rows_written ?? 0)} vs ` +
      `legacy ${fmt(m.legacy_rows_written ?? 0)} (${m.legacy_to_ours_rows_written}x fewer)`,
  );
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

/** The steady cycles' medians and every goal's verdict (pure: from the cycles' records). */
export function steadyGoals(
  results: Array<Record<string, unknown>>,
  o: {
    scenario: string;
    cycles: number;
    heapMb: number | null;
    scaled: boolean;
    restart: ({ kill_to_loaded_seconds: number } & Record<string, unknown>) | null;
  },
) {
  const { scenario, cycles, heapMb, scaled, restart } = o;
  const steady = results.filter((r) => r.steady);
  const basis = steady.length ? steady : results;
  const get = (r: Record<string, unknown>, path: string) =>
    path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], r) as number;
  // A figure a run did not take (the legacy pass under --no-legacy, Kafka bytes when the broker's
  // data directory is not found) is null in the results, not a crash after the whole run.
  const med = (path: string) => {
    const xs = basis.map((r) => get(r, path)).filter((x) => typeof x === 'number' && Number.isFinite(x));
    return xs.length ? round(median(xs)) : null;
  };
  const medians = {
    cycles: basis.map((r) => r.cycle),
    ours_wall_seconds: med('ours.wall_seconds'),
    legacy_total_seconds: med('legacy.total_seconds'),
    legacy_read_seconds: med('legacy.read_seconds'),
    legacy_write_seconds: med('legacy.write_seconds'),
    copy_seconds: med('copy.seconds'),
    ours_to_legacy_wall: med('ratios.ours_to_legacy_wall'),
    ours_to_copy_wall: med('ratios.ours_to_copy_wall'),
    ours_rows_written: med('ours.rows_written'),
    legacy_rows_written: med('legacy.rows_written'),
    legacy_to_ours_rows_written: med('ratios.legacy_to_ours_rows_written'),
    kafka_bytes: med('ours.kafka_bytes'),
    stages: Object.fromEntries(
      ['extract', 'differ', 'dedupe', 'phantom', 'sink'].map((s) => [
        s,
        {
          done_seconds: med(`ours.stages.${s}.done_seconds`),
          tail_seconds: med(`ours.stages.${s}.tail_seconds`),
          rows_per_second: med(`ours.stages.${s}.rows_per_second`),
          cpu_seconds: med(`ours.stages.${s}.cpu_seconds`),
        },
      ]),
    ),
  };
  const steadyFreshness = basis.flatMap((r) => (r.ours as { freshness_seconds: { values: number[] } }).freshness_seconds.values);
  const fluxionPeaks = results.flatMap((r) =>
    Object.entries(r.peak_rss_mb as Record<string, number | null>)
      .filter(([k]) => ['differ', 'dedupe', 'phantom', 'sink', 'extract-inventario', 'extract-ventas'].includes(k))
      .map(([k, v]) => ({ process: k, cycle: r.cycle as number, mb: v ?? 0 })),
  );
  const worst = fluxionPeaks.reduce((a, b) => (b.mb > a.mb ? b : a), { process: '-', cycle: 0, mb: 0 });
  const maxWall = Math.max(...results.map((r) => get(r, 'ours.wall_seconds')));
  const maxSteadyWall = Math.max(...basis.map((r) => get(r, 'ours.wall_seconds')));
  const freshP95 = round(percentile(steadyFreshness, 95));
  const applies = (s: string) => s === scenario;
  const cycle1 = results.find((r) => r.cycle === 1);
  const cycle1Ratio = cycle1 ? get(cycle1, 'ratios.ours_to_legacy_wall') : null;
  const amplification = round(median(basis.map((r) => get(r, 'ours.write_amplification')).filter((x) => typeof x === 'number')), 3);
  const splits = results.flatMap((r) =>
    Object.entries(r.peak_rss_split_mb as Record<string, { anon: number; file: number }>).map(([process, v]) => ({
      process,
      cycle: r.cycle as number,
      ...v,
    })),
  );
  const worstAnon = splits.reduce((a, b) => (b.anon > a.anon ? b : a), { process: '-', cycle: 0, anon: 0, file: 0 });
  // Extractors are short-lived: their peak is VmHWM at exit (anon and file together), an upper bound of their RssAnon.
  const extractPeak = Math.max(0, ...fluxionPeaks.filter((p) => p.process.startsWith('extract-')).map((p) => p.mb));
  const was = before();
  const kafkaNow = medians.kafka_bytes;
  const cpuNow = round(median(basis.map(pipelineCpu)));
  const goals = {
    chain_cycle_ratio_to_legacy: {
      goal: `ours/legacy wall <= ${GOALS.max_ratio_to_legacy} (chain, median of the steady cycles)`,
      applies: applies('chain'),
      met: medians.ours_to_legacy_wall !== null && medians.ours_to_legacy_wall <= GOALS.max_ratio_to_legacy,
      ours_seconds: medians.ours_wall_seconds,
      legacy_seconds: medians.legacy_total_seconds,
      ratio: medians.ours_to_legacy_wall,
    },
    cycle1_ratio_to_legacy: {
      goal: `cycle 1 (every row new) <= ${GOALS.max_cycle1_ratio_to_legacy}x legacy (chain)`,
      applies: applies('chain'),
      met: cycle1Ratio !== null && cycle1Ratio <= GOALS.max_cycle1_ratio_to_legacy,
      ratio: cycle1Ratio,
      ours_seconds: cycle1 ? get(cycle1, 'ours.wall_seconds') : null,
      legacy_seconds: cycle1 ? get(cycle1, 'legacy.total_seconds') : null,
    },
    rows_written_fewer: {
      goal: `legacy rows written / ours >= ${GOALS.min_fewer_rows_factor}`,
      applies: true,
      met: medians.legacy_to_ours_rows_written !== null && medians.legacy_to_ours_rows_written >= GOALS.min_fewer_rows_factor,
      ours: medians.ours_rows_written,
      legacy: medians.legacy_rows_written,
      factor: medians.legacy_to_ours_rows_written,
    },
    write_amplification: {
      goal:
        `rows written to inventario_actual + productos per changed row <= ${GOALS.max_write_amplification} ` +
        '(median of the steady cycles)',
      applies: true,
      met: amplification <= GOALS.max_write_amplification,
      median: amplification,
    },
    freshness_p95: {
      goal: `freshness p95 <= ${GOALS.max_freshness_p95_seconds} s (steady cycles, every store pooled)`,
      applies: true,
      met: freshP95 <= GOALS.max_freshness_p95_seconds,
      p50: round(percentile(steadyFreshness, 50)),
      p95: freshP95,
      max: steadyFreshness.length ? round(Math.max(...steadyFreshness)) : null,
      stores: steadyFreshness.length,
    },
    fluxion_rss: {
      goal: `no Fluxion process above ${GOALS.max_fluxion_rss_mb} MB peak RSS (chain; every cycle)`,
      applies: applies('chain'),
      met: worst.mb <= GOALS.max_fluxion_rss_mb,
      worst,
      heap_limit_mb: heapMb,
    },
    fluxion_anon: {
      goal: `no Fluxion process above ${GOALS.max_fluxion_rss_mb} MB of RssAnon (national; state store pages, RssFile, apart)`,
      applies: applies('national'),
      met: worstAnon.anon <= GOALS.max_fluxion_rss_mb && extractPeak <= GOALS.max_fluxion_rss_mb,
      worst_long_lived: worstAnon,
      extractors_peak_rss_mb: extractPeak,
    },
    national_cycle: {
      goal: `${cycles} national cycles complete, a steady one under ${GOALS.max_national_cycle_seconds} s`,
      applies: applies('national'),
      met: maxSteadyWall < GOALS.max_national_cycle_seconds && results.length === cycles,
      max_steady_seconds: maxSteadyWall,
      max_any_cycle_seconds: maxWall,
      scaled,
    },
    kafka_bytes: {
      goal: `a steady cycle's bytes on the log <= ${GOALS.max_kafka_bytes_share} of before issue 16, for <= 10% more pipeline CPU (chain)`,
      applies: applies('chain') && was !== null,
      met:
        was !== null &&
        kafkaNow !== null &&
        kafkaNow <= GOALS.max_kafka_bytes_share * was.kafka_bytes &&
        cpuNow <= 1.1 * was.pipeline_cpu_seconds,
      bytes: kafkaNow,
      bytes_before: was?.kafka_bytes ?? null,
      share: was && kafkaNow !== null ? round(kafkaNow / was.kafka_bytes, 3) : null,
      pipeline_cpu_seconds: cpuNow,
      pipeline_cpu_seconds_before: was?.pipeline_cpu_seconds ?? null,
      before_file: was?.file ?? null,
      note:
        'CPU compared across two runs (the before file is another day on the same machine): noisy; bench/compression.ts measures the ' +
        'codec alone',
    },
    differ_restart: {
      goal: `after kill -9, a differ is working again within ${GOALS.max_restart_seconds} s (--kill-differ)`,
      applies: restart !== null,
      met: restart !== null && restart.kill_to_loaded_seconds <= GOALS.max_restart_seconds,
      ...(restart ?? {}),
    },
  };
  return { medians, goals };
}

/** How bench/e2e measures what its report holds, written into the report. */
export const E2E_NOTES = [
  'ours.wall_seconds: from the start of both extractor processes to the instant every processor group and the sink (sink_offsets) ' +
    'reached the last record of every topic they read (polled every 100 ms).',
  'stages: done_seconds from the cycle start; rows_per_second = rows / done_seconds; tail_seconds = done minus the upstream stage ' +
    'done; CPU from /proc/<pid>/stat (extractors: getrusage at exit).',
  'freshness: from the extractor\'s "store extracted" log line (after its Kafka transaction committed) to max(actualizado_en) of ' +
    "the snapshot's rows in inventario_actual (the sink's transaction start, now()): slightly optimistic by the duration of that " +
    'transaction.',
  'rows_written: pg_stat_user_tables n_tup_ins + n_tup_upd + n_tup_del deltas over the cycle, every table of ours (sink_offsets, ' +
    "etl_runs and productos included); legacy: the upserts' row counts.",
  'postgres peak_rss_sum_mb sums VmRSS of the postmaster and every backend (shared buffers counted once per process that touched ' +
    'them); peak_anon_plus_shared_mb = sum of RssAnon + the largest RssShmem.',
  "legacy reads in the bench process (the extractors' reading code: extractors/klk-api.ts, extractors/stellar-inventario.ts), " +
    'then writes with one connection, one transaction per store; both phases timed apart.',
  'the sink runs with --no-abc: the ABC recalculation is a daily job in both systems, outside the cycle.',
];
