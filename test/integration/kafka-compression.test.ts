/**
 * zstd on the log: records a transactional producer writes to a zstd topic (core/topics.ts)
 * are read back, byte for byte, by a read_committed consumer group and by readToEnd (the
 * paths of the processors and the sink), and the broker holds fewer bytes than were sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafkaClient } from '../../core/kafka/client.ts';
import type { ConsumedRecord, FluxionAdmin, KafkaClient } from '../../core/kafka/types.ts';
import { compressionFor } from '../../core/topics.ts';
import { serviceEnv, testLogger, uniqueId } from '../../fixtures/services.ts';

let kafka: KafkaClient;
let admin: FluxionAdmin;
const prefix = `${uniqueId('zstd')}.`;
const topic = `${prefix}pos.inventario.snapshots`;
const values = Array.from({ length: 40 }, (_, i) => Buffer.from(`chunk ${i} `.repeat(2_000)));

beforeAll(async () => {
  kafka = createKafkaClient({ brokers: serviceEnv().KAFKA_BROKERS.split(','), clientId: 'fluxion-test', logger: testLogger });
  admin = await kafka.admin();
  await admin.createTopics([{ name: topic, partitions: 1, config: { 'cleanup.policy': 'delete' } }]);
});

afterAll(async () => {
  await admin?.deleteTopics([topic]).catch(() => undefined);
  await admin?.disconnect();
});

describe('a zstd topic', () => {
  it('is read back exactly by a consumer group and by readToEnd', async () => {
    expect(compressionFor(topic)).toBe('zstd');
    const producer = await kafka.producer({ transactionalId: `${prefix}tx` });
    try {
      await producer.transaction((tx) =>
        tx.send(
          topic,
          values.map((value, i) => ({ ubicacionId: 'tienda_01', key: `k${i}`, value, partition: 0 })),
        ),
      );
    } finally {
      await producer.disconnect();
    }
    const read: Buffer[] = [];
    await kafka.readToEnd(topic, [0], (r) => {
      read.push(r.value!);
    });
    expect(read.map((b) => b.toString())).toEqual(values.map((b) => b.toString()));

    const consumer = await kafka.consumer({ groupId: uniqueId('g'), readCommitted: true });
    const got: ConsumedRecord[] = [];
    try {
      await consumer.subscribe([topic], true);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${got.length} records`)), 30_000);
        void consumer.run(async (r) => {
          got.push(r);
          if (got.length >= values.length) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
    } finally {
      await consumer.disconnect();
    }
    expect(got.map((r) => r.value!.toString())).toEqual(values.map((b) => b.toString()));
  });
});
