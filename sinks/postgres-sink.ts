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
 *   and rolls back instead of writing the same rows twice. Both are the commit strategy of
 *   core/consume-loop/postgres-offsets.ts, run by the one consume loop (core/consume-loop/).
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
import { Registry } from 'prom-client';
import { createTopicCodec, type TopicCodec } from '../core/avro/topic-codec.ts';
import { createConsumeLoop, type ConsumeLoop } from '../core/consume-loop/loop.ts';
import { postgresOffsetsCommit, type SliceTransaction } from '../core/consume-loop/postgres-offsets.ts';
import { errorMessage, FluxionError } from '../core/errors.ts';
import type { FluxionProducer, KafkaClient } from '../core/kafka/client.ts';
import type { Logger } from '../core/logger.ts';
import { sharedCounter, sharedGauge, sharedHistogram } from '../core/metrics.ts';
import { withDefaults } from '../core/options.ts';
import { isConnectionError, type Pool } from '../core/postgres.ts';
import type { FluxionRegistry } from '../core/registry.ts';
import { topicName } from '../core/topics.ts';
import { SINKS_ENV } from './config.ts';
import { readSinkOffsets, writeSinkOffset } from './postgres-writer.ts';
import { createSliceWriter, SINK_TOPICS, sqlstateOf, type SinkTopic } from './sink-slice.ts';

export { SINK_TOPICS };

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

/** The sink's defaults, declared once (an option given as undefined keeps its default). */
export const POSTGRES_SINK_DEFAULTS = {
  /** Records per PostgreSQL transaction: FLUXION_SINK_MAX_BATCH's default (sinks/config.ts). */
  maxBatch: SINKS_ENV.FLUXION_SINK_MAX_BATCH.parse(undefined),
  /** Bytes per fetch. */
  maxBytes: 4 * 1024 * 1024,
  /** Backoff while PostgreSQL is unreachable: first and longest wait. */
  retryInitialMs: 200,
  retryMaxMs: 10_000,
  /** Consumer session timeout; undefined: the client's. */
  sessionTimeoutMs: undefined as number | undefined,
};

export type PostgresSinkOptions = { groupId: string } & Partial<typeof POSTGRES_SINK_DEFAULTS>;

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

export function createPostgresSink(deps: PostgresSinkDeps, given: PostgresSinkOptions): PostgresSink {
  const options = withDefaults(POSTGRES_SINK_DEFAULTS, given);
  const { maxBatch, groupId } = options;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new PostgresSinkError(`maxBatch must be a positive integer, got ${maxBatch}`);
  if (!groupId) throw new PostgresSinkError('the sink needs a consumer group id');
  const { kafka, pool } = deps;
  const log = deps.logger.child({ component: 'postgres-sink', groupId });
  const topicOf = new Map<string, SinkTopic>(SINK_TOPICS.map((t) => [topicName(t, deps.topicPrefix), t]));

  const registry = deps.metricsRegistry ?? new Registry();
  const recordsCounter = sharedCounter(registry, {
    name: 'fluxion_sink_records_total',
    help: 'records written to PostgreSQL by committed transactions',
    labelNames: ['topic'],
  });
  const dlqCounter = sharedCounter(registry, {
    name: 'fluxion_sink_records_dlq_total',
    help: 'records the sink sent to a dead-letter topic',
    labelNames: ['topic', 'reason'],
  });
  const rowsCounter = sharedCounter(registry, {
    name: 'fluxion_sink_rows_total',
    help: 'rows written, by table operation',
    labelNames: ['operation'],
  });
  const retriesCounter = sharedCounter(registry, {
    name: 'fluxion_sink_retries_total',
    help: 'transactions retried because PostgreSQL was unreachable or the batch was replanned',
    labelNames: ['reason'],
  });
  const waitingGauge = sharedGauge(registry, {
    name: 'fluxion_sink_waiting_for_postgres',
    help: '1 while the sink waits for PostgreSQL to come back',
  });
  const txSeconds = sharedHistogram(registry, {
    name: 'fluxion_sink_transaction_seconds',
    help: 'duration of one sink transaction',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });

  let loop: ConsumeLoop | undefined;
  let dlqProducer: FluxionProducer | undefined;
  let codecs: Map<SinkTopic, TopicCodec<unknown>> | undefined;
  let stopping = false;

  const writeSlice = createSliceWriter({
    logger: log,
    codecs: () => codecs!,
    dlqProducer: () => dlqProducer!,
    topicOf,
    retried: (reason) => retriesCounter.inc({ reason }),
    dlqSent: (topic, reason) => dlqCounter.inc({ topic, reason }),
  });

  const offsets = postgresOffsetsCommit({
    kafka,
    pool,
    groupId,
    logger: log,
    offsets: { read: readSinkOffsets, write: writeSinkOffset },
    async write(batch, slice, ctx, transaction) {
      const timed: SliceTransaction = async (work, beforeCommit) => {
        const started = process.hrtime.bigint();
        const result = await transaction(work, beforeCommit);
        txSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
        return result;
      };
      const counts = await writeSlice(batch, slice, ctx, timed);
      recordsCounter.inc({ topic: topicOf.get(batch.topic)! }, slice.length);
      for (const [op, n] of Object.entries(counts)) if (n > 0) rowsCounter.inc({ operation: op }, n);
      log.debug(
        { topic: batch.topic, partition: batch.partition, from: slice[0]!.offset, to: slice.at(-1)!.offset, ...counts },
        'transaction committed',
      );
      if (counts.ventas > 0) deps.onVentasCommitted?.();
    },
  });

  return {
    async run() {
      if (loop) throw new PostgresSinkError('the sink is already running');
      codecs = new Map(
        await Promise.all(
          SINK_TOPICS.map(async (t) => [t, await createTopicCodec<unknown>(deps.registry, t, topicName(t, deps.topicPrefix))] as const),
        ),
      );
      if (stopping) return; // stopped while the codecs were being prepared
      /** What did not answer, for the log line saying it is back. */
      let service = 'PostgreSQL';
      loop = createConsumeLoop(kafka, {
        name: 'sink',
        logger: deps.logger,
        metricsRegistry: registry,
        consumer: { groupId, readCommitted: true, sessionTimeoutMs: options.sessionTimeoutMs, maxBytes: options.maxBytes },
        topics: [...topicOf.keys()],
        maxBatch,
        retry: {
          policy: { retries: Number.POSITIVE_INFINITY, initialDelayMs: options.retryInitialMs, maxDelayMs: options.retryMaxMs, factor: 2 },
          // The decode waits for the registry the same way.
          retriable: (err) => isConnectionError(err) || (err instanceof FluxionError && err.retriable),
          onRetry(err, attempt, what) {
            retriesCounter.inc({ reason: 'postgres_unreachable' });
            if (attempt > 1) return;
            waitingGauge.set(1);
            service = what === 'decode' && !isConnectionError(err) ? 'the schema registry' : 'PostgreSQL';
            log.warn(
              { what, err: errorMessage(err) },
              `${service} is unreachable: pausing the sink and retrying with backoff; nothing is committed meanwhile`,
            );
          },
          onRecovered(what, _attempts, downMs) {
            waitingGauge.set(0);
            log.info({ what, downMs }, `${service} is back: resuming where the sink was`);
          },
        },
        fatal: (err, batch, slice) =>
          new PostgresSinkError(
            `sink: writing ${batch.topic}[${batch.partition}] from offset ${slice[0]!.offset} failed: ${errorMessage(err)}`,
            {
              cause: err,
              context: { topic: batch.topic, partition: batch.partition, offset: slice[0]!.offset, sqlstate: sqlstateOf(err) },
            },
          ),
        strategy: {
          ...offsets,
          async pending(batch, ctx) {
            if (!topicOf.has(batch.topic))
              throw new PostgresSinkError(`the sink was given a batch of ${batch.topic}, which it does not consume`);
            return offsets.pending(batch, ctx);
          },
          async setUp() {
            dlqProducer = await kafka.producer();
          },
          /** After the consumer ended: the DLQ producer goes, and every partition is positioned again from PostgreSQL. */
          async tearDown() {
            offsets.forget();
            const producer = dlqProducer;
            dlqProducer = undefined;
            await producer?.disconnect().catch((err: unknown) => log.warn({ err }, 'DLQ producer disconnect failed'));
          },
        },
      });
      log.info({ topics: [...topicOf.keys()], maxBatch }, 'sink starting');
      await loop.run();
    },
    async stop() {
      stopping = true;
      await loop?.stop();
      log.info('sink stopped');
    },
  };
}
