/**
 * Consumers: read_committed without auto-commit, partitions assigned by number on every topic
 * a member reads (records are placed by store on every topic), and batch handlers whose
 * errors crash the consumer instead of letting kafkajs re-run the batch.
 */
import { AssignerProtocol, type Consumer, type IHeaders, type KafkaMessage, type PartitionAssigner } from 'kafkajs';
import type { KafkaConnection } from './connection.ts';
import type { ConsumedRecord, ConsumerOptions, FluxionConsumer } from './types.ts';

/** A kafkajs message as the record every reader gets (read-to-end.ts reads records too). */
export function consumedRecord(topic: string, partition: number, m: KafkaMessage): ConsumedRecord {
  return { topic, partition, offset: m.offset, key: m.key, value: m.value, headers: toHeaders(m.headers), timestamp: m.timestamp };
}

/** kafkajs headers as text. */
function toHeaders(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (v === undefined) continue;
    out[k] = Array.isArray(v) ? v.map(String).join(',') : Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
  }
  return out;
}

/** kafkajs's own signal to rejoin the group, which its runner handles (a rebalance, a forgotten member). */
const REJOIN_TYPES = new Set(['REBALANCE_IN_PROGRESS', 'NOT_COORDINATOR_FOR_GROUP', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID']);

/** A batch handler's error, marked so kafkajs crashes the consumer at once instead of re-running the batch. */
class BatchHandlerFailed extends Error {
  readonly retriable = false;
  constructor(cause: unknown) {
    super((cause as Error)?.message ?? String(cause), { cause });
    this.name = 'BatchHandlerFailed';
  }
}

/**
 * Runs a batch handler. Its errors crash the consumer straight away (reported through
 * `onCrash`): kafkajs would otherwise retry the whole fetch loop with the handler's
 * in-memory effects still in place. Only a rejoin signal from a heartbeat passes through,
 * for kafkajs to rejoin the group as it does between batches.
 */
async function handlerOutcome(run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    const type = (err as { type?: unknown })?.type;
    if (typeof type === 'string' && REJOIN_TYPES.has(type)) throw err;
    throw new BatchHandlerFailed(err);
  }
}

/**
 * Assigns partition numbers, not topic-partitions: member i of the sorted members gets every
 * partition p with p % members == i, on every topic the group reads. Topics with fewer
 * partitions simply have fewer to hand out (`topics ensure` keeps all counts equal).
 */
const copartitionedAssigner: PartitionAssigner = ({ cluster }) => ({
  name: 'FluxionCopartitioned',
  version: 0,
  async assign({ members, topics }) {
    const sorted = members.map((m) => m.memberId).sort();
    const assignment = new Map<string, Record<string, number[]>>(sorted.map((id) => [id, {}]));
    for (const topic of topics) {
      for (const { partitionId } of cluster.findTopicPartitionMetadata(topic)) {
        const member = assignment.get(sorted[partitionId % sorted.length]!)!;
        (member[topic] ??= []).push(partitionId);
      }
    }
    return sorted.map((memberId) => ({
      memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({
        version: 0,
        assignment: assignment.get(memberId)!,
        userData: Buffer.alloc(0),
      }),
    }));
  },
  protocol({ topics }) {
    return {
      name: 'FluxionCopartitioned',
      metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }),
    };
  },
});

/** The client's `consumer()`: connected, its failures translated; its fetches and heartbeats end a fault episode. */
export async function openConsumer(connection: KafkaConnection, opts: ConsumerOptions): Promise<FluxionConsumer> {
  const { kafka, options, faults, translate } = connection;
  const sessionTimeout = opts.sessionTimeoutMs ?? 30_000;
  const consumer: Consumer = kafka.consumer({
    groupId: opts.groupId,
    readUncommitted: opts.readCommitted === false,
    sessionTimeout,
    heartbeatInterval: opts.heartbeatIntervalMs ?? Math.max(500, Math.floor(sessionTimeout / 3)),
    // kafkajs heartbeats between fetches only: a fetch that long-polls longer than the
    // session (5 s by default) gets an idle member evicted again and again.
    maxWaitTimeInMs: Math.min(5_000, Math.max(100, Math.floor(sessionTimeout / 3))),
    ...(opts.maxBytes ? { maxBytes: opts.maxBytes } : {}),
    allowAutoTopicCreation: false,
    ...(opts.copartitioned === false ? {} : { partitionAssigners: [copartitionedAssigner] }),
    ...(opts.crashOnFailure ? { retry: { retries: options.retries ?? 8, restartOnFailure: async () => false } } : {}),
  });
  try {
    await consumer.connect();
  } catch (err) {
    throw translate(err, 'connect a consumer');
  }
  // A fetch, a heartbeat or a join that succeeded: Kafka answers (ends a fault episode).
  for (const event of [consumer.events.FETCH, consumer.events.HEARTBEAT, consumer.events.GROUP_JOIN])
    consumer.on(event, () => faults.ok());
  return {
    async subscribe(topics, fromBeginning = true) {
      await consumer.subscribe({ topics, fromBeginning });
    },
    async run(handle) {
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ topic, partition, message }) => {
          await handle(consumedRecord(topic, partition, message));
        },
      });
    },
    async runBatches(handle) {
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale, pause }) => {
          await handlerOutcome(() =>
            handle(
              {
                topic: batch.topic,
                partition: batch.partition,
                highWatermark: batch.highWatermark,
                records: batch.messages.map((m) => consumedRecord(batch.topic, batch.partition, m)),
              },
              { resolveOffset, heartbeat, isRunning, isStale, pause },
            ),
          );
        },
      });
    },
    seek(topic, partition, offset) {
      consumer.seek({ topic, partition, offset });
    },
    onAssignment(listener) {
      consumer.on(consumer.events.GROUP_JOIN, (e) => {
        const assignment: Record<string, number[]> = {};
        for (const [t, ps] of Object.entries(e.payload.memberAssignment)) assignment[t] = [...ps];
        listener(assignment);
      });
    },
    onCrash(listener) {
      consumer.on(consumer.events.CRASH, (e) => {
        const p = e.payload as { error: Error; groupId: string; restart?: boolean };
        listener({ error: p.error, groupId: p.groupId, willRestart: p.restart === true });
      });
    },
    async commit(topic, partition, nextOffset) {
      await consumer.commitOffsets([{ topic, partition, offset: nextOffset }]);
    },
    async stop() {
      await consumer.stop();
    },
    async disconnect() {
      await consumer.disconnect();
    },
  };
}
