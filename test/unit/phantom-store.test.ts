/**
 * What the phantom detector keeps in its state store (`save`, processors/phantom-store.ts):
 * the sales index and the open count always match the entries, also when the changelog is
 * replayed from a checkpoint onto a store that already applied part of it (a restart).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { newEntry, phantomKey, type DetectorEntry } from '../../processors/phantom-fold.ts';
import { unpackEntry } from '../../processors/phantom-records.ts';
import { depositosOf, openCountOf, save } from '../../processors/phantom-store.ts';
import { memoryStateStore, type KeyValueState } from '../../processors/runtime/state-store.ts';

const PRODUCTOS = ['000001', '000002'];
const DEPOSITOS = ['01', '02', '03'];

/** One state record: a product's whole value (an entry, open or not) or its tombstone. */
interface Op {
  producto: string;
  deposito: string;
  value: null | { open: boolean; opened: number };
}

const op = fc.record({
  producto: fc.constantFrom(...PRODUCTOS),
  deposito: fc.constantFrom(...DEPOSITOS),
  value: fc.option(fc.record({ open: fc.boolean(), opened: fc.nat(5) }), { nil: null }),
});

function entry(o: Op): DetectorEntry | null {
  if (!o.value) return null;
  const e = newEntry({ ubicacion_id: 'tienda_01', deposito: o.deposito, producto_id: o.producto });
  return { ...e, opened: o.value.opened, openAlertId: o.value.open ? `alert-${o.value.opened}` : null };
}

/** Applies one record as the detector's load does: replacing what the store holds under its key. */
function apply(kv: KeyValueState, o: Op): void {
  const key = phantomKey({ ubicacion_id: 'tienda_01', deposito: o.deposito, producto_id: o.producto });
  const held = kv.get(key);
  save(kv, key, held === undefined ? undefined : unpackEntry(held), entry(o));
}

/** The fold of the records: what the index and the count must say. */
function expected(ops: Op[]): { entries: Map<string, Op>; open: number; depositos: Record<string, string[]> } {
  const entries = new Map<string, Op>();
  for (const o of ops) {
    const key = `${o.deposito}/${o.producto}`;
    if (o.value) entries.set(key, o);
    else entries.delete(key);
  }
  const depositos: Record<string, string[]> = {};
  for (const p of PRODUCTOS)
    depositos[p] = [...entries.values()]
      .filter((o) => o.producto === p)
      .map((o) => o.deposito)
      .sort();
  return { entries, open: [...entries.values()].filter((o) => o.value!.open).length, depositos };
}

function expectConsistent(kv: KeyValueState, ops: Op[]): void {
  const want = expected(ops);
  expect(openCountOf(kv)).toBe(want.open);
  for (const p of PRODUCTOS) {
    expect(depositosOf(kv, 'tienda_01', p)).toEqual(want.depositos[p]);
    for (const d of DEPOSITOS) {
      const held = kv.get(phantomKey({ ubicacion_id: 'tienda_01', deposito: d, producto_id: p }));
      const o = want.entries.get(`${d}/${p}`);
      expect(held === undefined ? null : unpackEntry(held)).toEqual(o ? entry(o) : null);
    }
  }
}

describe('phantom detector state store layout', () => {
  it('keeps the sales index and the open count equal to the entries', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const kv = memoryStateStore(0);
        for (const o of ops) apply(kv, o);
        expectConsistent(kv, ops);
      }),
    );
  });

  it('converges when the changelog is replayed from a checkpoint onto a store that is ahead of it', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), fc.nat(), fc.nat(), (ops, a, b) => {
        // The disk holds records [0, flushed); the checkpoint is at or before it.
        const flushed = a % (ops.length + 1);
        const checkpoint = b % (flushed + 1);
        const store = memoryStateStore(0);
        for (const o of ops.slice(0, flushed)) apply(store, o);
        store.flush();
        for (const o of ops.slice(checkpoint)) apply(store, o);
        expectConsistent(store, ops);
      }),
    );
  });

  it('a product with several depositos is indexed under each, in order, until its last one goes', () => {
    const kv = memoryStateStore(0);
    const ops: Op[] = [
      { producto: '000001', deposito: '03', value: { open: true, opened: 1 } },
      { producto: '000001', deposito: '01', value: { open: false, opened: 0 } },
    ];
    for (const o of ops) apply(kv, o);
    expect(depositosOf(kv, 'tienda_01', '000001')).toEqual(['01', '03']);
    expect(openCountOf(kv)).toBe(1);
    apply(kv, { producto: '000001', deposito: '03', value: null });
    apply(kv, { producto: '000001', deposito: '01', value: null });
    expect(depositosOf(kv, 'tienda_01', '000001')).toEqual([]);
    expect(openCountOf(kv)).toBe(0);
    // Nothing is left behind: no index, no count.
    expect([...kv.entries('')]).toEqual([]);
  });
});
