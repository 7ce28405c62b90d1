/**
 * The snapshot differ's domain logic, pure: assembling a store's snapshot from its chunks,
 * the quarantine rule, and the changes between the last applied state and a new snapshot.
 * What to do with a complete snapshot (apply, skip, refuse, release) is snapshot-decision.ts;
 * the processor around both (I/O, transactions, the state topic) lives in snapshot-differ.ts.
 */
import { ValidationError } from '../core/errors.ts';
import type { InventoryRow } from '../core/records.ts';
import { rowKey, packRow, unpackRow, sameContent, wasPositive, type PackedRow, type Change } from './snapshot-row-packing.ts';

// Row packing lives in processors/snapshot-row-packing.ts; its names stay importable from here.
export {
  rowKey,
  rowFingerprint,
  packRow,
  unpackRow,
  sameContent,
  type PackedRow,
  type Change,
} from './snapshot-row-packing.ts';

export interface SnapshotChunk {
  snapshot_id: string;
  ubicacion_id: string;
  source: 'KLK' | 'STELLAR';
  taken_at: Date;
  chunk_index: number;
  chunk_count: number;
  row_count: number;
  rows: InventoryRow[];
}

export interface Snapshot {
  snapshot_id: string;
  ubicacion_id: string;
  source: 'KLK' | 'STELLAR';
  taken_at: Date;
  rows: InventoryRow[];
}

/**
 * A snapshot as the differ holds it: each row packed (`packRow`) beside its `rowKey`, in the
 * snapshot's order. The assembler packs every chunk as it arrives, so a snapshot waiting for
 * its last chunk costs about what its state will, not the 600-750 bytes of a decoded row: the
 * differ reads partitions in turn, with up to one store's snapshot in flight in each.
 */
export interface PackedSnapshot extends Omit<Snapshot, 'rows'> {
  keys: string[];
  rows: PackedRow[];
}

/**
 * A store's last applied rows, by `rowKey`, each packed into one string (`packRow`).
 *
 * Why a string and not the decoded row: the differ holds every row of every store (340,000
 * in the chain, millions nationally) and a decoded InventoryRow costs about 600-750 bytes
 * with its 16 strings, against about 400 for one flat string (bench/README.md, bench/processors).
 * Only the rows that changed are unpacked (a change's `before`); comparing two rows is
 * comparing two strings, so no hash is computed for unchanged rows either.
 */
export type StoreState = Map<string, PackedRow>;

/**
 * What the diff reads of a store's rows: a Map, or a view of the processor's state store
 * (snapshot-differ.ts), whose rows live on disk. Read in one pass of `entries()`, a cursor
 * over the disk, never one random read per row.
 */
export interface StoreRows {
  entries(): Iterable<[string, PackedRow]>;
}

export function validateChunk(c: SnapshotChunk): void {
  const where = `snapshot ${c.snapshot_id} of ${c.ubicacion_id}`;
  if (!Number.isInteger(c.chunk_count) || c.chunk_count < 1)
    throw new ValidationError(`${where}: chunk_count ${c.chunk_count} is not >= 1`, {
      context: { ubicacion: c.ubicacion_id, field: 'chunk_count', value: c.chunk_count },
    });
  if (!Number.isInteger(c.chunk_index) || c.chunk_index < 0 || c.chunk_index >= c.chunk_count) {
    throw new ValidationError(`${where}: chunk_index ${c.chunk_index} is outside 0..${c.chunk_count - 1}`, {
      context: { ubicacion: c.ubicacion_id, field: 'chunk_index', value: c.chunk_index },
    });
  }
  if (!Number.isInteger(c.row_count) || c.row_count < 0)
    throw new ValidationError(`${where}: row_count ${c.row_count} is negative`, {
      context: { ubicacion: c.ubicacion_id, field: 'row_count', value: c.row_count },
    });
}

export type AssemblyResult =
  | { kind: 'pending' }
  | { kind: 'complete'; snapshot: PackedSnapshot; chunk_count: number }
  | { kind: 'dropped'; snapshot_id: string; reason: string };

/**
 * Collects one store's chunks. A snapshot is complete when all chunk_count chunks of one
 * snapshot_id have arrived and hold row_count rows; a newer snapshot arriving while one is
 * incomplete drops the incomplete one (never applied: no partial snapshot becomes deletes).
 */
export class SnapshotAssembler {
  private pending: { first: ChunkHeader; chunks: Map<number, PackedChunk> } | undefined;

  /** The snapshot waiting for chunks, if any. */
  pendingSnapshot(): string | undefined {
    return this.pending?.first.snapshot_id;
  }

  accept(chunk: SnapshotChunk): AssemblyResult[] {
    validateChunk(chunk);
    const out: AssemblyResult[] = [];
    if (this.pending && this.pending.first.snapshot_id !== chunk.snapshot_id) {
      if (chunk.taken_at.getTime() < this.pending.first.taken_at.getTime()) {
        return [
          {
            kind: 'dropped',
            snapshot_id: chunk.snapshot_id,
            reason: `a chunk of an older snapshot arrived while ${this.pending.first.snapshot_id} was being assembled`,
          },
        ];
      }
      const have = this.pending.chunks.size;
      out.push({
        kind: 'dropped',
        snapshot_id: this.pending.first.snapshot_id,
        reason: `incomplete (${have} of ${this.pending.first.chunk_count} chunks) and superseded by ${chunk.snapshot_id}`,
      });
      this.pending = undefined;
    }
    const { rows, ...header } = chunk;
    this.pending ??= { first: header, chunks: new Map() };
    const p = this.pending;
    if (chunk.chunk_count !== p.first.chunk_count || chunk.row_count !== p.first.row_count) {
      this.pending = undefined;
      return [
        ...out,
        {
          kind: 'dropped',
          snapshot_id: chunk.snapshot_id,
          reason:
            `chunks disagree on chunk_count/row_count (${p.first.chunk_count}/${p.first.row_count} against ` +
            `${chunk.chunk_count}/${chunk.row_count})`,
        },
      ];
    }
    p.chunks.set(chunk.chunk_index, packRows(rows));
    if (p.chunks.size < p.first.chunk_count) return [...out, { kind: 'pending' }];
    this.pending = undefined;
    const ordered = [...p.chunks.entries()].sort((a, b) => a[0] - b[0]).map(([, c]) => c);
    const keys = ordered.flatMap((c) => c.keys);
    if (keys.length !== p.first.row_count) {
      return [
        ...out,
        { kind: 'dropped', snapshot_id: p.first.snapshot_id, reason: `holds ${keys.length} rows but says row_count ${p.first.row_count}` },
      ];
    }
    const { snapshot_id, ubicacion_id, source, taken_at } = p.first;
    return [
      ...out,
      {
        kind: 'complete',
        snapshot: { snapshot_id, ubicacion_id, source, taken_at, keys, rows: ordered.flatMap((c) => c.rows) },
        chunk_count: p.first.chunk_count,
      },
    ];
  }
}

type ChunkHeader = Omit<SnapshotChunk, 'rows'>;
type PackedChunk = Pick<PackedSnapshot, 'keys' | 'rows'>;

const packRows = (rows: InventoryRow[]): PackedChunk => ({
  keys: rows.map((r) => rowKey(r.deposito, r.producto_id)),
  rows: rows.map(packRow),
});

/** `snapshot` as the assembler would have delivered it. */
export function packSnapshot(snapshot: Snapshot): PackedSnapshot {
  const { rows, ...header } = snapshot;
  return { ...header, ...packRows(rows) };
}

export interface QuarantineRule {
  /** Share of previously positive products that may drop to zero or vanish (default 0.3). */
  maxZeroedShare: number;
  /**
   * The same within one deposito, or one department of a deposito, of at least
   * `groupMinProducts` products with stock (default 0.9). A POS that reads a whole department
   * or deposito as 0 for one snapshot (a failed join, a locked table) stays under the store's
   * share in a store of many departments, and would open one phantom-zero alert per product.
   */
  groupMaxZeroedShare: number;
  /** Groups with fewer products with stock are not judged: a small department can sell out. */
  groupMinProducts: number;
}

export const DEFAULT_QUARANTINE: QuarantineRule = Object.freeze({ maxZeroedShare: 0.3, groupMaxZeroedShare: 0.9, groupMinProducts: 20 });

/** Why this snapshot must not be applied, or null. */
export function quarantineReason(state: StoreRows, snapshot: PackedSnapshot, rule: QuarantineRule = DEFAULT_QUARANTINE): string | null {
  if (snapshot.rows.length === 0) {
    let size = 0;
    for (const _ of state.entries()) size++;
    return `empty snapshot (the store had ${size} products)`;
  }
  const positiveBefore: Array<[string, PackedRow]> = [];
  for (const entry of state.entries()) if (wasPositive(entry[1])) positiveBefore.push(entry);
  if (positiveBefore.length === 0) return null;
  const now = new Map(snapshot.keys.map((key, i) => [key, snapshot.rows[i]!]));
  let zeroed = 0;
  let vanished = 0;
  const gone = new Set<string>();
  for (const [key] of positiveBefore) {
    const r = now.get(key);
    if (r === undefined) vanished++;
    else if (!wasPositive(r)) zeroed++;
    else continue;
    gone.add(key);
  }
  const share = (zeroed + vanished) / positiveBefore.length;
  if (share > rule.maxZeroedShare) {
    const shares = `${(share * 100).toFixed(1)}% > ${(rule.maxZeroedShare * 100).toFixed(0)}%`;
    return `${zeroed} of ${positiveBefore.length} products with stock dropped to 0 or below and ${vanished} vanished (${shares})`;
  }
  return gone.size >= rule.groupMinProducts ? groupReason(positiveBefore, gone, rule) : null;
}

/**
 * The first deposito, then department of a deposito, whose products with stock dropped to 0
 * or vanished beyond the group share. Unpacks the positive rows only when enough of them went
 * (a normal snapshot's few stockouts never get here).
 */
function groupReason(positiveBefore: Array<[string, PackedRow]>, gone: Set<string>, rule: QuarantineRule): string | null {
  const groups = new Map<string, { label: string; positive: number; gone: number }>();
  const count = (id: string, label: string, wentToZero: boolean) => {
    const g = groups.get(id) ?? { label, positive: 0, gone: 0 };
    g.positive++;
    if (wentToZero) g.gone++;
    groups.set(id, g);
  };
  for (const [key, packed] of positiveBefore) {
    const { deposito, departamento_codigo: depto, departamento_nombre: nombre } = unpackRow(packed);
    const wentToZero = gone.has(key);
    count(`d\u0000${deposito}`, `deposito ${deposito}`, wentToZero);
    if (depto !== null)
      count(
        `p\u0000${deposito}\u0000${depto}`,
        `departamento ${depto}${nombre ? ` (${nombre})` : ''} of deposito ${deposito}`,
        wentToZero,
      );
  }
  for (const g of groups.values()) {
    if (g.positive < rule.groupMinProducts) continue;
    const share = g.gone / g.positive;
    if (share > rule.groupMaxZeroedShare) {
      const shares = `${(share * 100).toFixed(1)}% > ${(rule.groupMaxZeroedShare * 100).toFixed(0)}%`;
      return (
        `${g.gone} of ${g.positive} products with stock in ${g.label} dropped to 0 or below or vanished at once ` +
        `(${shares}): a POS that read the whole group wrong?`
      );
    }
  }
  return null;
}

/** A row of the new state: the row (for its state record) and its packed form (for memory). */
export interface StateUpdate {
  row: InventoryRow;
  packed: PackedRow;
}

/**
 * The changes that turn `state` into `snapshot`, in key order; nothing for unchanged rows.
 * "Changed?" is decided on the canonical encodings' bytes (`sameContent`): only changed rows
 * are unpacked (their `after`, and `before` for u and d). The state is read in one pass.
 */
export function diffSnapshot(state: StoreRows, snapshot: PackedSnapshot): { changes: Change[]; updates: Map<string, StateUpdate | null> } {
  const changes: Change[] = [];
  const updates = new Map<string, StateUpdate | null>();
  const base = {
    ubicacion_id: snapshot.ubicacion_id,
    snapshot_id: snapshot.snapshot_id,
    taken_at: snapshot.taken_at,
    source: snapshot.source,
  };
  const keys = new Set(snapshot.keys);
  const befores = new Map<string, PackedRow>();
  for (const [key, before] of state.entries()) {
    if (keys.has(key)) {
      befores.set(key, before);
      continue;
    }
    const row = unpackRow(before);
    changes.push({ ...base, op: 'd', deposito: row.deposito, producto_id: row.producto_id, before: row, after: null });
    updates.set(key, null);
  }
  for (let i = 0; i < snapshot.rows.length; i++) {
    const key = snapshot.keys[i]!;
    const now = snapshot.rows[i]!;
    const before = befores.get(key);
    if (before !== undefined && sameContent(before, now)) continue;
    const row = unpackRow(now);
    changes.push({
      ...base,
      op: before !== undefined ? 'u' : 'c',
      deposito: row.deposito,
      producto_id: row.producto_id,
      before: before === undefined ? null : unpackRow(before),
      after: row,
    });
    updates.set(key, { row, packed: now });
  }
  changes.sort((a, b) => (rowKey(a.deposito, a.producto_id) < rowKey(b.deposito, b.producto_id) ? -1 : 1));
  return { changes, updates };
}

/** Folds changes into a state (what the sink does with inventario_actual). */
export function applyChanges(state: StoreState, changes: Change[]): StoreState {
  const next = new Map(state);
  for (const c of changes) {
    const key = rowKey(c.deposito, c.producto_id);
    if (c.op === 'd') next.delete(key);
    else next.set(key, packRow(c.after!));
  }
  return next;
}
