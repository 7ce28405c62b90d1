/**
 * Running a processor in the test process against a test pipeline, and waiting until its
 * group committed everything its inputs hold.
 */
import type { FluxionConfig } from '../../core/config/environment.ts';
import { loadConfig } from '../../core/config/environment.ts';
import type { FluxionProducer, KafkaClient, OutgoingRecord } from '../../core/kafka/types.ts';
import { offsetsAfterLastRecord } from '../../core/kafka/read-to-end.ts';
import { partitionForUbicacion } from '../../core/kafka/partitioning.ts';
import { createRuntimeMetrics, type RuntimeMetrics } from '../../processors/runtime/metrics.ts';
import type { ProcessorFactory } from '../../processors/runtime/processor-kind.ts';
import { createStreamProcessor, type StreamProcessor, type StreamProcessorSpec } from '../../processors/runtime/stream-processor.ts';
import type { TestPipeline } from './pipeline.ts';
import { testLogger } from './services.ts';

export interface RunningProcessor {
  processor: StreamProcessor;
  metrics: RuntimeMetrics;
  /** Settles when run() does; a rejection is kept for the test to inspect. */
  finished: Promise<unknown>;
  stop(): Promise<void>;
}

export function processorConfig(overrides: Partial<FluxionConfig['processors']> = {}): FluxionConfig['processors'] {
  return { ...loadConfig({}).processors, ...overrides };
}

export async function startProcessor(
  factory: ProcessorFactory,
  pipeline: TestPipeline,
  groupId: string,
  options: { partitions?: number; config?: Partial<FluxionConfig['processors']>; maxBatch?: number } = {},
): Promise<RunningProcessor> {
  const metrics = createRuntimeMetrics();
  const spec = await factory({
    kafka: pipeline.kafka,
    registry: pipeline.registry,
    logger: testLogger,
    topicPrefix: pipeline.prefix,
    partitions: options.partitions ?? 3,
    config: processorConfig(options.config),
    metrics,
  });
  const processor = createStreamProcessor(spec, { kafka: pipeline.kafka, logger: testLogger, metrics }, { groupId, sessionTimeoutMs: 3_000, maxBatch: options.maxBatch ?? 500, transactionTimeoutMs: 15_000 });
  const finished = processor.run().then(
    () => undefined,
    (err: unknown) => err,
  );
  return { processor, metrics, finished, stop: () => processor.stop() };
}

/**
 * Runs `spec` in this process counting the state records handed to its `load` (only those of
 * `countedTopic`, when given), with a store checkpoint at every transaction, so that a
 * restart's changelog tail is the last transaction's (the state-store restart tests).
 */
export function runCountingLoads<I>(spec: StreamProcessorSpec<I>, pipeline: TestPipeline, metrics: RuntimeMetrics, groupId: string, countedTopic?: string) {
  let loaded = 0;
  const load = spec.state!.load;
  spec.state!.load = (record, store) => {
    if (countedTopic === undefined || record.topic === countedTopic) loaded++;
    return load(record, store);
  };
  const processor = createStreamProcessor(spec, { kafka: pipeline.kafka, logger: testLogger, metrics }, { groupId, sessionTimeoutMs: 3_000, maxBatch: 50, transactionTimeoutMs: 15_000, checkpointIntervalMs: 0 });
  const finished = processor.run().then(() => undefined, (err: unknown) => err);
  return { loaded: () => loaded, finished, stop: () => processor.stop() };
}

/**
 * Waits until `group` committed offsets at the end of every partition of `topics`. Inputs
 * written by transactions end with a commit marker the processor never sees: its committed
 * offset stops one short of the high watermark (`transactional`, the default).
 */
export async function waitForGroupEnd(kafka: KafkaClient, group: string, topics: string[], timeoutMs = 60_000, transactional = true): Promise<void> {
  const slack = transactional ? 1n : 0n;
  const admin = await kafka.admin();
  try {
    const deadline = Date.now() + timeoutMs;
    for (const topic of topics) {
      const ends = new Map((await admin.topicOffsets(topic)).map((o) => [o.partition, BigInt(o.high)]));
      for (;;) {
        const offsets = await admin.groupOffsets(group, topic);
        const done = [...ends].every(([p, end]) => end === 0n || BigInt(offsets.find((o) => o.partition === p)?.offset ?? '-1') >= end - slack);
        if (done) break;
        if (Date.now() > deadline) throw new Error(`group ${group} did not reach the end of ${topic} in ${timeoutMs} ms: ${JSON.stringify(offsets)} vs ${JSON.stringify([...ends].map(([p, e]) => [p, e.toString()]))}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } finally {
    await admin.disconnect();
  }
}

/**
 * Waits until `group` committed past the last committed record of every partition of
 * `topic`, found by reading it: unlike waitForGroupEnd, right also when several producers'
 * transactions end together (a partition's end then holds several markers).
 */
export async function waitForGroupPastLastRecord(kafka: KafkaClient, group: string, topic: string, partitions: number[], timeoutMs = 60_000): Promise<void> {
  const { ends } = await offsetsAfterLastRecord(kafka, topic, partitions);
  const admin = await kafka.admin();
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const offsets = await admin.groupOffsets(group, topic);
      const behind = [...ends].filter(([p, end]) => BigInt(offsets.find((x) => x.partition === p)?.offset ?? '-1') < end);
      if (behind.length === 0) return;
      if (Date.now() > deadline) throw new Error(`group ${group} did not pass the last record of ${topic} in ${timeoutMs} ms: ${JSON.stringify(offsets)} vs ${JSON.stringify(behind.map(([p, end]) => [p, end.toString()]))}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await admin.disconnect();
  }
}

/**
 * Sends each batch in its own transaction and returns once they are readable. kafkajs reports
 * a topic's end as the last stable offset, which lags a commit until the broker wrote its
 * markers: a caller waiting for "the group reached the end" right after a commit would judge
 * against the old end. Every touched partition gains its records and one marker per batch.
 */
export async function sendTransactionsVisibly(kafka: KafkaClient, producer: FluxionProducer, topic: string, batches: OutgoingRecord[][]): Promise<void> {
  const admin = await kafka.admin();
  try {
    const before = new Map((await admin.topicOffsets(topic)).map((o) => [o.partition, BigInt(o.high)]));
    const added = new Map<number, bigint>();
    for (const records of batches) {
      const touched = new Set<number>();
      for (const r of records) {
        const p = partitionForUbicacion(r.ubicacionId, before.size);
        touched.add(p);
        added.set(p, (added.get(p) ?? 0n) + 1n);
      }
      for (const p of touched) added.set(p, added.get(p)! + 1n);
      await producer.transaction(async (tx) => tx.send(topic, records));
    }
    for (;;) {
      const now = new Map((await admin.topicOffsets(topic)).map((o) => [o.partition, BigInt(o.high)]));
      if ([...added].every(([p, n]) => now.get(p)! >= before.get(p)! + n)) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await admin.disconnect();
  }
}
