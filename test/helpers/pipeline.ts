/**
 * Per-test pipeline set-up on the real services: topics and schemas under a unique prefix,
 * and reading a topic back (read_committed) decoded through the registry.
 */
import { loadSubjectSchemas } from '../../core/avro/schemas.ts';
import { createKafkaClient, type ConsumedRecord, type KafkaClient } from '../../core/kafka/client.ts';
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
