/**
 * The shared consume-transform-produce runtime of every processor (issue 4): exactly-once
 * through Kafka transactions, run by the one consume loop (core/consume-loop/).
 *
 * - read_committed consumer, no auto-commit, bounded batches (`maxBatch` records).
 * - One transaction per batch slice, producers fenced per input partition, bad records to
 *   `<topic>.dlq` in the same transaction: processors/runtime/transactional-commit.ts.
 * - In-memory state and state stores per partition, loaded before a partition's first batch
 *   and dropped after an aborted transaction: processors/runtime/partition-state.ts.
 * - Stops working on a batch when it becomes stale (rebalance, seek) or the consumer stops.
 * - Kafka's retriable faults (a broker restarting, a coordinator loading) are ridden out
 *   in-process by core/kafka/supervised-consumer.ts: after a crash every producer is closed
 *   and every partition's state dropped, as a process restart would, and the consumer starts
 *   again from what is committed. A non-retriable crash, or a partition whose transactions
 *   keep failing (`maxConsecutiveFailures` in a row), rejects `run()`: the process exits
 *   non-zero and its supervisor restarts it.
 */
import { createConsumeLoop, type ConsumeLoop } from '../../core/consume-loop/loop.ts';
import type { KafkaClient } from '../../core/kafka/client.ts';
import { errorMessage, FluxionError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { withDefaults } from '../../core/options.ts';
import type { RetryPolicy } from '../../core/retry.ts';
import { PROCESSORS_ENV } from '../config.ts';
import { defaultRuntimeMetrics, type RuntimeMetrics } from './metrics.ts';
import { createPartitionState } from './partition-state.ts';
import type { StreamProcessorSpec } from './processor-spec.ts';
import { transactionalCommit } from './transactional-commit.ts';

// The processor's side of the contract lives in processors/runtime/processor-spec.ts.
export type { ConsumedRecord, Output, ProcessorContext, StreamProcessorSpec } from './processor-spec.ts';

export interface StreamProcessorDeps {
  kafka: KafkaClient;
  logger: Logger;
  metrics?: RuntimeMetrics;
}

/** The processors' runtime defaults, declared once (an option given as undefined keeps its default). */
export const STREAM_PROCESSOR_DEFAULTS = {
  /** Records per transaction: FLUXION_PROCESSOR_MAX_BATCH's default (processors/config.ts). */
  maxBatch: PROCESSORS_ENV.FLUXION_PROCESSOR_MAX_BATCH.parse(undefined),
  /** Transaction timeout: how long a dead instance's open transaction can block readers. */
  transactionTimeoutMs: 60_000,
  /** Consumer session timeout (how long a dead member holds its partitions); undefined: the client's. */
  sessionTimeoutMs: undefined as number | undefined,
  /** Bytes per fetch: bounds the records in memory. */
  maxBytes: 1024 * 1024,
  /** Failed transactions in a row on one partition before the processor gives up. */
  maxConsecutiveFailures: 10,
  /** How often a state store's checkpoint is advanced while processing. */
  checkpointIntervalMs: 10_000,
};

export type StreamProcessorOptions = { groupId: string } & Partial<typeof STREAM_PROCESSOR_DEFAULTS>;

export interface StreamProcessor {
  /** Resolves after `stop()`; rejects when the consumer crashes or a partition keeps failing. */
  run(): Promise<void>;
  /** Aborts the open transaction (if any), leaves the group, disconnects. */
  stop(): Promise<void>;
}

export class StreamProcessorError extends FluxionError {
  constructor(message: string, options: ConstructorParameters<typeof FluxionError>[1] = {}) {
    super(message, { code: 'STREAM_PROCESSOR', ...options });
  }
}

/** Waits between failed transactions of one partition (its own failures, not Kafka's: those restart the consumer). */
const PARTITION_RETRY: Omit<RetryPolicy, 'retries'> = { initialDelayMs: 200, maxDelayMs: 5_000, factor: 2 };

export function createStreamProcessor<I = unknown>(
  spec: StreamProcessorSpec<I>,
  deps: StreamProcessorDeps,
  given: StreamProcessorOptions,
): StreamProcessor {
  const options = withDefaults(STREAM_PROCESSOR_DEFAULTS, given);
  // Arguments are checked before any I/O.
  if (!spec.name || /[^A-Za-z0-9._-]/.test(spec.name))
    throw new StreamProcessorError(`processor name must be [A-Za-z0-9._-]+, got "${spec.name}"`);
  if (spec.inputTopics.length === 0) throw new StreamProcessorError(`processor ${spec.name} has no input topics`);
  if (!options.groupId) throw new StreamProcessorError(`processor ${spec.name} needs a group id`);
  if (spec.state && spec.state.topics.length === 0) throw new StreamProcessorError(`processor ${spec.name} has state but no state topic`);
  for (const t of spec.state?.store?.topics ?? [])
    if (!spec.state!.topics.includes(t))
      throw new StreamProcessorError(`processor ${spec.name}: stored topic ${t} is not one of its state topics`);
  const { maxBatch, groupId } = options;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new StreamProcessorError(`maxBatch must be a positive integer, got ${maxBatch}`);
  const { kafka } = deps;
  const metrics = deps.metrics ?? defaultRuntimeMetrics();
  const log = deps.logger.child({ component: 'stream-processor', processor: spec.name, groupId });
  const name = spec.name;

  let loop: ConsumeLoop | undefined;
  let stopping = false;
  const state = createPartitionState({
    spec,
    kafka,
    log,
    storeName: `${name}-${groupId}`.replace(/[^A-Za-z0-9._-]/g, '_'),
    checkpointIntervalMs: options.checkpointIntervalMs,
    fence: (topic, partition) => commit.fence(topic, partition),
  });
  const commit = transactionalCommit({
    spec,
    kafka,
    log,
    metrics,
    groupId,
    transactionTimeoutMs: options.transactionTimeoutMs,
    state,
    stopping: () => stopping,
  });

  return {
    async run() {
      if (loop) throw new StreamProcessorError(`processor ${name} is already running`);
      loop = createConsumeLoop(kafka, {
        name: `processor ${name}`,
        logger: deps.logger,
        metricsRegistry: metrics.registry,
        consumer: { groupId, readCommitted: true, sessionTimeoutMs: options.sessionTimeoutMs, maxBytes: options.maxBytes },
        topics: spec.inputTopics,
        maxBatch,
        partitionRetry: {
          // The give-up comes with the last failure: `maxConsecutiveFailures` failures, that many minus one waits.
          policy: { ...PARTITION_RETRY, retries: options.maxConsecutiveFailures - 1 },
          giveUp: (cause, failures, batch, slice) =>
            new StreamProcessorError(
              `processor ${name}: ${failures} transactions in a row failed on ${batch.topic}[${batch.partition}]: ${errorMessage(cause)}`,
              {
                cause,
                context: { topic: batch.topic, partition: batch.partition, offset: slice[0]!.offset },
              },
            ),
        },
        strategy: {
          ...commit,
          /**
           * After the consumer ended: every producer is closed (the next ones fence again and read
           * the committed offsets) and every partition's state is dropped (read again before the
           * next batch), exactly what a restarted process starts from.
           */
          async tearDown() {
            await commit.closeAll();
            await state.tearDown();
          },
        },
      });
      log.info({ inputTopics: spec.inputTopics, maxBatch }, 'processor starting');
      await loop.run();
    },
    async stop() {
      log.info('processor stopping');
      stopping = true;
      await loop?.stop();
      log.info('processor stopped');
    },
  };
}
