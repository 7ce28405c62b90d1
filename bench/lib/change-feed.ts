/**
 * Change events on Kafka for the sink and replay benches: published in Kafka transactions of
 * one store, read back to check that every one is committed and readable.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { createTopicCodec } from '../../core/avro/topic-codec.ts';
import type { OutgoingRecord } from '../../core/kafka/types.ts';
import type { InventoryChange } from '../../core/records.ts';
import { topicName } from '../../core/topics.ts';
import type { TestPipeline } from '../../fixtures/pipeline.ts';
import { sendTransactionsVisibly } from '../../fixtures/processor-run.ts';

const SEND_RECORDS = 2_000;

/** Publishes the changes in Kafka transactions of SEND_RECORDS records of one store; returns each partition's end (last record + 1). */
export async function publishChanges(p: TestPipeline, byStore: InventoryChange[][], partitions: number): Promise<Map<number, bigint>> {
  const topic = topicName('pos.inventario.changes', p.prefix);
  const codec = await createTopicCodec<InventoryChange>(p.registry, 'pos.inventario.changes', topic);
  const producer = await p.kafka.producer({ transactionalId: `bench-feed-${p.prefix}` });
  try {
    const batches: OutgoingRecord[][] = [];
    for (const changes of byStore) {
      const records: OutgoingRecord[] = changes.map((c) => ({
        ubicacionId: c.ubicacion_id,
        key: `${c.ubicacion_id}/${c.deposito}/${c.producto_id}`,
        value: codec.encode(c),
      }));
      for (let i = 0; i < records.length; i += SEND_RECORDS) batches.push(records.slice(i, i + SEND_RECORDS));
    }
    // One transaction per batch; returns once every commit marker is written (readable).
    await sendTransactionsVisibly(p.kafka, producer, topic, batches);
  } finally {
    await producer.disconnect();
  }
  const last = new Map<number, bigint>();
  let read = 0;
  await p.kafka.readToEnd(
    topic,
    Array.from({ length: partitions }, (_, i) => i),
    (r) => {
      read++;
      last.set(r.partition, BigInt(r.offset));
    },
  );
  const expected = byStore.reduce((s, c) => s + c.length, 0);
  if (read !== expected) throw new Error(`${topic} holds ${read} committed records, ${expected} were published`);
  return new Map([...last].map(([partition, offset]) => [partition, offset + 1n]));
}

/** Topic creation answers UNKNOWN_TOPIC_OR_PARTITION now and then while the broker is busy: try again. */
export async function withPipelineRetry(create: () => Promise<TestPipeline>): Promise<TestPipeline> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await create();
    } catch (err) {
      if ((err as { retriable?: unknown })?.retriable !== true || attempt >= 4) throw err;
      await sleep(1_000 * attempt);
    }
  }
}
