/** bench/sink's figures: the medians of each variant's runs and the table it prints. */
import type { LegacyPass, SimplePass } from './sink-baselines.ts';
import type { SinkPass } from './sink-pass.ts';
import { median, round } from './stats.ts';

/** The unnest variant of the replaced system's upsert: the best plain upsert (generous). */
export const LEGACY_UNNEST_BATCH = 5_000;

export function copyMedians(passes: SimplePass[]) {
  const m = (f: (p: SimplePass) => number, digits = 3) => round(median(passes.map(f)), digits);
  return {
    wall_seconds: m((p) => p.wall_seconds),
    rows_per_second: Math.round(m((p) => p.rows_per_second)),
    rows_written: passes[0]!.rows_written,
    node_cpu_seconds: m((p) => p.node_cpu_seconds, 2),
    pg_cpu_seconds: m((p) => p.pg_cpu_seconds, 2),
    other_cpu_seconds: m((p) => p.other_cpu_seconds, 2),
    wal_mb: m((p) => p.wal_mb, 1),
  };
}

export function sinkMedians(passes: SinkPass[]) {
  const m = (f: (p: SinkPass) => number, digits = 3) => round(median(passes.map(f)), digits);
  const kinds = [...new Set(passes.flatMap((p) => Object.keys(p.statements)))];
  return {
    events: passes[0]!.events,
    join_seconds: m((p) => p.join_seconds, 2),
    wall_seconds: m((p) => p.wall_seconds),
    events_per_second: Math.round(m((p) => p.events_per_second)),
    rows_written: Object.fromEntries(Object.keys(passes[0]!.rows_written).map((k) => [k, m((p) => p.rows_written[k]!, 0)])),
    rows_written_total: m((p) => p.rows_written.total, 0),
    node_cpu_seconds: m((p) => p.node_cpu_seconds, 2),
    pg_cpu_seconds: m((p) => p.pg_cpu_seconds, 2),
    other_cpu_seconds: m((p) => p.other_cpu_seconds, 2),
    wal_mb: m((p) => p.wal_mb, 1),
    peak_rss_mb: m((p) => p.peak_rss_mb, 0),
    transactions: m((p) => p.transactions.count, 0),
    events_per_transaction: m((p) => p.transactions.offsets_mean, 0),
    history_lookup_ms_median: m((p) => p.transactions.history_lookup_ms_median, 1),
    history_lookup_ms_max: m((p) => p.transactions.history_lookup_ms_max, 1),
    time: Object.fromEntries(Object.keys(passes[0]!.time).map((k) => [k, m((p) => p.time[k]!)])),
    statements: Object.fromEntries(
      kinds.map((k) => [
        k,
        {
          count: m((p) => p.statements[k]?.count ?? 0, 0),
          seconds: m((p) => p.statements[k]?.seconds ?? 0),
          serialize_seconds: m((p) => p.statements[k]?.serialize_seconds ?? 0),
        },
      ]),
    ),
  };
}

export function legacyMedians(passes: LegacyPass[]) {
  const m = (f: (p: LegacyPass) => number, digits = 3) => round(median(passes.map(f)), digits);
  return {
    rows: passes[0]!.rows,
    wall_seconds: m((p) => p.wall_seconds),
    rows_per_second: Math.round(m((p) => p.rows_per_second)),
    rows_written: m((p) => p.rows_written, 0),
    statements: passes[0]!.statements,
    node_cpu_seconds: m((p) => p.node_cpu_seconds, 2),
    pg_cpu_seconds: m((p) => p.pg_cpu_seconds, 2),
    other_cpu_seconds: m((p) => p.other_cpu_seconds, 2),
    wal_mb: m((p) => p.wal_mb, 1),
  };
}

export type Medians = {
  copy: ReturnType<typeof copyMedians>;
  copy_with_history: ReturnType<typeof copyMedians>;
  sink_cycle1: ReturnType<typeof sinkMedians>;
  sink_cycle2: ReturnType<typeof sinkMedians>;
  legacy_values: ReturnType<typeof legacyMedians>;
  legacy_unnest: ReturnType<typeof legacyMedians>;
  ratio_sink_to_copy: number;
  ratio_sink_to_copy_with_history: number;
};

export function printTable(m: Medians, o: { runs: number; rows: number; changedRows: number; legacyBatch: number; goals: unknown }): void {
  const out: string[][] = [
    [
      `medians of ${o.runs} runs`,
      'input',
      'wall s',
      'per s',
      'rows written',
      'node CPU s',
      'PG CPU s',
      'other CPU s',
      'WAL MB',
      'peak RSS MB',
    ],
  ];
  const copies: Array<[string, ReturnType<typeof copyMedians>]> = [
    ['(a) COPY into an empty table with its PK', m.copy],
    ["(a') COPY into empty actual + historico tables", m.copy_with_history],
  ];
  // One table row per pass, the columns of the header above; a pass without a peak RSS leaves it empty.
  type Figures = { wall_seconds: number; node_cpu_seconds: number; pg_cpu_seconds: number; other_cpu_seconds: number; wal_mb: number };
  const row = (label: string, input: string, perSecond: number, written: number, p: Figures, peakRssMb = '') =>
    out.push([
      label,
      input,
      p.wall_seconds.toFixed(3),
      String(perSecond),
      String(written),
      p.node_cpu_seconds.toFixed(2),
      p.pg_cpu_seconds.toFixed(2),
      p.other_cpu_seconds.toFixed(2),
      String(p.wal_mb),
      peakRssMb,
    ]);
  for (const [label, p] of copies) row(label, `${o.rows} rows`, p.rows_per_second, p.rows_written, p);
  const sinks: Array<[string, ReturnType<typeof sinkMedians>]> = [
    ['(b) sink, cycle 1: every event a c', m.sink_cycle1],
    [`(b) sink, cycle 2: ${o.changedRows} u`, m.sink_cycle2],
  ];
  for (const [label, p] of sinks) row(label, `${p.events} events`, p.events_per_second, p.rows_written_total, p, String(p.peak_rss_mb));
  const legacy: Array<[string, ReturnType<typeof legacyMedians>]> = [
    [`(c) legacy upsert, VALUES x ${o.legacyBatch}`, m.legacy_values],
    [`(c) legacy upsert, unnest x ${LEGACY_UNNEST_BATCH}`, m.legacy_unnest],
  ];
  for (const [label, p] of legacy) row(label, `${p.rows} rows`, p.rows_per_second, p.rows_written, p);
  const widths = out[0]!.map((_, i) => Math.max(...out.map((r) => r[i]!.length)));
  for (const r of out)
    process.stdout.write(`${r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')}\n`);
  process.stdout.write(
    `ratio (b) cycle 1 events/s / (a) rows/s: ${m.ratio_sink_to_copy}; / (a') rows/s: ${m.ratio_sink_to_copy_with_history} (medians ` +
      `of the runs' ratios)\n`,
  );
  for (const [label, p] of sinks) {
    process.stdout.write(
      `${label}: join ${p.join_seconds} s (not counted); ${p.transactions} transactions of ${p.events_per_transaction} events; ` +
        `history lookups (delete superseded + close) ${p.history_lookup_ms_median} ms a transaction (median), ` +
        `${p.history_lookup_ms_max} ms at worst; rows ${JSON.stringify(p.rows_written)}\n`,
    );
    process.stdout.write(`  time s: ${JSON.stringify(p.time)}\n`);
    const st = Object.entries(p.statements)
      .sort((x, y) => y[1].seconds - x[1].seconds)
      .map(([k, v]) => `${k} ${v.seconds} s/${v.count}${v.serialize_seconds >= 0.01 ? ` (serialize ${v.serialize_seconds} s)` : ''}`);
    process.stdout.write(`  statements: ${st.join('; ')}\n`);
  }
  process.stdout.write(`goals: ${JSON.stringify(o.goals)}\n`);
}
