/**
 * What the phantom detector keeps in a partition's state store (processors/runtime/state-store.ts,
 * docs/state-stores.md), all of it derived from alerts.phantom-zeros.state and written with
 * each state record, so a store replayed from its checkpoint converges to the changelog's fold:
 * - `ubicacion/deposito/producto` (the state record's key): the product's entry (`packEntry`).
 * - `ubicacion\u0001producto`: the depositos with an entry, a JSON array: where a sales line goes.
 * - OPEN_COUNT: how many entries have an open alert (the gauge, without scanning the store).
 * Each key is kept by `save` alone, from the entry it replaces, so the three stay consistent
 * through every write, flush and replay.
 */
import { packEntry, unpackEntry } from './phantom-records.ts';
import type { DetectorEntry } from './phantom-fold.ts';
import type { KeyValueState } from './runtime/state-store.ts';

const OPEN_COUNT = '\u0001open';
/** What the detector's state store holds (the keys above): a new value wipes stores of the old one. */
export const STORE_LAYOUT = 'phantom-1';

const productIndex = (ubicacionId: string, productoId: string): string => `${ubicacionId}\u0001${productoId}`;

const isOpen = (e: DetectorEntry | null | undefined): boolean => !!e && (e.openAlertId !== null || !!e.state.open);

export function entryOf(kv: KeyValueState, key: string): DetectorEntry | undefined {
  const packed = kv.get(key);
  return packed === undefined ? undefined : unpackEntry(packed);
}

/** The depositos of a producto in its store that have an entry, in order. */
export function depositosOf(kv: KeyValueState, ubicacionId: string, productoId: string): string[] {
  const raw = kv.get(productIndex(ubicacionId, productoId));
  return raw === undefined ? [] : (JSON.parse(raw) as string[]);
}

/** The number of entries with an open alert in this store. */
export function openCountOf(kv: KeyValueState): number {
  return Number(kv.get(OPEN_COUNT) ?? 0);
}

/**
 * Replaces the entry under `key` (`prev`, as the store holds it) by `next` (null: forgets it),
 * with the sales index and the open count. Returns the open count after the write.
 */
export function save(kv: KeyValueState, key: string, prev: DetectorEntry | undefined, next: DetectorEntry | null): number {
  const ref = next?.ref ?? prev?.ref;
  let open = openCountOf(kv);
  if (!ref) return open;
  if (next) kv.put(key, packEntry(next));
  else kv.delete(key);
  if (!prev !== !next) {
    const idx = productIndex(ref.ubicacion_id, ref.producto_id);
    const known = depositosOf(kv, ref.ubicacion_id, ref.producto_id);
    const rest = known.filter((d) => d !== ref.deposito);
    const depositos = next ? [...rest, ref.deposito].sort() : rest;
    if (depositos.length === 0) kv.delete(idx);
    else if (depositos.join('\u0000') !== known.join('\u0000')) kv.put(idx, JSON.stringify(depositos));
  }
  const delta = Number(isOpen(next)) - Number(isOpen(prev));
  if (delta !== 0) {
    open += delta;
    if (open === 0) kv.delete(OPEN_COUNT);
    else kv.put(OPEN_COUNT, String(open));
  }
  return open;
}
