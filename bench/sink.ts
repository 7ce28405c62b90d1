#!/usr/bin/env node
/**
 * bench/sink: the PostgreSQL sink against the two things it is judged by, on the same
 * PostgreSQL in one run, each variant `--runs` times (medians reported). Writes
 * bench/results/<date>-sink.json.
 *
 *   node bench/sink.ts [--rows 300000] [--stores 20] [--changed 0.05] [--runs 3]
 *                      [--max-batch 5000] [--partitions 6] [--legacy-batch 500] [--out <file>]
 *
 * (a) the ceiling: `COPY` of the `--rows` rows of cycle 1 into an empty table shaped like
 *     inventario_actual (same columns, primary key and fillfactor), through pg-copy-streams.
 *     (a') the same rows also copied into an empty inventario_historico-shaped table, in one
 *     transaction: the least that cycle 1 of the sink, history included, has to write.
 * (b) our sink (createPostgresSink, in this process, as `fluxion sink postgres` builds it:
 *     pool of 4, `--max-batch` records per transaction, 4 MB fetches of at most 1 MB a
 *     partition, the kafkajs default) applying change
 *     events read from Kafka, history included:
 *     cycle 1: `--rows` `c` events (every product of every store new) into empty tables;
 *     cycle 2: the `u` events of the next snapshot (`--changed` of the rows) onto cycle 1.
 *     The events are published beforehand (not timed). A pass is timed from the instant
 *     kafkajs hands the sink its first batch (group join and first fetch are reported
 *     apart) until the COMMIT that moves the last partition's sink_offsets to the end.
 * (c) the replaced system: every row of the cycle-2 snapshot upserted into a table shaped
 *     like inventario_actual, loaded with cycle 1 (`INSERT ... ON CONFLICT DO UPDATE` with
 *     no filter), one transaction per store; in multi-row VALUES statements of
 *     `--legacy-batch` rows (psycopg2 `execute_values`'s shape: faithful), and in
 *     `unnest` arrays of 5,000 rows (the best plain upsert: generous).
 *
 * Each run has its own database (dropped at the end); the events sit on two topic
 * prefixes (cycle 1 and cycle 2), deleted at the end. Before cycle 2 of (b) and (c) the
 * loaded tables are VACUUM ANALYZEd, as autovacuum would have done in the 30 minutes between
 * two cycles. Statements are timed by wrapping the sink's pool clients (sinks/ is
 * unchanged); PostgreSQL CPU is the backends' user+sys from /proc.
 *
 * Needs the services (`scripts/services up`; it reads `scripts/services env` itself).
 */
import { servicesEnv } from './lib/services-env.ts';
import { publishChanges, withPipelineRetry } from './lib/change-feed.ts';
import { median, round } from './lib/stats.ts';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT } from '../core/paths.ts';
import type { InventoryChange, InventoryRow } from '../core/records.ts';
import { cycleRows, uuidFrom } from '../fixtures/inventory-feed.ts';
import { createTestPipeline } from '../fixtures/pipeline.ts';
import { migratedDatabase } from '../fixtures/sink-run.ts';
import {
  ACTUAL_COLUMNS,
  type Cycle,
  actualRow,
  copyText,
  type SimplePass,
  copyPass,
  type LegacyPass,
  legacyPass,
} from './lib/sink-baselines.ts';
import { type SinkPass, sinkPass } from './lib/sink-pass.ts';
import { copyMedians, LEGACY_UNNEST_BATCH, legacyMedians, type Medians, printTable, sinkMedians } from './lib/sink-report.ts';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '300000' },
    stores: { type: 'string', default: '20' },
    changed: { type: 'string', default: '0.05' },
    runs: { type: 'string', default: '3' },
    'max-batch': { type: 'string', default: '5000' },
    partitions: { type: 'string', default: '6' },
    'legacy-batch': { type: 'string', default: '500' },
    out: { type: 'string' },
  },
});

/** As the production image runs every Fluxion process (Dockerfile). */
const NODE_OPTIONS = '--max-semi-space-size=8';
if (!`${process.env.NODE_OPTIONS ?? ''} ${process.execArgv.join(' ')}`.includes('--max-semi-space-size')) {
  // The sink runs in this process: give it the production image's V8 flags.
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${NODE_OPTIONS}`.trim() },
  });
  process.exit(r.status ?? 1);
}

// The test helpers read the service addresses from the environment.
if (!process.env.KAFKA_BROKERS || !process.env.SCHEMA_REGISTRY_URL || !process.env.DATABASE_URL) {
  for (const [name, value] of Object.entries(servicesEnv())) process.env[name] ??= value;
}

const GOALS = { min_ratio_to_copy: 0.5, max_cycle_seconds: 0.5 };
const CYCLE_MS = 30 * 60_000;

// ---------------------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const rows = Number(values.rows);
  const storeCount = Number(values.stores);
  const changed = Number(values.changed);
  const runs = Number(values.runs);
  const maxBatch = Number(values['max-batch']);
  const partitions = Number(values.partitions);
  const legacyBatch = Number(values['legacy-batch']);
  for (const [name, v] of Object.entries({
    rows,
    stores: storeCount,
    runs,
    'max-batch': maxBatch,
    partitions,
    'legacy-batch': legacyBatch,
  })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
  }
  if (!(changed > 0 && changed < 1)) throw new Error(`--changed must be a share between 0 and 1, got ${changed}`);
  if (rows % storeCount !== 0) throw new Error(`--rows must be a multiple of --stores (${storeCount})`);
  if (legacyBatch * ACTUAL_COLUMNS.length > 65_535)
    throw new Error(`--legacy-batch ${legacyBatch} needs more than 65,535 parameters a statement`);
  const perStore = rows / storeCount;
  const stores = Array.from({ length: storeCount }, (_, i) => `tienda_${String(i + 1).padStart(2, '0')}`);
  const say = (text: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${text}\n`);

  // Cycles 1 and 2 of every store (cycle 2: `changed` of the products moved).
  const day = new Date();
  const t1 = new Date(Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(), 10));
  const cycle1: Cycle = { n: 1, takenAt: t1, byStore: [] };
  const cycle2: Cycle = { n: 2, takenAt: new Date(t1.getTime() + CYCLE_MS), byStore: [] };
  const changes1: InventoryChange[][] = [];
  const changes2: InventoryChange[][] = [];
  for (const store of stores) {
    const s1 = uuidFrom(`bench-sink/${store}/1`);
    const s2 = uuidFrom(`bench-sink/${store}/2`);
    const rows1 = cycleRows(store, 1, perStore, changed);
    const rows2 = cycleRows(store, 2, perStore, changed);
    const base = (r: InventoryRow) => ({ ubicacion_id: store, deposito: r.deposito, producto_id: r.producto_id, source: 'KLK' as const });
    changes1.push(rows1.map((r) => ({ ...base(r), op: 'c', before: null, after: r, snapshot_id: s1, taken_at: cycle1.takenAt })));
    changes2.push(
      rows2.flatMap((r, i) =>
        r.cantidad === rows1[i]!.cantidad
          ? []
          : [{ ...base(r), op: 'u' as const, before: rows1[i]!, after: r, snapshot_id: s2, taken_at: cycle2.takenAt }],
      ),
    );
    cycle1.byStore.push(rows1.map((r) => actualRow(store, s1, cycle1.takenAt, r)));
    cycle2.byStore.push(rows2.map((r) => actualRow(store, s2, cycle2.takenAt, r)));
  }
  const changedRows = changes2.reduce((s, c) => s + c.length, 0);
  const cycle1Copy = copyText(cycle1.byStore.flat());
  const cycle1HistoryCopy = copyText(cycle1.byStore.flat(), true);
  cycle1.byStore = []; // only its COPY text is used from here on

  const report: Record<string, unknown> = {
    bench: 'sink',
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model,
      memory_gb: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      node_options: process.env.NODE_OPTIONS ?? '',
    },
    scenario: {
      rows,
      stores: storeCount,
      products_per_store: perStore,
      changed_share: changed,
      cycle2_changed_rows: changedRows,
      runs,
      partitions,
      sink: {
        max_batch: maxBatch,
        pool_max: 4,
        fetch_max_bytes: 4 * 2 ** 20,
        fetch_max_bytes_per_partition: 2 ** 20,
        session_timeout_ms: 30_000,
      },
      legacy: { values_batch_rows: legacyBatch, unnest_batch_rows: LEGACY_UNNEST_BATCH, transaction: 'one per store snapshot' },
    },
  };

  const pA = await withPipelineRetry(() => createTestPipeline(partitions));
  const pB = await withPipelineRetry(() => createTestPipeline(partitions));
  const runResults: Array<Record<string, unknown>> = [];
  let serverInfo: Record<string, string> = {};
  try {
    say(`publishing cycle 1 (${rows} c events) and cycle 2 (${changedRows} u events) on ${pA.prefix} and ${pB.prefix}`);
    const ends1 = await publishChanges(pA, changes1, partitions);
    const ends2 = await publishChanges(pB, changes2, partitions);
    changes1.length = 0;
    changes2.length = 0;

    for (let run = 1; run <= runs; run++) {
      const db = await migratedDatabase();
      try {
        if (run === 1) {
          const settings = await db.pool.query<{ name: string; setting: string }>(
            `SELECT name, current_setting(name) AS setting FROM pg_settings WHERE name IN ('server_version', 'shared_buffers', ` +
              `'max_wal_size', 'synchronous_commit', 'wal_compression', 'jit', 'work_mem', 'random_page_cost')`,
          );
          serverInfo = Object.fromEntries(settings.rows.map((s) => [s.name, s.setting]));
        }
        say(`run ${run}: (a) COPY ${rows} rows`);
        const copy = await copyPass(db, cycle1Copy, null, rows);
        say(`run ${run}: (a') COPY ${rows} rows into an inventario_actual-shaped and an inventario_historico-shaped table`);
        const copyWithHistory = await copyPass(db, cycle1Copy, cycle1HistoryCopy, rows);
        say(`run ${run}: (b) sink, cycle 1: ${rows} c events`);
        const sink1 = await sinkPass(pA, db, `${pA.prefix}bench-sink-${run}`, ends1, rows, maxBatch, Number(values.partitions));
        await db.pool.query('VACUUM ANALYZE inventario_actual, inventario_historico, productos');
        say(`run ${run}: (b) sink, cycle 2: ${changedRows} u events`);
        const sink2 = await sinkPass(pB, db, `${pB.prefix}bench-sink-${run}`, ends2, changedRows, maxBatch, Number(values.partitions));
        const check = await db.pool.query<{ actual: string; historico: string; abiertos: string; cycle2: string }>(
          `SELECT (SELECT count(*) FROM inventario_actual)::text AS actual, (SELECT count(*) FROM inventario_historico)::text AS historico,
                  (SELECT count(*) FROM inventario_historico WHERE valid_to IS NULL)::text AS abiertos,
                  (SELECT count(*) FROM inventario_actual WHERE taken_at = $1)::text AS cycle2`,
          [cycle2.takenAt],
        );
        const c = check.rows[0]!;
        if (
          Number(c.actual) !== rows ||
          Number(c.historico) !== rows + changedRows ||
          Number(c.abiertos) !== rows ||
          Number(c.cycle2) !== changedRows
        ) {
          throw new Error(
            `the sink's tables after cycle 2 are wrong: ${JSON.stringify(c)} (expected ${rows} rows, ${rows + changedRows} history ` +
              `rows, ${rows} open, ${changedRows} of cycle 2)`,
          );
        }
        say(`run ${run}: (c) legacy upsert of ${rows} rows, VALUES batches of ${legacyBatch}`);
        const legacyValues = await legacyPass(db, 'values', legacyBatch, cycle1Copy, cycle2);
        say(`run ${run}: (c) legacy upsert of ${rows} rows, unnest batches of ${LEGACY_UNNEST_BATCH}`);
        const legacyUnnest = await legacyPass(db, 'unnest', LEGACY_UNNEST_BATCH, cycle1Copy, cycle2);
        const result = {
          run,
          copy,
          copy_with_history: copyWithHistory,
          sink_cycle1: sink1,
          sink_cycle2: sink2,
          legacy_values: legacyValues,
          legacy_unnest: legacyUnnest,
          ratio_sink_to_copy: round(sink1.events_per_second / copy.rows_per_second),
          ratio_sink_to_copy_with_history: round(sink1.events_per_second / copyWithHistory.rows_per_second),
        };
        runResults.push(result);
        const runLine = {
          run,
          copy_rows_per_second: copy.rows_per_second,
          sink_events_per_second: sink1.events_per_second,
          ratio: result.ratio_sink_to_copy,
          sink_cycle2_seconds: sink2.wall_seconds,
          legacy_values_seconds: legacyValues.wall_seconds,
          legacy_unnest_seconds: legacyUnnest.wall_seconds,
        };
        process.stdout.write(`${JSON.stringify(runLine)}\n`);
      } finally {
        await db.drop();
      }
    }
  } finally {
    await pA.cleanup().catch(() => undefined);
    await pB.cleanup().catch(() => undefined);
  }

  // ----- medians, goals, table, file -----
  type R = {
    copy: SimplePass;
    copy_with_history: SimplePass;
    ratio_sink_to_copy_with_history: number;
    sink_cycle1: SinkPass;
    sink_cycle2: SinkPass;
    legacy_values: LegacyPass;
    legacy_unnest: LegacyPass;
    ratio_sink_to_copy: number;
  };
  const rs = runResults as unknown as R[];
  const med = (f: (r: R) => number, digits = 3) => round(median(rs.map(f)), digits);
  const medians: Medians = {
    copy: copyMedians(rs.map((r) => r.copy)),
    copy_with_history: copyMedians(rs.map((r) => r.copy_with_history)),
    sink_cycle1: sinkMedians(rs.map((r) => r.sink_cycle1)),
    sink_cycle2: sinkMedians(rs.map((r) => r.sink_cycle2)),
    legacy_values: legacyMedians(rs.map((r) => r.legacy_values)),
    legacy_unnest: legacyMedians(rs.map((r) => r.legacy_unnest)),
    ratio_sink_to_copy: med((r) => r.ratio_sink_to_copy, 2),
    ratio_sink_to_copy_with_history: med((r) => r.ratio_sink_to_copy_with_history, 2),
  };
  const ratio = medians.ratio_sink_to_copy;
  const cycleS = medians.sink_cycle2.wall_seconds;
  const sinkWritten = medians.sink_cycle2.rows_written_total;
  report.postgres = serverInfo;
  report.runs = runResults;
  report.medians = medians;
  report.goals = {
    ...GOALS,
    ratio_sink_to_copy: ratio,
    ratio_sink_to_copy_with_history: medians.ratio_sink_to_copy_with_history,
    ratio_met: ratio >= GOALS.min_ratio_to_copy,
    cycle2_sink_seconds: cycleS,
    cycle_met: cycleS < GOALS.max_cycle_seconds,
    cycle2_sink_rows_written: sinkWritten,
    cycle2_legacy_rows_written: medians.legacy_values.rows_written,
    cycle2_sink_writes_only_changes:
      medians.sink_cycle2.rows_written.actual_upserts === changedRows && medians.sink_cycle2.rows_written.historico_opened === changedRows,
    // Issue 16: rows written per row whose content changed. Cycle 2 changes only quantities,
    // so the current-state tables should receive one row per change and productos none; the
    // history's close and open are the change log itself (two rows per change by design).
    cycle2_productos_rows_written: medians.sink_cycle2.rows_written.productos,
    cycle2_write_amplification_current_state: round(
      (medians.sink_cycle2.rows_written.actual_upserts! +
        medians.sink_cycle2.rows_written.actual_deletes! +
        medians.sink_cycle2.rows_written.productos!) /
        changedRows,
      3,
    ),
    max_write_amplification: 1.05,
    write_amplification_met:
      (medians.sink_cycle2.rows_written.actual_upserts! +
        medians.sink_cycle2.rows_written.actual_deletes! +
        medians.sink_cycle2.rows_written.productos!) /
        changedRows <=
      1.05,
    cycle2_legacy_values_over_sink_seconds: round(medians.legacy_values.wall_seconds / cycleS, 1),
    cycle2_legacy_unnest_over_sink_seconds: round(medians.legacy_unnest.wall_seconds / cycleS, 1),
  };
  report.note =
    'Medians of `runs` runs; each run has its own database and does (a), (b) cycle 1, (b) cycle 2, (c) VALUES, (c) unnest in that ' +
    'order. ' +
    '(a) COPY (text format, pg-copy-streams) of the cycle-1 rows into an empty table created LIKE inventario_actual INCLUDING ALL ' +
    "WITH (fillfactor = 90): primary key, defaults; rows pre-encoded, timed from the COPY to its (autocommit) end. (a') the same, " +
    'plus the same rows as open c intervals into an empty table created LIKE inventario_historico INCLUDING ALL (its primary key and ' +
    'both indexes, not partitioned), in one transaction: the least cycle 1 of the sink must write (productos aside). ' +
    '(b) the sink in this process: timed from the first batch kafkajs hands it (join_seconds is the time before: codecs, DLQ ' +
    "producer, group join, first fetch) to the COMMIT that moves the last partition's sink_offsets to the end; its sink_offsets rows " +
    'exist beforehand (as after any earlier run). Events were published before the pass. ' +
    "rows_written are the sink's own counters (fluxion_sink_rows_total): inventario_actual upserts and deletes, inventario_historico " +
    'rows deleted, closed (UPDATE) and opened (INSERT), productos upserts. ' +
    'time splits the wall time: statements as seen by the client (send, server, reply; serialize_seconds is node-postgres turning the ' +
    'parameter arrays into text), Kafka offset commits and heartbeats the sink awaits, the rest of the batch handler (Avro decode, ' +
    'planning, JS), and time outside the handler (kafkajs fetching). ' +
    '(c) a table created like (a), loaded with cycle 1 by COPY and VACUUM ANALYZEd (untimed), then every row of cycle 2 upserted (ON ' +
    'CONFLICT DO UPDATE of every column, no filter), one transaction per store. ' +
    "Before (b) cycle 2 the sink's tables are VACUUM ANALYZEd the same way. pg_cpu_seconds: user+sys of the PostgreSQL backends doing " +
    "the work (/proc); other_cpu_seconds: the rest of the machine's CPU over the pass (/proc/stat: Kafka serving fetches, autovacuum, " +
    'checkpointer, other users), a noise gauge; wal_mb: WAL of the whole cluster over the pass. ' +
    'peak_rss_mb: this process (the sink and the harness, which holds the cycle-2 rows and the COPY text, about 100 MB) over the ' +
    'pass. Everything shares 2 cores with Kafka, the registry and PostgreSQL.';

  printTable(medians, { runs, rows, changedRows, legacyBatch, goals: report.goals });
  const file = values.out
    ? resolve(values.out)
    : join(PROJECT_ROOT, 'bench', 'results', `${(report.date as string).slice(0, 10)}-sink.json`);
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`written ${file}\n`);
}

await main();
process.exit(0);
