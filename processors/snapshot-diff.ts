/**
 * The snapshot differ's domain logic, pure: assembling a store's snapshot from its chunks,
 * the quarantine rule, and the changes between the last applied state and a new snapshot.
 * The processor around it (I/O, transactions, the state topic) lives in snapshot-differ.ts.
 */
import { hash } from 'node:crypto';
import { ValidationError } from '../core/errors.ts';
import type { InventoryChange, InventoryRow } from '../core/records.ts';

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

export interface StateEntry {
  row: InventoryRow;
  fingerprint: string;
  snapshot_id: string;
  taken_at: Date;
}

/** A store's last applied rows, by `rowKey`. */
export type StoreState = Map<string, StateEntry>;

/** One change event of pos.inventario.changes. */
export type Change = InventoryChange;

export const rowKey = (deposito: string, productoId: string): string => `${deposito}/${productoId}`;

/** Between fields: a control character no POS text holds; null gets its own marker. */
const SEP = '\u001f';
const NUL = '\u0000';
const text = (v: string | null) => (v === null ? NUL : v);

/**
 * What identifies a row's content: every field of InventoryRow in schema order but
 * `actualizado_en`, which the POS touches without changing anything we store (a change event
 * must mean a changed row). Built by hand rather than by JSON of sorted keys: this runs for
 * every row of every snapshot and was most of the differ's CPU (6 µs against 1 µs a row).
 * test/unit/snapshot-diff.test.ts checks that every schema field but actualizado_en counts.
 */
export function rowFingerprint(row: InventoryRow): string {
  const canonical =
    row.deposito + SEP + row.producto_id + SEP + text(row.codigo_barras) + SEP + row.descripcion + SEP +
    text(row.departamento_codigo) + SEP + text(row.departamento_nombre) + SEP + text(row.grupo_codigo) + SEP + text(row.grupo_nombre) + SEP +
    text(row.subgrupo_codigo) + SEP + text(row.subgrupo_nombre) + SEP + row.unidad + SEP + row.cantidad + SEP +
    text(row.costo) + SEP + text(row.precio) + SEP + (row.activo ? '1' : '0');
  return hash('sha1', canonical, 'base64url');
}

export function validateChunk(c: SnapshotChunk): void {
  const where = `snapshot ${c.snapshot_id} of ${c.ubicacion_id}`;
  if (!Number.isInteger(c.chunk_count) || c.chunk_count < 1) throw new ValidationError(`${where}: chunk_count ${c.chunk_count} is not >= 1`, { context: { ubicacion: c.ubicacion_id, field: 'chunk_count', value: c.chunk_count } });
  if (!Number.isInteger(c.chunk_index) || c.chunk_index < 0 || c.chunk_index >= c.chunk_count) {
    throw new ValidationError(`${where}: chunk_index ${c.chunk_index} is outside 0..${c.chunk_count - 1}`, { context: { ubicacion: c.ubicacion_id, field: 'chunk_index', value: c.chunk_index } });
  }
  if (!Number.isInteger(c.row_count) || c.row_count < 0) throw new ValidationError(`${where}: row_count ${c.row_count} is negative`, { context: { ubicacion: c.ubicacion_id, field: 'row_count', value: c.row_count } });
}

export type AssemblyResult =
  | { kind: 'pending' }
  | { kind: 'complete'; snapshot: Snapshot; chunk_count: number }
  | { kind: 'dropped'; snapshot_id: string; reason: string };

/**
 * Collects one store's chunks. A snapshot is complete when all chunk_count chunks of one
 * snapshot_id have arrived and hold row_count rows; a newer snapshot arriving while one is
 * incomplete drops the incomplete one (never applied: no partial snapshot becomes deletes).
 */
export class SnapshotAssembler {
  private pending: { first: SnapshotChunk; chunks: Map<number, SnapshotChunk> } | undefined;

  /** The snapshot waiting for chunks, if any. */
  pendingSnapshot(): string | undefined {
    return this.pending?.first.snapshot_id;
  }

  accept(chunk: SnapshotChunk): AssemblyResult[] {
    validateChunk(chunk);
    const out: AssemblyResult[] = [];
    if (this.pending && this.pending.first.snapshot_id !== chunk.snapshot_id) {
      if (chunk.taken_at.getTime() < this.pending.first.taken_at.getTime()) {
        return [{ kind: 'dropped', snapshot_id: chunk.snapshot_id, reason: `a chunk of an older snapshot arrived while ${this.pending.first.snapshot_id} was being assembled` }];
      }
      const have = this.pending.chunks.size;
      out.push({ kind: 'dropped', snapshot_id: this.pending.first.snapshot_id, reason: `incomplete (${have} of ${this.pending.first.chunk_count} chunks) and superseded by ${chunk.snapshot_id}` });
      this.pending = undefined;
    }
    this.pending ??= { first: chunk, chunks: new Map() };
    const p = this.pending;
    if (chunk.chunk_count !== p.first.chunk_count || chunk.row_count !== p.first.row_count) {
      this.pending = undefined;
      return [...out, { kind: 'dropped', snapshot_id: chunk.snapshot_id, reason: `chunks disagree on chunk_count/row_count (${p.first.chunk_count}/${p.first.row_count} against ${chunk.chunk_count}/${chunk.row_count})` }];
    }
    p.chunks.set(chunk.chunk_index, chunk);
    if (p.chunks.size < p.first.chunk_count) return [...out, { kind: 'pending' }];
    this.pending = undefined;
    const ordered = [...p.chunks.entries()].sort((a, b) => a[0] - b[0]).map(([, c]) => c);
    const rows = ordered.flatMap((c) => c.rows);
    if (rows.length !== p.first.row_count) {
      return [...out, { kind: 'dropped', snapshot_id: p.first.snapshot_id, reason: `holds ${rows.length} rows but says row_count ${p.first.row_count}` }];
    }
    const { snapshot_id, ubicacion_id, source, taken_at } = p.first;
    return [...out, { kind: 'complete', snapshot: { snapshot_id, ubicacion_id, source, taken_at, rows }, chunk_count: p.first.chunk_count }];
  }
}

const isPositive = (cantidad: string) => !cantidad.startsWith('-') && /[1-9]/.test(cantidad);

export interface QuarantineRule {
  /** Share of previously positive products that may drop to zero or vanish (default 0.3). */
  maxZeroedShare: number;
}

export const DEFAULT_QUARANTINE: QuarantineRule = { maxZeroedShare: 0.3 };

/** Why this snapshot must not be applied, or null. */
export function quarantineReason(state: StoreState, snapshot: Snapshot, rule: QuarantineRule = DEFAULT_QUARANTINE): string | null {
  if (snapshot.rows.length === 0) return `empty snapshot (the store had ${state.size} products)`;
  const positiveBefore = [...state.entries()].filter(([, e]) => isPositive(e.row.cantidad));
  if (positiveBefore.length === 0) return null;
  const now = new Map(snapshot.rows.map((r) => [rowKey(r.deposito, r.producto_id), r]));
  let zeroed = 0;
  let vanished = 0;
  for (const [key] of positiveBefore) {
    const r = now.get(key);
    if (!r) vanished++;
    else if (!isPositive(r.cantidad)) zeroed++;
  }
  const share = (zeroed + vanished) / positiveBefore.length;
  if (share <= rule.maxZeroedShare) return null;
  return `${zeroed} of ${positiveBefore.length} products with stock dropped to 0 or below and ${vanished} vanished (${(share * 100).toFixed(1)}% > ${(rule.maxZeroedShare * 100).toFixed(0)}%)`;
}

/** The changes that turn `state` into `snapshot`, in key order; nothing for unchanged rows. */
export function diffSnapshot(state: StoreState, snapshot: Snapshot): { changes: Change[]; updates: Map<string, StateEntry | null> } {
  const changes: Change[] = [];
  const updates = new Map<string, StateEntry | null>();
  const base = { ubicacion_id: snapshot.ubicacion_id, snapshot_id: snapshot.snapshot_id, taken_at: snapshot.taken_at, source: snapshot.source };
  const seen = new Set<string>();
  for (const row of snapshot.rows) {
    const key = rowKey(row.deposito, row.producto_id);
    seen.add(key);
    const fingerprint = rowFingerprint(row);
    const before = state.get(key);
    if (before && before.fingerprint === fingerprint) continue;
    changes.push({ ...base, op: before ? 'u' : 'c', deposito: row.deposito, producto_id: row.producto_id, before: before?.row ?? null, after: row });
    updates.set(key, { row, fingerprint, snapshot_id: snapshot.snapshot_id, taken_at: snapshot.taken_at });
  }
  for (const [key, entry] of state) {
    if (seen.has(key)) continue;
    changes.push({ ...base, op: 'd', deposito: entry.row.deposito, producto_id: entry.row.producto_id, before: entry.row, after: null });
    updates.set(key, null);
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
    else next.set(key, { row: c.after!, fingerprint: rowFingerprint(c.after!), snapshot_id: c.snapshot_id, taken_at: c.taken_at });
  }
  return next;
}
