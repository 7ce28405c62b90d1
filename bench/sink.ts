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
import { copyInto, createActualShapedTable, INVENTARIO_ACTUAL_TYPES, INVENTARIO_KEY, unnestUpsert, valuesUpsert } from './lib/pg-writes.ts';
import { machineBusySeconds, procCpuSeconds, procStatusKb, resetPeakRss } from './lib/proc.ts';
import { median, round } from './lib/stats.ts';
import { INVENTARIO_ACTUAL_COLUMNS, INVENTARIO_HISTORICO_COLUMNS, type InventarioActualRow } from '../sinks/sink-batch.ts';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Registry, type Counter } from 'prom-client';
import type { KafkaClient } from '../core/kafka/types.ts';
import { createLogger } from '../core/logger.ts';
import { counterValue } from '../core/metrics.ts';
import { PROJECT_ROOT } from '../core/paths.ts';
import { createPool } from '../core/postgres.ts';
import type { InventoryChange, InventoryRow } from '../core/records.ts';
import { topicName } from '../core/topics.ts';
import { createPostgresSink, SINK_TOPICS } from '../sinks/postgres-sink.ts';
import { cycleRows, uuidFrom } from '../fixtures/inventory-feed.ts';
import { createTestPipeline, type TestPipeline } from '../fixtures/pipeline.ts';
import { migratedDatabase, type MigratedDatabase } from '../fixtures/sink-run.ts';

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
const LEGACY_UNNEST_BATCH = 5_000;
const CYCLE_MS = 30 * 60_000;
/** The columns of inventario_actual a writer sets (actualizado_en is left to its DEFAULT now()). */
const ACTUAL_COLUMNS = INVENTARIO_ACTUAL_COLUMNS;
/** inventario_historico's columns as a cycle-1 history row has them (op c, open interval). */
const HISTORICO_COPY_COLUMNS = INVENTARIO_HISTORICO_COLUMNS;
const ACTUAL_TYPES = INVENTARIO_ACTUAL_TYPES;
const log = createLogger({ level: 'warn', destination: 2 });


// ---------------------------------------------------------------------------------------
// What a cycle is: one snapshot of every store (rows of fixtures/inventory-feed.ts).
// ---------------------------------------------------------------------------------------

type ActualRow = InventarioActualRow;

interface Cycle {
  n: number;
  takenAt: Date;
  /** Per store, the snapshot as inventario_actual rows. */
  byStore: ActualRow[][];
}

function actualRow(store: string, snapshotId: string, takenAt: Date, r: InventoryRow): ActualRow {
  return { ubicacion_id: store, deposito: r.deposito, producto_id: r.producto_id, cantidad: r.cantidad, costo: r.costo, precio: r.precio, activo: r.activo, snapshot_id: snapshotId, taken_at: takenAt };
}

/**
 * COPY text format of `rows`, in chunks of about 1,000 rows: ACTUAL_COLUMNS, or with
 * `history` HISTORICO_COPY_COLUMNS (each row an open interval opened by a c).
 */
function copyText(rows: Iterable<ActualRow>, history = false): Buffer[] {
  const out: Buffer[] = [];
  let lines: string[] = [];
  const v = (x: string | null) => (x === null ? '\\N' : x);
  for (const r of rows) {
    const head = `${r.ubicacion_id}\t${r.deposito}\t${r.producto_id}\t${r.cantidad}\t${v(r.costo)}\t${v(r.precio)}\t${r.activo ? 't' : 'f'}\t`;
    lines.push(history ? `${head}c\t${r.snapshot_id}\t${r.taken_at.toISOString()}\t\\N\n` : `${head}${r.snapshot_id}\t${r.taken_at.toISOString()}\n`);
    if (lines.length === 1_000) {
      out.push(Buffer.from(lines.join('')));
      lines = [];
    }
  }
  if (lines.length) out.push(Buffer.from(lines.join('')));
  return out;
}

// ---------------------------------------------------------------------------------------
// Measuring: PostgreSQL backend CPU, WAL, this process's peak RSS.
// ---------------------------------------------------------------------------------------

const backendsCpu = (pids: Iterable<number>) => [...pids].reduce((s, p) => s + procCpuSeconds(p), 0);
const nodeCpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const peakRssMb = () => procStatusKb('self', 'VmHWM') / 1024;

async function walLsn(client: Pick<pg.Pool, 'query'>): Promise<string> {
  return (await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
}
async function walMbSince(client: Pick<pg.Pool, 'query'>, from: string): Promise<number> {
  const r = await client.query<{ d: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::text AS d', [from]);
  return round(Number(r.rows[0]!.d) / 2 ** 20, 1);
}

// ---------------------------------------------------------------------------------------
// (a) COPY: the ceiling.
// ---------------------------------------------------------------------------------------

interface SimplePass {
  wall_seconds: number;
  rows: number;
  rows_per_second: number;
  rows_written: number;
  node_cpu_seconds: number;
  pg_cpu_seconds: number;
  /** CPU of everything else on the machine over the pass (Kafka, the registry, other users): noise. */
  other_cpu_seconds: number;
  wal_mb: number;
}

async function connect(db: MigratedDatabase): Promise<{ client: pg.Client; pid: number }> {
  const client = new pg.Client({ connectionString: db.url, application_name: 'fluxion-bench-sink' });
  await client.connect();
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  return { client, pid };
}

/**
 * COPY of the rows into an empty inventario_actual-shaped table; with `history`, the same
 * rows also into an empty table shaped like inventario_historico (its primary key and both
 * indexes; not partitioned), in one transaction: what the sink's cycle 1 must write at least.
 */
async function copyPass(db: MigratedDatabase, chunks: Buffer[], historyChunks: Buffer[] | null, rows: number): Promise<SimplePass> {
  const { client, pid } = await connect(db);
  try {
    await createActualShapedTable(client, 'bench_copy_ceiling');
    if (historyChunks) {
      await client.query('DROP TABLE IF EXISTS bench_copy_historico');
      await client.query('CREATE TABLE bench_copy_historico (LIKE inventario_historico INCLUDING ALL)');
    }
    const wal0 = await walLsn(client);
    const cpu0 = nodeCpuSeconds();
    const pg0 = procCpuSeconds(pid);
    const busy0 = machineBusySeconds();
    const t0 = performance.now();
    let copied: number;
    if (historyChunks) {
      await client.query('BEGIN');
      copied = await copyInto(client, 'bench_copy_ceiling', chunks);
      copied += await copyInto(client, 'bench_copy_historico', historyChunks, HISTORICO_COPY_COLUMNS);
      await client.query('COMMIT');
    } else {
      copied = await copyInto(client, 'bench_copy_ceiling', chunks);
    }
    const wall = (performance.now() - t0) / 1000;
    const [nodeCpu, pgCpu] = [nodeCpuSeconds() - cpu0, procCpuSeconds(pid) - pg0];
    const pass = {
      wall_seconds: round(wall, 3), rows, rows_per_second: Math.round(rows / wall), rows_written: copied,
      node_cpu_seconds: round(nodeCpu), pg_cpu_seconds: round(pgCpu), other_cpu_seconds: round(machineBusySeconds() - busy0 - nodeCpu - pgCpu), wal_mb: await walMbSince(client, wal0),
    };
    const expected = historyChunks ? 2 * rows : rows;
    if (copied !== expected) throw new Error(`COPY wrote ${copied} rows, expected ${expected}`);
    await client.query('DROP TABLE IF EXISTS bench_copy_ceiling, bench_copy_historico');
    return pass;
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------------------
// (c) the replaced system: UPSERT every row of every snapshot.
// ---------------------------------------------------------------------------------------

const ACTUAL_TOUCH = 'actualizado_en = now()';
const valuesStatement = (table: string, rows: number) => valuesUpsert(table, ACTUAL_COLUMNS, INVENTARIO_KEY, rows, ACTUAL_TOUCH);
const unnestStatement = (table: string) => unnestUpsert(table, ACTUAL_COLUMNS, ACTUAL_TYPES, INVENTARIO_KEY, ACTUAL_TOUCH);

interface LegacyPass extends SimplePass {
  statements: number;
  transactions: number;
}

async function legacyPass(db: MigratedDatabase, variant: 'values' | 'unnest', batch: number, cycle1Copy: Buffer[], cycle2: Cycle): Promise<LegacyPass> {
  const { client, pid } = await connect(db);
  const table = 'bench_legacy_actual';
  try {
    await createActualShapedTable(client, table);
    await copyInto(client, table, cycle1Copy);
    await client.query(`VACUUM ANALYZE ${table}`);
    const fullValues = variant === 'values' ? valuesStatement(table, batch) : '';
    const wal0 = await walLsn(client);
    const cpu0 = nodeCpuSeconds();
    const pg0 = procCpuSeconds(pid);
    const busy0 = machineBusySeconds();
    const t0 = performance.now();
    let written = 0;
    let statements = 0;
    for (const storeRows of cycle2.byStore) {
      await client.query('BEGIN');
      for (let i = 0; i < storeRows.length; i += batch) {
        const slice = storeRows.slice(i, i + batch);
        let r: pg.QueryResult;
        if (variant === 'values') {
          const params: unknown[] = [];
          for (const row of slice) for (const c of ACTUAL_COLUMNS) params.push(row[c]);
          r = await client.query(slice.length === batch ? fullValues : valuesStatement(table, slice.length), params);
        } else {
          r = await client.query(unnestStatement(table), ACTUAL_COLUMNS.map((c) => slice.map((row) => row[c])));
        }
        written += r.rowCount ?? 0;
        statements++;
      }
      await client.query('COMMIT');
    }
    const wall = (performance.now() - t0) / 1000;
    const [nodeCpu, pgCpu] = [nodeCpuSeconds() - cpu0, procCpuSeconds(pid) - pg0];
    const otherCpu = machineBusySeconds() - busy0 - nodeCpu - pgCpu;
    const rows = cycle2.byStore.reduce((s, r) => s + r.length, 0);
    const pass: LegacyPass = {
      wall_seconds: round(wall, 3), rows, rows_per_second: Math.round(rows / wall), rows_written: written,
      node_cpu_seconds: round(nodeCpu), pg_cpu_seconds: round(pgCpu), other_cpu_seconds: round(otherCpu), wal_mb: await walMbSince(client, wal0),
      statements, transactions: cycle2.byStore.length,
    };
    const check = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table} WHERE taken_at = $1`, [cycle2.takenAt]);
    if (Number(check.rows[0]!.n) !== rows) throw new Error(`legacy ${variant}: ${check.rows[0]!.n} rows carry cycle ${cycle2.n}, expected ${rows}`);
    await client.query(`DROP TABLE ${table}`);
    return pass;
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------------------
// (b) the sink, with its statements, Kafka calls and batches timed from outside.
// ---------------------------------------------------------------------------------------

const STATEMENT_KINDS: Array<[string, RegExp]> = [
  ['begin', /^BEGIN$/],
  ['commit', /^COMMIT$/],
  ['rollback', /^ROLLBACK/],
  ['claim sink_offsets (SELECT ... FOR UPDATE)', /^SELECT next_offset FROM sink_offsets/],
  ['read sink_offsets (positioning)', /^SELECT topic, partition, next_offset FROM sink_offsets/],
  ['create sink_offsets row', /^INSERT INTO sink_offsets[\s\S]*DO NOTHING$/],
  ['write sink_offsets', /^INSERT INTO sink_offsets/],
  ['inventario_actual upsert', /^INSERT INTO "inventario_actual"/],
  ['inventario_actual delete', /^DELETE FROM "inventario_actual"/],
  ['historico month partition', /inventario_historico_asegurar_mes/],
  ['historico delete superseded', /^DELETE FROM "inventario_historico"/],
  ['historico close (UPDATE valid_to)', /^UPDATE "inventario_historico"/],
  ['historico open (INSERT)', /^INSERT INTO "inventario_historico"/],
  ['productos upsert', /^INSERT INTO productos/],
  ['COPY staging: prepare (create if missing, truncate)', /^SET LOCAL client_min_messages/],
  ['COPY staging: inventario_actual rows', /^COPY pg_temp\.sink_stage_actual/],
  ['COPY staging: history closes', /^COPY pg_temp\.sink_stage_closes/],
  ['COPY staging: history opens', /^COPY pg_temp\.sink_stage_opens/],
  ['COPY staging: productos rows', /^COPY pg_temp\.sink_stage_productos/],
  ['random_page_cost for the close', /^SET LOCAL random_page_cost/],
];
const kindOf = (text: string) => STATEMENT_KINDS.find(([, re]) => re.test(text))?.[0] ?? 'other';

interface Interval {
  what: string;
  start: number;
  end: number;
  /** Statements: the synchronous part of client.query (node-postgres serializing the parameters). */
  syncMs?: number;
}

interface Transaction {
  partition: number;
  offsets: number;
  ms: number;
  /** Milliseconds of the two statements that look up open history rows (delete superseded, close). */
  lookupMs: number;
}

/** Watches one sink pass through its pool clients and its Kafka consumer. */
function createRecorder(topic: string, targets: Map<number, bigint>) {
  const intervals: Interval[] = [];
  const transactions: Transaction[] = [];
  const committed = new Map<number, bigint>();
  const open = new Map<pg.PoolClient, { begin: number; lookupMs: number; expected?: bigint; next?: bigint; partition?: number; topic?: string }>();
  const pids = new Set<number>();
  let armed = false;
  let firstBatch: { at: number; nodeCpu: number; pgCpu: number; busy: number } | undefined;
  let batches = 0;
  let batchRecords = 0;
  let rollbacks = 0;
  let finish: (at: number) => void = () => undefined;
  const done = new Promise<number>((r) => (finish = r));

  function onStatement(client: pg.PoolClient, text: string, values: unknown[] | undefined, start: number, syncMs: number, err: unknown, res: pg.QueryResult | undefined): void {
    if (!armed) return;
    const end = performance.now();
    const what = kindOf(text);
    intervals.push({ what, start, end, syncMs });
    if (err) return;
    if (what === 'begin') open.set(client, { begin: start, lookupMs: 0 });
    const tx = open.get(client);
    if (tx && (what.startsWith('historico delete') || what.startsWith('historico close'))) tx.lookupMs += end - start;
    if (what === 'claim sink_offsets (SELECT ... FOR UPDATE)' && tx && res?.rows[0]) tx.expected = BigInt((res.rows[0] as { next_offset: string }).next_offset);
    if (what === 'write sink_offsets' && tx && values) {
      tx.topic = String(values[1]);
      tx.partition = Number(values[2]);
      tx.next = BigInt(String(values[3]));
    }
    if (what === 'rollback') {
      rollbacks++;
      open.delete(client);
    }
    if (what === 'commit' && tx) {
      open.delete(client);
      if (tx.partition === undefined || tx.next === undefined) return;
      transactions.push({ partition: tx.partition, offsets: Number(tx.next - (tx.expected ?? tx.next)), ms: end - tx.begin, lookupMs: tx.lookupMs });
      if (tx.topic === topic) committed.set(tx.partition, tx.next);
      if ([...targets].every(([p, e]) => (committed.get(p) ?? -1n) >= e)) finish(end);
    }
  }

  return {
    done,
    pids,
    arm() {
      armed = true;
    },
    /** Patches a pool client so that each of its statements is timed (callback or promise form). */
    instrument(client: pg.PoolClient): void {
      const original = client.query.bind(client) as (...args: unknown[]) => unknown;
      void (original('SELECT pg_backend_pid() AS pid') as Promise<pg.QueryResult<{ pid: number }>>).then((r) => pids.add(r.rows[0]!.pid), () => undefined);
      (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
        const first = args[0] as string | { text?: string; values?: unknown[] };
        const text = (typeof first === 'string' ? first : (first?.text ?? '')).trim();
        const values = Array.isArray(args[1]) ? (args[1] as unknown[]) : typeof first === 'object' ? first?.values : undefined;
        const start = performance.now();
        const cb = args.findIndex((a) => typeof a === 'function');
        if (cb >= 0) {
          const callback = args[cb] as (err: unknown, res: pg.QueryResult) => void;
          let syncMs = 0;
          args[cb] = (err: unknown, res: pg.QueryResult) => {
            onStatement(client, text, values, start, syncMs, err, res);
            callback(err, res);
          };
          const r = original(...args);
          syncMs = performance.now() - start;
          return r;
        }
        const p = original(...args) as Promise<pg.QueryResult> | NodeJS.WritableStream;
        const syncMs = performance.now() - start;
        if (!('then' in p)) {
          // A COPY FROM stream (pg-copy-streams): timed until the server confirmed it.
          p.on('finish', () => onStatement(client, text, values, start, syncMs, undefined, undefined));
          p.on('error', (err: unknown) => onStatement(client, text, values, start, syncMs, err, undefined));
          return p;
        }
        return p.then(
          (res) => {
            onStatement(client, text, values, start, syncMs, undefined, res);
            return res;
          },
          (err: unknown) => {
            onStatement(client, text, values, start, syncMs, err, undefined);
            throw err;
          },
        );
      };
    },
    /** The Kafka client given to the sink: its consumer's batches, commits and heartbeats timed. */
    wrapKafka(kafka: KafkaClient): KafkaClient {
      const timed = async <T>(what: string, work: () => Promise<T>): Promise<T> => {
        const start = performance.now();
        try {
          return await work();
        } finally {
          if (armed) intervals.push({ what, start, end: performance.now() });
        }
      };
      return {
        ...kafka,
        async consumer(options) {
          const c = await kafka.consumer(options);
          return {
            ...c,
            commit: (t, p, o) => timed('Kafka offset commit (copy for dashboards)', () => c.commit(t, p, o)),
            runBatches: (handle) =>
              c.runBatches((batch, control) => {
                if (armed && batch.records.length > 0) {
                  firstBatch ??= { at: performance.now(), nodeCpu: nodeCpuSeconds(), pgCpu: backendsCpu(pids), busy: machineBusySeconds() };
                  batches++;
                  batchRecords += batch.records.length;
                }
                return timed('batch handler', () => handle(batch, { ...control, heartbeat: () => timed('Kafka heartbeat', () => control.heartbeat()) }));
              }),
          };
        },
      };
    },
    result(doneAt: number) {
      return { firstBatch: firstBatch!, doneAt, intervals, transactions, batches, batchRecords, rollbacks };
    },
  };
}

interface SinkPass {
  events: number;
  /** From sink.run() to the first batch handed to the sink: codecs, producer, group join, first fetch. */
  join_seconds: number;
  /** From the first batch handed to the sink to the COMMIT that took the last partition to its end. */
  wall_seconds: number;
  events_per_second: number;
  rows_written: Record<string, number> & { total: number };
  node_cpu_seconds: number;
  pg_cpu_seconds: number;
  /** CPU of everything else on the machine over the pass: Kafka serving the fetches, the registry, other users. */
  other_cpu_seconds: number;
  wal_mb: number;
  peak_rss_mb: number;
  transactions: {
    count: number;
    offsets_mean: number;
    offsets_max: number;
    ms_median: number;
    ms_max: number;
    rollbacks: number;
    /** Per transaction, ms of the two statements that look up open history rows (delete superseded + close): median and worst. */
    history_lookup_ms_median: number;
    history_lookup_ms_max: number;
  };
  fetched_batches: number;
  /** Where the wall time went (seconds; statements measured from the client: send, server, reply). */
  time: Record<string, number>;
  /** Per statement kind over the pass: count, seconds, and the part node-postgres spent serializing parameters. */
  statements: Record<string, { count: number; seconds: number; serialize_seconds: number }>;
  retries: number;
  dlq: number;
}

async function sinkPass(p: TestPipeline, db: MigratedDatabase, group: string, targets: Map<number, bigint>, events: number, maxBatch: number): Promise<SinkPass> {
  const topic = topicName('pos.inventario.changes', p.prefix);
  const rec = createRecorder(topic, targets);
  // As `fluxion sink postgres`: core/postgres.ts createPool with its default of 4 clients.
  const pool = createPool({ connectionString: db.url, logger: log, applicationName: 'fluxion-bench-sink' });
  pool.on('connect', (client) => rec.instrument(client));
  // Connected before timing (and their backend pids known), as a running sink's would be.
  const warm = await Promise.all(Array.from({ length: 4 }, () => pool.connect()));
  await Promise.all(warm.map((c) => c.query('SELECT 1')));
  for (const c of warm) c.release();
  // The rows a sink that already ran has: positioning is then one SELECT, not an admin call per partition.
  for (const t of SINK_TOPICS) {
    for (let partition = 0; partition < Number(values.partitions); partition++) {
      await pool.query('INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset) VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING', [group, topicName(t, p.prefix), partition]);
    }
  }
  const metricsRegistry = new Registry();
  const sink = createPostgresSink(
    { kafka: rec.wrapKafka(p.kafka), registry: p.registry, pool, logger: log, topicPrefix: p.prefix, metricsRegistry },
    { groupId: group, maxBatch, sessionTimeoutMs: 30_000 },
  );
  const wal0 = await walLsn(db.pool);
  resetPeakRss('self');
  rec.arm();
  const t0 = performance.now();
  const finished = sink.run().then(
    () => new Error('the sink stopped before reaching the end'),
    (err: unknown) => err,
  );
  let doneAt: number;
  try {
    const timeout = sleep(600_000).then(() => new Error('the sink did not reach the end in 600 s'));
    const outcome = await Promise.race([rec.done, finished, timeout]);
    if (typeof outcome !== 'number') throw outcome;
    doneAt = outcome;
  } finally {
    await sink.stop();
  }
  const nodeCpu1 = nodeCpuSeconds();
  const pgCpu1 = backendsCpu(rec.pids);
  const busy1 = machineBusySeconds();
  const peak = peakRssMb();
  const r = rec.result(doneAt);
  const wal = await walMbSince(db.pool, wal0);
  await pool.end();

  const wall = (doneAt - r.firstBatch.at) / 1000;
  // Sums of intervals, clipped to the timed window.
  const within = (what: (w: string) => boolean) =>
    r.intervals.filter((i) => what(i.what)).reduce((s, i) => s + Math.max(0, Math.min(i.end, doneAt) - Math.max(i.start, r.firstBatch.at)), 0) / 1000;
  const isStatement = (w: string) => w !== 'batch handler' && !w.startsWith('Kafka');
  const statementsS = within(isStatement);
  const commitS = within((w) => w === 'Kafka offset commit (copy for dashboards)');
  const heartbeatS = within((w) => w === 'Kafka heartbeat');
  const handlerS = within((w) => w === 'batch handler');
  const statements: SinkPass['statements'] = {};
  for (const i of r.intervals) {
    if (!isStatement(i.what) || i.start < r.firstBatch.at || i.end > doneAt) continue;
    const s = (statements[i.what] ??= { count: 0, seconds: 0, serialize_seconds: 0 });
    s.count++;
    s.seconds += (i.end - i.start) / 1000;
    s.serialize_seconds += (i.syncMs ?? 0) / 1000;
  }
  for (const s of Object.values(statements)) {
    s.seconds = round(s.seconds, 3);
    s.serialize_seconds = round(s.serialize_seconds, 3);
  }
  const rowsCounter = metricsRegistry.getSingleMetric('fluxion_sink_rows_total') as Counter<string>;
  const rowsWritten: Record<string, number> = {};
  for (const op of ['actual_upserts', 'actual_deletes', 'historico_deleted', 'historico_closed', 'historico_opened', 'productos']) {
    rowsWritten[op] = await counterValue(rowsCounter, { operation: op });
  }
  const txMs = r.transactions.map((t) => t.ms);
  return {
    events,
    join_seconds: round((r.firstBatch.at - t0) / 1000),
    wall_seconds: round(wall, 3),
    events_per_second: Math.round(events / wall),
    rows_written: { ...rowsWritten, total: Object.values(rowsWritten).reduce((a, b) => a + b, 0) },
    node_cpu_seconds: round(nodeCpu1 - r.firstBatch.nodeCpu),
    pg_cpu_seconds: round(pgCpu1 - r.firstBatch.pgCpu),
    other_cpu_seconds: round(busy1 - r.firstBatch.busy - (nodeCpu1 - r.firstBatch.nodeCpu) - (pgCpu1 - r.firstBatch.pgCpu)),
    wal_mb: wal,
    peak_rss_mb: Math.round(peak),
    transactions: {
      count: r.transactions.length,
      offsets_mean: Math.round(r.transactions.reduce((s, t) => s + t.offsets, 0) / Math.max(1, r.transactions.length)),
      offsets_max: Math.max(0, ...r.transactions.map((t) => t.offsets)),
      ms_median: round(median(txMs), 1),
      ms_max: round(Math.max(0, ...txMs), 1),
      rollbacks: r.rollbacks,
      history_lookup_ms_median: round(median(r.transactions.map((t) => t.lookupMs)), 1),
      history_lookup_ms_max: round(Math.max(0, ...r.transactions.map((t) => t.lookupMs)), 1),
    },
    fetched_batches: r.batches,
    time: {
      postgres_statements: round(statementsS, 3),
      kafka_offset_commits: round(commitS, 3),
      kafka_heartbeats: round(heartbeatS, 3),
      decode_plan_and_other_js_in_handler: round(handlerS - statementsS - commitS - heartbeatS, 3),
      outside_handler_fetching: round(wall - handlerS, 3),
    },
    statements,
    retries: await counterValue(metricsRegistry.getSingleMetric('fluxion_sink_retries_total') as Counter<string>),
    dlq: await counterValue(metricsRegistry.getSingleMetric('fluxion_sink_records_dlq_total') as Counter<string>),
  };
}

// ---------------------------------------------------------------------------------------
// Input: change events on Kafka.
// ---------------------------------------------------------------------------------------

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
  for (const [name, v] of Object.entries({ rows, stores: storeCount, runs, 'max-batch': maxBatch, partitions, 'legacy-batch': legacyBatch })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
  }
  if (!(changed > 0 && changed < 1)) throw new Error(`--changed must be a share between 0 and 1, got ${changed}`);
  if (rows % storeCount !== 0) throw new Error(`--rows must be a multiple of --stores (${storeCount})`);
  if (legacyBatch * ACTUAL_COLUMNS.length > 65_535) throw new Error(`--legacy-batch ${legacyBatch} needs more than 65,535 parameters a statement`);
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
    changes2.push(rows2.flatMap((r, i) => (r.cantidad === rows1[i]!.cantidad ? [] : [{ ...base(r), op: 'u' as const, before: rows1[i]!, after: r, snapshot_id: s2, taken_at: cycle2.takenAt }])));
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
    machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model, memory_gb: Math.round(totalmem() / 2 ** 30), node: process.version, node_options: process.env.NODE_OPTIONS ?? '' },
    scenario: {
      rows, stores: storeCount, products_per_store: perStore, changed_share: changed, cycle2_changed_rows: changedRows, runs, partitions,
      sink: { max_batch: maxBatch, pool_max: 4, fetch_max_bytes: 4 * 2 ** 20, fetch_max_bytes_per_partition: 2 ** 20, session_timeout_ms: 30_000 },
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
            `SELECT name, current_setting(name) AS setting FROM pg_settings WHERE name IN ('server_version', 'shared_buffers', 'max_wal_size', 'synchronous_commit', 'wal_compression', 'jit', 'work_mem', 'random_page_cost')`,
          );
          serverInfo = Object.fromEntries(settings.rows.map((s) => [s.name, s.setting]));
        }
        say(`run ${run}: (a) COPY ${rows} rows`);
        const copy = await copyPass(db, cycle1Copy, null, rows);
        say(`run ${run}: (a') COPY ${rows} rows into an inventario_actual-shaped and an inventario_historico-shaped table`);
        const copyWithHistory = await copyPass(db, cycle1Copy, cycle1HistoryCopy, rows);
        say(`run ${run}: (b) sink, cycle 1: ${rows} c events`);
        const sink1 = await sinkPass(pA, db, `${pA.prefix}bench-sink-${run}`, ends1, rows, maxBatch);
        await db.pool.query('VACUUM ANALYZE inventario_actual, inventario_historico, productos');
        say(`run ${run}: (b) sink, cycle 2: ${changedRows} u events`);
        const sink2 = await sinkPass(pB, db, `${pB.prefix}bench-sink-${run}`, ends2, changedRows, maxBatch);
        const check = await db.pool.query<{ actual: string; historico: string; abiertos: string; cycle2: string }>(
          `SELECT (SELECT count(*) FROM inventario_actual)::text AS actual, (SELECT count(*) FROM inventario_historico)::text AS historico,
                  (SELECT count(*) FROM inventario_historico WHERE valid_to IS NULL)::text AS abiertos,
                  (SELECT count(*) FROM inventario_actual WHERE taken_at = $1)::text AS cycle2`,
          [cycle2.takenAt],
        );
        const c = check.rows[0]!;
        if (Number(c.actual) !== rows || Number(c.historico) !== rows + changedRows || Number(c.abiertos) !== rows || Number(c.cycle2) !== changedRows) {
          throw new Error(`the sink's tables after cycle 2 are wrong: ${JSON.stringify(c)} (expected ${rows} rows, ${rows + changedRows} history rows, ${rows} open, ${changedRows} of cycle 2)`);
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
        process.stdout.write(`${JSON.stringify({ run, copy_rows_per_second: copy.rows_per_second, sink_events_per_second: sink1.events_per_second, ratio: result.ratio_sink_to_copy, sink_cycle2_seconds: sink2.wall_seconds, legacy_values_seconds: legacyValues.wall_seconds, legacy_unnest_seconds: legacyUnnest.wall_seconds })}\n`);
      } finally {
        await db.drop();
      }
    }
  } finally {
    await pA.cleanup().catch(() => undefined);
    await pB.cleanup().catch(() => undefined);
  }

  // ----- medians, goals, table, file -----
  type R = { copy: SimplePass; copy_with_history: SimplePass; ratio_sink_to_copy_with_history: number; sink_cycle1: SinkPass; sink_cycle2: SinkPass; legacy_values: LegacyPass; legacy_unnest: LegacyPass; ratio_sink_to_copy: number };
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
    cycle2_sink_writes_only_changes: medians.sink_cycle2.rows_written.actual_upserts === changedRows && medians.sink_cycle2.rows_written.historico_opened === changedRows,
    // Issue 16: rows written per row whose content changed. Cycle 2 changes only quantities,
    // so the current-state tables should receive one row per change and productos none; the
    // history's close and open are the change log itself (two rows per change by design).
    cycle2_productos_rows_written: medians.sink_cycle2.rows_written.productos,
    cycle2_write_amplification_current_state: round((medians.sink_cycle2.rows_written.actual_upserts! + medians.sink_cycle2.rows_written.actual_deletes! + medians.sink_cycle2.rows_written.productos!) / changedRows, 3),
    max_write_amplification: 1.05,
    write_amplification_met: (medians.sink_cycle2.rows_written.actual_upserts! + medians.sink_cycle2.rows_written.actual_deletes! + medians.sink_cycle2.rows_written.productos!) / changedRows <= 1.05,
    cycle2_legacy_values_over_sink_seconds: round(medians.legacy_values.wall_seconds / cycleS, 1),
    cycle2_legacy_unnest_over_sink_seconds: round(medians.legacy_unnest.wall_seconds / cycleS, 1),
  };
  report.note =
    'Medians of `runs` runs; each run has its own database and does (a), (b) cycle 1, (b) cycle 2, (c) VALUES, (c) unnest in that order. ' +
    '(a) COPY (text format, pg-copy-streams) of the cycle-1 rows into an empty table created LIKE inventario_actual INCLUDING ALL WITH (fillfactor = 90): primary key, defaults; rows pre-encoded, timed from the COPY to its (autocommit) end. (a\') the same, plus the same rows as open c intervals into an empty table created LIKE inventario_historico INCLUDING ALL (its primary key and both indexes, not partitioned), in one transaction: the least cycle 1 of the sink must write (productos aside). ' +
    '(b) the sink in this process: timed from the first batch kafkajs hands it (join_seconds is the time before: codecs, DLQ producer, group join, first fetch) to the COMMIT that moves the last partition\'s sink_offsets to the end; its sink_offsets rows exist beforehand (as after any earlier run). Events were published before the pass. ' +
    'rows_written are the sink\'s own counters (fluxion_sink_rows_total): inventario_actual upserts and deletes, inventario_historico rows deleted, closed (UPDATE) and opened (INSERT), productos upserts. ' +
    'time splits the wall time: statements as seen by the client (send, server, reply; serialize_seconds is node-postgres turning the parameter arrays into text), Kafka offset commits and heartbeats the sink awaits, the rest of the batch handler (Avro decode, planning, JS), and time outside the handler (kafkajs fetching). ' +
    '(c) a table created like (a), loaded with cycle 1 by COPY and VACUUM ANALYZEd (untimed), then every row of cycle 2 upserted (ON CONFLICT DO UPDATE of every column, no filter), one transaction per store. ' +
    'Before (b) cycle 2 the sink\'s tables are VACUUM ANALYZEd the same way. pg_cpu_seconds: user+sys of the PostgreSQL backends doing the work (/proc); other_cpu_seconds: the rest of the machine\'s CPU over the pass (/proc/stat: Kafka serving fetches, autovacuum, checkpointer, other users), a noise gauge; wal_mb: WAL of the whole cluster over the pass. ' +
    'peak_rss_mb: this process (the sink and the harness, which holds the cycle-2 rows and the COPY text, about 100 MB) over the pass. Everything shares 2 cores with Kafka, the registry and PostgreSQL.';

  printTable(medians, { runs, rows, changedRows, legacyBatch, goals: report.goals });
  const file = values.out ? resolve(values.out) : join(PROJECT_ROOT, 'bench', 'results', `${(report.date as string).slice(0, 10)}-sink.json`);
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`written ${file}\n`);
}

function copyMedians(passes: SimplePass[]) {
  const m = (f: (p: SimplePass) => number, digits = 3) => round(median(passes.map(f)), digits);
  return { wall_seconds: m((p) => p.wall_seconds), rows_per_second: Math.round(m((p) => p.rows_per_second)), rows_written: passes[0]!.rows_written, node_cpu_seconds: m((p) => p.node_cpu_seconds, 2), pg_cpu_seconds: m((p) => p.pg_cpu_seconds, 2), other_cpu_seconds: m((p) => p.other_cpu_seconds, 2), wal_mb: m((p) => p.wal_mb, 1) };
}

function sinkMedians(passes: SinkPass[]) {
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
      kinds.map((k) => [k, { count: m((p) => p.statements[k]?.count ?? 0, 0), seconds: m((p) => p.statements[k]?.seconds ?? 0), serialize_seconds: m((p) => p.statements[k]?.serialize_seconds ?? 0) }]),
    ),
  };
}

function legacyMedians(passes: LegacyPass[]) {
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

type Medians = {
  copy: ReturnType<typeof copyMedians>;
  copy_with_history: ReturnType<typeof copyMedians>;
  sink_cycle1: ReturnType<typeof sinkMedians>;
  sink_cycle2: ReturnType<typeof sinkMedians>;
  legacy_values: ReturnType<typeof legacyMedians>;
  legacy_unnest: ReturnType<typeof legacyMedians>;
  ratio_sink_to_copy: number;
  ratio_sink_to_copy_with_history: number;
};

function printTable(m: Medians, o: { runs: number; rows: number; changedRows: number; legacyBatch: number; goals: unknown }): void {
  const out: string[][] = [[`medians of ${o.runs} runs`, 'input', 'wall s', 'per s', 'rows written', 'node CPU s', 'PG CPU s', 'other CPU s', 'WAL MB', 'peak RSS MB']];
  const copies: Array<[string, ReturnType<typeof copyMedians>]> = [['(a) COPY into an empty table with its PK', m.copy], ["(a') COPY into empty actual + historico tables", m.copy_with_history]];
  for (const [label, p] of copies) {
    out.push([label, `${o.rows} rows`, p.wall_seconds.toFixed(3), String(p.rows_per_second), String(p.rows_written), p.node_cpu_seconds.toFixed(2), p.pg_cpu_seconds.toFixed(2), p.other_cpu_seconds.toFixed(2), String(p.wal_mb), '']);
  }
  const sinks: Array<[string, ReturnType<typeof sinkMedians>]> = [['(b) sink, cycle 1: every event a c', m.sink_cycle1], [`(b) sink, cycle 2: ${o.changedRows} u`, m.sink_cycle2]];
  for (const [label, p] of sinks) {
    out.push([label, `${p.events} events`, p.wall_seconds.toFixed(3), String(p.events_per_second), String(p.rows_written_total), p.node_cpu_seconds.toFixed(2), p.pg_cpu_seconds.toFixed(2), p.other_cpu_seconds.toFixed(2), String(p.wal_mb), String(p.peak_rss_mb)]);
  }
  const legacy: Array<[string, ReturnType<typeof legacyMedians>]> = [[`(c) legacy upsert, VALUES x ${o.legacyBatch}`, m.legacy_values], [`(c) legacy upsert, unnest x ${LEGACY_UNNEST_BATCH}`, m.legacy_unnest]];
  for (const [label, p] of legacy) {
    out.push([label, `${p.rows} rows`, p.wall_seconds.toFixed(3), String(p.rows_per_second), String(p.rows_written), p.node_cpu_seconds.toFixed(2), p.pg_cpu_seconds.toFixed(2), p.other_cpu_seconds.toFixed(2), String(p.wal_mb), '']);
  }
  const widths = out[0]!.map((_, i) => Math.max(...out.map((r) => r[i]!.length)));
  for (const r of out) process.stdout.write(`${r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')}\n`);
  process.stdout.write(`ratio (b) cycle 1 events/s / (a) rows/s: ${m.ratio_sink_to_copy}; / (a') rows/s: ${m.ratio_sink_to_copy_with_history} (medians of the runs' ratios)\n`);
  for (const [label, p] of sinks) {
    process.stdout.write(`${label}: join ${p.join_seconds} s (not counted); ${p.transactions} transactions of ${p.events_per_transaction} events; history lookups (delete superseded + close) ${p.history_lookup_ms_median} ms a transaction (median), ${p.history_lookup_ms_max} ms at worst; rows ${JSON.stringify(p.rows_written)}\n`);
    process.stdout.write(`  time s: ${JSON.stringify(p.time)}\n`);
    const st = Object.entries(p.statements)
      .sort((x, y) => y[1].seconds - x[1].seconds)
      .map(([k, v]) => `${k} ${v.seconds} s/${v.count}${v.serialize_seconds >= 0.01 ? ` (serialize ${v.serialize_seconds} s)` : ''}`);
    process.stdout.write(`  statements: ${st.join('; ')}\n`);
  }
  process.stdout.write(`goals: ${JSON.stringify(o.goals)}\n`);
}

await main();
process.exit(0);
