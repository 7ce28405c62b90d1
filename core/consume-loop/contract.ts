/**
 * The contract of the one consume loop (core/consume-loop/loop.ts) every long-running consumer
 * of Fluxion runs in: the stream processors, the PostgreSQL sink and the notifier.
 *
 * The loop owns the consumer's life (start, Kafka faults, shutdown), the batching (slices of
 * at most `maxBatch` records of one partition), the backoff of retriable failures (through
 * core/retry.ts) and the bookkeeping after a commit (resolve, heartbeat, metrics). A
 * component brings a CommitStrategy: where a partition starts, how one slice is processed and
 * committed (a Kafka transaction, the offsets-in-PostgreSQL transaction of
 * core/consume-loop/postgres-offsets.ts, or an at-least-once offset commit), and what a
 * consumer's end tears down.
 */
import type { BatchControl, ConsumedBatch, ConsumedRecord, ConsumerOptions, FluxionConsumer } from '../kafka/client.ts';
import type { Registry } from 'prom-client';
import type { Logger } from '../logger.ts';
import type { RetryPolicy } from '../retry.ts';
import { FluxionError } from '../errors.ts';

/** A loop misused (started twice, bad arguments). */
export class ConsumeLoopError extends FluxionError {
  constructor(message: string, options: ConstructorParameters<typeof FluxionError>[1] = {}) {
    super(message, { code: 'CONSUME_LOOP', ...options });
  }
}

/** What a strategy may do while the loop works on one batch. */
export interface SliceContext {
  control: BatchControl;
  /** False once the loop stops or the batch went stale (revoked, sought): stop and commit nothing. */
  running(): boolean;
  /** The consumer running now, to seek or commit. */
  consumer(): FluxionConsumer;
  /**
   * Runs `work` again, backing off and heartbeating, while it fails with an error the loop's
   * `retry.retriable` accepts (a service down); throws SliceAbandoned once the batch is not
   * ours any more. `what` names the work in logs.
   */
  retry<T>(what: string, work: () => Promise<T>): Promise<T>;
}

/** Thrown to leave a batch with nothing committed because it is no longer ours (stop, rebalance, seek). */
export class SliceAbandoned extends Error {}

/**
 * Thrown by a strategy whose slice failed and was rolled back, once it moved the partition
 * back to what is committed: the loop counts a consecutive failure of the partition, waits
 * its backoff and leaves the batch (the next fetch starts again from the committed offset).
 */
export class RetryPartition extends Error {
  constructor(cause: unknown) {
    super('slice failed: retrying from the committed offset', { cause });
  }
}

export interface CommitStrategy {
  /** Before each consumer start (a DLQ producer, say). */
  setUp?(): Promise<void>;
  onAssignment?(assignment: Record<string, number[]>): void;
  /**
   * The records of the batch still to process (those below the committed position are
   * dropped); empty when there are none, or when the partition was sought to its position.
   */
  pending(batch: ConsumedBatch, ctx: SliceContext): Promise<ConsumedRecord[]>;
  /**
   * Processes one slice (records of one partition, in offset order) and commits its effects
   * with the next offset, atomically. False: nothing committed and the batch is left (the
   * strategy repositioned the partition). Throws SliceAbandoned or RetryPartition, or an
   * error that crashes the consumer (after ConsumeLoopSpec.fatal).
   */
  commit(batch: ConsumedBatch, slice: ConsumedRecord[], ctx: SliceContext): Promise<boolean>;
  /** After each committed slice (a copy of the offset for lag dashboards, listeners). */
  committed?(batch: ConsumedBatch, slice: ConsumedRecord[], ctx: SliceContext): Promise<void>;
  /** After the batch's last processed slice unless it went stale (an at-least-once commit). */
  batchDone?(batch: ConsumedBatch, lastOffset: string, ctx: SliceContext): Promise<void>;
  /** After a consumer ended: 'crash' before the next start, 'stop' before run() resolves. */
  tearDown(reason: 'crash' | 'stop'): Promise<void>;
}

export interface ConsumeLoopSpec {
  /** Names the component in logs and errors ("processor dedupe", "sink"). */
  name: string;
  consumer: Omit<ConsumerOptions, 'crashOnFailure'>;
  topics: string[];
  /** Records per slice: per transaction, or per call of the notifier's handler. */
  maxBatch: number;
  strategy: CommitStrategy;
  logger: Logger;
  /** Errors `SliceContext.retry` retries in place (a service down), with their backoff. */
  retry?: {
    policy: RetryPolicy;
    retriable(err: unknown): boolean;
    /** Before each wait. */
    onRetry?(err: unknown, attempt: number, what: string): void;
    /** The work succeeded after `attempts` failures. */
    onRecovered?(what: string, attempts: number, downMs: number): void;
  };
  /** Backoff of a partition's consecutive RetryPartition failures; when it runs out, run() rejects with `giveUp`. */
  partitionRetry?: { policy: RetryPolicy; giveUp(cause: unknown, failures: number, batch: ConsumedBatch, slice: ConsumedRecord[]): Error };
  /** Turns an error no strategy handled into the one the consumer crashes with. */
  fatal?(err: unknown, batch: ConsumedBatch, slice: ConsumedRecord[]): Error;
  /** The component's metrics registry: the loop reports its slices and retries there (core/consume-loop/metrics.ts). */
  metricsRegistry?: Registry;
}

export interface ConsumeLoop {
  /** Resolves after stop(); rejects when the consumer crashes for good or a partition keeps failing. */
  run(): Promise<void>;
  /** Stops: the batch in hand is abandoned at its next check, the strategy tears down, the member leaves. */
  stop(): Promise<void>;
  /** True once stop() was called. */
  readonly stopping: boolean;
  /** The consumer running now (throws when none is). */
  consumer(): FluxionConsumer;
}
