/**
 * What the snapshot differ does with a complete snapshot, pure: apply it, skip it (read
 * again), refuse it (quarantine, stale) or act on an operator's release. The differ
 * (snapshot-differ.ts) reads the facts from its state store, calls `decideSnapshot`, and
 * does what the decision says (changes, state and quarantine records, counters, logs); the
 * diff itself and the quarantine rule are snapshot-diff.ts.
 */
import type { QuarantineRecord, QuarantineStatus } from '../core/records.ts';
import { quarantineReason, type PackedSnapshot, type QuarantineRule, type StoreRows } from './snapshot-diff.ts';

/** What the differ remembers of a store's last applied snapshot (its state record). */
export interface AppliedSnapshot {
  snapshot_id: string;
  /** taken_at in ms. */
  taken_at: number;
  /**
   * Offset, on the store's partition of pos.inventario.snapshots, of the record that
   * completed it; undefined when its state record was written before the differ kept it.
   */
  offset?: bigint;
}

/** A snapshot (or a chunk of one) as it is read: id, taken_at in ms, offset of the record. */
export interface SnapshotSighting {
  snapshot_id: string;
  taken_at: number;
  offset: bigint;
}

/**
 * What to do with a snapshot the store already has an applied one for.
 * - `newer`: taken after the applied one, and not decided yet: check and apply it.
 * - `reread`: seen before, so already decided (it is the applied one, it has a quarantine
 *   record, or it was read before the applied one completed: offsets held back for a
 *   snapshot in flight make a restart read it again). Skipped without a word.
 * - `stale`: read for the first time after a newer snapshot was applied (an overlapping or
 *   delayed run, a POS clock set back). Never applied, but recorded.
 */
export type SnapshotVerdict = { kind: 'newer' } | { kind: 'reread'; why: RereadReason } | { kind: 'stale'; applied: AppliedSnapshot };

export type RereadReason = 'applied' | 'decided' | 'read-before-applied' | 'applied-offset-unknown';

/**
 * Tells a stale snapshot from a re-read of one already decided. Taken_at alone cannot: after
 * a restart, an older snapshot applied before the last one is read again, and it is as old
 * as a stale one. Its offset can: a store's snapshots all sit on one partition, read in
 * order, so whatever lies at or before the offset that completed the applied snapshot was
 * decided before it. `decided`: the snapshot has a quarantine record (any status).
 */
export function judgeSnapshot(seen: SnapshotSighting, applied: AppliedSnapshot | undefined, decided: boolean): SnapshotVerdict {
  if (applied && seen.snapshot_id === applied.snapshot_id) return { kind: 'reread', why: 'applied' };
  if (decided) return { kind: 'reread', why: 'decided' };
  if (!applied || seen.taken_at > applied.taken_at) return { kind: 'newer' };
  // State written before the offset was kept: nothing tells the two apart, and calling an
  // applied snapshot stale would be a lie in the quarantine. The next applied snapshot
  // records its offset, so this lasts one snapshot per store after an upgrade.
  if (applied.offset === undefined) return { kind: 'reread', why: 'applied-offset-unknown' };
  if (seen.offset <= applied.offset) return { kind: 'reread', why: 'read-before-applied' };
  return { kind: 'stale', applied };
}

/** The quarantine reason of a stale snapshot: both snapshot ids and both taken_at instants. */
export function staleReason(snapshot: { snapshot_id: string; taken_at: Date }, applied: AppliedSnapshot): string {
  const appliedAt = new Date(applied.taken_at).toISOString();
  return (
    `stale: taken at ${snapshot.taken_at.toISOString()}, before snapshot ${applied.snapshot_id} ` +
    `(taken at ${appliedAt}) which was already applied`
  );
}

/** An operator's release of a quarantined snapshot, as its chunks' headers carry it. */
export interface ReleaseRequest {
  note: string | null;
  /** When the operator released it; null: the snapshot's taken_at stands in. */
  at: Date | null;
}

/** Everything `decideSnapshot` weighs, as the differ read it. */
export interface SnapshotFacts {
  snapshot: PackedSnapshot;
  chunkCount: number;
  /** Set when the chunks came from `fluxion quarantine release`. */
  release: ReleaseRequest | null;
  /** The store's applied snapshot, if any. */
  applied: AppliedSnapshot | undefined;
  /** The snapshot's own quarantine record, if it has one. */
  known: QuarantineRecord | undefined;
  /** The store's applied rows: read (once) only when the quarantine rule has to run. */
  rows: StoreRows;
  rule: QuarantineRule;
  partition: number;
  /** Offset of the record that completed the snapshot, and of its first chunk. */
  offset: bigint;
  firstOffset: bigint;
}

/**
 * - `apply`: a newer snapshot the quarantine rule lets through.
 * - `release`: a quarantined snapshot released by an operator, newer than the applied one:
 *   apply it without the rule, then write `record` (RELEASED).
 * - `ignore-release`: a release of a snapshot that is not (or no longer) quarantined.
 * - `supersede-release`: a release of a snapshot older than the applied one: `record` (SUPERSEDED).
 * - `skip`: read again, already decided (`why`, as judgeSnapshot says).
 * - `stale`: older than the applied one and first read after it: `record` (STALE).
 * - `quarantine`: refused by the quarantine rule: `record` (QUARANTINED).
 */
export type SnapshotDecision =
  | { kind: 'apply' }
  | { kind: 'release'; record: QuarantineRecord }
  | { kind: 'ignore-release'; status: QuarantineStatus | 'unknown' }
  | { kind: 'supersede-release'; record: QuarantineRecord }
  | { kind: 'skip'; why: RereadReason }
  | { kind: 'stale'; record: QuarantineRecord; applied: AppliedSnapshot }
  | { kind: 'quarantine'; record: QuarantineRecord };

/** Still waiting for an operator: a release may apply it. */
const releasable = (q: QuarantineRecord): boolean => q.status === 'QUARANTINED' || q.status === 'RELEASE_REQUESTED';

export function decideSnapshot(f: SnapshotFacts): SnapshotDecision {
  const { snapshot, applied, known } = f;
  if (f.release) {
    if (!known || !releasable(known)) return { kind: 'ignore-release', status: known?.status ?? 'unknown' };
    if (applied && snapshot.taken_at.getTime() <= applied.taken_at) {
      const note = `not applied: snapshot ${applied.snapshot_id} of the store is newer`;
      return { kind: 'supersede-release', record: { ...known, status: 'SUPERSEDED', updated_at: snapshot.taken_at, note } };
    }
    const note = f.release.note ?? known.note;
    return { kind: 'release', record: { ...known, status: 'RELEASED', updated_at: f.release.at ?? snapshot.taken_at, note } };
  }
  const seen = { snapshot_id: snapshot.snapshot_id, taken_at: snapshot.taken_at.getTime(), offset: f.offset };
  const verdict = judgeSnapshot(seen, applied, known !== undefined);
  if (verdict.kind === 'reread') return { kind: 'skip', why: verdict.why };
  if (verdict.kind === 'stale') {
    // Decided by the applied snapshot, at its taken_at: a restart decides it the same way.
    const record = newRecord(f, 'STALE', staleReason(snapshot, verdict.applied), new Date(verdict.applied.taken_at));
    return { kind: 'stale', record, applied: verdict.applied };
  }
  const reason = quarantineReason(f.rows, snapshot, f.rule);
  if (reason) return { kind: 'quarantine', record: newRecord(f, 'QUARANTINED', reason, snapshot.taken_at) };
  return { kind: 'apply' };
}

function newRecord(f: SnapshotFacts, status: QuarantineStatus, reason: string, updatedAt: Date): QuarantineRecord {
  const s = f.snapshot;
  return {
    snapshot_id: s.snapshot_id,
    ubicacion_id: s.ubicacion_id,
    source: s.source,
    taken_at: s.taken_at,
    status,
    reason,
    row_count: s.rows.length,
    chunk_count: f.chunkCount,
    partition: f.partition,
    first_offset: Number(f.firstOffset),
    updated_at: updatedAt,
    note: null,
  };
}

/**
 * The quarantine records an applied snapshot supersedes: its store's snapshots still
 * waiting for a release (QUARANTINED, RELEASE_REQUESTED) taken before it, which can no
 * longer be released. Returns their SUPERSEDED versions, in the order given.
 */
export function supersededBy(
  applied: Pick<PackedSnapshot, 'snapshot_id' | 'ubicacion_id' | 'taken_at'>,
  quarantines: Iterable<QuarantineRecord>,
): QuarantineRecord[] {
  const out: QuarantineRecord[] = [];
  const note = `superseded by snapshot ${applied.snapshot_id} taken at ${applied.taken_at.toISOString()}`;
  for (const q of quarantines) {
    if (q.ubicacion_id !== applied.ubicacion_id || q.snapshot_id === applied.snapshot_id) continue;
    if (releasable(q) && q.taken_at.getTime() < applied.taken_at.getTime())
      out.push({ ...q, status: 'SUPERSEDED', updated_at: applied.taken_at, note });
  }
  return out;
}
