/**
 * The commit strategy of consumers whose position lives in PostgreSQL with what they write
 * (the sink's `sink_offsets`, docs/architecture.md, Guarantees): exactly once across crashes.
 *
 * - After every assignment each partition is sought to its stored position before anything is
 *   written (a missing row is created at the log start); Kafka's committed offset is only a
 *   copy for lag dashboards, written after each commit.
 * - Each slice is one PostgreSQL transaction (core/postgres.ts withTransaction): the
 *   partition's offset row is locked (`FOR UPDATE`) and must still hold the position this
 *   instance read, then the component writes, then the next offset is stored. An instance
 *   that lost the partition in a rebalance (a zombie, docs/pitfalls.md) fails that check and
 *   rolls back instead of writing the same rows twice; it reads its position again.
 * - PostgreSQL calls go through the loop's in-place retry (SliceContext.retry).
 */
import { errorMessage } from '../errors.ts';
import type { ConsumedBatch, ConsumedRecord, KafkaClient } from '../kafka/client.ts';
import type { Logger } from '../logger.ts';
import { withTransaction, type Pool, type PoolClient } from '../postgres.ts';
import { SliceAbandoned, type CommitStrategy, type SliceContext } from './contract.ts';

/** The partition's offset row moved under us: another instance owns it now. */
export class OwnershipLost extends Error {}

/** One transaction of a slice: claim, `work`, then `beforeCommit` (once still ours), then the next offset. */
export type SliceTransaction = <T>(work: (client: PoolClient) => Promise<T>, beforeCommit?: (result: T) => Promise<void>) => Promise<T>;

export interface PostgresOffsetsOptions {
  kafka: KafkaClient;
  pool: Pool;
  groupId: string;
  logger: Logger;
  /** Reads and writes the offsets table (sink_offsets: consumer_group, topic, partition, next_offset). */
  offsets: {
    read(pool: Pool, groupId: string): Promise<Map<string, bigint>>;
    write(client: PoolClient, groupId: string, topic: string, partition: number, next: bigint): Promise<void>;
  };
  /** Writes one slice through `transaction` (once, or again record by record). */
  write(batch: ConsumedBatch, slice: ConsumedRecord[], ctx: SliceContext, transaction: SliceTransaction): Promise<void>;
}

export type PostgresOffsetsStrategy = Pick<CommitStrategy, 'onAssignment' | 'pending' | 'commit' | 'committed'> & {
  /** Forgets every position: each partition is positioned again from PostgreSQL before its next write. */
  forget(): void;
};

export function postgresOffsetsCommit(options: PostgresOffsetsOptions): PostgresOffsetsStrategy {
  const { kafka, pool, groupId, offsets } = options;
  const log = options.logger;
  /** Partitions positioned at their PostgreSQL offset since the last assignment, with that offset. */
  const position = new Map<string, bigint>();
  const keyOf = (topic: string, partition: number) => `${topic}\u0000${partition}`;

  /** Seeks a newly assigned partition to its PostgreSQL offset (creating the row at the log start). */
  async function positionPartition(topic: string, partition: number, ctx: SliceContext): Promise<bigint> {
    const stored = await ctx.retry('read sink_offsets', () => offsets.read(pool, groupId));
    let next = stored.get(keyOf(topic, partition));
    if (next === undefined) {
      const admin = await kafka.admin();
      try {
        next = BigInt((await admin.topicOffsets(topic)).find((o) => o.partition === partition)?.low ?? '0');
      } finally {
        await admin.disconnect();
      }
      const low = next;
      await ctx.retry('create sink_offsets row', () =>
        pool.query(
          'INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING',
          [groupId, topic, partition, low.toString()],
        ),
      );
      next = (await ctx.retry('read sink_offsets', () => offsets.read(pool, groupId))).get(keyOf(topic, partition)) ?? low;
    }
    position.set(keyOf(topic, partition), next);
    log.info({ topic, partition, offset: next.toString() }, 'partition positioned at its PostgreSQL offset');
    return next;
  }

  /** Locks the partition's offset row and checks that it still says what this instance read. */
  async function claim(client: PoolClient, topic: string, partition: number, expected: bigint): Promise<void> {
    const r = await client.query<{ next_offset: string }>(
      'SELECT next_offset FROM sink_offsets WHERE consumer_group = $1 AND topic = $2 AND partition = $3 FOR UPDATE',
      [groupId, topic, partition],
    );
    const found = r.rows[0] ? BigInt(r.rows[0].next_offset) : undefined;
    if (found !== expected) {
      throw new OwnershipLost(`sink_offsets of ${topic}[${partition}] is ${found ?? 'missing'}, this instance expected ${expected}`);
    }
  }

  return {
    forget: () => position.clear(),
    onAssignment(assignment) {
      // Every partition is positioned again from PostgreSQL before its next write.
      position.clear();
      log.info({ assignment }, 'partitions assigned');
    },
    async pending(batch, ctx) {
      const { topic, partition } = batch;
      let from = position.get(keyOf(topic, partition));
      if (from === undefined) {
        from = await positionPartition(topic, partition, ctx);
        if (BigInt(batch.records[0]!.offset) !== from) {
          // Whatever Kafka's committed offset said, PostgreSQL's is the truth: read from there.
          ctx.consumer().seek(topic, partition, from.toString());
          return [];
        }
      }
      const start = from;
      return batch.records.filter((r) => BigInt(r.offset) >= start);
    },
    async commit(batch, slice, ctx) {
      const { topic, partition } = batch;
      const key = keyOf(topic, partition);
      const next = BigInt(slice.at(-1)!.offset) + 1n;
      const expected = position.get(key)!;
      const transaction: SliceTransaction = (work, beforeCommit) =>
        withTransaction(pool, async (client) => {
          await claim(client, topic, partition, expected);
          const result = await work(client);
          if (!ctx.running()) throw new SliceAbandoned();
          await beforeCommit?.(result);
          await offsets.write(client, groupId, topic, partition, next);
          return result;
        });
      try {
        await options.write(batch, slice, ctx, transaction);
      } catch (err) {
        if (!(err instanceof OwnershipLost)) throw err;
        // Read the position again; if the partition is still ours, carry on from there.
        log.warn({ topic, partition, err: err.message }, 'another instance wrote this partition: re-reading its PostgreSQL offset');
        position.delete(key);
        if (!ctx.running()) return false;
        const offset = await positionPartition(topic, partition, ctx);
        try {
          ctx.consumer().seek(topic, partition, offset.toString());
        } catch (seekErr) {
          // Revoked meanwhile: the partition's new owner positions itself.
          log.info({ topic, partition, err: errorMessage(seekErr) }, 'partition no longer assigned');
        }
        return false;
      }
      position.set(key, next);
      return true;
    },
    async committed(batch, slice, ctx) {
      // Kafka's copy of the position, for lag dashboards; PostgreSQL's stays the truth.
      const next = (BigInt(slice.at(-1)!.offset) + 1n).toString();
      await ctx
        .consumer()
        .commit(batch.topic, batch.partition, next)
        .catch((err: unknown) => log.debug({ err: errorMessage(err) }, 'offset copy to Kafka failed'));
    },
  };
}
