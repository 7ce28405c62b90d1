/**
 * Which Kafka errors a process waits out, decided once for every process (docs/kafka-faults.md),
 * and the one log line per episode an operator reads while it does.
 *
 * Retriable: what a broker answers while it starts, restarts or moves work (a coordinator
 * loading or moved, a rebalance, a leader election, a request timing out) and a connection
 * that cannot be opened or was reset. Everything else is not: authentication or
 * authorization refused, a certificate that does not verify, a topic that does not exist at
 * start, a bad request, and any error of ours that says it is not retriable. kafkajs already
 * flags its protocol errors `retriable`; its retry wrappers (KafkaJSNumberOfRetriesExceeded,
 * KafkaJSNonRetriableError) and ours are looked through to the cause they carry.
 *
 * Every reading of kafkajs's errors and log lines lives in this module: their types, names and
 * codes, and their message text only where kafkajs gives nothing else (a SASL mechanism the
 * broker lacks, its log lines, an error code its table lacks). Moving to another client is a
 * change to this folder.
 */
import { createRequire } from 'node:module';
import { FluxionError, ServiceUnavailableError, errorMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { RetryPolicy } from '../retry.ts';
import { KafkaAuthError, KafkaRequestError } from './errors.ts';
import type { KafkaSasl } from './types.ts';

/**
 * Broker answers that say "not now, ask again": kafkajs's own `retriable` flags plus those
 * it calls non-retriable but that a restarting cluster answers for a moment.
 */
const RETRIABLE_TYPES = new Set([
  'GROUP_LOAD_IN_PROGRESS', // COORDINATOR_LOAD_IN_PROGRESS in Kafka's own names
  'COORDINATOR_LOAD_IN_PROGRESS',
  'GROUP_COORDINATOR_NOT_AVAILABLE',
  'COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR_FOR_GROUP',
  'NOT_COORDINATOR',
  'REBALANCE_IN_PROGRESS',
  'ILLEGAL_GENERATION',
  'UNKNOWN_MEMBER_ID',
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_FOR_PARTITION',
  'NOT_LEADER_OR_FOLLOWER',
  'PREFERRED_LEADER_NOT_AVAILABLE',
  'ELIGIBLE_LEADERS_NOT_AVAILABLE',
  'FENCED_LEADER_EPOCH',
  'UNKNOWN_LEADER_EPOCH',
  'OFFSET_NOT_AVAILABLE',
  'REQUEST_TIMED_OUT',
  'NETWORK_EXCEPTION',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'KAFKA_STORAGE_ERROR',
  'NOT_CONTROLLER',
  'CONCURRENT_TRANSACTIONS',
  'UNSTABLE_OFFSET_COMMIT',
  'INVALID_FETCH_SESSION_EPOCH',
  'FETCH_SESSION_ID_NOT_FOUND',
  'THROTTLING_QUOTA_EXCEEDED',
  // A partition's metadata can lag its creation or a broker's restart for a moment; a topic
  // missing at start is checked before (superviseConsumer), so it exits instead.
  'UNKNOWN_TOPIC_OR_PARTITION',
]);

/**
 * Answers that are part of normal work (a rebalance, a previous transaction finishing), not a
 * fault. A topic unknown by name is logged only by whoever asked for it: a missing topic is a
 * set-up error the caller names, and one that metadata briefly lacks after a restart comes
 * with connection faults anyway.
 */
const ROUTINE_TYPES = new Set([
  'REBALANCE_IN_PROGRESS',
  'ILLEGAL_GENERATION',
  'UNKNOWN_MEMBER_ID',
  'CONCURRENT_TRANSACTIONS',
  'MEMBER_ID_REQUIRED',
  'UNKNOWN_TOPIC_OR_PARTITION',
]);

/** kafkajs errors about the connection itself: the broker is down, restarting or unreachable. */
const CONNECTION_ERRORS = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSBrokerNotFound',
  'KafkaJSNoBrokerAvailableError',
  'KafkaJSGroupCoordinatorNotFound',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSTopicMetadataNotLoaded',
  'KafkaJSStaleTopicMetadataAssignment',
  'KafkaJSLockTimeout',
]);
/** Wrappers that say how a retry ended, not why: the decision is their cause's. */
const WRAPPERS = new Set(['KafkaJSNumberOfRetriesExceeded', 'KafkaJSNonRetriableError']);
const NETWORK_CODES = /^(ECONNREFUSED|ECONNRESET|ECONNABORTED|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN)$/;
const SASL_TYPES = new Set(['SASL_AUTHENTICATION_FAILED', 'UNSUPPORTED_SASL_MECHANISM', 'ILLEGAL_SASL_STATE']);
const TLS_CODES = /^(ERR_TLS_CERT_ALTNAME_INVALID|CERT_|UNABLE_TO_(GET|VERIFY)|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT)/;

export interface KafkaFaultClass {
  retriable: boolean;
  /** What an operator reads: the broker's error type, the connection failure, or the message. */
  cause: string;
}

/** Codes of our errors that say what is wrong themselves (core/errors.ts, ./errors.ts): never waited out. */
const SELF_EXPLAINED = new Set([
  'TOPIC_LAYOUT',
  'CONFIG_INVALID',
  'USAGE',
  'KAFKA_AUTH',
  'KAFKA_REQUEST',
  'SCHEMA',
  'MIGRATION',
  'VALIDATION',
]);

const nextOf = (e: object): unknown => (e as { cause?: unknown }).cause ?? (e as { originalError?: unknown }).originalError;

/** Whether `err` (from kafkajs, or ours wrapping one) is worth waiting out, and why. */
export function classifyKafkaError(err: unknown): KafkaFaultClass {
  let outer: FluxionError | undefined;
  let e: unknown = err;
  for (let depth = 0; depth < 8 && e && typeof e === 'object'; depth++, e = nextOf(e)) {
    const { name = '', type, code, message = '' } = e as { name?: string; type?: unknown; code?: unknown; message?: string };
    if (name === 'KafkaJSSASLAuthenticationError' || (typeof type === 'string' && SASL_TYPES.has(type)))
      return { retriable: false, cause: `authentication refused: ${message}` };
    if (typeof code === 'string' && TLS_CODES.test(code)) return { retriable: false, cause: `TLS certificate not verified (${code})` };
    if (typeof type === 'string' && type) {
      if (/AUTHORIZATION_FAILED$/.test(type)) return { retriable: false, cause: `${type}: ${message}` };
      const retriable = RETRIABLE_TYPES.has(type) || (e as { retriable?: unknown }).retriable === true;
      return { retriable, cause: `${type}: ${message}` };
    }
    if (CONNECTION_ERRORS.has(name)) return { retriable: true, cause: `${name}: ${message}` };
    if (typeof code === 'string' && NETWORK_CODES.test(code)) return { retriable: true, cause: `${code}: ${message}` };
    if (WRAPPERS.has(name)) continue;
    if (e instanceof FluxionError) {
      outer ??= e;
      // Ours decide for themselves when they are retriable, name a set-up or input error, or
      // carry no cause; a component's wrapper defers to its cause (a sink error wrapping a
      // reset connection is a fault of Kafka's, not of the sink's).
      if (e.retriable || SELF_EXPLAINED.has(e.code) || nextOf(e) === undefined) return { retriable: e.retriable, cause: e.message };
      continue;
    }
    if (nextOf(e) === undefined) break;
  }
  return { retriable: outer?.retriable ?? false, cause: errorMessage(outer ?? err) };
}

export const isRetriableKafkaError = (err: unknown): boolean => classifyKafkaError(err).retriable;

/** The errors along `err`'s causes (kafkajs wraps its errors in retry errors), outermost first. */
function* causesOf(err: unknown, depth: number): Generator<object> {
  let e: unknown = err;
  for (let i = 0; i < depth && e && typeof e === 'object'; i++, e = nextOf(e)) yield e;
}

/** The broker's error type (kafkajs's name for it) inside `err`, for callers that branch on one without importing kafkajs. */
export function kafkaErrorType(err: unknown): string | undefined {
  for (const e of causesOf(err, 5)) {
    const type = (e as { type?: unknown }).type;
    if (typeof type === 'string') return type;
  }
  return undefined;
}

/**
 * The broker refuses this producer: a newer one with the same transactional id took over.
 * kafkajs 2.2.4's table has no PRODUCER_FENCED (code 90): it reports that answer as an unknown
 * code, whose message is the only place the code is kept.
 */
/**
 * kafkajs's fetchTopicOffsets fails with its own TypeError (destructuring the answer of a
 * partition list it read as empty) when its cached metadata of a topic created a moment ago
 * lists no partition yet: the same settling as LEADER_NOT_AVAILABLE, seen from inside kafkajs.
 * Told by the frame it is thrown from, not by the message.
 */
export function isOffsetsOfUnsettledTopic(err: unknown): boolean {
  return err instanceof TypeError && /kafkajs[\\/]src[\\/]admin[\\/]/.test(err.stack ?? '');
}

export function isProducerFenced(err: unknown): boolean {
  const type = kafkaErrorType(err);
  if (type === 'INVALID_PRODUCER_EPOCH' || type === 'PRODUCER_FENCED') return true;
  return (
    type === 'KAFKAJS_UNKNOWN_ERROR_CODE' &&
    [...causesOf(err, 5)].some((e) => (e as { message?: unknown }).message === 'Unknown error code 90')
  );
}

/** The SASL failure inside a kafkajs error (it wraps them in retry errors), if there is one. */
export function saslFailureOf(err: unknown): { message: string; type?: string } | undefined {
  for (const e of causesOf(err, 6)) {
    const { name, type, message } = e as { name?: string; type?: string; message?: string };
    if (name === 'KafkaJSSASLAuthenticationError' || (type !== undefined && SASL_TYPES.has(type))) return { message: message ?? '', type };
  }
  return undefined;
}

/** What the operator should read when the brokers refuse our SASL credentials. */
export function kafkaAuthError(err: unknown, brokers: string[], sasl: KafkaSasl): KafkaAuthError | undefined {
  const failure = saslFailureOf(err);
  if (!failure) return undefined;
  const mechanism = sasl.mechanism.toUpperCase();
  // kafkajs's messages carry no secret, but a password must never reach a message by accident.
  const detail = sasl.password ? failure.message.split(sasl.password).join('***') : failure.message;
  const at = `Kafka at ${brokers.join(',')}`;
  // kafkajs says a mechanism the broker lacks in text only ("SASL X mechanism is not supported by the server").
  const message =
    failure.type === 'ILLEGAL_SASL_STATE'
      ? `${at} does not speak SASL on that listener (is it a PLAINTEXT port?): KAFKA_SASL_MECHANISM=${sasl.mechanism} needs a SASL ` +
        `listener (${detail})`
      : failure.type === 'UNSUPPORTED_SASL_MECHANISM' || /not supported|unsupported/i.test(detail)
        ? `${at} does not accept SASL ${mechanism}: check KAFKA_SASL_MECHANISM (${detail})`
        : `${at} refused SASL ${mechanism} authentication for user "${sasl.username}": check KAFKA_SASL_USERNAME and ` +
          `KAFKA_SASL_PASSWORD, and that the user has ${mechanism} credentials (${detail})`;
  return new KafkaAuthError(message, {
    cause: err,
    context: { brokers: brokers.join(','), mechanism: sasl.mechanism, user: sasl.username },
  });
}

/** Node's code for a broker certificate that did not verify, inside a kafkajs error (undefined: none). */
export function tlsCertificateFailureOf(err: unknown): string | undefined {
  for (const e of causesOf(err, 6)) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && TLS_CODES.test(code)) return code;
  }
  return undefined;
}

/**
 * A SASL listener answers ApiVersions, then hangs up on a client that does not authenticate
 * (and a TLS one on a client that does not speak TLS): what to check, when `err` is that.
 */
export function closedConnectionHint(err: unknown): string | undefined {
  for (const e of causesOf(err, 6)) {
    if ((e as { name?: string }).name === 'KafkaJSConnectionClosedError')
      return '; the broker closed the connection: does this listener need authentication (KAFKA_SASL_MECHANISM) or TLS (KAFKA_SSL=true)?';
  }
  return undefined;
}

/** Translates kafkajs connection and authentication failures into our typed errors; leaves others untouched. */
export function translateKafkaError(err: unknown, brokers: string[], sasl: KafkaSasl | undefined, action: string): unknown {
  const auth = sasl ? kafkaAuthError(err, brokers, sasl) : undefined;
  if (auth) return auth;
  const name = (err as { name?: string })?.name ?? '';
  if (!/^KafkaJS/.test(name)) return err;
  const cert = tlsCertificateFailureOf(err);
  const at = `Kafka at ${brokers.join(',')}`;
  if (cert) {
    return new KafkaRequestError(
      `${at}: the brokers' TLS certificate did not verify (${cert}) while trying to ${action}: give the CA that signed it with ` +
        `KAFKA_SSL_CA_FILE`,
      { cause: err, context: { brokers: brokers.join(',') } },
    );
  }
  const fault = classifyKafkaError(err);
  if (!fault.retriable)
    return new KafkaRequestError(`${at} refused to ${action}: ${fault.cause}`, { cause: err, context: { brokers: brokers.join(',') } });
  const hint = sasl ? '' : (closedConnectionHint(err) ?? '');
  return new ServiceUnavailableError(`${at} did not answer while trying to ${action}: ${(err as Error).message}${hint}`, {
    cause: err,
    service: 'kafka',
    context: { brokers: brokers.join(',') },
  });
}

/**
 * How long a process waits out one episode: backoff from 1 s to 30 s, and it gives up (exits
 * non-zero, for its supervisor) once Kafka has been failing for 15 minutes on end.
 */
export const KAFKA_FAULT_RETRY: RetryPolicy = {
  retries: Number.POSITIVE_INFINITY,
  initialDelayMs: 1_000,
  maxDelayMs: 30_000,
  factor: 2,
  maxElapsedMs: 15 * 60_000,
};

// kafkajs's table of broker errors (type, message, retriable): its log lines carry only the
// message, which is mapped back to the type here.
const require = createRequire(import.meta.url);
const PROTOCOL_ERRORS = (
  require('kafkajs/src/protocol/error.js') as { errorCodes: Array<{ type: string; message: string; retriable: boolean }> }
).errorCodes;
const TYPE_BY_MESSAGE = new Map(PROTOCOL_ERRORS.map((c) => [c.message, c.type]));

/**
 * A kafkajs line not worth logging at all. Our producers retry a bounded number of times on
 * purpose: every send is inside a transaction that aborts when retries run out, so nothing
 * partial is ever visible, and kafkajs warns about that limit once per producer.
 */
export function isKafkajsNoise(message: string): boolean {
  return message.startsWith('Limiting retries for the idempotent producer');
}

/** kafkajs log lines that are not about Kafka being unavailable: kept at their level. */
const NOT_FAULTS =
  /^(Failed to execute listener|Caught error when|Offset out of range|Consumer group received unsubscribed|consumer#run was called)/;

/** Consumer lines of normal work: rebalances, and a crash or restart its supervisor reports. */
const ROUTINE_CONSUMER_LINES = new RegExp(
  [
    '^The group is rebalancing',
    '^The coordinator is not aware of this member',
    'resync group$',
    '^Crash: ',
    '^Restarting the consumer',
    '^Error when calling each',
  ].join('|'),
);

/** Lines of a lost or refused connection to a broker. */
const CONNECTION_LOSS_LINES = new RegExp(
  `^(${[
    'Connection error',
    'Connection timeout',
    'Failed to connect',
    'Failed to send messages',
    'Request .* timed out',
    'Closed connection',
    'Not connected',
  ].join('|')})`,
);

/**
 * What a kafkajs warning or error line says about the cluster: a fault (to be counted in the
 * episode instead of logged line by line), routine (a rebalance), or neither (log it as is).
 */
export function kafkajsLogFault(
  message: string,
  extra: Record<string, unknown>,
): { kind: 'fault'; cause: string } | { kind: 'routine' } | { kind: 'other' } {
  // Authentication answers are failures of ours to report, never a wait (kafkaAuthError).
  if (NOT_FAULTS.test(message) || /^Response Sasl|SASL .*authentication failed/i.test(message)) return { kind: 'other' };
  // Rebalances are normal work; a crash, its restart and a handler's error are reported by
  // whoever supervises that consumer (core/kafka/supervised-consumer.ts).
  if (ROUTINE_CONSUMER_LINES.test(message)) return { kind: 'routine' };
  const error = typeof extra.error === 'string' ? extra.error : undefined;
  // The broker's answer, when the line carries one: in `error` (a failed response) or at the
  // end of the message ("Failed to send messages: <the broker's message>").
  const said = error ?? [...TYPE_BY_MESSAGE.keys()].find((m) => message.endsWith(`: ${m}`));
  const type = said === undefined ? undefined : TYPE_BY_MESSAGE.get(said);
  if (type && ROUTINE_TYPES.has(type)) return { kind: 'routine' };
  if (type && !RETRIABLE_TYPES.has(type)) return { kind: 'other' };
  if (message.startsWith('Response ') && error !== undefined)
    return { kind: 'fault', cause: `${type ?? 'error'}: ${error} (${message.slice('Response '.length)})` };
  if (CONNECTION_LOSS_LINES.test(message)) return { kind: 'fault', cause: message };
  if (typeof extra.retryCount === 'number') return { kind: 'fault', cause: message };
  return { kind: 'other' };
}

/**
 * One episode of Kafka faults per process: the first fault logs one warning (its cause),
 * later ones only count; once requests succeed again and no fault was seen for `quietMs`,
 * one line says it is over and how long it lasted.
 */
export interface KafkaFaultLog {
  fault(cause: string): void;
  ok(): void;
  readonly active: boolean;
}

export const EPISODE_START_MESSAGE = 'Kafka is failing: retrying with backoff (one line when it is over)';
export const EPISODE_END_MESSAGE = 'Kafka answers again: going on';

export function createKafkaFaultLog(
  log: Logger,
  brokers: string[],
  options: { quietMs?: number; now?: () => number } = {},
): KafkaFaultLog {
  const quietMs = options.quietMs ?? 5_000;
  const now = options.now ?? Date.now;
  let since: number | undefined;
  let last = 0;
  let faults = 0;
  return {
    get active() {
      return since !== undefined;
    },
    fault(cause) {
      last = now();
      faults++;
      if (since !== undefined) return;
      since = last;
      log.warn({ kafkaEpisode: 'start', brokers: brokers.join(','), cause }, EPISODE_START_MESSAGE);
    },
    ok() {
      if (since === undefined || now() - last < quietMs) return;
      log.info(
        { kafkaEpisode: 'end', brokers: brokers.join(','), faultySeconds: Math.round((last - since) / 100) / 10, faults },
        EPISODE_END_MESSAGE,
      );
      since = undefined;
      faults = 0;
    },
  };
}
