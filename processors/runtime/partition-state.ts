/**
 * The in-memory state and state stores of a stream processor's partitions (the spec's
 * `state`, processors/runtime/stream-processor.ts): which partitions this instance owns,
 * loading a newly owned partition's state from its state topics (from a store's checkpoint
 * when it has one: the changelog's tail only), advancing checkpoints, and dropping a
 * partition's state when it is revoked, after an aborted transaction or when the consumer
 * restarts, so it is read again from what is committed.
 */
import type { BatchControl, KafkaClient } from '../../core/kafka/client.ts';
import type { Logger } from '../../core/logger.ts';
import { memoryStateStore, openStateStore, type Checkpoint, type StateStore } from './state-store.ts';
import type { StreamProcessorSpec } from './processor-spec.ts';

/** Records a store rebuild holds in memory before writing them to disk. */
const LOAD_FLUSH_EVERY = 10_000;

export interface PartitionStateDeps {
  spec: StreamProcessorSpec<unknown>;
  kafka: KafkaClient;
  log: Logger;
  /** Names the on-disk stores (with the group id). */
  storeName: string;
  checkpointIntervalMs: number;
  /**
   * Makes sure the producers of `partition` exist before its state is read: creating one
   * fences a previous owner and makes the broker finish its open transaction, so the state
   * read is complete.
   */
  fence(topic: string, partition: number): Promise<void>;
}

export type PartitionState = ReturnType<typeof createPartitionState>;

export function createPartitionState(deps: PartitionStateDeps) {
  const { spec, kafka, log } = deps;
  const storedTopics = spec.state?.store?.topics ?? [];
  let owned = new Map<string, number[]>();
  /** Partitions whose state was loaded from the state topic. */
  const stateLoaded = new Set<number>();
  /** Open state stores by partition, and when each last advanced its checkpoint. */
  const stores = new Map<number, { store: StateStore; checkpointedAt: number }>();
  /** Stores being closed: a partition's store is opened again only once its close is done. */
  const closing = new Map<number, Promise<void>>();

  const owns = (topic: string, partition: number): boolean => (owned.get(topic) ?? []).includes(partition);

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
      const { store, wiped } = openStateStore({
        root: dir,
        name: deps.storeName,
        partition: p,
        topics: storedTopics,
        layout: spec.state!.store!.layout,
        bounds: b,
      });
      if (wiped) log.warn({ partition: p, path: store.path, why: wiped }, 'state store wiped: rebuilding it from the changelog');
      else
        log.info(
          { partition: p, path: store.path, checkpoint: store.checkpoint },
          'state store opened: reading the changelog from its checkpoint',
        );
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

  /** Forgets partition p's state: it is read again before p's next batch. */
  function drop(partition: number): void {
    spec.state?.reset(partition);
    stores.get(partition)?.store.discard();
    stateLoaded.delete(partition);
  }

  return {
    owns,
    /** The partition's store, when the spec declares one and it is open. */
    store: (partition: number): StateStore | undefined => stores.get(partition)?.store,
    drop,

    /** Records a new assignment; returns the (topic, partition) pairs this instance lost. */
    assign(assignment: Record<string, number[]>): Array<[string, number]> {
      const next = new Map(Object.entries(assignment));
      const revoked: Array<[string, number]> = [];
      const lost: number[] = [];
      for (const [topic, partitions] of owned) {
        for (const p of partitions) {
          if (next.get(topic)?.includes(p)) continue;
          revoked.push([topic, p]);
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
      return revoked;
    },

    /** Loads the state of every owned partition not loaded yet, once their producers fenced any previous owner. */
    async load(control: BatchControl): Promise<void> {
      if (!spec.state) return;
      const wanted = [...new Set([...owned.values()].flat())].filter((p) => !stateLoaded.has(p)).sort((a, b) => a - b);
      if (wanted.length === 0) return;
      for (const p of wanted) for (const topic of spec.inputTopics) if (owns(topic, p)) await deps.fence(topic, p);
      const started = Date.now();
      const text = (offsets: Record<number, bigint>) => Object.fromEntries(Object.entries(offsets).map(([p, o]) => [p, o.toString()]));
      try {
        const ends = storedTopics.length > 0 ? await openStores(wanted) : {};
        for (const topic of spec.state.topics) {
          const stored = storedTopics.includes(topic);
          const fromOffsets: Record<number, bigint> = {};
          if (stored)
            for (const p of wanted) {
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
            { heartbeat: () => control.heartbeat(), fromOffsets: text(fromOffsets) },
          );
          log.info(
            {
              topic,
              partitions: wanted,
              records: applied,
              read: records,
              fromOffsets: stored ? text(fromOffsets) : undefined,
              ms: Date.now() - started,
            },
            'state loaded',
          );
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
    },

    /**
     * The checkpoint the next transaction of partition p may record once it commits, when one
     * is due (every `checkpointIntervalMs`): the stored topics' ends now, before it starts. Only
     * this instance writes p of the state topics, and records past these ends would be another
     * owner's only if that owner had fenced our producer first, failing our transaction: so after
     * our commit the store holds exactly the changelog up to these ends, plus our transaction.
     * (Read after the commit instead, the ends could include a new owner's records when this
     * instance stalled past its session: the checkpoint would skip them.)
     */
    async checkpointMark(partition: number): Promise<Checkpoint | undefined> {
      const open = stores.get(partition);
      if (!open || spec.state?.store?.dir === undefined || Date.now() - open.checkpointedAt < deps.checkpointIntervalMs) return undefined;
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
    },

    /** After the consumer ended: every partition's state is dropped, as a restarted process starts. */
    async tearDown(): Promise<void> {
      const partitions = new Set([...stateLoaded, ...[...owned.values()].flat()]);
      for (const p of partitions) spec.state?.reset(p);
      for (const p of [...stores.keys()]) closeStore(p);
      await Promise.all(closing.values());
      stateLoaded.clear();
      owned = new Map();
    },
  };
}
