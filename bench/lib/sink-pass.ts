/**
 * bench/sink.ts's pass (b): the real PostgreSQL sink consuming change events from Kafka, its
 * statements, Kafka calls and transactions recorded from outside (a pg and kafkajs recorder)
 * and timed.
 */
import { machineBusySeconds, resetPeakRss } from './proc.ts';
import { median, round } from './stats.ts';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { Registry, type Counter } from 'prom-client';
import type { KafkaClient } from '../../core/kafka/client.ts';
import { counterValue } from '../../core/metrics.ts';
import { createPool } from '../../core/postgres.ts';
import { topicName } from '../../core/topics.ts';
import { createPostgresSink, SINK_TOPICS } from '../../sinks/postgres-sink.ts';
import type { TestPipeline } from '../../fixtures/pipeline.ts';
import type { MigratedDatabase } from '../../fixtures/sink-run.ts';
import { log, backendsCpu, nodeCpuSeconds, peakRssMb, walLsn, walMbSince } from './sink-baselines.ts';

// ---------------------------------------------------------------------------------------
// (b) the sink, with its statements, Kafka calls and batches timed from outside.
// ---------------------------------------------------------------------------------------

export const STATEMENT_KINDS: Array<[string, RegExp]> = [
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
export const kindOf = (text: string) => STATEMENT_KINDS.find(([, re]) => re.test(text))?.[0] ?? 'other';

export interface Interval {
  what: string;
  start: number;
  end: number;
  /** Statements: the synchronous part of client.query (node-postgres serializing the parameters). */
  syncMs?: number;
}

export interface Transaction {
  partition: number;
  offsets: number;
  ms: number;
  /** Milliseconds of the two statements that look up open history rows (delete superseded, close). */
  lookupMs: number;
}

/** Watches one sink pass through its pool clients and its Kafka consumer. */
export function createRecorder(topic: string, targets: Map<number, bigint>) {
  const intervals: Interval[] = [];
  const transactions: Transaction[] = [];
  const committed = new Map<number, bigint>();
  const open = new Map<
    pg.PoolClient,
    { begin: number; lookupMs: number; expected?: bigint; next?: bigint; partition?: number; topic?: string }
  >();
  const pids = new Set<number>();
  let armed = false;
  let firstBatch: { at: number; nodeCpu: number; pgCpu: number; busy: number } | undefined;
  let batches = 0;
  let batchRecords = 0;
  let rollbacks = 0;
  let finish: (at: number) => void = () => undefined;
  const done = new Promise<number>((r) => (finish = r));

  function onStatement(
    client: pg.PoolClient,
    text: string,
    values: unknown[] | undefined,
    start: number,
    syncMs: number,
    err: unknown,
    res: pg.QueryResult | undefined,
  ): void {
    if (!armed) return;
    const end = performance.now();
    const what = kindOf(text);
    intervals.push({ what, start, end, syncMs });
    if (err) return;
    if (what === 'begin') open.set(client, { begin: start, lookupMs: 0 });
    const tx = open.get(client);
    if (tx && (what.startsWith('historico delete') || what.startsWith('historico close'))) tx.lookupMs += end - start;
    if (what === 'claim sink_offsets (SELECT ... FOR UPDATE)' && tx && res?.rows[0])
      tx.expected = BigInt((res.rows[0] as { next_offset: string }).next_offset);
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
      transactions.push({
        partition: tx.partition,
        offsets: Number(tx.next - (tx.expected ?? tx.next)),
        ms: end - tx.begin,
        lookupMs: tx.lookupMs,
      });
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
      void (original('SELECT pg_backend_pid() AS pid') as Promise<pg.QueryResult<{ pid: number }>>).then(
        (r) => pids.add(r.rows[0]!.pid),
        () => undefined,
      );
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
                  firstBatch ??= {
                    at: performance.now(),
                    nodeCpu: nodeCpuSeconds(),
                    pgCpu: backendsCpu(pids),
                    busy: machineBusySeconds(),
                  };
                  batches++;
                  batchRecords += batch.records.length;
                }
                return timed('batch handler', () =>
                  handle(batch, { ...control, heartbeat: () => timed('Kafka heartbeat', () => control.heartbeat()) }),
                );
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

export interface SinkPass {
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

export async function sinkPass(
  p: TestPipeline,
  db: MigratedDatabase,
  group: string,
  targets: Map<number, bigint>,
  events: number,
  maxBatch: number,
  partitions: number,
): Promise<SinkPass> {
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
    for (let partition = 0; partition < partitions; partition++) {
      await pool.query(
        'INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset) VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING',
        [group, topicName(t, p.prefix), partition],
      );
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
    r.intervals
      .filter((i) => what(i.what))
      .reduce((s, i) => s + Math.max(0, Math.min(i.end, doneAt) - Math.max(i.start, r.firstBatch.at)), 0) / 1000;
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
