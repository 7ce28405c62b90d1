/**
 * A consumer that rides out Kafka's retriable faults in-process: the Kafka half of the one
 * consume loop (core/consume-loop/loop.ts) every long-running consumer of Fluxion (processors,
 * the PostgreSQL sink, the notifier) runs in.
 *
 * - Each start creates a kafkajs consumer (never restarted by kafkajs itself), subscribes and
 *   runs it; the component's `setUp` opens what the consumer needs (a DLQ producer).
 * - When it crashes, the component's `tearDown('crash')` drops everything tied to that
 *   consumer (producers, positions, in-memory state), as a process restart would, so the
 *   next start resumes from what is committed: exactly-once holds as it does across restarts.
 * - A retriable crash (core/kafka/faults.ts) counts in the process's fault episode (one log
 *   line) and the consumer starts again after the backoff of KAFKA_FAULT_RETRY; the backoff
 *   starts over once a new consumer joined the group. A non-retriable crash, or an episode
 *   longer than the policy allows, rejects `run()` with an error naming the cause: the process
 *   exits non-zero for its supervisor.
 * - At the first start, topics that do not exist end the run at once (`fluxion topics ensure`
 *   was not run, or failed): waiting cannot create them.
 */
import { FluxionError, TopicLayoutError, errorMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { RetryEpisode, type RetryPolicy } from '../retry.ts';
import type { BatchControl, ConsumedBatch, ConsumerOptions, FluxionConsumer, KafkaClient } from './types.ts';
import { classifyKafkaError, KAFKA_FAULT_RETRY } from './faults.ts';

export interface SupervisedConsumerSpec {
  /** Names the component in logs and errors ("processor dedupe", "sink"). */
  name: string;
  consumer: Omit<ConsumerOptions, 'crashOnFailure'>;
  topics: string[];
  /** Before each start, once the topics are known to exist. */
  setUp?(): Promise<void>;
  onAssignment?(assignment: Record<string, number[]>): void;
  handle(batch: ConsumedBatch, control: BatchControl): Promise<void>;
  /** After a consumer ended: 'crash' before the next start, 'stop' before run() resolves. */
  tearDown(reason: 'crash' | 'stop'): Promise<void>;
}

export interface SupervisedConsumer {
  /** Resolves after stop(); rejects on a non-retriable error or an episode the policy gave up on. */
  run(): Promise<void>;
  /** Stops the consumer (the batch in hand finishes or is abandoned), tears down, leaves. */
  stop(): Promise<void>;
  /** The running consumer, for seek and commit inside `handle`. */
  current(): FluxionConsumer;
}

/** A consumer stopped for a reason waiting will not cure. */
export class ConsumerFailedError extends FluxionError {
  constructor(message: string, options: ConstructorParameters<typeof FluxionError>[1] = {}) {
    super(message, { code: 'CONSUMER_FAILED', ...options });
  }
}

export function superviseConsumer(
  kafka: KafkaClient,
  logger: Logger,
  spec: SupervisedConsumerSpec,
  options: { retry?: RetryPolicy } = {},
): SupervisedConsumer {
  const log = logger.child({ component: 'consumer-supervisor', groupId: spec.consumer.groupId });
  let consumer: FluxionConsumer | undefined;
  let running = false;
  let stopping = false;
  let stopped: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  const abort = new AbortController();
  /** The batch being handled: a crash tears down only once it gave up (it sees isRunning() false). */
  let inFlight: Promise<unknown> = Promise.resolve();
  const handle = (batch: ConsumedBatch, control: BatchControl): Promise<void> => {
    const work = spec.handle(batch, control);
    inFlight = work.catch(() => undefined);
    return work;
  };

  /** One consumer's life: resolves when stopped, rejects with the crash. */
  async function runOnce(first: boolean, episode: RetryEpisode): Promise<void> {
    const c = await kafka.consumer({ ...spec.consumer, crashOnFailure: true });
    consumer = c;
    const crashed = new Promise<never>((_, reject) => c.onCrash(({ error }) => reject(error)));
    crashed.catch(() => undefined);
    const stoppedHere = new Promise<void>((resolve) => {
      wake = resolve;
    });
    if (first) await requireTopics(spec.topics);
    await spec.setUp?.();
    c.onAssignment((assignment) => {
      if (episode.attempts > 0) log.info({ restarts: episode.attempts }, `${spec.name}: consumer rejoined the group`);
      episode.succeeded();
      spec.onAssignment?.(assignment);
    });
    await c.subscribe(spec.topics, true);
    if (stopping) return;
    await c.runBatches(handle);
    await Promise.race([crashed, stoppedHere]);
  }

  async function requireTopics(topics: string[]): Promise<void> {
    const admin = await kafka.admin();
    try {
      const existing = new Set(await admin.listTopics());
      const missing = topics.filter((t) => !existing.has(t));
      if (missing.length > 0)
        throw new TopicLayoutError(
          `${spec.name}: topic${missing.length > 1 ? 's' : ''} ${missing.join(', ')} do${missing.length > 1 ? '' : 'es'} not exist: ` +
            `run \`fluxion topics ensure\``,
          { context: { topic: missing.join(',') } },
        );
    } finally {
      await admin.disconnect();
    }
  }

  return {
    current() {
      if (!consumer) throw new ConsumerFailedError(`${spec.name} has no consumer running`);
      return consumer;
    },
    async run() {
      if (running) throw new ConsumerFailedError(`${spec.name} is already running`);
      running = true;
      const episode = new RetryEpisode(options.retry ?? KAFKA_FAULT_RETRY, {
        signal: abort.signal,
        retriable: (err) => classifyKafkaError(err).retriable,
        onRetry: (err, attempt, delayMs) =>
          log.debug(
            { attempt, delayMs, cause: classifyKafkaError(err).cause },
            `${spec.name}: restarting the consumer after a retriable fault`,
          ),
      });
      for (let first = true; !stopping; first = false) {
        let failure: unknown;
        try {
          await runOnce(first, episode);
        } catch (err) {
          failure = err;
        }
        if (stopping) break;
        await inFlight;
        await spec
          .tearDown('crash')
          .catch((err: unknown) => log.warn({ err: errorMessage(err) }, `${spec.name}: tear-down after a crash failed`));
        const c = consumer;
        consumer = undefined;
        await c?.disconnect().catch(() => undefined);
        const fault = classifyKafkaError(failure);
        if (fault.retriable) kafka.faults.fault(`${spec.name}: ${fault.cause}`);
        try {
          await episode.failed(failure);
        } catch (err) {
          if (stopping) break;
          if (err instanceof TopicLayoutError) throw err;
          const message = fault.retriable
            ? `${spec.name}: Kafka kept failing for ${Math.round(episode.elapsedMs / 1000)} s (${episode.attempts} restarts), giving ` +
              `up: ${fault.cause}`
            : `${spec.name}: consumer stopped: ${failure instanceof FluxionError ? failure.message : fault.cause}`;
          log.error({ cause: fault.cause, retriable: fault.retriable }, message);
          throw new ConsumerFailedError(message, { cause: err });
        }
      }
      await stopped;
      // A consumer created while stop() ran has not been seen by it.
      await consumer?.disconnect().catch(() => undefined);
    },
    stop() {
      stopped ??= (async () => {
        stopping = true;
        abort.abort(new Error('stopping'));
        const c = consumer;
        // Stopping waits for the batch in hand, which is abandoned at its next check.
        await c?.stop().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'consumer stop failed'));
        await spec.tearDown('stop').catch((err: unknown) => log.warn({ err: errorMessage(err) }, `${spec.name}: tear-down failed`));
        await c?.disconnect().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'consumer disconnect failed'));
        wake?.();
      })();
      return stopped;
    },
  };
}
