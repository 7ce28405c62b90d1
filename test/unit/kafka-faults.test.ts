/**
 * core/kafka/faults.ts and core/retry.ts's RetryEpisode without a broker: which Kafka errors
 * are waited out (kafkajs's own error objects), what a kafkajs log line means, one log line
 * per episode, and the backoff and give-up of an episode.
 */
import {
  KafkaJSConnectionError,
  KafkaJSNonRetriableError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
  KafkaJSSASLAuthenticationError,
} from 'kafkajs';
import { createRequire } from 'node:module';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ConfigError, ServiceUnavailableError, TopicLayoutError } from '../../core/errors.ts';
import { KafkaAuthError } from '../../core/kafka/errors.ts';
import {
  classifyKafkaError,
  createKafkaFaultLog,
  EPISODE_END_MESSAGE,
  EPISODE_START_MESSAGE,
  isKafkajsNoise,
  isOffsetsOfUnsettledTopic,
  isProducerFenced,
  kafkaErrorType,
  kafkajsLogFault,
} from '../../core/kafka/faults.ts';
import { RetryEpisode, withRetry } from '../../core/retry.ts';

const { createErrorFromCode } = createRequire(import.meta.url)('kafkajs/src/protocol/error.js') as {
  createErrorFromCode: (code: number) => Error;
};
/** kafkajs's error for a broker's error code, as its protocol decoder throws it. */
const protocol = (code: number) => new KafkaJSProtocolError(createErrorFromCode(code));
// kafkajs's constructors take more than its typings say: built as kafkajs itself builds them.
type Ctor = new (e: unknown, options?: Record<string, unknown>) => Error;
const connectionError = (message: string, code?: string) => new (KafkaJSConnectionError as unknown as Ctor)(message, { code });
const retriesExceeded = (e: Error) =>
  new (KafkaJSNumberOfRetriesExceeded as unknown as Ctor)(e, { retryCount: 8, retryTime: 10_000, cause: e });
const nonRetriable = (e: Error) => new (KafkaJSNonRetriableError as unknown as Ctor)(e, { cause: e });

describe('classifyKafkaError', () => {
  it.each([
    ["the coordinator loading (a broker's first start)", protocol(14), 'GROUP_LOAD_IN_PROGRESS'],
    ['the coordinator not available', protocol(15), 'GROUP_COORDINATOR_NOT_AVAILABLE'],
    ['the coordinator moved', protocol(16), 'NOT_COORDINATOR_FOR_GROUP'],
    ['a rebalance in progress', protocol(27), 'REBALANCE_IN_PROGRESS'],
    ['a leader election', protocol(5), 'LEADER_NOT_AVAILABLE'],
    ['a leader moved', protocol(6), 'NOT_LEADER_FOR_PARTITION'],
    ['a connection refused', connectionError('Connection error: connect ECONNREFUSED 127.0.0.1:19092', 'ECONNREFUSED'), 'ECONNREFUSED'],
    ['a connection reset', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), 'ECONNRESET'],
    ['retries exhausted on the coordinator loading', retriesExceeded(protocol(14)), 'GROUP_LOAD_IN_PROGRESS'],
    [
      'our Kafka-unavailable error wrapping a connection error',
      new ServiceUnavailableError('Kafka at x did not answer', { cause: connectionError('Connection error: connect ECONNREFUSED') }),
      'did not answer',
    ],
  ])('waits out %s', (_what, err, cause) => {
    const c = classifyKafkaError(err);
    expect(c.retriable).toBe(true);
    expect(c.cause).toContain(cause);
  });

  it.each([
    [
      'SASL authentication refused',
      new (KafkaJSSASLAuthenticationError as unknown as Ctor)('SASL SCRAM SHA256 authentication failed'),
      'authentication refused',
    ],
    [
      'our auth error',
      new KafkaAuthError('Kafka at x refused SASL', { cause: new (KafkaJSSASLAuthenticationError as unknown as Ctor)('failed') }),
      'refused SASL',
    ],
    ['a topic authorization failure', protocol(29), 'TOPIC_AUTHORIZATION_FAILED'],
    ['a record too large', protocol(10), 'MESSAGE_TOO_LARGE'],
    ['a non-retriable protocol error wrapped by kafkajs', nonRetriable(protocol(29)), 'TOPIC_AUTHORIZATION_FAILED'],
    ['a missing topic at start', new TopicLayoutError('topic x does not exist: run `fluxion topics ensure`'), 'does not exist'],
    [
      'a missing topic found by its metadata',
      new TopicLayoutError('missing topics among x: run `fluxion topics ensure`', { cause: protocol(3) }),
      'missing topics',
    ],
    ['a configuration error', new ConfigError(['KAFKA_BROKERS is not set']), 'KAFKA_BROKERS'],
    ['a plain bug', new TypeError('x is not a function'), 'not a function'],
  ])('does not wait out %s', (_what, err, cause) => {
    const c = classifyKafkaError(err);
    expect(c.retriable).toBe(false);
    expect(c.cause).toContain(cause);
  });
});

describe('isProducerFenced and kafkaErrorType', () => {
  it("reads the broker's answer from kafkajs's error objects, through its retry wrappers", () => {
    expect(kafkaErrorType(retriesExceeded(protocol(14)))).toBe('GROUP_LOAD_IN_PROGRESS');
    expect(kafkaErrorType(connectionError('Connection error'))).toBeUndefined();
    expect(isProducerFenced(protocol(47))).toBe(true); // INVALID_PRODUCER_EPOCH
    expect(isProducerFenced(nonRetriable(protocol(47)))).toBe(true);
    // PRODUCER_FENCED (90) is missing from kafkajs 2.2.4's table: it arrives as an unknown code.
    expect(isProducerFenced(protocol(90))).toBe(true);
    expect(isProducerFenced(protocol(91))).toBe(false);
    expect(isProducerFenced(protocol(51))).toBe(false); // CONCURRENT_TRANSACTIONS
    expect(isProducerFenced(new Error('producer fenced'))).toBe(false);
  });

  it("drops only kafkajs's warning about the idempotent producer's bounded retries", () => {
    expect(isKafkajsNoise('Limiting retries for the idempotent producer to Number.MAX_SAFE_INTEGER')).toBe(true);
    expect(isKafkajsNoise('Connection error: connect ECONNREFUSED')).toBe(false);
  });
});

describe('isOffsetsOfUnsettledTopic', () => {
  it("is kafkajs's own TypeError from its admin's offsets answer, and nothing else", () => {
    // What kafkajs 2.2.4's fetchTopicOffsets threw in CI on a just-created topic.
    const race = new TypeError("Cannot destructure property 'partitions' of 'low.pop(...)' as it is undefined.");
    race.stack =
      `${race.message}\n    at /app/node_modules/kafkajs/src/admin/index.js:328:29\n    at async Object.topicOffsets ` +
      `(core/kafka/admin.ts:148:23)`;
    expect(isOffsetsOfUnsettledTopic(race)).toBe(true);
    expect(
      isOffsetsOfUnsettledTopic(new TypeError("Cannot destructure property 'partitions' of 'low.pop(...)' as it is undefined.")),
    ).toBe(false);
    const ours = new Error('kafkajs/src/admin/index.js');
    ours.stack = race.stack;
    expect(isOffsetsOfUnsettledTopic(ours)).toBe(false);
  });
});

describe('kafkajsLogFault', () => {
  it('counts failed requests and connections as faults, rebalances as routine, anything else as itself', () => {
    expect(
      kafkajsLogFault('Response JoinGroup(key: 11, version: 5)', {
        error: "The coordinator is loading and hence can't process requests for this group",
      }),
    ).toEqual({
      kind: 'fault',
      cause:
        "GROUP_LOAD_IN_PROGRESS: The coordinator is loading and hence can't process requests for this group (JoinGroup(key: 11, " +
        'version: 5))',
    });
    expect(kafkajsLogFault('Connection error: connect ECONNREFUSED 127.0.0.1:19092', {}).kind).toBe('fault');
    expect(kafkajsLogFault('Failed to connect to seed broker, trying another broker from the list: x', { retryCount: 0 }).kind).toBe(
      'fault',
    );
    expect(
      kafkajsLogFault('Response Heartbeat(key: 12, version: 3)', { error: 'The group is rebalancing, so a rejoin is needed' }).kind,
    ).toBe('routine');
    expect(kafkajsLogFault('The group is rebalancing, re-joining', {}).kind).toBe('routine');
    expect(kafkajsLogFault('Crash: KafkaJSNumberOfRetriesExceeded: x', {}).kind).toBe('routine');
    // A previous transaction still finishing is normal right after a restart.
    expect(
      kafkajsLogFault(
        'Failed to send messages: The producer attempted to update a transaction while another concurrent operation on the same ' +
          'transaction was ongoing',
        { retryCount: 0 },
      ).kind,
    ).toBe('routine');
    expect(kafkajsLogFault('Failed to send messages: Connection error: read ECONNRESET', { retryCount: 1 }).kind).toBe('fault');
    expect(
      kafkajsLogFault('Response Metadata(key: 3, version: 6)', { error: 'Not authorized to access topics: [Topic authorization failed]' })
        .kind,
    ).toBe('other');
    expect(kafkajsLogFault('Offset out of range, resetting to default offset', {}).kind).toBe('other');
  });
});

describe('createKafkaFaultLog', () => {
  function recorded() {
    const lines: Array<{ msg: string; faults?: number }> = [];
    const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    return { lines, logger };
  }

  it('logs one warning when an episode starts and one line when Kafka answered for quietMs', () => {
    let now = 0;
    const { lines, logger } = recorded();
    const faults = createKafkaFaultLog(logger, ['k:1'], { quietMs: 5_000, now: () => now });
    faults.ok();
    for (let i = 0; i < 50; i++) {
      faults.fault('Connection error: connect ECONNREFUSED');
      now += 200;
    }
    faults.ok(); // too soon after the last fault: still in the episode
    now += 5_000;
    faults.ok();
    faults.ok();
    expect(lines.map((l) => l.msg)).toEqual([EPISODE_START_MESSAGE, EPISODE_END_MESSAGE]);
    expect(lines[1]!.faults).toBe(50);
    faults.fault('GROUP_LOAD_IN_PROGRESS');
    expect(lines.map((l) => l.msg)).toEqual([EPISODE_START_MESSAGE, EPISODE_END_MESSAGE, EPISODE_START_MESSAGE]);
  });
});

describe('RetryEpisode', () => {
  const policy = { retries: Number.POSITIVE_INFINITY, initialDelayMs: 1, maxDelayMs: 4, factor: 2 };

  it('retries retriable errors with growing waits, throws the others at once, and starts over after a success', async () => {
    const waits: number[] = [];
    const episode = new RetryEpisode(policy, {
      retriable: (e) => (e as Error).message === 'later',
      onRetry: (_e, _n, ms) => waits.push(ms),
      random: () => 0.999,
    });
    await episode.failed(new Error('later'));
    await episode.failed(new Error('later'));
    await episode.failed(new Error('later'));
    await episode.failed(new Error('later'));
    expect(waits).toEqual([1, 2, 4, 4]);
    expect(episode.attempts).toBe(4);
    episode.succeeded();
    expect(episode.attempts).toBe(0);
    await episode.failed(new Error('later'));
    expect(waits.at(-1)).toBe(1);
    await expect(episode.failed(new Error('never'))).rejects.toThrow('never');
  });

  it('gives up once an episode lasts longer than maxElapsedMs', async () => {
    const episode = new RetryEpisode(
      { ...policy, initialDelayMs: 20, maxDelayMs: 20, maxElapsedMs: 50 },
      { retriable: () => true, random: () => 0.999 },
    );
    await episode.failed(new Error('a'));
    await episode.failed(new Error('b'));
    await expect(episode.failed(new Error('c'))).rejects.toThrow('c');
  });

  it('is what withRetry runs: retries run out after `retries`', async () => {
    let calls = 0;
    await expect(
      withRetry({ ...policy, retries: 2 }, async () => {
        calls++;
        throw new ServiceUnavailableError('down');
      }),
    ).rejects.toThrow('down');
    expect(calls).toBe(3);
  });
});
