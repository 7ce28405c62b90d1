/**
 * The shared consume-transform-produce runtime of every processor (issue 4): exactly-once
 * through Kafka transactions, as docs/pitfalls.md describes for kafkajs.
 *
 * - read_committed consumer, no auto-commit, bounded batches (`maxBatch` records).
 * - One transaction per batch slice: outputs, DLQ records and the input offset (last + 1)
 *   commit together; any transaction failure aborts and seeks back to the first
 *   uncommitted offset, so nothing is lost or written twice.
 * - One transactional producer per input partition, `${name}-${groupId}-${topic}-${partition}`:
 *   a restarted or newly assigned instance fences the previous owner of that partition and
 *   the broker aborts its open transaction (kafkajs's TxnOffsetCommit is too old for
 *   generation fencing). After fencing, the committed offset is read again and records
 *   below it are skipped (kafkajs cannot ask for stable offsets, KIP-447).
 * - A record that cannot be decoded or processed goes, with its original bytes, to
 *   `<topic>.dlq` in the same transaction; the stream continues.
 * - Stops working on a batch when it becomes stale (rebalance, seek) or the consumer stops.
 * - Kafka's retriable faults (a broker restarting, a coordinator loading) are ridden out
 *   in-process by core/kafka/supervised-consumer.ts: after a crash every producer is closed
 *   and every partition's state dropped, as a process restart would, and the consumer starts
 *   again from what is committed. A non-retriable crash rejects `run()`: the process exits
 *   non-zero and its supervisor restarts it.
 */
import {
  isProducerFenced,
  kafkaErrorType,
  type BatchControl,
  type ConsumedBatch,
  type ConsumedRecord,
  type FluxionConsumer,
  type FluxionProducer,
  type KafkaClient,
  type OutgoingRecord,
} from '../../core/kafka/client.ts';
import { isRetriableKafkaError } from '../../core/kafka/faults.ts';
import { backoffDelay, sleep, type RetryPolicy } from '../../core/retry.ts';
import { superviseConsumer, type SupervisedConsumer } from '../../core/kafka/supervised-consumer.ts';
import { dlqRecord } from '../../core/dlq.ts';
import { errorMessage, FluxionError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { dlqTopic } from '../../core/topics.ts';
import { defaultRuntimeMetrics, type RuntimeMetrics } from './metrics.ts';
import { memoryStateStore, openStateStore, type Checkpoint, type KeyValueState, type StateStore } from './state-store.ts';

export type { ConsumedRecord };

export interface ProcessorContext {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  headers: Record<string, string>;
  timestamp: string;
  /** The partition's state store, when the spec's state declares one (`state.store`). */
  store?: KeyValueState;
}

export interface Output {
  topic: string;
  /** Placement: the output goes to the partition of this store. */
  ubicacionId: string;
  key: string | Buffer | null;
  value: Buffer | null;
  headers?: Record<string, string>;
}

export interface StreamProcessorSpec<I = unknown> {
  /** Names the transactional ids (with the group id); one per processor kind. */
  name: string;
  inputTopics: string[];
  /** Decodes and validates one record; a throw sends the record to its topic's DLQ. */
  decode(record: ConsumedRecord): Promise<I>;
  /** Turns one decoded input into encoded outputs; a throw sends the record to its topic's DLQ. */
  process(input: I, ctx: ProcessorContext): Promise<Output[]>;
  /**
   * In-memory state rebuilt from compacted topics, co-partitioned with the inputs. Before
   * the first batch of a newly owned partition p, partition p of every state topic is read
   * to its end into `load`. `reset(p)` forgets partition p: on revocation, and after any
   * aborted transaction on p, whose in-memory effects must not survive (p is then read
   * again from the committed state and the committed input offsets).
   */
  state?: {
    topics: string[];
    /** `store` is the record's partition's state store, when `store` below is declared. */
    load(record: ConsumedRecord, store?: KeyValueState): void | Promise<void>;
    reset(partition: number): void;
    /**
     * A state store per input partition (processors/runtime/state-store.ts) for the state
     * topics `topics` (a subset of the state topics): written by `process` through
     * `ctx.store` and by `load`, flushed to disk after each committed transaction, and
     * read back from its checkpoint on a restart, so only the changelog's tail is loaded.
     * `dir` undefined keeps the store in memory (loaded in full, as any in-memory state).
     * `layout` names what the processor writes into its store: change it with the stored
     * format, and stores written in the former one are wiped and rebuilt instead of misread.
     */
    store?: { topics: string[]; dir: string | undefined; layout: string };
  };
  /**
   * The input offset to commit for a slice that ends before `next`. A processor that holds
   * records in memory across transactions (chunks of a snapshot still being assembled)
   * returns the offset of the first one, so a restart reads them again. Default `next`.
   */
  commitOffset?(topic: string, partition: number, next: bigint): bigint;
}

export interface StreamProcessorDeps {
  kafka: KafkaClient;
  logger: Logger;
  metrics?: RuntimeMetrics;
}

export interface StreamProcessorOptions {
  groupId: string;
  /** Records per transaction (default 500). */
  maxBatch?: number;
  /** Transaction timeout (default 60 s): how long a dead instance's open transaction can block readers. */
  transactionTimeoutMs?: number;
  /** Consumer session timeout (default 30 s): how long a dead member holds its partitions. */
  sessionTimeoutMs?: number;
  /** Bytes per fetch (default 1 MB): bounds the records in memory. */
  maxBytes?: number;
  /** Failed transactions in a row on one partition before the processor gives up (default 10). */
  maxConsecutiveFailures?: number;
  /** How often a state store's checkpoint is advanced while processing (default 10 s). */
  checkpointIntervalMs?: number;
}

export interface StreamProcessor {
  /** Resolves after `stop()`; rejects when the consumer crashes or a partition keeps failing. */
  run(): Promise<void>;
  /** Aborts the open transaction (if any), leaves the group, disconnects. */
  stop(): Promise<void>;
}

export class StreamProcessorError extends FluxionError {
  constructor(message: string, options: ConstructorParameters<typeof FluxionError>[1] = {}) {
    super(message, { code: 'STREAM_PROCESSOR', ...options });
  }
}

/** Waits between failed transactions of one partition (its own failures, not Kafka's: those restart the consumer). */
const PARTITION_RETRY: RetryPolicy = { retries: Number.POSITIVE_INFINITY, initialDelayMs: 200, maxDelayMs: 5_000, factor: 2 };

/** Records a store rebuild holds in memory before writing them to disk. */
const LOAD_FLUSH_EVERY = 10_000;

/** Thrown inside a transaction to abort it because the batch is no longer ours to process. */
class BatchAbandoned extends Error {}

interface PartitionProducer {
  producer: FluxionProducer;
  /** Offsets below it were committed by a previous owner: skip them (checked once, after fencing). */
  committed: bigint | undefined;
  failures: number;
}

export function createStreamProcessor<I = unknown>(spec: StreamProcessorSpec<I>, deps: StreamProcessorDeps, options: StreamProcessorOptions): StreamProcessor {
  // Arguments are checked before any I/O.
  if (!spec.name || /[^A-Za-z0-9._-]/.test(spec.name)) throw new StreamProcessorError(`processor name must be [A-Za-z0-9._-]+, got "${spec.name}"`);
  if (spec.inputTopics.length === 0) throw new StreamProcessorError(`processor ${spec.name} has no input topics`);
  if (!options.groupId) throw new StreamProcessorError(`processor ${spec.name} needs a group id`);
  if (spec.state && spec.state.topics.length === 0) throw new StreamProcessorError(`processor ${spec.name} has state but no state topic`);
  const storedTopics = spec.state?.store?.topics ?? [];
  for (const t of storedTopics) if (!spec.state!.topics.includes(t)) throw new StreamProcessorError(`processor ${spec.name}: stored topic ${t} is not one of its state topics`);
  const checkpointEvery = options.checkpointIntervalMs ?? 10_000;
  const maxBatch = options.maxBatch ?? 500;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new StreamProcessorError(`maxBatch must be a positive integer, got ${maxBatch}`);
  const maxFailures = options.maxConsecutiveFailures ?? 10;
  const { groupId } = options;
  const { kafka } = deps;
  const metrics = deps.metrics ?? defaultRuntimeMetrics();
  const log = deps.logger.child({ component: 'stream-processor', processor: spec.name, groupId });
  const name = spec.name;

  let consumer: SupervisedConsumer | undefined;
  const producers = new Map<string, PartitionProducer>();
  const revoked = new Set<string>();
  /** Partitions whose state was loaded from the state topic. */
  const stateLoaded = new Set<number>();
  /** Open state stores by partition, and when each last advanced its checkpoint. */
  const stores = new Map<number, { store: StateStore; checkpointedAt: number }>();
  /** Stores being closed: a partition's store is opened again only once its close is done. */
  const closing = new Map<number, Promise<void>>();
  let owned = new Map<string, number[]>();
  let stopping = false;

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
    const producer = await kafka.producer({ transactionalId: id, transactionTimeoutMs: options.transactionTimeoutMs ?? 60_000 });
    let committed: bigint | undefined;
    const admin = await kafka.admin();
    try {
      const offset = (await admin.groupOffsets(groupId, topic)).find((o) => o.partition === partition)?.offset;
      if (offset !== undefined && BigInt(offset) >= 0n) committed = BigInt(offset);
    } finally {
      await admin.disconnect();
    }
    const entry: PartitionProducer = { producer, committed, failures: 0 };
    producers.set(key, entry);
    log.info({ topic, partition, transactionalId: id, committed: committed?.toString() }, 'partition producer ready');
    return entry;
  }

  /**
   * Loads the state of every owned partition not loaded yet. The producers of those
   * partitions are created first: creating one fences a previous owner and makes the
   * broker finish its open transaction, so the state read here is complete.
   */
  async function loadState(control: BatchControl): Promise<void> {
    if (!spec.state) return;
    const wanted = [...new Set([...owned.values()].flat())].filter((p) => !stateLoaded.has(p)).sort((a, b) => a - b);
    if (wanted.length === 0) return;
    for (const p of wanted) for (const topic of spec.inputTopics) if ((owned.get(topic) ?? []).includes(p)) await partitionProducer(topic, p);
    const started = Date.now();
    try {
      const ends = storedTopics.length > 0 ? await openStores(wanted) : {};
      for (const topic of spec.state.topics) {
        const stored = storedTopics.includes(topic);
        const fromOffsets: Record<number, bigint> = {};
        if (stored) for (const p of wanted) {
          const at = stores.get(p)!.store.checkpoint[topic];
          if (at !== undefined) fromOffsets[p] = BigInt(at);
        }
        let applied = 0;
        // A store with a checkpoint reads the changelog from there: the tail only.
        const records = await kafka.readToEnd(
          topic,
          wanted,
          async (r) => {
            const from = fromOffsets[r.partition];
            // A fetch can hand back the start of the record batch holding the checkpoint.
            if (from !== undefined && BigInt(r.offset) < from) return;
            applied++;
            const store = stored ? stores.get(r.partition)!.store : undefined;
            await spec.state!.load(r, store);
            // A rebuild writes to disk as it goes: without a new checkpoint the store stays a
            // prefix of the changelog, which the next load replays onto safely.
            if (store && store.pending >= LOAD_FLUSH_EVERY) store.flush();
          },
          { heartbeat: () => control.heartbeat(), fromOffsets: Object.fromEntries(Object.entries(fromOffsets).map(([p, o]) => [p, o.toString()])) },
        );
        log.info({ topic, partitions: wanted, records: applied, read: records, fromOffsets: stored ? Object.fromEntries(Object.entries(fromOffsets).map(([p, o]) => [p, o.toString()])) : undefined, ms: Date.now() - started }, 'state loaded');
      }
      // The ends were taken before reading, and each read went at least that far.
      for (const p of wanted) stores.get(p)?.store.flush(ends[p]);
    } catch (err) {
      // Half-loaded state must not stay: it is read again from the start next time.
      for (const p of wanted) {
        spec.state.reset(p);
        stores.get(p)?.store.discard();
      }
      throw err;
    }
    for (const p of wanted) stateLoaded.add(p);
  }

  /** Opens the store of each partition not open yet; returns, per partition, the stored topics' ends now. */
  async function openStores(partitions: number[]): Promise<Record<number, Record<string, string>>> {
    const bounds: Record<number, Record<string, { low: string; high: string }>> = {};
    const admin = await kafka.admin();
    try {
      for (const t of storedTopics) {
        for (const o of await admin.topicOffsets(t)) (bounds[o.partition] ??= {})[t] = { low: o.low, high: o.high };
      }
    } finally {
      await admin.disconnect();
    }
    const ends: Record<number, Record<string, string>> = {};
    for (const p of partitions) {
      const b = bounds[p] ?? {};
      ends[p] = Object.fromEntries(Object.entries(b).map(([t, o]) => [t, o.high]));
      const open = stores.get(p);
      if (open) {
        open.store.discard();
        continue;
      }
      await closing.get(p);
      const dir = spec.state!.store!.dir;
      if (dir === undefined) {
        stores.set(p, { store: memoryStateStore(p), checkpointedAt: Date.now() });
        continue;
      }
      const { store, wiped } = openStateStore({ root: dir, name: `${name}-${groupId}`.replace(/[^A-Za-z0-9._-]/g, '_'), partition: p, topics: storedTopics, layout: spec.state!.store!.layout, bounds: b });
      if (wiped) log.warn({ partition: p, path: store.path, why: wiped }, 'state store wiped: rebuilding it from the changelog');
      else log.info({ partition: p, path: store.path, checkpoint: store.checkpoint }, 'state store opened: reading the changelog from its checkpoint');
      stores.set(p, { store, checkpointedAt: Date.now() });
    }
    return ends;
  }

  /** Closes a partition's store (revoked, or the consumer restarting): pending writes are dropped. */
  function closeStore(partition: number): void {
    const open = stores.get(partition);
    if (!open) return;
    stores.delete(partition);
    open.store.discard();
    const done = open.store
      .close()
      .catch((err: unknown) => log.warn({ err, partition }, 'state store close failed'))
      .finally(() => {
        if (closing.get(partition) === done) closing.delete(partition);
      });
    closing.set(partition, done);
  }

  /**
   * The checkpoint the next transaction of partition p may record once it commits, when one
   * is due (every `checkpointEvery`): the stored topics' ends now, before it starts. Only
   * this instance writes p of the state topics, and records past these ends would be another
   * owner's only if that owner had fenced our producer first, failing our transaction: so after
   * our commit the store holds exactly the changelog up to these ends, plus our transaction.
   * (Read after the commit instead, the ends could include a new owner's records when this
   * instance stalled past its session: the checkpoint would skip them.)
   */
  async function checkpointMark(partition: number): Promise<Checkpoint | undefined> {
    const open = stores.get(partition);
    if (!open || spec.state?.store?.dir === undefined || Date.now() - open.checkpointedAt < checkpointEvery) return undefined;
    open.checkpointedAt = Date.now();
    const mark: Checkpoint = {};
    try {
      const admin = await kafka.admin();
      try {
        for (const t of storedTopics) {
          const high = (await admin.topicOffsets(t)).find((o) => o.partition === partition)?.high;
          if (high === undefined) return undefined;
          mark[t] = high;
        }
      } finally {
        await admin.disconnect();
      }
    } catch (err) {
      // Only the restart cost grows: the next transaction tries again.
      log.warn({ err, partition }, 'state store checkpoint not advanced: the changelog end could not be read');
      return undefined;
    }
    return mark;
  }

  /**
   * After an aborted transaction on partition p: drop p's in-memory state (read again
   * before the next batch) and move every input of p back to its committed offset.
   */
  async function resync(partition: number): Promise<void> {
    if (!spec.state && !spec.commitOffset) return;
    spec.state?.reset(partition);
    stores.get(partition)?.store.discard();
    stateLoaded.delete(partition);
    // Recreated producers fence again: the broker then has finished writing the markers of
    // every earlier transaction, so the state read next (to the last stable offset) is whole.
    for (const topic of spec.inputTopics) await closeProducer(keyOf(topic, partition));
    const admin = await kafka.admin();
    try {
      for (const topic of spec.inputTopics) {
        if (!(owned.get(topic) ?? []).includes(partition)) continue;
        const committed = (await admin.groupOffsets(groupId, topic)).find((o) => o.partition === partition)?.offset;
        const offset = committed !== undefined && BigInt(committed) >= 0n ? committed : (await admin.topicOffsets(topic)).find((o) => o.partition === partition)?.low ?? '0';
        consumerOrThrow().seek(topic, partition, offset);
        log.info({ topic, partition, offset }, 'state reset after an aborted transaction: reading again from the committed offset');
      }
    } finally {
      await admin.disconnect();
    }
  }

  function onAssignment(assignment: Record<string, number[]>): void {
    const next = new Map(Object.entries(assignment));
    const lost: number[] = [];
    for (const [topic, partitions] of owned) {
      for (const p of partitions) {
        if (next.get(topic)?.includes(p)) continue;
        revoked.add(keyOf(topic, p));
        if (!lost.includes(p)) lost.push(p);
      }
    }
    owned = next;
    log.info({ assignment }, 'partitions assigned');
    const gone = lost.filter((p) => ![...next.values()].some((ps) => ps.includes(p)));
    if (gone.length > 0) {
      log.info({ partitions: gone }, 'partitions revoked: their state is dropped');
      for (const p of gone) {
        stateLoaded.delete(p);
        spec.state?.reset(p);
        closeStore(p);
      }
    }
  }

  /** Runs one slice in one transaction; false when it was aborted. */
  async function transact(entry: PartitionProducer, batch: ConsumedBatch, slice: ConsumedRecord[], control: BatchControl): Promise<boolean> {
    const { topic, partition } = batch;
    const last = slice[slice.length - 1]!;
    const outputs = new Map<string, OutgoingRecord[]>();
    let outCount = 0;
    let dlqCount = 0;
    const push = (t: string, r: OutgoingRecord) => {
      const list = outputs.get(t);
      if (list) list.push(r);
      else outputs.set(t, [r]);
    };
    const mark = await checkpointMark(partition);
    try {
      await entry.producer.transaction(async (tx) => {
        for (let i = 0; i < slice.length; i++) {
          if (stopping || !control.isRunning() || control.isStale()) throw new BatchAbandoned();
          const record = slice[i]!;
          try {
            const input = await spec.decode(record);
            const ctx: ProcessorContext = { topic, partition, offset: record.offset, key: record.key, headers: record.headers, timestamp: record.timestamp, store: stores.get(partition)?.store };
            for (const o of await spec.process(input, ctx)) {
              push(o.topic, { ubicacionId: o.ubicacionId, key: o.key, value: o.value, headers: o.headers });
              outCount++;
            }
          } catch (err) {
            // A service that did not answer (the registry, say) is no fault of the record:
            // abort and retry the transaction rather than bury a good record in the DLQ.
            if (err instanceof FluxionError && err.retriable) throw err;
            log.warn({ topic, partition, offset: record.offset, err }, 'record sent to the DLQ');
            push(dlqTopic(topic), dlqRecord(record, err));
            dlqCount++;
          }
          if (i % 100 === 99) await control.heartbeat();
        }
        for (const [t, records] of outputs) await tx.send(t, records);
        if (stopping || !control.isRunning() || control.isStale()) throw new BatchAbandoned();
        const next = BigInt(last.offset) + 1n;
        await tx.sendOffsets(groupId, topic, [{ partition, offset: (spec.commitOffset?.(topic, partition, next) ?? next).toString() }]);
      });
    } catch (err) {
      // Whatever the transaction wrote to the store is not in the changelog.
      stores.get(partition)?.store.discard();
      const abandoned = err instanceof BatchAbandoned;
      metrics.aborts.inc({ processor: name, reason: abandoned ? 'abandoned' : 'error' });
      if (abandoned) {
        log.info({ topic, partition, offset: slice[0]!.offset }, 'batch abandoned (stopping or revoked): transaction aborted');
        return false;
      }
      // Kafka itself failing (a broker restarting, a connection reset) is no fault of this
      // partition: the consumer is restarted from what is committed once Kafka answers.
      if (isRetriableKafkaError(err) && !isProducerFenced(err) && kafkaErrorType(err) !== 'CONCURRENT_TRANSACTIONS') throw err;
      entry.failures++;
      log.warn({ topic, partition, offset: slice[0]!.offset, err, kafkaError: kafkaErrorType(err), failures: entry.failures }, 'transaction aborted: will retry from the first uncommitted offset');
      // A fenced producer (or any broken one) is replaced, which fences again and re-reads
      // the committed offset before the next attempt.
      await closeProducer(keyOf(topic, partition));
      if (entry.failures >= maxFailures) {
        throw new StreamProcessorError(`processor ${name}: ${entry.failures} transactions in a row failed on ${topic}[${partition}]: ${errorMessage(err)}`, {
          cause: err,
          context: { topic, partition, offset: slice[0]!.offset },
        });
      }
      if (isProducerFenced(err)) log.warn({ topic, partition }, 'producer fenced: another instance may own this partition');
      await sleep(backoffDelay(PARTITION_RETRY, entry.failures));
      return false;
    }
    entry.failures = 0;
    // Committed: the transaction's store writes go to disk, with the checkpoint if one was due.
    stores.get(partition)?.store.flush(mark);
    metrics.transactions.inc({ processor: name });
    metrics.recordsIn.inc({ processor: name, topic }, slice.length);
    for (const [t, records] of outputs) {
      if (t === dlqTopic(topic)) metrics.recordsDlq.inc({ processor: name, topic }, records.length);
      else metrics.recordsOut.inc({ processor: name, topic: t }, records.length);
    }
    log.debug({ topic, partition, from: slice[0]!.offset, to: last.offset, out: outCount, dlq: dlqCount }, 'transaction committed');
    return true;
  }

  async function handleBatch(batch: ConsumedBatch, control: BatchControl): Promise<void> {
    for (const key of revoked) {
      revoked.delete(key);
      if (!(owned.get(key.split('\u0000')[0]!) ?? []).includes(Number(key.split('\u0000')[1]))) await closeProducer(key);
    }
    const { topic, partition } = batch;
    if (stopping || !control.isRunning() || control.isStale() || batch.records.length === 0) return;
    const entry = await partitionProducer(topic, partition);
    await loadState(control);
    let records = batch.records;
    if (entry.committed !== undefined) {
      const committed = entry.committed;
      entry.committed = undefined;
      const first = BigInt(records[0]!.offset);
      if (first < committed) {
        records = records.filter((r) => BigInt(r.offset) >= committed);
        log.warn({ topic, partition, fetched: first.toString(), committed: committed.toString() }, 'skipping records a previous owner already committed');
        if (records.length === 0) {
          consumerOrThrow().seek(topic, partition, committed.toString());
          return;
        }
      }
    }
    for (let i = 0; i < records.length; i += maxBatch) {
      if (stopping || !control.isRunning() || control.isStale()) return;
      const slice = records.slice(i, i + maxBatch);
      const ok = await transact(entry, batch, slice, control);
      if (!ok) {
        if (stopping) return;
        if (spec.state || spec.commitOffset) {
          // The aborted slice may have changed the in-memory state, and records before it
          // may be held back: start again from what is committed.
          if ((owned.get(topic) ?? []).includes(partition)) await resync(partition);
        } else if (control.isRunning() && !control.isStale()) {
          // Not resolved: the next fetch starts at the first uncommitted offset again; the
          // seek also marks what is left of this fetch stale.
          consumerOrThrow().seek(topic, partition, slice[0]!.offset);
        }
        return;
      }
      control.resolveOffset(slice[slice.length - 1]!.offset);
      await control.heartbeat();
    }
  }

  function consumerOrThrow(): FluxionConsumer {
    if (!consumer) throw new StreamProcessorError(`processor ${name} is not running`);
    return consumer.current();
  }

  /**
   * After the consumer ended: every producer is closed (the next ones fence again and read
   * the committed offsets) and every partition's state is dropped (read again before the next
   * batch), exactly what a restarted process starts from.
   */
  async function tearDown(): Promise<void> {
    for (const key of [...producers.keys()]) await closeProducer(key);
    const partitions = new Set([...stateLoaded, ...[...owned.values()].flat()]);
    for (const p of partitions) spec.state?.reset(p);
    for (const p of [...stores.keys()]) closeStore(p);
    await Promise.all(closing.values());
    stateLoaded.clear();
    owned = new Map();
    revoked.clear();
  }

  return {
    async run() {
      if (consumer) throw new StreamProcessorError(`processor ${name} is already running`);
      consumer = superviseConsumer(kafka, deps.logger, {
        name: `processor ${name}`,
        consumer: { groupId, readCommitted: true, sessionTimeoutMs: options.sessionTimeoutMs, maxBytes: options.maxBytes ?? 1024 * 1024 },
        topics: spec.inputTopics,
        onAssignment,
        handle: handleBatch,
        tearDown,
      });
      log.info({ inputTopics: spec.inputTopics, maxBatch }, 'processor starting');
      await consumer.run();
    },
    async stop() {
      log.info('processor stopping');
      stopping = true;
      await consumer?.stop();
      log.info('processor stopped');
    },
  };
}
