/**
 * The processors' commit strategy for the consume loop (core/consume-loop/): one Kafka
 * transaction per slice, as docs/pitfalls.md describes for kafkajs.
 *
 * - Outputs, DLQ records and the input offset (last + 1) commit together; any transaction
 *   failure aborts and moves the partition back to its first uncommitted offset, so nothing
 *   is lost or written twice.
 * - One transactional producer per input partition, `${name}-${groupId}-${topic}-${partition}`:
 *   a restarted or newly assigned instance fences the previous owner of that partition and
 *   the broker aborts its open transaction (kafkajs's TxnOffsetCommit is too old for
 *   generation fencing). After fencing, the committed offset is read again and records
 *   below it are skipped (kafkajs cannot ask for stable offsets, KIP-447).
 * - A record that cannot be decoded or processed goes, with its original bytes, to
 *   `<topic>.dlq` in the same transaction; the stream continues.
 * - Kafka itself failing (a broker restarting) is thrown to the loop, whose supervisor
 *   restarts the consumer from what is committed; any other failed transaction replaces the
 *   partition's producer and throws RetryPartition (the loop backs the partition off).
 */
import { RetryPartition, SliceAbandoned, type CommitStrategy, type SliceContext } from '../../core/consume-loop/contract.ts';
import { dlqRecord } from '../../core/dlq.ts';
import { FluxionError } from '../../core/errors.ts';
import {
  isProducerFenced,
  kafkaErrorType,
  type ConsumedBatch,
  type ConsumedRecord,
  type FluxionProducer,
  type KafkaClient,
  type OutgoingRecord,
} from '../../core/kafka/client.ts';
import { isRetriableKafkaError } from '../../core/kafka/faults.ts';
import type { Logger } from '../../core/logger.ts';
import { dlqTopic } from '../../core/topics.ts';
import type { RuntimeMetrics } from './metrics.ts';
import type { PartitionState } from './partition-state.ts';
import type { ProcessorContext, StreamProcessorSpec } from './processor-spec.ts';

export interface TransactionalCommitDeps {
  spec: StreamProcessorSpec<unknown>;
  kafka: KafkaClient;
  log: Logger;
  metrics: RuntimeMetrics;
  groupId: string;
  transactionTimeoutMs: number;
  state: PartitionState;
  /** True once the processor stops: an aborted slice is then not repositioned. */
  stopping(): boolean;
}

interface PartitionProducer {
  producer: FluxionProducer;
  /** Offsets below it were committed by a previous owner: skip them (checked once, after fencing). */
  committed: bigint | undefined;
}

export type TransactionalCommit = Required<Pick<CommitStrategy, 'pending' | 'commit' | 'onAssignment'>> & {
  /** The partition's producer, created (fencing any previous owner) when missing. */
  fence(topic: string, partition: number): Promise<void>;
  /** Closes every producer: the next ones fence again and read the committed offsets. */
  closeAll(): Promise<void>;
};

export function transactionalCommit(deps: TransactionalCommitDeps): TransactionalCommit {
  const { spec, kafka, log, metrics, groupId, state } = deps;
  const name = spec.name;
  const producers = new Map<string, PartitionProducer>();
  const revoked = new Set<string>();
  const keyOf = (topic: string, partition: number) => `${topic}\u0000${partition}`;
  const transactionalId = (topic: string, partition: number) => `${name}-${groupId}-${topic}-${partition}`;

  async function closeProducer(key: string): Promise<void> {
    const entry = producers.get(key);
    producers.delete(key);
    await entry?.producer.disconnect().catch((err: unknown) => log.warn({ err }, 'producer disconnect failed'));
  }

  async function partitionProducer(topic: string, partition: number): Promise<PartitionProducer> {
    const key = keyOf(topic, partition);
    const known = producers.get(key);
    if (known) return known;
    const id = transactionalId(topic, partition);
    // Connecting fences any previous producer of this partition; the broker completes or
    // aborts its open transaction before answering (CONCURRENT_TRANSACTIONS until then).
    const producer = await kafka.producer({ transactionalId: id, transactionTimeoutMs: deps.transactionTimeoutMs });
    let committed: bigint | undefined;
    const admin = await kafka.admin();
    try {
      const offset = (await admin.groupOffsets(groupId, topic)).find((o) => o.partition === partition)?.offset;
      if (offset !== undefined && BigInt(offset) >= 0n) committed = BigInt(offset);
    } finally {
      await admin.disconnect();
    }
    const entry: PartitionProducer = { producer, committed };
    producers.set(key, entry);
    log.info({ topic, partition, transactionalId: id, committed: committed?.toString() }, 'partition producer ready');
    return entry;
  }

  /**
   * After an aborted transaction on partition p: drop p's in-memory state (read again
   * before the next batch) and move every input of p back to its committed offset.
   */
  async function resync(partition: number, ctx: SliceContext): Promise<void> {
    state.drop(partition);
    // Recreated producers fence again: the broker then has finished writing the markers of
    // every earlier transaction, so the state read next (to the last stable offset) is whole.
    for (const topic of spec.inputTopics) await closeProducer(keyOf(topic, partition));
    const admin = await kafka.admin();
    try {
      for (const topic of spec.inputTopics) {
        if (!state.owns(topic, partition)) continue;
        const committed = (await admin.groupOffsets(groupId, topic)).find((o) => o.partition === partition)?.offset;
        const offset =
          committed !== undefined && BigInt(committed) >= 0n
            ? committed
            : ((await admin.topicOffsets(topic)).find((o) => o.partition === partition)?.low ?? '0');
        ctx.consumer().seek(topic, partition, offset);
        log.info({ topic, partition, offset }, 'state reset after an aborted transaction: reading again from the committed offset');
      }
    } finally {
      await admin.disconnect();
    }
  }

  /** An aborted slice: start again from what is committed. */
  async function reposition(batch: ConsumedBatch, slice: ConsumedRecord[], ctx: SliceContext): Promise<void> {
    if (deps.stopping()) return;
    const { topic, partition } = batch;
    if (spec.state || spec.commitOffset) {
      // The aborted slice may have changed the in-memory state, and records before it may be
      // held back: start again from what is committed.
      if (state.owns(topic, partition)) await resync(partition, ctx);
    } else if (ctx.control.isRunning() && !ctx.control.isStale()) {
      // Not resolved: the next fetch starts at the first uncommitted offset again; the seek
      // also marks what is left of this fetch stale.
      ctx.consumer().seek(topic, partition, slice[0]!.offset);
    }
  }

  /** Runs one slice in one transaction; returns the records sent per output topic. */
  async function transact(
    entry: PartitionProducer,
    batch: ConsumedBatch,
    slice: ConsumedRecord[],
    ctx: SliceContext,
  ): Promise<Map<string, OutgoingRecord[]>> {
    const { topic, partition } = batch;
    const outputs = new Map<string, OutgoingRecord[]>();
    const push = (t: string, r: OutgoingRecord) => {
      const list = outputs.get(t);
      if (list) list.push(r);
      else outputs.set(t, [r]);
    };
    await entry.producer.transaction(async (tx) => {
      for (let i = 0; i < slice.length; i++) {
        if (!ctx.running()) throw new SliceAbandoned();
        const record = slice[i]!;
        try {
          const input = await spec.decode(record);
          const pc: ProcessorContext = {
            topic,
            partition,
            offset: record.offset,
            key: record.key,
            headers: record.headers,
            timestamp: record.timestamp,
            store: state.store(partition),
          };
          for (const o of await spec.process(input, pc))
            push(o.topic, { ubicacionId: o.ubicacionId, key: o.key, value: o.value, headers: o.headers });
        } catch (err) {
          // A service that did not answer (the registry, say) is no fault of the record:
          // abort and retry the transaction rather than bury a good record in the DLQ.
          if (err instanceof FluxionError && err.retriable) throw err;
          log.warn({ topic, partition, offset: record.offset, err }, 'record sent to the DLQ');
          push(dlqTopic(topic), dlqRecord(record, err));
        }
        if (i % 100 === 99) await ctx.control.heartbeat();
      }
      for (const [t, records] of outputs) await tx.send(t, records);
      if (!ctx.running()) throw new SliceAbandoned();
      const next = BigInt(slice.at(-1)!.offset) + 1n;
      await tx.sendOffsets(groupId, topic, [{ partition, offset: (spec.commitOffset?.(topic, partition, next) ?? next).toString() }]);
    });
    return outputs;
  }

  return {
    fence: async (topic, partition) => void (await partitionProducer(topic, partition)),
    async closeAll() {
      for (const key of [...producers.keys()]) await closeProducer(key);
      revoked.clear();
    },
    onAssignment(assignment) {
      for (const [topic, p] of state.assign(assignment)) revoked.add(keyOf(topic, p));
    },
    async pending(batch, ctx) {
      for (const key of revoked) {
        revoked.delete(key);
        const [topic, partition] = key.split('\u0000') as [string, string];
        if (!state.owns(topic, Number(partition))) await closeProducer(key);
      }
      const { topic, partition } = batch;
      const entry = await partitionProducer(topic, partition);
      await state.load(ctx.control);
      if (entry.committed === undefined) return batch.records;
      const committed = entry.committed;
      entry.committed = undefined;
      const first = BigInt(batch.records[0]!.offset);
      if (first >= committed) return batch.records;
      const records = batch.records.filter((r) => BigInt(r.offset) >= committed);
      log.warn(
        { topic, partition, fetched: first.toString(), committed: committed.toString() },
        'skipping records a previous owner already committed',
      );
      if (records.length === 0) ctx.consumer().seek(topic, partition, committed.toString());
      return records;
    },
    async commit(batch, slice, ctx) {
      const { topic, partition } = batch;
      const entry = await partitionProducer(topic, partition);
      const mark = await state.checkpointMark(partition);
      let outputs: Map<string, OutgoingRecord[]>;
      try {
        outputs = await transact(entry, batch, slice, ctx);
      } catch (err) {
        // Whatever the transaction wrote to the store is not in the changelog.
        state.store(partition)?.discard();
        const abandoned = err instanceof SliceAbandoned;
        metrics.aborts.inc({ processor: name, reason: abandoned ? 'abandoned' : 'error' });
        if (abandoned) {
          log.info({ topic, partition, offset: slice[0]!.offset }, 'batch abandoned (stopping or revoked): transaction aborted');
          await reposition(batch, slice, ctx);
          return false;
        }
        // Kafka itself failing (a broker restarting, a connection reset) is no fault of this
        // partition: the consumer is restarted from what is committed once Kafka answers.
        if (isRetriableKafkaError(err) && !isProducerFenced(err) && kafkaErrorType(err) !== 'CONCURRENT_TRANSACTIONS') throw err;
        log.warn(
          { topic, partition, offset: slice[0]!.offset, err, kafkaError: kafkaErrorType(err) },
          'transaction aborted: will retry from the first uncommitted offset',
        );
        // A fenced producer (or any broken one) is replaced, which fences again and re-reads
        // the committed offset before the next attempt.
        await closeProducer(keyOf(topic, partition));
        if (isProducerFenced(err)) log.warn({ topic, partition }, 'producer fenced: another instance may own this partition');
        await reposition(batch, slice, ctx);
        throw new RetryPartition(err);
      }
      // Committed: the transaction's store writes go to disk, with the checkpoint if one was due.
      state.store(partition)?.flush(mark);
      metrics.transactions.inc({ processor: name });
      metrics.recordsIn.inc({ processor: name, topic }, slice.length);
      let out = 0;
      for (const [t, records] of outputs) {
        if (t === dlqTopic(topic)) metrics.recordsDlq.inc({ processor: name, topic }, records.length);
        else {
          metrics.recordsOut.inc({ processor: name, topic: t }, records.length);
          out += records.length;
        }
      }
      const dlq = outputs.get(dlqTopic(topic))?.length ?? 0;
      log.debug({ topic, partition, from: slice[0]!.offset, to: slice.at(-1)!.offset, out, dlq }, 'transaction committed');
      return true;
    },
  };
}
