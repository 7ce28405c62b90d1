/**
 * What Fluxion asks of Kafka, without kafkajs: the client, producer, consumer and admin
 * contracts every component codes against (core/kafka/client.ts builds them on kafkajs).
 */
import type { Logger } from '../logger.ts';
import type { KafkaFaultLog } from './faults.ts';

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
  transaction<T>(
    work: (
      tx: RecordBatchSender & {
        sendOffsets(groupId: string, topic: string, offsets: Array<{ partition: number; offset: string }>): Promise<void>;
      },
    ) => Promise<T>,
  ): Promise<T>;
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
  /**
   * Kafka's state (Stable, Empty, PreparingRebalance, Dead ...) and member count of each group;
   * an unknown group is Dead with 0 members.
   */
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
  readToEnd(
    topic: string,
    partitions: number[],
    // biome-ignore lint/suspicious/noConfusingVoidType: a callback's return; callers pass void functions, undefined refuses them
    onRecord: (record: ConsumedRecord) => void | 'stop' | Promise<void | 'stop'>,
    options?: ReadToEndOptions,
  ): Promise<number>;
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
