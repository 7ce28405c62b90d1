/**
 * Per-test pipeline set-up on the real services: topics and schemas under a unique prefix,
 * and reading a topic back (read_committed) decoded through the registry.
 */
import { loadSubjectSchemas } from '../../core/avro/schemas.ts';
import { createKafkaClient } from '../../core/kafka/client.ts';
import type { ConsumedRecord, KafkaClient } from '../../core/kafka/types.ts';
import { createRegistry, type FluxionRegistry } from '../../core/registry.ts';
import { topicSpecs } from '../../core/topics.ts';
import { registerSchemas } from '../../ops/schemas.ts';
import { ensureTopics } from '../../ops/topics-ensure.ts';
import { serviceEnv, testLogger, uniqueId } from './services.ts';

/** avsc decodes records as class instances: plain objects compare cleanly with truth. */
export function toPlain(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(toPlain);
  if (v === null || typeof v !== 'object' || v instanceof Date || Buffer.isBuffer(v)) return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toPlain(x)]));
}

export interface TestPipeline {
  prefix: string;
  kafka: KafkaClient;
  registry: FluxionRegistry;
  /** Every committed record of `topic` (without prefix), decoded when Avro. */
  read<T = unknown>(topic: string, options?: { idleMs?: number; raw?: boolean }): Promise<Array<ConsumedRecord & { decoded: T }>>;
  cleanup(): Promise<void>;
}

/** `brokers`: another broker than the shared one (test/helpers/private-broker.ts); the registry stays the shared one. */
export async function createTestPipeline(partitions = 3, options: { brokers?: string[] } = {}): Promise<TestPipeline> {
  const env = serviceEnv();
  const prefix = `${uniqueId('p')}.`;
  const kafka = createKafkaClient({ brokers: options.brokers ?? env.KAFKA_BROKERS.split(','), clientId: 'fluxion-test', logger: testLogger });
  const registry = createRegistry({ url: env.SCHEMA_REGISTRY_URL });
  const admin = await kafka.admin();
  await ensureTopics(admin, topicSpecs(prefix), partitions, testLogger);
  await admin.disconnect();
  await registerSchemas(registry, loadSubjectSchemas(), prefix, testLogger);

  return {
    prefix,
    kafka,
    registry,
    async read<T>(topic: string, options: { idleMs?: number; raw?: boolean } = {}) {
      const full = prefix + topic;
      const a = await kafka.admin();
      const ends = await a.topicOffsets(full);
      await a.disconnect();
      const expectedEnd = new Map(ends.map((o) => [o.partition, BigInt(o.high)]));
      const consumer = await kafka.consumer({ groupId: uniqueId('read'), readCommitted: true });
      const got: Array<ConsumedRecord & { decoded: T }> = [];
      const seen = new Map<number, bigint>();
      await consumer.subscribe([full], true);
      // Done when every partition reached its end offset as it was before reading (a
      // transaction's commit marker sits on the last offset), or after idleMs of silence.
      const idleMs = options.idleMs ?? 2_500;
      await new Promise<void>((resolve) => {
        let idle = setTimeout(resolve, idleMs * 2);
        const complete = () => [...expectedEnd].every(([p, end]) => end === 0n || (seen.get(p) ?? -1n) + 2n >= end);
        void consumer.run(async (r) => {
          got.push({ ...r, decoded: (options.raw || !r.value ? null : toPlain(await registry.decode(r.value))) as T });
          seen.set(r.partition, BigInt(r.offset));
          clearTimeout(idle);
          idle = setTimeout(resolve, complete() ? 300 : idleMs);
        });
      });
      await consumer.disconnect();
      return got;
    },
    async cleanup() {
      const a = await kafka.admin();
      await a.deleteTopics(topicSpecs(prefix).map((t) => t.name)).catch(() => undefined);
      await a.disconnect();
    },
  };
}

export interface PipelineSupply {
  /** A fresh pipeline (its own prefix), set up while the caller used the one before; `last`: prepare no other. */
  next(last?: boolean): Promise<TestPipeline>;
  /** Removes the pipeline prepared but never handed out. */
  close(): Promise<void>;
}

/**
 * Fresh pipelines one after another, the first from the call on, each next one prepared in
 * the background while the test before uses its own: a set-up (16 topics, 10 subjects, 30 registry calls) takes seconds, and files
 * that need a clean pipeline per test otherwise wait for it every time. Set-ups never overlap
 * (the local Apicurio registry answers concurrent registrations with conflicts).
 */
export function pipelineSupply(partitions = 3): PipelineSupply {
  const prepare = (after: Promise<unknown>) => {
    const p = after.then(() => createTestPipeline(partitions), () => createTestPipeline(partitions));
    p.catch(() => undefined);
    return p;
  };
  // The first one at once, beside the file's other set-up.
  let prepared: Promise<TestPipeline> | undefined = prepare(Promise.resolve());
  return {
    async next(last = false) {
      const current = prepared ?? prepare(Promise.resolve());
      prepared = last ? undefined : prepare(current);
      return current;
    },
    async close() {
      const left = prepared;
      prepared = undefined;
      if (left) await (await left.catch(() => undefined))?.cleanup();
    },
  };
}
