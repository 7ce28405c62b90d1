/**
 * The one consume loop (core/consume-loop/loop.ts) against an in-memory consumer: the batch is
 * cut into slices of maxBatch, each commit is resolved, a service down is retried in place, a
 * partition failing too often rejects run(), a stale batch is left without committing, and an
 * at-least-once strategy commits after the batch. No broker: the consumer hands the loop the
 * batches a test lists, then stops.
 */
import { describe, expect, it } from 'vitest';
import { createConsumeLoop, RetryPartition, type CommitStrategy, type ConsumeLoopSpec } from '../../core/consume-loop/loop.ts';
import { ServiceUnavailableError, ValidationError } from '../../core/errors.ts';
import type { BatchControl, ConsumedBatch, ConsumedRecord, FluxionConsumer, KafkaClient } from '../../core/kafka/client.ts';
import { createLogger } from '../../core/logger.ts';
import { counterValue } from '../../core/metrics.ts';
import { type Counter, Registry } from 'prom-client';

const logger = createLogger({ level: 'silent' });
const fast = { retries: Number.POSITIVE_INFINITY, initialDelayMs: 1, maxDelayMs: 2, factor: 2 };

const records = (topic: string, partition: number, from: number, n: number): ConsumedRecord[] =>
  Array.from({ length: n }, (_, i) => {
    const offset = String(from + i);
    return { topic, partition, offset, key: null, value: Buffer.from(offset), headers: {}, timestamp: '0' };
  });
const batchOf = (n: number, from = 0): ConsumedBatch => ({
  topic: 't',
  partition: 0,
  highWatermark: String(from + n),
  records: records('t', 0, from, n),
});

/** A client whose one consumer delivers `batches` in order; `stale(i)` marks batch i stale from the start. */
function fakeKafka(batches: ConsumedBatch[], stale: (i: number) => boolean = () => false) {
  const resolved: string[] = [];
  const commits: string[] = [];
  const seeks: string[] = [];
  let crash: ((c: { error: Error; groupId: string; willRestart: boolean }) => void) | undefined;
  let stopped = false;
  const consumer: FluxionConsumer = {
    subscribe: async () => undefined,
    run: async () => undefined,
    async runBatches(handle) {
      // Runs in the background as kafkajs does; a handler's throw crashes the consumer.
      void (async () => {
        for (const [i, batch] of batches.entries()) {
          if (stopped) return;
          const control: BatchControl = {
            resolveOffset: (o) => void resolved.push(o),
            heartbeat: async () => undefined,
            isRunning: () => !stopped,
            isStale: () => stale(i),
            pause: () => () => undefined,
          };
          try {
            await handle(batch, control);
          } catch (error) {
            crash?.({ error: error as Error, groupId: 'g', willRestart: false });
            return;
          }
        }
      })();
    },
    seek: (topic, partition, offset) => void seeks.push(`${topic}[${partition}]@${offset}`),
    onAssignment: () => undefined,
    onCrash: (listener) => void (crash = listener),
    commit: async (topic, partition, next) => void commits.push(`${topic}[${partition}]@${next}`),
    stop: async () => void (stopped = true),
    disconnect: async () => undefined,
  };
  const kafka = {
    faults: { fault: () => undefined, answered: () => undefined },
    admin: async () => ({ listTopics: async () => ['t'], disconnect: async () => undefined }),
    consumer: async () => consumer,
  } as unknown as KafkaClient;
  return { kafka, resolved, commits, seeks };
}

function spec(strategy: Partial<CommitStrategy>, extra: Partial<ConsumeLoopSpec> = {}): ConsumeLoopSpec {
  return {
    name: 'test loop',
    logger,
    consumer: { groupId: 'g', readCommitted: true },
    topics: ['t'],
    maxBatch: 3,
    strategy: { pending: async (b) => b.records, commit: async () => true, tearDown: async () => undefined, ...strategy },
    ...extra,
  };
}

/** Runs the loop until `done()` holds, then stops it; returns how run() ended. */
async function runUntil(loop: ReturnType<typeof createConsumeLoop>, done: () => boolean): Promise<unknown> {
  const ran = loop.run().then(
    () => 'stopped',
    (err: unknown) => err,
  );
  for (let i = 0; i < 500 && !done(); i++) await new Promise((r) => setTimeout(r, 5));
  await loop.stop();
  return ran;
}

describe('the consume loop', () => {
  it("commits a batch in slices of maxBatch, resolves each slice's last offset and counts them", async () => {
    const k = fakeKafka([batchOf(7)]);
    const slices: string[][] = [];
    const registry = new Registry();
    const loop = createConsumeLoop(
      k.kafka,
      spec(
        {
          commit: async (_b, s) => {
            slices.push(s.map((r) => r.offset));
            return true;
          },
        },
        { metricsRegistry: registry },
      ),
    );
    expect(await runUntil(loop, () => k.resolved.length === 3)).toBe('stopped');
    expect(slices).toEqual([['0', '1', '2'], ['3', '4', '5'], ['6']]);
    expect(k.resolved).toEqual(['2', '5', '6']);
    const counter = (name: string) => registry.getSingleMetric(name) as Counter<string>;
    expect(await counterValue(counter('fluxion_consume_loop_slices_total'), { loop: 'test loop' })).toBe(3);
    expect(await counterValue(counter('fluxion_consume_loop_records_total'), { loop: 'test loop' })).toBe(7);
  });

  it('retries a slice in place while its service is down, then goes on', async () => {
    const k = fakeKafka([batchOf(2)]);
    let failures = 0;
    const recovered: number[] = [];
    const loop = createConsumeLoop(
      k.kafka,
      spec(
        {
          commit: (_b, _s, ctx) =>
            ctx.retry('write', async () => {
              if (failures++ < 3) throw new ServiceUnavailableError('PostgreSQL is down');
              return true;
            }),
        },
        {
          retry: {
            policy: fast,
            retriable: (err) => err instanceof ServiceUnavailableError,
            onRecovered: (_what, attempts) => void recovered.push(attempts),
          },
        },
      ),
    );
    expect(await runUntil(loop, () => k.resolved.length === 1)).toBe('stopped');
    expect(k.resolved).toEqual(['1']);
    expect(recovered).toEqual([3]);
  });

  it("backs a failing partition off and rejects run() with the strategy's error once its policy gives up", async () => {
    const k = fakeKafka([batchOf(1), batchOf(1), batchOf(1), batchOf(1)]);
    let attempts = 0;
    const loop = createConsumeLoop(
      k.kafka,
      spec(
        {
          commit: async () => {
            attempts++;
            throw new RetryPartition(new Error('fenced'));
          },
        },
        {
          partitionRetry: {
            policy: { ...fast, retries: 2 },
            giveUp: (cause, failures) => new ValidationError(`${failures} in a row: ${(cause as Error).message}`),
          },
        },
      ),
    );
    const ended = await runUntil(loop, () => attempts >= 3);
    expect(attempts).toBe(3);
    expect(k.resolved).toEqual([]);
    expect((ended as Error).message).toMatch(/3 in a row: fenced/);
  });

  it('leaves a stale batch without committing anything', async () => {
    const k = fakeKafka([batchOf(3), batchOf(2, 3)], (i) => i === 0);
    const committed: string[] = [];
    const loop = createConsumeLoop(
      k.kafka,
      spec({
        commit: async (_b, s) => {
          committed.push(s[0]!.offset);
          return true;
        },
      }),
    );
    expect(await runUntil(loop, () => k.resolved.length === 1)).toBe('stopped');
    expect(committed).toEqual(['3']);
    expect(k.resolved).toEqual(['4']);
  });

  it('commits at least once after the batch, when the strategy asks for it', async () => {
    const k = fakeKafka([batchOf(2)]);
    const loop = createConsumeLoop(
      k.kafka,
      spec({ batchDone: (b, last, ctx) => ctx.consumer().commit(b.topic, b.partition, (BigInt(last) + 1n).toString()) }, { maxBatch: 1 }),
    );
    expect(await runUntil(loop, () => k.commits.length === 1)).toBe('stopped');
    expect(k.resolved).toEqual(['0', '1']);
    expect(k.commits).toEqual(['t[0]@2']);
  });

  it("crashes with the spec's fatal error for a failure no strategy handles", async () => {
    const k = fakeKafka([batchOf(2)]);
    const loop = createConsumeLoop(
      k.kafka,
      spec(
        {
          commit: async () => {
            throw new Error('disk full');
          },
        },
        {
          fatal: (err, batch, slice) => new ValidationError(`writing ${batch.topic} from ${slice[0]!.offset}: ${(err as Error).message}`),
        },
      ),
    );
    const ended = await loop.run().then(
      () => 'stopped',
      (err: unknown) => err,
    );
    expect((ended as Error).message).toMatch(/writing t from 0: disk full/);
    expect(k.resolved).toEqual([]);
  });
});
