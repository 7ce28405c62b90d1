/**
 * Reading partitions of a topic from a start to an end as of the call (read_committed), e.g. a
 * compacted state topic or a test's check of what was committed. kafkajs cannot assign
 * partitions by hand, so each read is a throwaway consumer group that never commits.
 */
import { TopicLayoutError } from '../errors.ts';
import type { KafkaConnection } from './connection.ts';
import { consumedRecord } from './consumer.ts';
import type { ConsumedRecord, KafkaClient, ReadToEndOptions } from './types.ts';

// biome-ignore lint/suspicious/noConfusingVoidType: a callback's return; callers pass void functions, undefined refuses them
type OnRecord = (record: ConsumedRecord) => void | 'stop' | Promise<void | 'stop'>;

/**
 * Per partition of `topic` that holds committed records: the offset after its last one, and
 * how many records were read. "A consumer reached the end" is judged against these, not
 * against the end offset, which also counts transaction markers (one or several, when
 * producers' transactions end together) that no consumer ever sees.
 */
export async function offsetsAfterLastRecord(
  kafka: KafkaClient,
  topic: string,
  partitions: number[],
): Promise<{ ends: Map<number, bigint>; records: number }> {
  const ends = new Map<number, bigint>();
  const records = await kafka.readToEnd(topic, partitions, (r) => void ends.set(r.partition, BigInt(r.offset) + 1n));
  return { ends, records };
}

/** KafkaClient.readToEnd (core/kafka/types.ts says what it promises). */
export async function readToEnd(
  connection: KafkaConnection,
  topic: string,
  partitions: number[],
  onRecord: OnRecord,
  readOptions: ReadToEndOptions = {},
): Promise<number> {
  const { kafka, faults, translate } = connection;
  const admin = kafka.admin();
  await admin.connect().catch((err: unknown) => {
    throw translate(err, 'connect the admin client');
  });
  // kafkajs cannot assign partitions by hand: a throwaway group that never commits.
  // Start offsets are seeks once the reader has joined, not admin.setOffsets: kafkajs
  // implements that with a member of its own in the group, which stays until its session
  // expires, and the reader joining behind it had its heartbeats refused as an unknown
  // member again and again (a restarted processor never finished its state load).
  const groupId = `fluxion-read-${topic}-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  const remaining = new Map<number, bigint>();
  /** Per partition, the next offset to deliver: below it a record is skipped (read before a seek took effect, or again after one). */
  const next = new Map<number, bigint>();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    // The end to reach per partition: the high watermark (callers fence their producers
    // before reading their state, so no transaction of theirs is still open).
    for (const p of partitions) {
      const o = offsets.find((x) => x.partition === p);
      if (!o)
        throw new TopicLayoutError(`topic ${topic} has no partition ${p}: run \`fluxion topics ensure\``, {
          context: { topic, partition: p },
        });
      const start = BigInt(readOptions.fromOffsets?.[p] ?? o.low);
      const wanted = readOptions.toOffsets?.[p];
      const end = wanted !== undefined && BigInt(wanted) < BigInt(o.high) ? BigInt(wanted) : BigInt(o.high);
      if (end > start) remaining.set(p, end);
      next.set(p, start);
    }
  } finally {
    await admin.disconnect();
  }
  if (remaining.size === 0) return 0;
  const reader = kafka.consumer({
    groupId,
    readUncommitted: false,
    allowAutoTopicCreation: false,
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
  });
  let count = 0;
  await reader.connect().catch((err: unknown) => {
    throw translate(err, 'connect a consumer');
  });
  try {
    await reader.subscribe({ topics: [topic], fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      let stopped = false;
      const progress = (partition: number, lastOffset: string) => {
        const end = remaining.get(partition);
        if (end !== undefined && BigInt(lastOffset) + 1n >= end) remaining.delete(partition);
        if (remaining.size === 0) resolve();
      };
      // Fires for every fetched batch, also one holding only aborted records or a
      // transaction marker, which never reaches eachBatch.
      reader.on(reader.events.END_BATCH_PROCESS, (e) => progress(e.payload.partition, e.payload.lastOffset));
      reader.on(reader.events.CRASH, (e) => reject((e.payload as { error: Error }).error));
      reader
        .run({
          autoCommit: false,
          eachBatch: async ({ batch, pause, heartbeat }) => {
            if (stopped) return;
            if (!partitions.includes(batch.partition)) {
              pause();
              return;
            }
            for (const m of batch.messages) {
              const offset = BigInt(m.offset);
              if (offset < next.get(batch.partition)!) continue;
              next.set(batch.partition, offset + 1n);
              count++;
              const verdict = await onRecord(consumedRecord(topic, batch.partition, m));
              if (verdict === 'stop') {
                stopped = true;
                resolve();
                return;
              }
            }
            await heartbeat();
            try {
              await readOptions.heartbeat?.();
            } catch (err) {
              // The caller's group is rebalancing (or forgot its member): that is the
              // caller's to handle. Thrown here it would look like this reader's own
              // rebalance, and kafkajs would rejoin and fetch the same batch forever.
              stopped = true;
              reject(err);
            }
          },
        })
        .then(() => {
          // run() resolves once the reader has joined and owns every partition.
          for (const [partition, offset] of Object.entries(readOptions.fromOffsets ?? {})) {
            if (remaining.has(Number(partition))) reader.seek({ topic, partition: Number(partition), offset });
          }
        })
        .catch(reject);
    });
  } finally {
    await reader.disconnect().catch(() => undefined);
  }
  faults.ok();
  return count;
}
