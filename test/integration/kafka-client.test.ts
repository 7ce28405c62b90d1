/**
 * kafkajs 2.2.4 against the Kafka 4.x broker scripts/services runs: admin, produce with
 * placement by store, consumer groups, and transactions seen through read_committed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafkaClient } from '../../core/kafka/client.ts';
import type { ConsumedRecord, FluxionAdmin, KafkaClient } from '../../core/kafka/types.ts';
import { partitionForUbicacion } from '../../core/kafka/partitioning.ts';
import { serviceEnv, testLogger, uniqueId } from '../../fixtures/services.ts';

let kafka: KafkaClient;
let admin: FluxionAdmin;
const topic = `${uniqueId('smoke')}.records`;

beforeAll(async () => {
  kafka = createKafkaClient({ brokers: serviceEnv().KAFKA_BROKERS.split(','), clientId: 'fluxion-test', logger: testLogger });
  admin = await kafka.admin();
  await admin.createTopics([{ name: topic, partitions: 6, config: { 'cleanup.policy': 'delete' } }]);
});

afterAll(async () => {
  await admin?.deleteTopics([topic]).catch(() => undefined);
  await admin?.disconnect();
});

/** Consumes with a fresh group until `count` records arrived (or fails after the timeout). */
async function consumeN(count: number, readCommitted: boolean, timeoutMs = 20_000): Promise<ConsumedRecord[]> {
  const consumer = await kafka.consumer({ groupId: uniqueId('g'), readCommitted });
  const got: ConsumedRecord[] = [];
  try {
    await consumer.subscribe([topic], true);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${count} records in ${timeoutMs} ms`)), timeoutMs);
      void consumer.run(async (r) => {
        got.push(r);
        if (got.length >= count) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return got;
}

describe('kafkajs 2.2.4 with Kafka 4.x', () => {
  it('lists and describes topics with their configs', async () => {
    expect(await admin.listTopics()).toContain(topic);
    const [d] = await admin.describeTopics([topic]);
    expect(d).toMatchObject({ name: topic, partitions: 6 });
    expect(d!.config['cleanup.policy']).toBe('delete');
  });

  it('places records on the partition of their ubicacion and reads them back in a group', async () => {
    const producer = await kafka.producer();
    const stores = ['tienda_01', 'tienda_02', 'cedi_frio'];
    await producer.send(
      topic,
      stores.map((s) => ({ ubicacionId: s, key: `${s}/01/000123`, value: Buffer.from(`plain ${s}`), headers: { h: 'v' } })),
    );
    await producer.disconnect();
    const got = await consumeN(3, false);
    for (const s of stores) {
      const r = got.find((g) => g.value?.toString() === `plain ${s}`);
      expect(r, s).toBeDefined();
      expect(r!.partition).toBe(partitionForUbicacion(s, 6));
      expect(r!.key?.toString()).toBe(`${s}/01/000123`);
      expect(r!.headers.h).toBe('v');
    }
  });

  it('shows committed transactions to read_committed readers and hides aborted ones', async () => {
    const producer = await kafka.producer({ transactionalId: uniqueId('tx') });
    await producer.transaction(async (tx) => {
      await tx.send(topic, [{ ubicacionId: 'tienda_05', key: 'k', value: Buffer.from('committed-1') }]);
      await tx.send(topic, [{ ubicacionId: 'tienda_05', key: 'k', value: Buffer.from('committed-2') }]);
    });
    await expect(
      producer.transaction(async (tx) => {
        await tx.send(topic, [{ ubicacionId: 'tienda_05', key: 'k', value: Buffer.from('aborted') }]);
        throw new Error('store failed mid-snapshot');
      }),
    ).rejects.toThrow('store failed mid-snapshot');
    await producer.transaction(async (tx) => {
      await tx.send(topic, [{ ubicacionId: 'tienda_05', key: 'k', value: Buffer.from('committed-3') }]);
    });
    await producer.disconnect();

    const everything = await consumeN(6, true); // 3 plain from the test above + 3 committed
    const values = everything.map((r) => r.value?.toString());
    expect(values).toEqual(expect.arrayContaining(['committed-1', 'committed-2', 'committed-3']));
    expect(values).not.toContain('aborted');
    const inOrder = values.filter((v) => v?.startsWith('committed'));
    expect(inOrder).toEqual(['committed-1', 'committed-2', 'committed-3']);
  });

  it('commits consumer offsets inside a transaction (consume-transform-produce)', async () => {
    const group = uniqueId('ctp');
    const producer = await kafka.producer({ transactionalId: uniqueId('tx') });
    const p = partitionForUbicacion('tienda_05', 6);
    const before = (await admin.topicOffsets(topic)).find((o) => o.partition === p)!;
    await producer.transaction(async (tx) => {
      await tx.send(topic, [{ ubicacionId: 'tienda_05', key: 'k', value: Buffer.from('derived') }]);
      await tx.sendOffsets(group, topic, [{ partition: p, offset: before.high }]);
    });
    await producer.disconnect();
    // The coordinator applies transactional offset commits when the commit marker reaches
    // __consumer_offsets, shortly after commit() returns: wait for it (bounded).
    let offset: string | undefined;
    for (let i = 0; i < 50 && offset !== before.high; i++) {
      offset = (await admin.groupOffsets(group, topic)).find((o) => o.partition === p)?.offset;
      if (offset !== before.high) await new Promise((r) => setTimeout(r, 200));
    }
    expect(offset).toBe(before.high);
  });

  it('says which brokers did not answer', async () => {
    const dead = createKafkaClient({
      brokers: ['127.0.0.1:1'],
      clientId: 'fluxion-test',
      logger: testLogger,
      retries: 0,
      connectionTimeoutMs: 500,
    });
    await expect(dead.admin()).rejects.toThrow(/Kafka at 127\.0\.0\.1:1 did not answer while trying to connect the admin client/);
  });
});
