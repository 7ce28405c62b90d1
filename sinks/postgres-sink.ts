/**
 * `fluxion sink postgres`: pos.inventario.changes, pos.ventas, alerts.phantom-zeros and
 * ops.etl-runs into PostgreSQL, exactly once (docs/architecture.md, Guarantees).
 *
 * - The consumer position lives in PostgreSQL (`sink_offsets`), written in the same
 *   transaction as the rows. After every assignment the sink seeks each partition to that
 *   position before writing anything; Kafka's committed offsets are only a copy for lag
 *   dashboards. A crash at any instant therefore neither loses nor repeats a row.
 * - Ownership is checked inside each transaction: the partition's sink_offsets row is locked
 *   (`FOR UPDATE`) and must still hold the position this instance read. An instance that
 *   lost the partition in a rebalance (a zombie, docs/pitfalls.md) fails that check
 *   and rolls back instead of writing the same rows twice.
 * - One transaction per slice of at most `maxBatch` records of one partition, written by
 *   set-based statements (sinks/postgres-writer.ts) from a pure plan (sinks/sink-batch.ts).
 * - PostgreSQL unreachable or restarting: the slice is retried with backoff, heartbeating,
 *   for as long as it takes; nothing is committed anywhere meanwhile.
 * - Kafka's retriable faults (a broker restarting, a coordinator loading) are ridden out by
 *   core/kafka/supervised-consumer.ts: after a crash every partition is positioned again from
 *   PostgreSQL and the DLQ producer is replaced; a non-retriable one rejects `run()`.
 * - Bad records go to `<topic>.dlq` with the reason (and the SQLSTATE when PostgreSQL refused
 *   the row); the slice is then written without them. A record PostgreSQL refuses is found by
 *   writing the slice again record by record, each under a savepoint. DLQ records are sent
 *   before the transaction commits, so a crash in between can repeat a DLQ record (never a
 *   row, never lose one).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { createTopicCodec, type TopicCodec } from '../core/avro/topic-codec.ts';
import { dlqRecord } from '../core/dlq.ts';
import { errorMessage, FluxionError, ValidationError } from '../core/errors.ts';
import type { BatchControl, ConsumedBatch, ConsumedRecord, FluxionProducer, KafkaClient } from '../core/kafka/client.ts';
import { superviseConsumer, type SupervisedConsumer } from '../core/kafka/supervised-consumer.ts';
import type { Logger } from '../core/logger.ts';
import { registeredMetric } from '../core/metrics.ts';
import { isConnectionError, type Pool, type PoolClient } from '../core/postgres.ts';
import { RetryEpisode } from '../core/retry.ts';
import type { InventoryChange, PhantomAlert, Venta } from '../core/records.ts';
import type { FluxionRegistry } from '../core/registry.ts';
import { dlqTopic, topicName, type TopicName } from '../core/topics.ts';
import { addCounts, emptyCounts, HistoryOrderError, readSinkOffsets, writeAlertas, writeEtlRuns, writeInventory, writeSinkOffset, writeVentas, type WriteCounts } from './postgres-writer.ts';
import { planAlertas, planEtlRuns, planInventory, planVentas, SinkBatchError, type EtlRun } from './sink-batch.ts';

export const SINK_TOPICS = ['pos.inventario.changes', 'pos.ventas', 'alerts.phantom-zeros', 'ops.etl-runs'] as const satisfies readonly TopicName[];
type SinkTopic = (typeof SINK_TOPICS)[number];

export interface PostgresSinkDeps {
  kafka: KafkaClient;
  registry: FluxionRegistry;
  pool: Pool;
  logger: Logger;
  topicPrefix: string;
  metricsRegistry?: Registry;
  /** Called after a transaction that wrote ventas commits (the ABC debouncer listens). */
  onVentasCommitted?: () => void;
}

export interface PostgresSinkOptions {
  groupId: string;
  /** Records per PostgreSQL transaction (default 5,000). */
  maxBatch?: number;
  sessionTimeoutMs?: number;
  /** Bytes per fetch (default 4 MB). */
  maxBytes?: number;
  /** Backoff while PostgreSQL is unreachable: first and longest wait (default 200 ms, 10 s). */
  retryInitialMs?: number;
  retryMaxMs?: number;
}

export interface PostgresSink {
  /** Resolves after `stop()`; rejects on a consumer crash or an error retrying cannot cure. */
  run(): Promise<void>;
  stop(): Promise<void>;
}

export class PostgresSinkError extends FluxionError {
  constructor(message: string, options: ConstructorParameters<typeof FluxionError>[1] = {}) {
    super(message, { code: 'POSTGRES_SINK', ...options });
  }
}

/** The partition's sink_offsets row moved under us: another instance owns it now. */
class OwnershipLost extends Error {}
/** The batch is no longer ours (rebalance, stop): abandon it without writing. */
class BatchAbandoned extends Error {}

/**
 * SQLSTATE classes that blame the data, not the server: 22 data exception, 23 integrity
 * constraint violation. The same rows fail the same way every time, so they are set aside.
 */
const DATA_SQLSTATE = /^(22|23)/;
/** PostgreSQL's SQLSTATE, or the one our writer's own refusal stands for (HistoryOrderError). */
const sqlstateOf = (err: unknown): string | undefined =>
  err instanceof HistoryOrderError ? err.sqlstate : ((err as { code?: unknown })?.code as string | undefined);
const isDataError = (err: unknown): boolean => err instanceof HistoryOrderError || DATA_SQLSTATE.test(sqlstateOf(err) ?? '');

interface Decoded {
  record: ConsumedRecord;
  value: unknown;
}

interface Rejected {
  record: ConsumedRecord;
  err: unknown;
  sqlstate?: string;
}

export function createPostgresSink(deps: PostgresSinkDeps, options: PostgresSinkOptions): PostgresSink {
  const maxBatch = options.maxBatch ?? 5_000;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new PostgresSinkError(`maxBatch must be a positive integer, got ${maxBatch}`);
  if (!options.groupId) throw new PostgresSinkError('the sink needs a consumer group id');
  const { kafka, pool } = deps;
  const { groupId } = options;
  const retryInitialMs = options.retryInitialMs ?? 200;
  const retryMaxMs = options.retryMaxMs ?? 10_000;
  const log = deps.logger.child({ component: 'postgres-sink', groupId });
  const topicOf = new Map<string, SinkTopic>(SINK_TOPICS.map((t) => [topicName(t, deps.topicPrefix), t]));

  const registry = deps.metricsRegistry ?? new Registry();
  const recordsCounter = registeredMetric(registry, 'fluxion_sink_records_total', () =>
    new Counter({ name: 'fluxion_sink_records_total', help: 'records written to PostgreSQL by committed transactions', labelNames: ['topic'], registers: [registry] }));
  const dlqCounter = registeredMetric(registry, 'fluxion_sink_records_dlq_total', () =>
    new Counter({ name: 'fluxion_sink_records_dlq_total', help: 'records the sink sent to a dead-letter topic', labelNames: ['topic', 'reason'], registers: [registry] }));
  const rowsCounter = registeredMetric(registry, 'fluxion_sink_rows_total', () =>
    new Counter({ name: 'fluxion_sink_rows_total', help: 'rows written, by table operation', labelNames: ['operation'], registers: [registry] }));
  const retriesCounter = registeredMetric(registry, 'fluxion_sink_retries_total', () =>
    new Counter({ name: 'fluxion_sink_retries_total', help: 'transactions retried because PostgreSQL was unreachable or the batch was replanned', labelNames: ['reason'], registers: [registry] }));
  const waitingGauge = registeredMetric(registry, 'fluxion_sink_waiting_for_postgres', () =>
    new Gauge({ name: 'fluxion_sink_waiting_for_postgres', help: '1 while the sink waits for PostgreSQL to come back', registers: [registry] }));
  const txSeconds = registeredMetric(registry, 'fluxion_sink_transaction_seconds', () =>
    new Histogram({ name: 'fluxion_sink_transaction_seconds', help: 'duration of one sink transaction', buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry] }));

  let consumer: SupervisedConsumer | undefined;
  let dlqProducer: FluxionProducer | undefined;
  let codecs: Map<SinkTopic, TopicCodec<unknown>> | undefined;
  let stopping = false;
  /** Partitions positioned at their PostgreSQL offset since the last assignment, with that offset. */
  const position = new Map<string, bigint>();
  const keyOf = (topic: string, partition: number) => `${topic}\u0000${partition}`;

  const running = (control: BatchControl) => !stopping && control.isRunning() && !control.isStale();

  /** Retries `work` while PostgreSQL (or the registry) is unreachable, heartbeating; other errors pass through. */
  async function whilePostgresDown<T>(what: string, control: BatchControl, work: () => Promise<T>): Promise<T> {
    /** What did not answer: the decode retries here too, when the registry is down. */
    let service = 'PostgreSQL';
    const retriable = (err: unknown) => isConnectionError(err) || (err instanceof FluxionError && err.retriable);
    const episode = new RetryEpisode(
      { retries: Number.POSITIVE_INFINITY, initialDelayMs: retryInitialMs, maxDelayMs: retryMaxMs, factor: 2 },
      {
        retriable,
        onRetry: (err, attempt) => {
          retriesCounter.inc({ reason: 'postgres_unreachable' });
          if (attempt > 1) return;
          waitingGauge.set(1);
          service = isConnectionError(err) ? 'PostgreSQL' : 'the schema registry';
          log.warn({ what, err: errorMessage(err) }, `${service} is unreachable: pausing the sink and retrying with backoff; nothing is committed meanwhile`);
        },
      },
    );
    for (;;) {
      try {
        const result = await work();
        if (episode.attempts > 0) {
          waitingGauge.set(0);
          log.info({ what, downMs: episode.elapsedMs }, `${service} is back: resuming where the sink was`);
        }
        return result;
      } catch (err) {
        if (!retriable(err)) throw err;
        if (!running(control)) throw new BatchAbandoned();
        await episode.failed(err);
        await control.heartbeat().catch(() => undefined);
        if (!running(control)) throw new BatchAbandoned();
      }
    }
  }

  /** Seeks a newly assigned partition to its PostgreSQL offset (creating the row at the log start). */
  async function positionPartition(topic: string, partition: number, control: BatchControl): Promise<bigint> {
    const stored = await whilePostgresDown('read sink_offsets', control, () => readSinkOffsets(pool, groupId));
    let next = stored.get(keyOf(topic, partition));
    if (next === undefined) {
      const admin = await kafka.admin();
      try {
        next = BigInt((await admin.topicOffsets(topic)).find((o) => o.partition === partition)?.low ?? '0');
      } finally {
        await admin.disconnect();
      }
      await whilePostgresDown('create sink_offsets row', control, () =>
        pool.query(
          `INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
          [groupId, topic, partition, next!.toString()],
        ));
      next = (await whilePostgresDown('read sink_offsets', control, () => readSinkOffsets(pool, groupId))).get(keyOf(topic, partition)) ?? next;
    }
    position.set(keyOf(topic, partition), next);
    log.info({ topic, partition, offset: next.toString() }, 'partition positioned at its PostgreSQL offset');
    return next;
  }

  async function decodeAll(topic: SinkTopic, records: ConsumedRecord[], rejected: Rejected[]): Promise<Decoded[]> {
    const codec = codecs!.get(topic)!;
    const out: Decoded[] = [];
    for (const record of records) {
      try {
        if (!record.value) throw new ValidationError(`${topic} record without a value (a tombstone) at offset ${record.offset}`);
        out.push({ record, value: await codec.decode(record.value) });
      } catch (err) {
        // The registry not answering is no fault of the record: retry the batch.
        if (err instanceof FluxionError && err.retriable) throw err;
        rejected.push({ record, err });
      }
    }
    return out;
  }

  /** The plan of `items`; records the planner refuses move to `rejected` (it is planned again without them). */
  function planFor(topic: SinkTopic, items: Decoded[], rejected: Rejected[]): { items: Decoded[]; write: (client: PoolClient) => Promise<WriteCounts> } {
    let current = items;
    for (;;) {
      try {
        const values = current.map((d) => d.value);
        let write: (client: PoolClient) => Promise<WriteCounts>;
        if (topic === 'pos.inventario.changes') {
          const plan = planInventory(values as InventoryChange[]);
          write = (c) => writeInventory(c, plan);
        } else if (topic === 'pos.ventas') {
          const plan = planVentas(values as Venta[]);
          write = (c) => writeVentas(c, plan);
        } else if (topic === 'alerts.phantom-zeros') {
          const plan = planAlertas(values as PhantomAlert[]);
          write = (c) => writeAlertas(c, plan);
        } else {
          const plan = planEtlRuns(values as EtlRun[]);
          write = (c) => writeEtlRuns(c, plan);
        }
        return { items: current, write };
      } catch (err) {
        if (!(err instanceof SinkBatchError)) throw err;
        const bad = current[err.index]!;
        rejected.push({ record: bad.record, err });
        current = current.filter((_, i) => i !== err.index);
        retriesCounter.inc({ reason: 'replanned' });
      }
    }
  }

  /** Locks the partition's offset row and checks that it still says what this instance read. */
  async function claim(client: PoolClient, topic: string, partition: number, expected: bigint): Promise<void> {
    const r = await client.query<{ next_offset: string }>(
      'SELECT next_offset FROM sink_offsets WHERE consumer_group = $1 AND topic = $2 AND partition = $3 FOR UPDATE',
      [groupId, topic, partition],
    );
    const found = r.rows[0] ? BigInt(r.rows[0].next_offset) : undefined;
    if (found !== expected) throw new OwnershipLost(`sink_offsets of ${topic}[${partition}] is ${found ?? 'missing'}, this instance expected ${expected}`);
  }

  async function sendDlq(topic: string, rejected: Rejected[]): Promise<void> {
    if (rejected.length === 0) return;
    for (const r of rejected) {
      log.warn({ topic, partition: r.record.partition, offset: r.record.offset, sqlstate: r.sqlstate, err: errorMessage(r.err) }, 'record sent to the DLQ');
    }
    await dlqProducer!.send(dlqTopic(topic), rejected.map((r) => dlqRecord(r.record, r.err, r.sqlstate ? { sqlstate: r.sqlstate } : {})));
    for (const r of rejected) dlqCounter.inc({ topic: topicOf.get(topic) ?? topic, reason: r.sqlstate ? 'postgres' : r.err instanceof SinkBatchError ? 'plan' : 'decode' });
  }

  /**
   * Writes one slice (records of one partition, in offset order) and its next offset in one
   * transaction. Returns the counts, or throws BatchAbandoned / OwnershipLost.
   */
  async function writeSlice(topic: string, partition: number, slice: ConsumedRecord[], control: BatchControl): Promise<WriteCounts> {
    const logical = topicOf.get(topic)!;
    const next = BigInt(slice.at(-1)!.offset) + 1n;
    const expected = position.get(keyOf(topic, partition))!;

    const { decoded, rejected } = await whilePostgresDown('decode', control, async () => {
      const bad: Rejected[] = [];
      return { decoded: await decodeAll(logical, slice, bad), rejected: bad };
    });
    const planned = planFor(logical, decoded, rejected);

    /** One transaction: claim, rows, DLQ records (sent before the commit), next offset. */
    const transaction = async (work: (client: PoolClient) => Promise<{ counts: WriteCounts; dlq: Rejected[] }>): Promise<WriteCounts> => {
      const client = await pool.connect();
      const started = process.hrtime.bigint();
      try {
        await client.query('BEGIN');
        await claim(client, topic, partition, expected);
        const { counts, dlq } = await work(client);
        if (!running(control)) throw new BatchAbandoned();
        await sendDlq(topic, dlq);
        await writeSinkOffset(client, groupId, topic, partition, next);
        await client.query('COMMIT');
        txSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
        return counts;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    };

    const counts = await whilePostgresDown('write', control, async () => {
      try {
        return await transaction(async (client) => ({ counts: await planned.write(client), dlq: rejected }));
      } catch (err) {
        if (!isDataError(err)) throw err;
        // PostgreSQL refused some row of the set: find it by writing the records one by one,
        // each under a savepoint, and set aside those it refuses.
        log.warn({ topic, partition, from: slice[0]!.offset, to: slice.at(-1)!.offset, sqlstate: sqlstateOf(err), err: errorMessage(err) }, 'PostgreSQL refused the batch: writing it record by record to find the bad one');
        retriesCounter.inc({ reason: 'record_by_record' });
        return transaction(async (client) => {
          const total = emptyCounts();
          const refused: Rejected[] = [];
          for (const item of planned.items) {
            const one = planFor(logical, [item], refused);
            if (one.items.length === 0) continue;
            await client.query('SAVEPOINT record');
            try {
              addCounts(total, await one.write(client));
              await client.query('RELEASE SAVEPOINT record');
            } catch (e) {
              if (!isDataError(e)) throw e;
              await client.query('ROLLBACK TO SAVEPOINT record');
              refused.push({ record: item.record, err: e, sqlstate: sqlstateOf(e) });
            }
          }
          return { counts: total, dlq: [...rejected, ...refused] };
        });
      }
    });
    position.set(keyOf(topic, partition), next);
    return counts;
  }

  async function handleBatch(batch: ConsumedBatch, control: BatchControl): Promise<void> {
    const { topic, partition } = batch;
    if (!running(control) || batch.records.length === 0) return;
    if (!topicOf.has(topic)) throw new PostgresSinkError(`the sink was given a batch of ${topic}, which it does not consume`);
    const key = keyOf(topic, partition);
    let from = position.get(key);
    if (from === undefined) {
      from = await positionPartition(topic, partition, control);
      const first = BigInt(batch.records[0]!.offset);
      if (first !== from) {
        // Whatever Kafka's committed offset said, PostgreSQL's is the truth: read from there.
        consumer!.current().seek(topic, partition, from.toString());
        return;
      }
    }
    const records = batch.records.filter((r) => BigInt(r.offset) >= from);
    for (let i = 0; i < records.length; i += maxBatch) {
      if (!running(control)) return;
      const slice = records.slice(i, i + maxBatch);
      let counts: WriteCounts;
      try {
        counts = await writeSlice(topic, partition, slice, control);
      } catch (err) {
        if (err instanceof BatchAbandoned) {
          log.info({ topic, partition, offset: slice[0]!.offset }, 'batch abandoned (stopping or revoked): nothing written');
          return;
        }
        if (err instanceof OwnershipLost) {
          // Read the position again; if the partition is still ours, carry on from there.
          log.warn({ topic, partition, err: err.message }, 'another instance wrote this partition: re-reading its PostgreSQL offset');
          position.delete(key);
          if (!running(control)) return;
          const offset = await positionPartition(topic, partition, control);
          try {
            consumer!.current().seek(topic, partition, offset.toString());
          } catch (seekErr) {
            // Revoked meanwhile: the partition's new owner positions itself.
            log.info({ topic, partition, err: errorMessage(seekErr) }, 'partition no longer assigned');
          }
          return;
        }
        throw new PostgresSinkError(`sink: writing ${topic}[${partition}] from offset ${slice[0]!.offset} failed: ${errorMessage(err)}`, {
          cause: err,
          context: { topic, partition, offset: slice[0]!.offset, sqlstate: sqlstateOf(err) },
        });
      }
      const last = slice.at(-1)!.offset;
      control.resolveOffset(last);
      recordsCounter.inc({ topic: topicOf.get(topic)! }, slice.length);
      for (const [op, n] of Object.entries(counts)) if (n > 0) rowsCounter.inc({ operation: op }, n);
      log.debug({ topic, partition, from: slice[0]!.offset, to: last, ...counts }, 'transaction committed');
      if (counts.ventas > 0) deps.onVentasCommitted?.();
      // Kafka's copy of the position, for lag dashboards; PostgreSQL's stays the truth.
      await consumer!.current().commit(topic, partition, (BigInt(last) + 1n).toString()).catch((err: unknown) => log.debug({ err: errorMessage(err) }, 'offset copy to Kafka failed'));
      await control.heartbeat();
    }
  }

  /** After the consumer ended: the DLQ producer goes, and every partition is positioned again from PostgreSQL. */
  async function tearDown(): Promise<void> {
    position.clear();
    const producer = dlqProducer;
    dlqProducer = undefined;
    await producer?.disconnect().catch((err: unknown) => log.warn({ err }, 'DLQ producer disconnect failed'));
  }

  return {
    async run() {
      if (consumer) throw new PostgresSinkError('the sink is already running');
      codecs = new Map(
        await Promise.all(SINK_TOPICS.map(async (t) => [t, await createTopicCodec<unknown>(deps.registry, t, topicName(t, deps.topicPrefix))] as const)),
      );
      consumer = superviseConsumer(kafka, deps.logger, {
        name: 'sink',
        consumer: { groupId, readCommitted: true, sessionTimeoutMs: options.sessionTimeoutMs, maxBytes: options.maxBytes ?? 4 * 1024 * 1024 },
        topics: [...topicOf.keys()],
        async setUp() {
          dlqProducer = await kafka.producer();
        },
        onAssignment(assignment) {
          // Every partition is positioned again from PostgreSQL before its next write.
          position.clear();
          log.info({ assignment }, 'partitions assigned');
        },
        handle: handleBatch,
        tearDown,
      });
      log.info({ topics: [...topicOf.keys()], maxBatch }, 'sink starting');
      await consumer.run();
    },
    async stop() {
      stopping = true;
      await consumer?.stop();
      log.info('sink stopped');
    },
  };
}
