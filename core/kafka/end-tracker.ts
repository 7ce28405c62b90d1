/**
 * Where each topic's last committed record is, known within a fetch of it being written: one
 * read_committed consumer (the benches' timer; a group that never commits) follows the given topics
 * from the beginning, and remembers per partition the offset after its last record and how
 * far it has read (transaction markers and aborted records included, which never reach a
 * consumer but move its position).
 *
 * Why not core's offsetsAfterLastRecord (cli/demo.ts): it reads the topic from its beginning
 * with a new consumer group each call and its disconnect waits out a 5-second fetch, which
 * would add up to 5 s to every stage of a timed cycle. It lives here, not in bench/, because
 * every Kafka call goes through core/kafka/ (see client.ts's header).
 */
import { Kafka, logLevel } from 'kafkajs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FluxionAdmin } from './types.ts';

export interface EndTracker {
  /**
   * Per partition, the offset after the last committed record of `topic` as of now (the end a
   * consumer reaches); partitions that never held a record are left out.
   */
  ends(topic: string): Promise<Map<number, bigint>>;
  stop(): Promise<void>;
}

export async function startEndTracker(brokers: string[], groupId: string, topics: string[], admin: FluxionAdmin): Promise<EndTracker> {
  const kafka = new Kafka({ clientId: 'fluxion-bench-end-tracker', brokers, logLevel: logLevel.ERROR });
  const consumer = kafka.consumer({
    groupId,
    readUncommitted: false,
    maxWaitTimeInMs: 100,
    sessionTimeout: 60_000,
    heartbeatInterval: 3_000,
  });
  const last = new Map<string, Map<number, bigint>>();
  const position = new Map<string, Map<number, bigint>>();
  const of = (m: Map<string, Map<number, bigint>>, topic: string) => m.get(topic) ?? m.set(topic, new Map()).get(topic)!;
  let crash: Error | undefined;
  consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
    const p = of(position, e.payload.topic);
    const next = BigInt(e.payload.lastOffset) + 1n;
    if (next > (p.get(e.payload.partition) ?? -1n)) p.set(e.payload.partition, next);
  });
  consumer.on(consumer.events.CRASH, (e) => (crash = e.payload.error));
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      const m = batch.messages.at(-1);
      if (m) of(last, batch.topic).set(batch.partition, BigInt(m.offset) + 1n);
    },
  });
  return {
    async ends(topic) {
      const offsets = await admin.topicOffsets(topic);
      const deadline = Date.now() + 120_000;
      for (;;) {
        const pos = of(position, topic);
        if (offsets.every((o) => BigInt(o.high) <= BigInt(o.low) || (pos.get(o.partition) ?? -1n) >= BigInt(o.high)))
          return new Map(of(last, topic));
        if (crash) throw new Error(`the end tracker crashed: ${crash.message}`);
        if (Date.now() > deadline) throw new Error(`the end tracker did not reach the end of ${topic} in 2 minutes`);
        await sleep(20);
      }
    },
    stop: () => consumer.disconnect(),
  };
}
