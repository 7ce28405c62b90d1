/**
 * How the snapshot differ (processors/snapshot-differ.ts) lays out its state: the records of
 * the state topic, and the keys and values of the partition's state store
 * (processors/runtime/state-store.ts) they rebuild.
 */
import type { InventoryRow } from '../core/records.ts';
import type { KeyValueState } from './runtime/state-store.ts';
import type { AppliedSnapshot } from './snapshot-decision.ts';
import type { StoreRows } from './snapshot-diff.ts';

/** What the differ's state store holds (see StoreMemory in processors/snapshot-differ.ts): a new value wipes stores of the old one. */
export const STORE_LAYOUT = 'differ-1: ubicacion/deposito/producto=packRow, ubicacion=applied JSON';

/** Header of a store's state record: offset of the snapshots record that completed the applied snapshot. */
export const APPLIED_OFFSET_HEADER = 'fluxion-applied-offset';

/** schemas/pos.inventario.state-value.avsc */
export interface StateRecord {
  ubicacion_id: string;
  row: InventoryRow | null;
  fingerprint: string;
  snapshot_id: string;
  taken_at: Date;
}

/** The runtime gives the differ a store per partition (spec.state.store): its absence is a wiring bug. */
export function storeOf(store: KeyValueState | undefined, partition: number): KeyValueState {
  if (!store) throw new Error(`differ: no state store for partition ${partition}`);
  return store;
}

/** A store's applied snapshot as the state store holds it (under the key `ubicacion`). */
export interface StoredApplied {
  snapshot_id: string;
  taken_at: number;
  offset?: string;
}

export function appliedOf(kv: KeyValueState, ubicacion: string): AppliedSnapshot | undefined {
  const raw = kv.get(ubicacion);
  if (raw === undefined) return undefined;
  const a = JSON.parse(raw) as StoredApplied;
  return { snapshot_id: a.snapshot_id, taken_at: a.taken_at, offset: a.offset === undefined ? undefined : BigInt(a.offset) };
}

export function setApplied(kv: KeyValueState, ubicacion: string, a: AppliedSnapshot): void {
  kv.put(
    ubicacion,
    JSON.stringify({
      snapshot_id: a.snapshot_id,
      taken_at: a.taken_at,
      ...(a.offset === undefined ? {} : { offset: a.offset.toString() }),
    } satisfies StoredApplied),
  );
}

/** A store's rows in the state store, keyed as the diff keys them (`deposito/producto`). */
export function rowsOf(kv: KeyValueState, ubicacion: string): StoreRows {
  const prefix = `${ubicacion}/`;
  return {
    *entries() {
      for (const [k, v] of kv.entries(prefix)) yield [k.slice(prefix.length), v];
    },
  };
}

export function appliedOffset(header: string | undefined): bigint | undefined {
  return header !== undefined && /^\d+$/.test(header) ? BigInt(header) : undefined;
}
