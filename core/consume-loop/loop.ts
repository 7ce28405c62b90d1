/**
 * The one consume loop (contract in core/consume-loop/contract.ts). It runs in
 * core/kafka/supervised-consumer.ts, which rides out Kafka's retriable faults; around each
 * fetched batch it:
 * - asks the strategy which records are still to process (`pending`), then cuts them into
 *   slices of at most `maxBatch` records and has the strategy commit each one;
 * - after a commit resolves the slice's last offset, counts it (core/consume-loop/metrics.ts)
 *   and heartbeats;
 * - leaves the batch at once when it stops being ours (stop, rebalance, seek) or a slice is
 *   abandoned, so nothing of it is committed twice;
 * - retries a service that is down in place (`SliceContext.retry`) and backs a partition off
 *   after a failed slice (RetryPartition), both through core/retry.ts; a partition failing
 *   more than its policy allows rejects run() (the process exits non-zero for its supervisor).
 * Stopping aborts every backoff in progress: a stopping process does not wait out a sleep.
 */
import { Registry } from 'prom-client';
import { RetryEpisode } from '../retry.ts';
import type { BatchControl, ConsumedBatch, ConsumedRecord, KafkaClient } from '../kafka/client.ts';
import { superviseConsumer, type SupervisedConsumer } from '../kafka/supervised-consumer.ts';
import { loopMetrics } from './metrics.ts';
import {
  ConsumeLoopError,
  RetryPartition,
  SliceAbandoned,
  type ConsumeLoop,
  type ConsumeLoopSpec,
  type SliceContext,
} from './contract.ts';

export * from './contract.ts';

export function createConsumeLoop(kafka: KafkaClient, spec: ConsumeLoopSpec): ConsumeLoop {
  if (!Number.isInteger(spec.maxBatch) || spec.maxBatch < 1) {
    throw new ConsumeLoopError(`${spec.name}: maxBatch must be a positive integer, got ${spec.maxBatch}`);
  }
  const { strategy } = spec;
  const log = spec.logger.child({ component: 'consume-loop', loop: spec.name, groupId: spec.consumer.groupId });
  const metrics = loopMetrics(spec.metricsRegistry ?? new Registry(), spec.name);
  const abort = new AbortController();
  let stopping = false;
  let supervised: SupervisedConsumer | undefined;
  /** Consecutive failed slices per partition; a commit or a consumer restart ends them. */
  const failures = new Map<string, RetryEpisode>();
  const keyOf = (topic: string, partition: number) => `${topic}\u0000${partition}`;

  function context(control: BatchControl): SliceContext {
    const running = () => !stopping && control.isRunning() && !control.isStale();
    return {
      control,
      running,
      consumer: () => current(),
      retry: (what, work) => retryInPlace(what, running, control, work),
    };
  }

  function current() {
    if (!supervised) throw new ConsumeLoopError(`${spec.name} is not running`);
    return supervised.current();
  }

  async function retryInPlace<T>(what: string, running: () => boolean, control: BatchControl, work: () => Promise<T>): Promise<T> {
    const r = spec.retry;
    if (!r) return work();
    const episode = new RetryEpisode(r.policy, {
      retriable: r.retriable,
      signal: abort.signal,
      onRetry: (err, attempt) => {
        metrics.retried('in_place');
        r.onRetry?.(err, attempt, what);
      },
    });
    for (;;) {
      try {
        const result = await work();
        if (episode.attempts > 0) r.onRecovered?.(what, episode.attempts, episode.elapsedMs);
        return result;
      } catch (err) {
        if (!r.retriable(err)) throw err;
        if (!running()) throw new SliceAbandoned();
        try {
          await episode.failed(err);
        } catch (given) {
          if (!running()) throw new SliceAbandoned();
          throw given;
        }
        await control.heartbeat().catch(() => undefined);
        if (!running()) throw new SliceAbandoned();
      }
    }
  }

  /** A slice failed and the strategy moved the partition back: wait its backoff, or give up. */
  async function partitionFailed(batch: ConsumedBatch, slice: ConsumedRecord[], cause: unknown): Promise<void> {
    const r = spec.partitionRetry;
    if (!r) throw cause;
    const key = keyOf(batch.topic, batch.partition);
    let episode = failures.get(key);
    if (!episode) {
      episode = new RetryEpisode(r.policy, { retriable: () => true, signal: abort.signal, onRetry: () => metrics.retried('partition') });
      failures.set(key, episode);
    }
    try {
      await episode.failed(cause);
    } catch {
      if (stopping) return;
      throw r.giveUp(cause, episode.attempts, batch, slice);
    }
  }

  async function handle(batch: ConsumedBatch, control: BatchControl): Promise<void> {
    const ctx = context(control);
    if (!ctx.running() || batch.records.length === 0) return;
    let last: string | undefined;
    try {
      const records = await strategy.pending(batch, ctx);
      for (let i = 0; i < records.length; i += spec.maxBatch) {
        if (!ctx.running()) break;
        const slice = records.slice(i, i + spec.maxBatch);
        const started = process.hrtime.bigint();
        let committed: boolean;
        try {
          committed = await strategy.commit(batch, slice, ctx);
        } catch (err) {
          if (err instanceof SliceAbandoned) throw err;
          if (err instanceof RetryPartition) return await partitionFailed(batch, slice, err.cause);
          throw spec.fatal ? spec.fatal(err, batch, slice) : err;
        }
        if (!committed) return;
        failures.delete(keyOf(batch.topic, batch.partition));
        last = slice.at(-1)!.offset;
        control.resolveOffset(last);
        metrics.committed(Number(process.hrtime.bigint() - started) / 1e9, slice.length);
        await strategy.committed?.(batch, slice, ctx);
        await control.heartbeat();
      }
    } catch (err) {
      if (!(err instanceof SliceAbandoned)) throw err;
      log.info({ topic: batch.topic, partition: batch.partition }, 'batch abandoned (stopping or revoked): nothing of it committed');
      return;
    }
    if (last !== undefined && !control.isStale()) await strategy.batchDone?.(batch, last, ctx);
  }

  return {
    get stopping() {
      return stopping;
    },
    consumer: current,
    async run() {
      if (supervised) throw new ConsumeLoopError(`${spec.name} is already running`);
      supervised = superviseConsumer(kafka, spec.logger, {
        name: spec.name,
        consumer: spec.consumer,
        topics: spec.topics,
        setUp: strategy.setUp && (() => strategy.setUp!()),
        onAssignment: strategy.onAssignment && ((assignment) => strategy.onAssignment!(assignment)),
        handle,
        async tearDown(reason) {
          failures.clear();
          await strategy.tearDown(reason);
        },
      });
      await supervised.run();
    },
    async stop() {
      stopping = true;
      abort.abort(new Error('stopping'));
      await supervised?.stop();
    },
  };
}
