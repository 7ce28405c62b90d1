/**
 * The client of Fluxion's Kafka calls. kafkajs is unmaintained (tulios/kafkajs#1603): only
 * core/kafka/ imports it (this module, compression.ts and end-tracker.ts), so moving to another
 * KafkaJS-compatible client is a change to this folder only.
 *
 * Settings follow docs/pitfalls.md: Java-compatible placement by ubicacion, idempotent producer
 * with acks=-1 and one request in flight, explicit retries, read_committed consumers without
 * auto-commit, and connection failures translated into our typed errors.
 */
import {
  AssignerProtocol,
  Kafka,
  Partitioners,
  logLevel as KafkaLogLevel,
  type Admin,
  type Consumer,
  type IHeaders,
  type ITopicConfig,
  type LogEntry,
  type PartitionAssigner,
  type Producer,
  type SASLOptions,
  type Transaction,
} from 'kafkajs';
import { FluxionError, ServiceUnavailableError, TopicLayoutError, type FluxionErrorOptions } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { sleep, withRetry, type RetryPolicy } from '../retry.ts';
import { classifyKafkaError, createKafkaFaultLog, kafkajsLogFault, type KafkaFaultLog } from './faults.ts';
import { partitionForUbicacion } from './partitioning.ts';
import { compressionFor } from '../topics.ts';
import { kafkajsCompression } from './compression.ts';

export interface KafkaClientOptions {
  brokers: string[];
  clientId: string;
  logger: Logger;
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Retries of one request before the call fails (kafkajs defaults to 5 for producers). */
  retries?: number;
  /** TLS to every broker (KAFKA_SSL); `ca` is PEM text, undefined: the system CAs. */
  ssl?: { ca?: string; rejectUnauthorized?: boolean };
  /** SASL authentication (KAFKA_SASL_*). */
  sasl?: KafkaSasl;
  /** How long one SASL exchange may take (kafkajs default 10 s). */
  authenticationTimeoutMs?: number;
}

export interface KafkaSasl {
  mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
  username: string;
  readonly password: string;
}

/**
 * Kafka refused our SASL credentials, or the listener does not speak the mechanism. Never
 * retried (kafkajs would otherwise go on reconnecting): the message names the mechanism and
 * the user, never the password.
 */
export class KafkaAuthError extends FluxionError {
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'KAFKA_AUTH', retriable: false, ...options });
  }
}

/** Kafka refused a request in a way waiting will not cure (authorization, a bad request): the message names the broker's answer. */
export class KafkaRequestError extends FluxionError {
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'KAFKA_REQUEST', retriable: false, ...options });
  }
}

export interface OutgoingRecord {
  /** Placement: every record goes to the partition of its store. */
  ubicacionId: string;
  key: string | Buffer | null;
  value: Buffer | null;
  headers?: Record<string, string | Buffer>;
  /** Overrides placement (a DLQ record keeps the partition of its source record). */
  partition?: number;
}

export interface TopicDescription {
  name: string;
  partitions: number;
  config: Record<string, string>;
}

export interface RecordBatchSender {
  send(topic: string, records: OutgoingRecord[]): Promise<void>;
}

export interface FluxionProducer extends RecordBatchSender {
  /** Runs `work` in one Kafka transaction: committed if it resolves, aborted if it throws. */
  transaction<T>(work: (tx: RecordBatchSender & { sendOffsets(groupId: string, topic: string, offsets: Array<{ partition: number; offset: string }>): Promise<void> }) => Promise<T>): Promise<T>;
  disconnect(): Promise<void>;
}

export interface ConsumedRecord {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, string>;
  timestamp: string;
}

/** The records one fetch returned for one partition, in offset order. */
export interface ConsumedBatch {
  topic: string;
  partition: number;
  /** The partition's high watermark (read_committed: its last stable offset) when fetched. */
  highWatermark: string;
  records: ConsumedRecord[];
}

/** What a batch handler may do with the consumer while it works on one batch. */
export interface BatchControl {
  /** Marks `offset` as processed: the next fetch of this partition starts after it. */
  resolveOffset(offset: string): void;
  /** Keeps the group membership alive during long work. */
  heartbeat(): Promise<void>;
  /** False once the consumer is stopping. */
  isRunning(): boolean;
  /** True once the partition was revoked or sought elsewhere: the rest of this batch must not be processed. */
  isStale(): boolean;
  /** Pauses fetching this partition; returns the function that resumes it. */
  pause(): () => void;
}

/** Why a consumer stopped for good: the process should exit non-zero so a supervisor restarts it. */
export interface ConsumerCrash {
  error: Error;
  groupId: string;
  /** Whether kafkajs restarts the consumer by itself (never when created with `crashOnFailure`). */
  willRestart: boolean;
}

export interface FluxionConsumer {
  subscribe(topics: string[], fromBeginning?: boolean): Promise<void>;
  /** Calls `handle` for each record, in order per partition; offsets are committed by the caller. */
  run(handle: (record: ConsumedRecord) => Promise<void>): Promise<void>;
  /**
   * Calls `handle` for each fetched batch (one partition each, one at a time). Nothing is
   * resolved automatically: offsets the handler does not resolve are fetched again.
   */
  runBatches(handle: (batch: ConsumedBatch, control: BatchControl) => Promise<void>): Promise<void>;
  /** Moves the fetch position of a partition (applied before its next fetch; marks its current batch stale). */
  seek(topic: string, partition: number, offset: string): void;
  /** Called with the partitions of each topic this member owns after every rebalance. */
  onAssignment(listener: (assignment: Record<string, number[]>) => void): void;
  /** Called when the consumer stops on an error it could not retry. */
  onCrash(listener: (crash: ConsumerCrash) => void): void;
  commit(topic: string, partition: number, nextOffset: string): Promise<void>;
  /** Stops fetching and leaves the group, keeping the connection. */
  stop(): Promise<void>;
  disconnect(): Promise<void>;
}

export interface FluxionAdmin {
  listTopics(): Promise<string[]>;
  /** The cluster as the bootstrap broker describes it. */
  describeCluster(): Promise<{ clusterId: string; brokers: number; controller: number | null }>;
  describeTopics(names: string[]): Promise<TopicDescription[]>;
  createTopics(topics: Array<{ name: string; partitions: number; config: Record<string, string> }>): Promise<void>;
  /** Sets the given configs, keeping the topic's other non-default configs as they are. */
  alterTopicConfig(name: string, config: Record<string, string>): Promise<void>;
  deleteTopics(names: string[]): Promise<void>;
  /** Low and high watermark per partition. */
  topicOffsets(name: string): Promise<Array<{ partition: number; low: string; high: string }>>;
  groupOffsets(groupId: string, topic: string): Promise<Array<{ partition: number; offset: string }>>;
  /** Per partition, the first offset whose record timestamp is >= timestampMs (the end when none is). */
  offsetsForTimestamp(name: string, timestampMs: number): Promise<Array<{ partition: number; offset: string }>>;
  /** Kafka's state (Stable, Empty, PreparingRebalance, Dead ...) and member count of each group; an unknown group is Dead with 0 members. */
  describeGroups(groupIds: string[]): Promise<Array<{ groupId: string; state: string; members: number }>>;
  disconnect(): Promise<void>;
}

export interface KafkaClient {
  /** This process's episodes of Kafka faults (one log line each): supervisors report theirs here too. */
  readonly faults: KafkaFaultLog;
  admin(): Promise<FluxionAdmin>;
  producer(options?: { transactionalId?: string; transactionTimeoutMs?: number }): Promise<FluxionProducer>;
  consumer(options: ConsumerOptions): Promise<FluxionConsumer>;
  /**
   * Reads the given partitions of `topic` from their beginning to their end as of the call
   * (read_committed), e.g. a compacted state topic. Records of other partitions are skipped.
   * Resolves once every partition's position reached that end, also when the tail is an
   * aborted transaction (no record is delivered for it, but the position still moves).
   */
  readToEnd(topic: string, partitions: number[], onRecord: (record: ConsumedRecord) => void | 'stop' | Promise<void | 'stop'>, options?: ReadToEndOptions): Promise<number>;
}

export interface ReadToEndOptions {
  /** Called between batches, e.g. to keep the caller's own consumer-group session alive. */
  heartbeat?: () => Promise<void>;
  /** Start offsets per partition instead of the beginning. */
  fromOffsets?: Record<number, string>;
  /** End offsets per partition (exclusive) instead of the end as of the call; records at or past them may still be delivered. */
  toOffsets?: Record<number, string>;
}

export interface ConsumerOptions {
  groupId: string;
  readCommitted?: boolean;
  sessionTimeoutMs?: number;
  /** Default: a third of the session timeout. */
  heartbeatIntervalMs?: number;
  /** Upper bound of bytes per fetch (kafkajs default 10 MB): caps the work in flight. */
  maxBytes?: number;
  /**
   * Give a member the same partition numbers of every subscribed topic (default true):
   * records are placed by store on every topic, so a processor joining two topics (or a topic
   * with its state) must own the same stores on both. kafkajs's round robin does not.
   */
  copartitioned?: boolean;
  /**
   * Never restart in-process after a crash: report it through `onCrash` and let the process
   * exit, so a supervisor restarts it from the committed offsets (docs/pitfalls.md).
   */
  crashOnFailure?: boolean;
}

/** kafkajs error types a caller may branch on, without importing kafkajs. */
/**
 * Per partition of `topic` that holds committed records: the offset after its last one, and
 * how many records were read. "A consumer reached the end" is judged against these, not
 * against the end offset, which also counts transaction markers (one or several, when
 * producers' transactions end together) that no consumer ever sees.
 */
export async function offsetsAfterLastRecord(kafka: KafkaClient, topic: string, partitions: number[]): Promise<{ ends: Map<number, bigint>; records: number }> {
  const ends = new Map<number, bigint>();
  const records = await kafka.readToEnd(topic, partitions, (r) => void ends.set(r.partition, BigInt(r.offset) + 1n));
  return { ends, records };
}

export function kafkaErrorType(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 5 && e && typeof e === 'object'; i++) {
    const type = (e as { type?: unknown }).type;
    if (typeof type === 'string') return type;
    e = (e as { cause?: unknown; originalError?: unknown }).cause ?? (e as { originalError?: unknown }).originalError;
  }
  return undefined;
}

/** The broker refuses this producer: a newer one with the same transactional id took over. */
export function isProducerFenced(err: unknown): boolean {
  const type = kafkaErrorType(err);
  return type === 'INVALID_PRODUCER_EPOCH' || type === 'PRODUCER_FENCED' || /fenced/i.test((err as Error)?.message ?? '');
}

/** Bytes of keys and values per produce call, well under the broker's 1 MB batch limit. */
const MAX_BATCH_BYTES = 512 * 1024;
/** kafkajs groups a send's messages by partition copying its array per message: keep sends small. */
const MAX_BATCH_MESSAGES = 500;

const LEVEL_NAMES: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [KafkaLogLevel.ERROR]: 'error',
  [KafkaLogLevel.WARN]: 'warn',
  [KafkaLogLevel.INFO]: 'info',
  [KafkaLogLevel.DEBUG]: 'debug',
};

function toHeaders(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (v === undefined) continue;
    out[k] = Array.isArray(v) ? v.map(String).join(',') : Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
  }
  return out;
}

const SASL_FAILURE_TYPES = new Set(['SASL_AUTHENTICATION_FAILED', 'UNSUPPORTED_SASL_MECHANISM', 'ILLEGAL_SASL_STATE']);

/** The SASL failure inside a kafkajs error (it wraps them in retry errors), if there is one. */
export function saslFailureOf(err: unknown): { message: string; type?: string } | undefined {
  let e: unknown = err;
  for (let i = 0; i < 6 && e && typeof e === 'object'; i++) {
    const { name, type, message } = e as { name?: string; type?: string; message?: string };
    if (name === 'KafkaJSSASLAuthenticationError' || (type !== undefined && SASL_FAILURE_TYPES.has(type))) return { message: message ?? '', type };
    e = (e as { cause?: unknown }).cause ?? (e as { originalError?: unknown }).originalError;
  }
  return undefined;
}

/** kafkajs options for TLS and SASL, from ours (pure: unit-tested). */
export function kafkajsSecurity(options: Pick<KafkaClientOptions, 'ssl' | 'sasl'>): { ssl?: { ca?: string[]; rejectUnauthorized: boolean }; sasl?: SASLOptions } {
  return {
    ...(options.ssl ? { ssl: { ...(options.ssl.ca ? { ca: [options.ssl.ca] } : {}), rejectUnauthorized: options.ssl.rejectUnauthorized !== false } } : {}),
    ...(options.sasl ? { sasl: { mechanism: options.sasl.mechanism, username: options.sasl.username, password: options.sasl.password } as SASLOptions } : {}),
  };
}

/** What the operator should read when the brokers refuse our SASL credentials. */
export function kafkaAuthError(err: unknown, brokers: string[], sasl: KafkaSasl): KafkaAuthError | undefined {
  const failure = saslFailureOf(err);
  if (!failure) return undefined;
  const mechanism = sasl.mechanism.toUpperCase();
  // kafkajs's messages carry no secret, but a password must never reach a message by accident.
  const detail = sasl.password ? failure.message.split(sasl.password).join('***') : failure.message;
  const at = `Kafka at ${brokers.join(',')}`;
  const message =
    failure.type === 'ILLEGAL_SASL_STATE'
      ? `${at} does not speak SASL on that listener (is it a PLAINTEXT port?): KAFKA_SASL_MECHANISM=${sasl.mechanism} needs a SASL listener (${detail})`
      : failure.type === 'UNSUPPORTED_SASL_MECHANISM' || /not supported|unsupported/i.test(detail)
        ? `${at} does not accept SASL ${mechanism}: check KAFKA_SASL_MECHANISM (${detail})`
        : `${at} refused SASL ${mechanism} authentication for user "${sasl.username}": check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD, and that the user has ${mechanism} credentials (${detail})`;
  return new KafkaAuthError(message, { cause: err, context: { brokers: brokers.join(','), mechanism: sasl.mechanism, user: sasl.username } });
}

/** Node's code for a broker certificate that did not verify, inside a kafkajs error (undefined: none). */
export function tlsCertificateFailureOf(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 6 && e && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^(ERR_TLS_CERT_ALTNAME_INVALID|CERT_|UNABLE_TO_(GET|VERIFY)|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT)/.test(code)) return code;
    e = (e as { cause?: unknown }).cause ?? (e as { originalError?: unknown }).originalError;
  }
  return undefined;
}

/**
 * A SASL listener answers ApiVersions, then hangs up on a client that does not authenticate
 * (and a TLS one on a client that does not speak TLS): what to check, when `err` is that.
 */
export function closedConnectionHint(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 6 && e && typeof e === 'object'; i++) {
    if ((e as { name?: string }).name === 'KafkaJSConnectionClosedError') return '; the broker closed the connection: does this listener need authentication (KAFKA_SASL_MECHANISM) or TLS (KAFKA_SSL=true)?';
    e = (e as { cause?: unknown }).cause ?? (e as { originalError?: unknown }).originalError;
  }
  return undefined;
}

/** Translates kafkajs connection and authentication failures into our typed errors; leaves others untouched. */
function translate(err: unknown, brokers: string[], sasl: KafkaSasl | undefined, action: string): unknown {
  const auth = sasl ? kafkaAuthError(err, brokers, sasl) : undefined;
  if (auth) return auth;
  const name = (err as { name?: string })?.name ?? '';
  if (!/^KafkaJS/.test(name)) return err;
  const cert = tlsCertificateFailureOf(err);
  const at = `Kafka at ${brokers.join(',')}`;
  if (cert) {
    return new KafkaRequestError(`${at}: the brokers' TLS certificate did not verify (${cert}) while trying to ${action}: give the CA that signed it with KAFKA_SSL_CA_FILE`, { cause: err, context: { brokers: brokers.join(',') } });
  }
  const fault = classifyKafkaError(err);
  if (!fault.retriable) return new KafkaRequestError(`${at} refused to ${action}: ${fault.cause}`, { cause: err, context: { brokers: brokers.join(',') } });
  const hint = sasl ? '' : (closedConnectionHint(err) ?? '');
  return new ServiceUnavailableError(`${at} did not answer while trying to ${action}: ${(err as Error).message}${hint}`, {
    cause: err,
    context: { brokers: brokers.join(',') },
  });
}

/**
 * kafkajs 2.2.4 schedules a timer with a negative delay on Node >= 23, which prints a
 * TimeoutNegativeWarning per process (the timer fires at once, as kafkajs intended). Drop
 * that one warning so operators do not chase it; every other warning is emitted as usual.
 */
let negativeTimeoutFilterInstalled = false;
function dropKafkajsNegativeTimeoutWarning(): void {
  if (negativeTimeoutFilterInstalled) return;
  negativeTimeoutFilterInstalled = true;
  const emit = process.emitWarning.bind(process);
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const name = typeof warning === 'string' ? rest[0] : warning.name;
    if (name === 'TimeoutNegativeWarning' || (typeof rest[0] === 'object' && (rest[0] as { type?: string })?.type === 'TimeoutNegativeWarning')) return;
    (emit as (...args: unknown[]) => void)(warning, ...rest);
  }) as typeof process.emitWarning;
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
      memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 0, assignment: assignment.get(memberId)!, userData: Buffer.alloc(0) }),
    }));
  },
  protocol({ topics }) {
    return { name: 'FluxionCopartitioned', metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }) };
  },
});

/** Errors a broker answers while a new or moved partition's leadership settles. */
const SETTLING = new Set(['NOT_LEADER_FOR_PARTITION', 'NOT_LEADER_OR_FOLLOWER', 'UNKNOWN_TOPIC_OR_PARTITION', 'LEADER_NOT_AVAILABLE']);

/**
 * Runs a read-only admin call; while the partitions' leadership settles it retries for up to
 * 10 s on a freshly connected admin (kafkajs keeps its stale metadata on NOT_LEADER errors).
 */
async function whileMetadataSettles<T>(admin: Admin, renew: (() => Admin) | undefined, call: (a: Admin) => Promise<T>): Promise<T> {
  const settling = (err: unknown) => SETTLING.has((err as { type?: string }).type ?? '');
  try {
    return await call(admin);
  } catch (err) {
    if (!renew || !settling(err)) throw err;
  }
  await sleep(200);
  return withRetry(
    SETTLE_RETRY,
    async () => {
      const fresh = renew();
      try {
        await fresh.connect();
        return await call(fresh);
      } finally {
        await fresh.disconnect().catch(() => undefined);
      }
    },
    { retriable: settling },
  );
}

/** Short fixed waits for up to 10 s while a new or moved partition's leadership settles. */
const SETTLE_RETRY: RetryPolicy = { retries: Number.POSITIVE_INFINITY, initialDelayMs: 200, maxDelayMs: 200, factor: 1, maxElapsedMs: 10_000 };

export function createKafkaClient(options: KafkaClientOptions): KafkaClient {
  dropKafkajsNegativeTimeoutWarning();
  const { brokers, clientId } = options;
  const log = options.logger.child({ component: 'kafka' });
  const faults = createKafkaFaultLog(log, brokers);
  if (options.ssl?.rejectUnauthorized === false) {
    log.warn({ variable: 'KAFKA_SSL_REJECT_UNAUTHORIZED' }, 'KAFKA_SSL_REJECT_UNAUTHORIZED=false: the Kafka brokers\' TLS certificates are NOT verified, so anyone between us and them can read and change the records; give the CA with KAFKA_SSL_CA_FILE instead');
  }
  if (options.sasl?.mechanism === 'plain' && !options.ssl) {
    log.warn({ variable: 'KAFKA_SASL_MECHANISM' }, 'SASL PLAIN without TLS sends the Kafka password in clear text: set KAFKA_SSL=true (or use scram-sha-256/512)');
  }
  const kafka = new Kafka({
    clientId,
    brokers,
    ...kafkajsSecurity(options),
    ...(options.sasl ? { authenticationTimeout: options.authenticationTimeoutMs ?? 10_000 } : {}),
    connectionTimeout: options.connectionTimeoutMs ?? 5_000,
    requestTimeout: options.requestTimeoutMs ?? 30_000,
    retry: { retries: options.retries ?? 8, initialRetryTime: 200, maxRetryTime: 10_000 },
    logLevel: KafkaLogLevel.WARN,
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, ...rest } = entry;
        // Our producers retry a bounded number of times on purpose: every send is inside a
        // transaction that aborts when retries run out, so nothing partial is ever visible.
        if (message.startsWith('Limiting retries for the idempotent producer')) return;
        // kafkajs logs every failed request and connection at ERROR, then retries it (a
        // coordinator still loading after a broker start, a leader moving, a broker
        // restarting). Those count in this process's fault episode, which logs one line;
        // each stays at debug. A failure retries cannot cure reaches its caller and is
        // reported there.
        const seen = level <= KafkaLogLevel.WARN ? kafkajsLogFault(message, rest as Record<string, unknown>) : { kind: 'other' as const };
        if (seen.kind === 'fault') faults.fault(seen.cause);
        const name = seen.kind === 'other' ? (LEVEL_NAMES[level] ?? 'info') : 'debug';
        log[name]({ kafkajs: rest }, message);
      },
  });

  const partitionCounts = new Map<string, number>();
  async function partitionsOf(topic: string): Promise<number> {
    const known = partitionCounts.get(topic);
    if (known !== undefined) return known;
    // A short-lived admin: kafkajs producers do not expose their metadata. Partition counts
    // never change under us (topics ensure refuses to), so each topic is asked once.
    const metadataAdmin = kafka.admin();
    await metadataAdmin.connect();
    const meta = await metadataAdmin.fetchTopicMetadata({ topics: [topic] }).finally(() => metadataAdmin.disconnect());
    const count = meta.topics[0]?.partitions.length ?? 0;
    if (count < 1) throw new TopicLayoutError(`topic ${topic} has no partitions: run \`fluxion topics ensure\``, { context: { topic } });
    partitionCounts.set(topic, count);
    return count;
  }

  async function placed(topic: string, records: OutgoingRecord[]) {
    const count = await partitionsOf(topic);
    return records.map((r) => ({
      key: r.key,
      value: r.value,
      headers: r.headers,
      partition: r.partition === undefined ? partitionForUbicacion(r.ubicacionId, count) : r.partition % count,
    }));
  }

  function sender(target: Producer | Transaction): RecordBatchSender {
    return {
      async send(topic, records) {
        // kafkajs puts one send() in one record batch, and the broker refuses a batch over
        // message.max.bytes (1 MB by default): send a store's snapshot in slices.
        const messages = await placed(topic, records);
        const compression = kafkajsCompression(compressionFor(topic));
        let slice: typeof messages = [];
        let bytes = 0;
        for (const m of messages) {
          const size = (m.value?.length ?? 0) + (typeof m.key === 'string' ? Buffer.byteLength(m.key) : (m.key?.length ?? 0));
          if (slice.length > 0 && (bytes + size > MAX_BATCH_BYTES || slice.length >= MAX_BATCH_MESSAGES)) {
            await target.send({ topic, acks: -1, compression, messages: slice });
            slice = [];
            bytes = 0;
          }
          slice.push(m);
          bytes += size;
        }
        if (slice.length > 0) await target.send({ topic, acks: -1, compression, messages: slice });
      },
    };
  }

  return {
    faults,
    async admin() {
      const admin = kafka.admin();
      try {
        await admin.connect();
      } catch (err) {
        throw translate(err, brokers, options.sasl, 'connect the admin client');
      }
      faults.ok();
      return wrapAdmin(admin, () => kafka.admin(), () => faults.ok());
    },

    async producer(opts = {}) {
      const producer = kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        // We place every record ourselves (by ubicacion); naming the Java-compatible
        // partitioner keeps any unplaced record consistent and silences kafkajs's warning.
        createPartitioner: Partitioners.DefaultPartitioner,
        transactionalId: opts.transactionalId,
        transactionTimeout: opts.transactionTimeoutMs ?? 60_000,
        retry: { retries: options.retries ?? 8 },
      });
      // After a crash the coordinator may still be aborting the dead producer's transaction:
      // initProducerId answers CONCURRENT_TRANSACTIONS until it is done (kafkajs#296).
      await withRetry(
        { retries: Number.POSITIVE_INFINITY, initialDelayMs: 100, maxDelayMs: 2_000, factor: 2, maxElapsedMs: (opts.transactionTimeoutMs ?? 60_000) + 10_000 },
        async () => {
          try {
            await producer.connect();
          } catch (err) {
            await producer.disconnect().catch(() => undefined);
            throw err;
          }
        },
        {
          retriable: (err) => kafkaErrorType(err) === 'CONCURRENT_TRANSACTIONS',
          onRetry: (_err, attempt) => {
            if (attempt === 1) log.info({ transactionalId: opts.transactionalId }, 'previous transaction still completing: retrying');
          },
        },
      ).catch((err: unknown) => {
        throw translate(err, brokers, options.sasl, 'connect a producer');
      });
      faults.ok();
      const plain = sender(producer);
      return {
        send: plain.send,
        async transaction(work) {
          const tx = await producer.transaction();
          try {
            const result = await work({
              ...sender(tx),
              async sendOffsets(groupId, topic, offsets) {
                // kafkajs retries AddPartitionsToTxn but not AddOffsetsToTxn: right after the
                // previous commit the coordinator answers CONCURRENT_TRANSACTIONS until its
                // markers are written, and giving up would abort a good transaction.
                await withRetry(
                  { retries: 20, initialDelayMs: 20, maxDelayMs: 1_000, factor: 2 },
                  () => tx.sendOffsets({ consumerGroupId: groupId, topics: [{ topic, partitions: offsets }] }),
                  { retriable: (err) => kafkaErrorType(err) === 'CONCURRENT_TRANSACTIONS' },
                );
              },
            });
            await tx.commit();
            faults.ok();
            return result;
          } catch (err) {
            await tx.abort().catch((abortErr: unknown) => log.error({ err: abortErr }, 'transaction abort failed'));
            throw err;
          }
        },
        async disconnect() {
          await producer.disconnect();
        },
      };
    },

    async readToEnd(topic, partitions, onRecord, readOptions = {}) {
      const admin = kafka.admin();
      await admin.connect().catch((err: unknown) => {
        throw translate(err, brokers, options.sasl, 'connect the admin client');
      });
      // kafkajs cannot assign partitions by hand: a throwaway group that never commits.
      // Start offsets are seeks once the reader has joined, not admin.setOffsets: kafkajs
      // implements that with a member of its own in the group, which stays until its session
      // expires, and the reader joining behind it had its heartbeats refused as an unknown
      // member again and again (a restarted processor never finished its state load).
      const groupId = `fluxion-read-${topic}-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
      const remaining = new Map<number, bigint>();
      /** Per partition, the next offset to deliver: below it a record is skipped (read before a seek took effect, or again after one). */
      const next = new Map<number, bigint>();
      try {
        const offsets = await admin.fetchTopicOffsets(topic);
        // The end to reach per partition: the high watermark (callers fence their producers
        // before reading their state, so no transaction of theirs is still open).
        for (const p of partitions) {
          const o = offsets.find((x) => x.partition === p);
          if (!o) throw new TopicLayoutError(`topic ${topic} has no partition ${p}: run \`fluxion topics ensure\``, { context: { topic, partition: p } });
          const start = BigInt(readOptions.fromOffsets?.[p] ?? o.low);
          const wanted = readOptions.toOffsets?.[p];
          const end = wanted !== undefined && BigInt(wanted) < BigInt(o.high) ? BigInt(wanted) : BigInt(o.high);
          if (end > start) remaining.set(p, end);
          next.set(p, start);
        }
      } finally {
        await admin.disconnect();
      }
      if (remaining.size === 0) return 0;
      const reader = kafka.consumer({ groupId, readUncommitted: false, allowAutoTopicCreation: false, sessionTimeout: 10_000, heartbeatInterval: 1_000 });
      let count = 0;
      await reader.connect().catch((err: unknown) => {
        throw translate(err, brokers, options.sasl, 'connect a consumer');
      });
      try {
        await reader.subscribe({ topics: [topic], fromBeginning: true });
        await new Promise<void>((resolve, reject) => {
          let stopped = false;
          const progress = (partition: number, lastOffset: string) => {
            const end = remaining.get(partition);
            if (end !== undefined && BigInt(lastOffset) + 1n >= end) remaining.delete(partition);
            if (remaining.size === 0) resolve();
          };
          // Fires for every fetched batch, also one holding only aborted records or a
          // transaction marker, which never reaches eachBatch.
          reader.on(reader.events.END_BATCH_PROCESS, (e) => progress(e.payload.partition, e.payload.lastOffset));
          reader.on(reader.events.CRASH, (e) => reject((e.payload as { error: Error }).error));
          reader
            .run({
              autoCommit: false,
              eachBatch: async ({ batch, pause, heartbeat }) => {
                if (stopped) return;
                if (!partitions.includes(batch.partition)) {
                  pause();
                  return;
                }
                for (const m of batch.messages) {
                  const offset = BigInt(m.offset);
                  if (offset < next.get(batch.partition)!) continue;
                  next.set(batch.partition, offset + 1n);
                  count++;
                  const verdict = await onRecord({ topic, partition: batch.partition, offset: m.offset, key: m.key, value: m.value, headers: toHeaders(m.headers), timestamp: m.timestamp });
                  if (verdict === 'stop') {
                    stopped = true;
                    resolve();
                    return;
                  }
                }
                await heartbeat();
                try {
                  await readOptions.heartbeat?.();
                } catch (err) {
                  // The caller's group is rebalancing (or forgot its member): that is the
                  // caller's to handle. Thrown here it would look like this reader's own
                  // rebalance, and kafkajs would rejoin and fetch the same batch forever.
                  stopped = true;
                  reject(err);
                }
              },
            })
            .then(() => {
              // run() resolves once the reader has joined and owns every partition.
              for (const [partition, offset] of Object.entries(readOptions.fromOffsets ?? {})) {
                if (remaining.has(Number(partition))) reader.seek({ topic, partition: Number(partition), offset });
              }
            })
            .catch(reject);
        });
      } finally {
        await reader.disconnect().catch(() => undefined);
      }
      faults.ok();
      return count;
    },

    async consumer(opts) {
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
        throw translate(err, brokers, options.sasl, 'connect a consumer');
      }
      // A fetch, a heartbeat or a join that succeeded: Kafka answers (ends a fault episode).
      for (const event of [consumer.events.FETCH, consumer.events.HEARTBEAT, consumer.events.GROUP_JOIN]) consumer.on(event, () => faults.ok());
      return {
        async subscribe(topics, fromBeginning = true) {
          await consumer.subscribe({ topics, fromBeginning });
        },
        async run(handle) {
          await consumer.run({
            autoCommit: false,
            eachMessage: async ({ topic, partition, message }) => {
              await handle({
                topic,
                partition,
                offset: message.offset,
                key: message.key,
                value: message.value,
                headers: toHeaders(message.headers),
                timestamp: message.timestamp,
              });
            },
          });
        },
        async runBatches(handle) {
          await consumer.run({
            autoCommit: false,
            eachBatchAutoResolve: false,
            eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale, pause }) => {
              await handlerOutcome(() => handle(
                {
                  topic: batch.topic,
                  partition: batch.partition,
                  highWatermark: batch.highWatermark,
                  records: batch.messages.map((m) => ({
                    topic: batch.topic,
                    partition: batch.partition,
                    offset: m.offset,
                    key: m.key,
                    value: m.value,
                    headers: toHeaders(m.headers),
                    timestamp: m.timestamp,
                  })),
                },
                { resolveOffset, heartbeat, isRunning, isStale, pause },
              ));
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
    },
  };
}

/** `answered`: called after the calls a long-running reader makes again and again (it ends a fault episode). */
function wrapAdmin(admin: Admin, renew?: () => Admin, answered: () => void = () => undefined): FluxionAdmin {
  return {
    async listTopics() {
      const topics = await admin.listTopics();
      answered();
      return topics;
    },
    async describeCluster() {
      const c = await admin.describeCluster();
      return { clusterId: c.clusterId, brokers: c.brokers.length, controller: c.controller ?? null };
    },
    async describeTopics(names) {
      if (names.length === 0) return [];
      const meta = await admin.fetchTopicMetadata({ topics: names }).catch((err: unknown) => {
        // Asked about by name, a topic that does not exist is a set-up error, not a moment's wait.
        if (kafkaErrorType(err) !== 'UNKNOWN_TOPIC_OR_PARTITION') throw err;
        throw new TopicLayoutError(`missing topics among ${names.join(', ')}: run \`fluxion topics ensure\``, { cause: err, context: { topic: names.join(',') } });
      });
      const configs = await admin.describeConfigs({
        includeSynonyms: false,
        resources: names.map((name) => ({ type: 2 /* ConfigResourceTypes.TOPIC */, name })),
      });
      return meta.topics.map((t) => {
        const resource = configs.resources.find((r) => r.resourceName === t.name);
        const config: Record<string, string> = {};
        for (const entry of resource?.configEntries ?? []) {
          if (entry.configValue !== null && entry.configValue !== undefined) config[entry.configName] = entry.configValue;
        }
        return { name: t.name, partitions: t.partitions.length, config };
      });
    },
    async createTopics(topics) {
      if (topics.length === 0) return;
      // kafkajs's own waitForLeaders retries only LEADER_NOT_AVAILABLE, but a KRaft broker
      // can answer UNKNOWN_TOPIC_OR_PARTITION for a moment after the creation: wait here.
      await admin.createTopics({
        waitForLeaders: false,
        topics: topics.map<ITopicConfig>((t) => ({
          topic: t.name,
          numPartitions: t.partitions,
          replicationFactor: -1, // the broker's default: 1 on the local node, 3 on a cluster
          configEntries: Object.entries(t.config).map(([name, value]) => ({ name, value })),
        })),
      });
      const names = topics.map((t) => t.name);
      const leaderless = new TopicLayoutError(`topics ${names.join(', ')} have no leaders 30 s after their creation`, { context: { topic: names.join(',') } });
      const settling = (err: unknown) => err === leaderless || ['UNKNOWN_TOPIC_OR_PARTITION', 'LEADER_NOT_AVAILABLE'].includes((err as { type?: string }).type ?? '');
      await withRetry(
        { retries: Number.POSITIVE_INFINITY, initialDelayMs: 100, maxDelayMs: 100, factor: 1, maxElapsedMs: 30_000 },
        async () => {
          const { topics: meta } = await admin.fetchTopicMetadata({ topics: names });
          if (!(meta.length === names.length && meta.every((m) => m.partitions.length > 0 && m.partitions.every((p) => p.leader >= 0)))) throw leaderless;
        },
        { retriable: settling },
      ).catch((err: unknown) => {
        throw settling(err) ? leaderless : err;
      });
    },
    async alterTopicConfig(name, config) {
      // kafkajs has only the non-incremental AlterConfigs, which replaces the whole set:
      // send the topic's current non-default configs merged with ours, so none is lost.
      const described = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: 2, name }] });
      const current: Record<string, string> = {};
      for (const e of described.resources[0]?.configEntries ?? []) {
        if (!e.isDefault && !e.readOnly && e.configValue !== null) current[e.configName] = e.configValue;
      }
      const merged = { ...current, ...config };
      await admin.alterConfigs({
        validateOnly: false,
        resources: [{ type: 2, name, configEntries: Object.entries(merged).map(([n, value]) => ({ name: n, value })) }],
      });
    },
    async deleteTopics(names) {
      if (names.length) await admin.deleteTopics({ topics: names });
    },
    async topicOffsets(name) {
      const offsets = await whileMetadataSettles(admin, renew, (a) => a.fetchTopicOffsets(name));
      answered();
      return offsets.map((o) => ({ partition: o.partition, low: o.low, high: o.high }));
    },
    async offsetsForTimestamp(name, timestampMs) {
      const offsets = await whileMetadataSettles(admin, renew, (a) => a.fetchTopicOffsetsByTimestamp(name, timestampMs));
      return offsets.map((o) => ({ partition: o.partition, offset: o.offset }));
    },
    async groupOffsets(groupId, topic) {
      const result = await admin.fetchOffsets({ groupId, topics: [topic] });
      return (result[0]?.partitions ?? []).map((p) => ({ partition: p.partition, offset: p.offset }));
    },
    async describeGroups(groupIds) {
      if (groupIds.length === 0) return [];
      const { groups } = await admin.describeGroups(groupIds);
      return groups.map((g) => ({ groupId: g.groupId, state: g.state, members: g.members.length }));
    },
    async disconnect() {
      await admin.disconnect();
    },
  };
}
