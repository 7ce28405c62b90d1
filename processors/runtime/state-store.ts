/**
 * A processor's local state store (issue 16): one per input partition, on disk (LMDB through
 * the `lmdb` package), so a processor's memory is bounded by what one transaction writes and
 * not by the number of keys. docs/state-stores.md is the operator's view.
 *
 * The compacted state topic (the changelog) stays the source of truth; the store is a cache
 * of it that survives restarts. Why it can never be ahead of Kafka, even under `kill -9`:
 * - Writes made while processing go to an overlay in memory (`put`/`delete`, read back by
 *   `get`/`entries`) and reach the disk only in `flush`, which the runtime calls after the
 *   Kafka transaction that wrote the same records to the changelog committed. An aborted
 *   transaction `discard`s the overlay.
 * - A flush and its checkpoint (the changelog offset the store has applied, per state topic)
 *   are one LMDB transaction: both land or neither does.
 * So the disk always holds the fold of a prefix of the committed changelog, at or past its
 * checkpoint. Replaying the changelog from the checkpoint onto it converges to the fold of
 * the whole changelog (a record is a key's whole value, applied in order), which is how a
 * restart reads only the tail.
 *
 * A store is wiped and rebuilt from the start of the changelog when it has no checkpoint (new,
 * or a rebuild that was interrupted), when its checkpoint is outside the changelog (topic
 * recreated, or records deleted below it), when the checkpoint is older than
 * `maxCheckpointAgeMs` (compaction may have removed a tombstone the store never saw), or when
 * it was written for other state topics.
 *
 * One process at a time: a store directory is locked by a file naming the host and pid. A
 * directory locked by a live process (a previous owner of the partition still shutting down
 * on the same host) is not shared: the new owner rebuilds in a private directory instead.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { open, TransactionFlags, type RootDatabase } from 'lmdb';
import { FluxionError } from '../../core/errors.ts';

/** Meta keys sort before every data key (data keys never start with a control character). */
const META_CHECKPOINT = '\u0000checkpoint';
const LOCK_FILE = 'owner.lock';

/**
 * A tombstone written after the checkpoint stays in the changelog at least delete.retention.ms
 * (24 h on every compacted topic, core/topics.ts), so a store restarted within 20 h of its
 * checkpoint still reads every deletion it missed; 4 h are left for a slow restart. 20 h also
 * covers a night without snapshots, when the checkpoint does not move.
 */
export const DEFAULT_MAX_CHECKPOINT_AGE_MS = 20 * 3600_000;

export class StateStoreError extends FluxionError {
  constructor(message: string, options: ConstructorParameters<typeof FluxionError>[1] = {}) {
    super(message, { code: 'STATE_STORE', ...options });
  }
}

/** The changelog offsets a store has applied: per state topic, the next offset to read. */
export type Checkpoint = Record<string, string>;

interface StoredCheckpoint {
  topics: string[];
  /** What the processor stores and how (OpenStateStoreOptions.layout); absent in stores of the first layout. */
  layout?: string;
  offsets: Checkpoint;
  at: number;
}

/** What a processor reads and writes: string keys and string values. */
export interface KeyValueState {
  get(key: string): string | undefined;
  put(key: string, value: string): void;
  delete(key: string): void;
  /** Entries whose key starts with `prefix`, in key order, pending writes included. */
  entries(prefix: string): Iterable<[string, string]>;
}

export interface StateStore extends KeyValueState {
  readonly partition: number;
  readonly path: string;
  /** Offsets to read the changelog from; empty when the store was (re)built empty. */
  readonly checkpoint: Checkpoint;
  /** Writes the pending writes to disk, with a new checkpoint if given: one atomic LMDB transaction. */
  flush(checkpoint?: Checkpoint): void;
  /** Drops the pending writes (their Kafka transaction aborted). */
  discard(): void;
  /** Pending writes (bounds the memory of one transaction). */
  readonly pending: number;
  close(): Promise<void>;
}

export interface OpenStateStoreOptions {
  /** Root of every store of the process (FLUXION_STATE_DIR). */
  root: string;
  /** Names the store's directory: `<root>/<name>/<partition>`. */
  name: string;
  partition: number;
  /** The state topics the store holds: a checkpoint written for others is void. */
  topics: string[];
  /** The processor's name for what it stores: a checkpoint written under another is void. */
  layout: string;
  /** Per state topic and partition: the changelog's [low, high) offsets now. */
  bounds: Record<string, { low: string; high: string }>;
  maxCheckpointAgeMs?: number;
  now?: () => number;
}

export interface OpenedStateStore {
  store: StateStore;
  /** Why the store was wiped (null when its checkpoint was taken). */
  wiped: string | null;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Directories locked by this process: a second store of the same partition in one process
 * (tests, a bench) must not share an open LMDB environment.
 */
const lockedHere = new Set<string>();
let privateSeq = 0;

/** Takes the directory's lock; false when a live process (or one on another host), or another store of this process, holds it. */
function lock(dir: string): boolean {
  if (lockedHere.has(dir)) return false;
  const file = join(dir, LOCK_FILE);
  const me = `${hostname()} ${process.pid}`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, me);
      closeSync(fd);
      lockedHere.add(dir);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const [host, pid] = readFileSync(file, 'utf8').split(' ');
      // A lock left by a process killed on this host is stale; one of another host is not ours to judge.
      if (host !== hostname() || (Number(pid) !== process.pid && pidAlive(Number(pid)))) return false;
      rmSync(file, { force: true });
    }
  }
  return false;
}

/** Why the stored checkpoint cannot be used, or null. */
export function checkpointProblem(
  stored: StoredCheckpoint | undefined,
  o: Pick<OpenStateStoreOptions, 'topics' | 'layout' | 'bounds' | 'maxCheckpointAgeMs'>,
  now: number,
): string | null {
  if (!stored) return 'no checkpoint (new store, or a rebuild that did not finish)';
  if ((stored.layout ?? '') !== o.layout)
    return `store written in layout "${stored.layout ?? ''}", the processor now writes "${o.layout}"`;
  if (stored.topics.join('\n') !== o.topics.join('\n')) return `checkpoint written for other state topics (${stored.topics.join(', ')})`;
  const maxAge = o.maxCheckpointAgeMs ?? DEFAULT_MAX_CHECKPOINT_AGE_MS;
  if (now - stored.at > maxAge)
    return `checkpoint older than ${Math.round(maxAge / 60_000)} min: compaction may have removed tombstones it never applied`;
  for (const t of o.topics) {
    const at = stored.offsets[t];
    const b = o.bounds[t];
    if (at === undefined || !b) return `checkpoint has no offset for ${t}`;
    if (BigInt(at) < BigInt(b.low)) return `checkpoint ${t}@${at} is below the changelog's first offset ${b.low}`;
    if (BigInt(at) > BigInt(b.high)) return `checkpoint ${t}@${at} is past the changelog's end ${b.high} (topic recreated?)`;
  }
  return null;
}

export function openStateStore(o: OpenStateStoreOptions): OpenedStateStore {
  const shared = join(o.root, o.name, String(o.partition));
  mkdirSync(shared, { recursive: true });
  let path = shared;
  let privateDir = false;
  let wiped: string | null = null;
  if (!lock(shared)) {
    path = join(o.root, o.name, `${o.partition}.${process.pid}.${++privateSeq}`);
    rmSync(path, { recursive: true, force: true });
    mkdirSync(path, { recursive: true });
    privateDir = true;
    wiped = `directory ${shared} is held by another live process or store: rebuilding in ${path}`;
  }
  let db: RootDatabase<string, string>;
  try {
    db = open<string, string>({ path: join(path, 'store'), encoding: 'string', compression: false });
  } catch (err) {
    throw new StateStoreError(`cannot open the state store ${path}: ${(err as Error).message}`, { cause: err, context: { path } });
  }
  const stored = db.get(META_CHECKPOINT);
  const problem =
    wiped ?? checkpointProblem(stored === undefined ? undefined : (JSON.parse(stored) as StoredCheckpoint), o, (o.now ?? Date.now)());
  let checkpoint: Checkpoint = {};
  if (problem) {
    wiped = problem;
    db.clearSync();
  } else {
    checkpoint = (JSON.parse(stored!) as StoredCheckpoint).offsets;
  }
  const overlay = new Map<string, string | null>();
  let closed = false;

  const store: StateStore = {
    partition: o.partition,
    path,
    get checkpoint() {
      return checkpoint;
    },
    get pending() {
      return overlay.size;
    },
    get(key) {
      const v = overlay.get(key);
      if (v !== undefined) return v ?? undefined;
      return db.get(key);
    },
    put(key, value) {
      overlay.set(key, value);
    },
    delete(key) {
      overlay.set(key, null);
    },
    *entries(prefix) {
      // The first key past every key with this prefix (its last character plus one).
      // An empty prefix is every data key: past the meta keys, which start with \u0000.
      const start = prefix === '' ? '\u0001' : prefix;
      const end = prefix === '' ? undefined : prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
      // The transaction's own writes under the prefix (usually none: the overlay is flushed
      // after every commit), merged into the scan in key order.
      const mine: Array<[string, string | null]> = [];
      for (const entry of overlay) if (entry[0].startsWith(prefix)) mine.push(entry);
      const range = db.getRange({ start, end });
      if (mine.length === 0) {
        for (const { key, value } of range) yield [key, value];
        return;
      }
      mine.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      let i = 0;
      for (const { key, value } of range) {
        while (i < mine.length && mine[i]![0] < key) {
          const [k, v] = mine[i++]!;
          if (v !== null) yield [k, v];
        }
        if (i < mine.length && mine[i]![0] === key) {
          const v = mine[i++]![1];
          if (v !== null) yield [key, v];
          continue;
        }
        yield [key, value];
      }
      for (; i < mine.length; i++) {
        const [k, v] = mine[i]!;
        if (v !== null) yield [k, v];
      }
    },
    flush(next) {
      if (closed) throw new StateStoreError(`state store ${path} is closed`);
      if (overlay.size === 0 && !next) return;
      // Committed before returning, flushed to disk in the background (lmdb's overlapping
      // sync): a machine crash can only take the store back to an earlier flushed transaction,
      // data and checkpoint together, which the changelog replays onto. A kill -9 loses
      // nothing: the pages are the kernel's already.
      db.transactionSync(() => {
        for (const [k, v] of overlay) {
          if (v === null) db.removeSync(k);
          else db.putSync(k, v);
        }
        if (next)
          db.putSync(
            META_CHECKPOINT,
            JSON.stringify({ topics: o.topics, layout: o.layout, offsets: next, at: (o.now ?? Date.now)() } satisfies StoredCheckpoint),
          );
      }, TransactionFlags.SYNCHRONOUS_COMMIT | TransactionFlags.NO_SYNC_FLUSH);
      overlay.clear();
      if (next) checkpoint = next;
    },
    discard() {
      overlay.clear();
    },
    async close() {
      if (closed) return;
      closed = true;
      overlay.clear();
      await db.close();
      if (privateDir) rmSync(path, { recursive: true, force: true });
      else {
        rmSync(join(shared, LOCK_FILE), { force: true });
        lockedHere.delete(shared);
      }
    },
  };
  return { store, wiped };
}

/**
 * The same contract held in memory, for a processor run without a state directory: nothing
 * survives the process, so it has no checkpoint and every load reads the whole changelog.
 */
export function memoryStateStore(partition: number): StateStore {
  const rows = new Map<string, string>();
  const overlay = new Map<string, string | null>();
  return {
    partition,
    path: ':memory:',
    checkpoint: {},
    get pending() {
      return overlay.size;
    },
    get(key) {
      const v = overlay.get(key);
      return v !== undefined ? (v ?? undefined) : rows.get(key);
    },
    put(key, value) {
      overlay.set(key, value);
    },
    delete(key) {
      overlay.set(key, null);
    },
    *entries(prefix) {
      const merged = new Map<string, string | null>();
      for (const [k, v] of rows) if (k.startsWith(prefix)) merged.set(k, v);
      for (const [k, v] of overlay) if (k.startsWith(prefix)) merged.set(k, v);
      for (const k of [...merged.keys()].sort()) {
        const v = merged.get(k);
        if (v !== null && v !== undefined) yield [k, v];
      }
    },
    flush() {
      for (const [k, v] of overlay) {
        if (v === null) rows.delete(k);
        else rows.set(k, v);
      }
      overlay.clear();
    },
    discard() {
      overlay.clear();
    },
    async close() {
      rows.clear();
      overlay.clear();
    },
  };
}

/**
 * The store a spec uses when the runtime gives it none (the spec driven on its own, as unit
 * tests and benches drive it): one in memory per partition, which `forget` drops (the spec's
 * `reset`).
 */
export function fallbackStores(): {
  storeOf(given: KeyValueState | undefined, partition: number): KeyValueState;
  forget(partition: number): void;
} {
  const own = new Map<number, KeyValueState>();
  return {
    storeOf(given, partition) {
      if (given) return given;
      let kv = own.get(partition);
      if (!kv) {
        kv = memoryStateStore(partition);
        own.set(partition, kv);
      }
      return kv;
    },
    forget(partition) {
      own.delete(partition);
    },
  };
}

/** Removes a partition's store directory (an operator's wipe; the next start rebuilds it). */
export function wipeStateStore(root: string, name: string, partition: number): void {
  const dir = join(root, name, String(partition));
  if (existsSync(join(dir, LOCK_FILE))) {
    const [host, pid] = readFileSync(join(dir, LOCK_FILE), 'utf8').split(' ');
    if (host === hostname() && pidAlive(Number(pid)))
      throw new StateStoreError(`state store ${dir} is in use by process ${pid}: stop it first`);
  }
  rmSync(dir, { recursive: true, force: true });
}
