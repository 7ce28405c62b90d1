import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SCHEMAS_DIR } from '../../core/paths.ts';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../core/errors.ts';
import type { InventoryRow } from '../../core/records.ts';
import { backwardIncompatibility } from '../../core/avro/schemas.ts';
import {
  applyChanges,
  DEFAULT_QUARANTINE,
  diffSnapshot,
  packRow,
  packSnapshot,
  quarantineReason,
  rowFingerprint,
  rowKey,
  sameContent,
  SnapshotAssembler,
  unpackRow,
  type QuarantineRule,
  type Snapshot,
  type SnapshotChunk,
  type StoreState,
} from '../../processors/snapshot-diff.ts';

const row = (producto_id: string, cantidad: string, extra: Partial<InventoryRow> = {}): InventoryRow => ({
  deposito: '01',
  producto_id,
  codigo_barras: null,
  descripcion: `P ${producto_id}`,
  departamento_codigo: null,
  departamento_nombre: null,
  grupo_codigo: null,
  grupo_nombre: null,
  subgrupo_codigo: null,
  subgrupo_nombre: null,
  unidad: 'UND',
  cantidad,
  costo: '1.0000',
  precio: '2.0000',
  activo: true,
  actualizado_en: null,
  ...extra,
});

const snap = (id: string, rows: InventoryRow[], at = '2026-11-27T14:00:00Z'): Snapshot => ({
  snapshot_id: id,
  ubicacion_id: 'tienda_01',
  source: 'KLK',
  taken_at: new Date(at),
  rows,
});

function chunksOf(s: Snapshot, size: number): SnapshotChunk[] {
  const count = Math.max(1, Math.ceil(s.rows.length / size));
  return Array.from({ length: count }, (_, i) => ({
    ...s,
    chunk_index: i,
    chunk_count: count,
    row_count: s.rows.length,
    rows: s.rows.slice(i * size, (i + 1) * size),
  }));
}

// The differ diffs what its assembler delivers: packed snapshots.
const diff = (state: StoreState, s: Snapshot) => diffSnapshot(state, packSnapshot(s));
const quarantine = (state: StoreState, s: Snapshot, rule?: QuarantineRule) => quarantineReason(state, packSnapshot(s), rule);
const stateOf = (s: Snapshot): StoreState => applyChanges(new Map(), diff(new Map(), s).changes);

describe('diffSnapshot', () => {
  it('emits c for new, u with before/after for changed, d for vanished, nothing for unchanged', () => {
    const state = stateOf(snap('s1', [row('A', '1.000'), row('B', '2.000'), row('C', '3.000')]));
    const { changes } = diff(state, snap('s2', [row('A', '1.000'), row('B', '5.000'), row('D', '4.000')], '2026-11-27T14:30:00Z'));
    expect(changes.map((c) => `${c.op}:${c.producto_id}`)).toEqual(['u:B', 'd:C', 'c:D']);
    const u = changes[0]!;
    expect(u.before?.cantidad).toBe('2.000');
    expect(u.after?.cantidad).toBe('5.000');
    expect(u).toMatchObject({ snapshot_id: 's2', ubicacion_id: 'tienda_01', source: 'KLK', taken_at: new Date('2026-11-27T14:30:00Z') });
    expect(changes[1]).toMatchObject({ op: 'd', after: null, before: { producto_id: 'C' } });
  });

  it('ignores a new actualizado_en alone, but not a new description or price', () => {
    expect(rowFingerprint(row('A', '1.000', { actualizado_en: new Date() }))).toBe(rowFingerprint(row('A', '1.000')));
    expect(rowFingerprint(row('A', '1.000', { descripcion: 'PIÑA' }))).not.toBe(rowFingerprint(row('A', '1.000')));
    expect(rowFingerprint(row('A', '1.000', { precio: '2.0100' }))).not.toBe(rowFingerprint(row('A', '1.000')));
  });

  it('fingerprints every InventoryRow field of the schema but actualizado_en (a new field must be added to it)', () => {
    const fields = (
      JSON.parse(readFileSync(join(SCHEMAS_DIR, 'types', 'InventoryRow.avsc'), 'utf8')) as { fields: Array<{ name: string }> }
    ).fields.map((f) => f.name);
    const base = row('A', '1.000');
    for (const name of fields) {
      if (name === 'actualizado_en') continue;
      const current = (base as unknown as Record<string, unknown>)[name];
      const other = typeof current === 'boolean' ? !current : current === null ? 'X' : `${String(current)}9`;
      expect(rowFingerprint({ ...base, [name]: other } as never), name).not.toBe(rowFingerprint(base));
      if (
        current !== null &&
        typeof current !== 'boolean' &&
        name !== 'deposito' &&
        name !== 'producto_id' &&
        name !== 'descripcion' &&
        name !== 'unidad' &&
        name !== 'cantidad'
      ) {
        expect(rowFingerprint({ ...base, [name]: null } as never), `${name} null`).not.toBe(rowFingerprint(base));
      }
    }
    expect(Object.keys(base).sort()).toEqual([...fields].sort());
  });

  it('packs every InventoryRow field of the schema: unpackRow(packRow(row)) is the row, whatever its texts hold (property)', () => {
    const text = fc.string({ unit: 'binary', maxLength: 40 });
    const optional = fc.option(text, { nil: null });
    const rowArb = fc.record({
      deposito: text,
      producto_id: text,
      codigo_barras: optional,
      descripcion: text,
      departamento_codigo: optional,
      departamento_nombre: optional,
      grupo_codigo: optional,
      grupo_nombre: optional,
      subgrupo_codigo: optional,
      subgrupo_nombre: optional,
      unidad: text,
      cantidad: fc.oneof(
        fc.integer({ min: -5_000_000, max: 5_000_000 }).map((n) => (n / 1000).toFixed(3)),
        text,
      ),
      costo: optional,
      precio: optional,
      activo: fc.boolean(),
      actualizado_en: fc.option(fc.date({ noInvalidDate: true }), { nil: null }),
    });
    fc.assert(
      fc.property(rowArb, (r) => {
        expect(unpackRow(packRow(r))).toEqual(r);
      }),
      { numRuns: 2_000 },
    );
    const fields = (
      JSON.parse(readFileSync(join(SCHEMAS_DIR, 'types', 'InventoryRow.avsc'), 'utf8')) as { fields: Array<{ name: string }> }
    ).fields.map((f) => f.name);
    expect(Object.keys(unpackRow(packRow(row('A', '1.000')))).sort()).toEqual([...fields].sort());
  });

  it('compares packed rows on every field but actualizado_en, as the fingerprint does', () => {
    const fields = (
      JSON.parse(readFileSync(join(SCHEMAS_DIR, 'types', 'InventoryRow.avsc'), 'utf8')) as { fields: Array<{ name: string }> }
    ).fields.map((f) => f.name);
    const base = row('A', '1.000', { actualizado_en: new Date('2026-11-27T10:00:00Z') });
    expect(sameContent(packRow(base), packRow({ ...base, actualizado_en: null }))).toBe(true);
    expect(sameContent(packRow(base), packRow({ ...base, actualizado_en: new Date('2026-11-28T10:00:00Z') }))).toBe(true);
    for (const name of fields) {
      if (name === 'actualizado_en') continue;
      const current = (base as unknown as Record<string, unknown>)[name];
      const other = typeof current === 'boolean' ? !current : current === null ? 'X' : `${String(current)}9`;
      expect(sameContent(packRow(base), packRow({ ...base, [name]: other } as never)), name).toBe(false);
      // a comma or a quote in a text cannot make two different rows look alike
      if (typeof current === 'string')
        expect(sameContent(packRow(base), packRow({ ...base, [name]: `${current},"x"` } as never)), `${name} with ,"`).toBe(false);
    }
  });

  it('folding the emitted changes over the state yields exactly the last snapshot (property)', () => {
    const rowArb = fc.record({
      producto_id: fc.constantFrom('000001', '000002', '000003', '000004', '000005', '000006', '000007', '000008'),
      deposito: fc.constantFrom('01', '02'),
      cantidad: fc.integer({ min: -5000, max: 500_000 }).map((n) => (n / 1000).toFixed(3)),
      precio: fc.option(fc.constantFrom('1.0000', '2.5000'), { nil: null }),
      descripcion: fc.constantFrom('PAN', 'PIÑA', 'CAFÉ'),
    });
    const snapshotArb = fc.uniqueArray(rowArb, { selector: (r) => rowKey(r.deposito, r.producto_id), maxLength: 16 });
    fc.assert(
      fc.property(fc.array(snapshotArb, { minLength: 1, maxLength: 8 }), (snapshots) => {
        let state: StoreState = new Map();
        snapshots.forEach((rows, i) => {
          const s = snap(
            `s${i}`,
            rows.map((r) => row(r.producto_id, r.cantidad, { deposito: r.deposito, precio: r.precio, descripcion: r.descripcion })),
          );
          const { changes } = diff(state, s);
          state = applyChanges(state, changes);
          const expected = new Map(s.rows.map((r) => [rowKey(r.deposito, r.producto_id), r]));
          expect(new Map([...state].map(([k, packed]) => [k, unpackRow(packed)]))).toEqual(expected);
          // a snapshot equal to the state emits nothing
          expect(diff(state, { ...s, snapshot_id: 'again' }).changes).toEqual([]);
        });
      }),
      { numRuns: 300 },
    );
  });
});

describe('SnapshotAssembler', () => {
  const s1 = snap(
    's1',
    Array.from({ length: 25 }, (_, i) => row(String(i).padStart(6, '0'), '1.000')),
  );

  it('completes a snapshot only when every chunk arrived, in any order', () => {
    const a = new SnapshotAssembler();
    const [c0, c1, c2] = chunksOf(s1, 10);
    expect(a.accept(c2!)).toEqual([{ kind: 'pending' }]);
    expect(a.accept(c0!)).toEqual([{ kind: 'pending' }]);
    const [done] = a.accept(c1!);
    expect(done).toEqual({ kind: 'complete', snapshot: packSnapshot(s1), chunk_count: 3 });
    expect(a.pendingSnapshot()).toBeUndefined();
  });

  it('delivers rows packed, in snapshot order, and diffing them equals diffing the decoded snapshot', () => {
    const rows = Array.from({ length: 25 }, (_, i) =>
      row(String(i).padStart(6, '0'), `${i}.000`, { codigo_barras: i % 3 ? null : `759${i}` }),
    );
    const s = snap('s3', rows, '2026-11-27T15:00:00Z');
    const a = new SnapshotAssembler();
    const results = chunksOf(s, 7)
      .reverse()
      .flatMap((c) => a.accept(c));
    const done = results.at(-1)!;
    if (done.kind !== 'complete') throw new Error(`expected a complete snapshot, got ${done.kind}`);
    expect(done.snapshot.rows.map(unpackRow)).toEqual(rows);
    expect(done.snapshot.keys).toEqual(rows.map((r) => rowKey(r.deposito, r.producto_id)));
    const state = stateOf(
      snap(
        's2',
        rows.slice(3).map((r, i) => (i % 4 ? r : { ...r, cantidad: '0.000' })),
      ),
    );
    const fromChunks = diffSnapshot(state, done.snapshot);
    expect(fromChunks.changes).toEqual(diff(state, s).changes);
    expect(fromChunks.changes.map((c) => c.op)).toContain('c');
    expect(fromChunks.changes.map((c) => c.op)).toContain('u');
    expect(quarantineReason(state, done.snapshot)).toEqual(quarantine(state, s));
  });

  it('drops an incomplete snapshot superseded by a newer one, never applying it', () => {
    const a = new SnapshotAssembler();
    const s2 = snap('s2', s1.rows.slice(0, 5), '2026-11-27T14:30:00Z');
    a.accept(chunksOf(s1, 10)[0]!);
    const results = a.accept(chunksOf(s2, 10)[0]!);
    expect(results[0]).toMatchObject({
      kind: 'dropped',
      snapshot_id: 's1',
      reason: expect.stringContaining('incomplete (1 of 3 chunks) and superseded by s2'),
    });
    expect(results[1]).toMatchObject({ kind: 'complete', snapshot: { snapshot_id: 's2' } });
  });

  it('drops a snapshot whose rows disagree with row_count, and a late chunk of an older one', () => {
    const a = new SnapshotAssembler();
    const [only] = chunksOf(snap('s3', [row('A', '1.000')]), 10);
    expect(a.accept({ ...only!, row_count: 2 })[0]).toMatchObject({ kind: 'dropped', reason: 'holds 1 rows but says row_count 2' });
    a.accept(chunksOf(snap('s5', s1.rows, '2026-11-27T15:00:00Z'), 10)[0]!);
    expect(a.accept(chunksOf(snap('s4', s1.rows, '2026-11-27T14:00:00Z'), 10)[1]!)[0]).toMatchObject({
      kind: 'dropped',
      snapshot_id: 's4',
    });
  });

  it('refuses an impossible chunk (it goes to the DLQ)', () => {
    const [c] = chunksOf(s1, 100);
    expect(() => new SnapshotAssembler().accept({ ...c!, chunk_count: -1 })).toThrow(ValidationError);
    expect(() => new SnapshotAssembler().accept({ ...c!, chunk_count: -1 })).toThrow(
      'snapshot s1 of tienda_01: chunk_count -1 is not >= 1',
    );
    expect(() => new SnapshotAssembler().accept({ ...c!, chunk_index: 3, chunk_count: 2 })).toThrow('chunk_index 3 is outside 0..1');
  });
});

describe('quarantineReason', () => {
  const state = stateOf(
    snap(
      's1',
      Array.from({ length: 10 }, (_, i) => row(`P${i}`, i < 8 ? '5.000' : '0.000')),
    ),
  );

  it('holds back an empty snapshot', () => {
    expect(quarantine(state, snap('s2', []))).toBe('empty snapshot (the store had 10 products)');
  });

  it('holds back a snapshot where more than 30% of products with stock dropped to 0 or vanished', () => {
    const rows = [...state.values()]
      .map(unpackRow)
      .map((r, i) => (i < 2 ? row(r.producto_id, '0.000') : r))
      .filter((_, i) => i !== 2);
    // 2 zeroed + 1 vanished of 8 positive = 37.5%
    expect(quarantine(state, snap('s2', rows))).toBe('2 of 8 products with stock dropped to 0 or below and 1 vanished (37.5% > 30%)');
  });

  it('applies a snapshot at or under the threshold, and the first snapshot of a store', () => {
    const rows = [...state.values()].map(unpackRow).map((r, i) => (i < 2 ? row(r.producto_id, '0.000') : r)); // 2 of 8 = 25%
    expect(quarantine(state, snap('s2', rows))).toBeNull();
    expect(quarantine(new Map(), snap('s1', [row('A', '0.000')]))).toBeNull();
    expect(quarantine(state, snap('s2', rows), { ...DEFAULT_QUARANTINE, maxZeroedShare: 0.2 })).toMatch(/25\.0% > 20%/);
  });
});

describe('quarantineReason by deposito and department (a POS glitch)', () => {
  // 3 departments of 30 products with stock in deposito 01, and 30 in deposito 02: no group is 30% of the store.
  const depto = (d: string) => ({ departamento_codigo: d, departamento_nombre: `Depto ${d}` });
  const before = [
    ...['A', 'B', 'C'].flatMap((d) => Array.from({ length: 30 }, (_, i) => row(`${d}${i}`, '5.000', depto(d)))),
    ...Array.from({ length: 30 }, (_, i) => row(`E${i}`, '5.000', { deposito: '02', ...depto('A') })),
  ];
  const state = stateOf(snap('s1', before));
  const zeroWhere = (hit: (r: InventoryRow) => boolean) =>
    snap(
      's2',
      before.map((r) => (hit(r) ? { ...r, cantidad: '0.000' } : r)),
    );

  it('holds back a snapshot in which a whole department of a deposito reads 0, naming it', () => {
    expect(
      quarantine(
        state,
        zeroWhere((r) => r.deposito === '01' && r.departamento_codigo === 'B'),
      ),
    ).toBe(
      '30 of 30 products with stock in departamento B (Depto B) of deposito 01 dropped to 0 or below or vanished at once (100.0% > ' +
        '90%): a POS that read the whole group wrong?',
    );
  });

  it('holds back a whole deposito that reads 0 or vanishes, though under the store share', () => {
    expect(
      quarantine(
        state,
        snap(
          's2',
          before.filter((r) => r.deposito !== '02'),
        ),
      ),
    ).toMatch(/^30 of 30 products with stock in deposito 02 /);
  });

  it('applies real stockouts spread over departments, a department under the share, and a small department', () => {
    expect(
      quarantine(
        state,
        zeroWhere((r) => /^[ABC][0-9]$/.test(r.producto_id)),
      ),
    ).toBeNull(); // 10 of 30 in each
    expect(
      quarantine(
        state,
        zeroWhere(
          (r) =>
            r.departamento_codigo === 'C' &&
            r.producto_id !== 'C0' &&
            r.producto_id !== 'C1' &&
            r.producto_id !== 'C2' &&
            r.deposito === '01',
        ),
      ),
    ).toBeNull(); // 27 of 30
    const small = { ...DEFAULT_QUARANTINE, groupMinProducts: 31 };
    expect(
      quarantine(
        state,
        zeroWhere((r) => r.deposito === '01' && r.departamento_codigo === 'B'),
        small,
      ),
    ).toBeNull();
  });
});

describe('STALE in schemas/pos.inventario.quarantine-value.avsc', () => {
  const current = JSON.parse(readFileSync(join(SCHEMAS_DIR, 'pos.inventario.quarantine-value.avsc'), 'utf8'));
  const status = () => current.fields.find((f: { name: string }) => f.name === 'status').type;

  it('is the last symbol, so records written before it still read (BACKWARD) and the symbols keep their positions', () => {
    expect(status().symbols).toEqual(['QUARANTINED', 'RELEASE_REQUESTED', 'RELEASED', 'SUPERSEDED', 'STALE']);
    const previous = {
      ...current,
      fields: current.fields.map((f: { name: string; type: unknown }) =>
        f.name === 'status' ? { ...f, type: { ...status(), symbols: status().symbols.slice(0, 4) } } : f,
      ),
    };
    // Shared types (Source) are inlined by the loader; resolve them here the same way.
    const withSource = (s: typeof current) =>
      JSON.parse(
        JSON.stringify(s).replace('"ve.lagranja.fluxion.Source"', readFileSync(join(SCHEMAS_DIR, 'types', 'Source.avsc'), 'utf8')),
      );
    expect(backwardIncompatibility(withSource(current), withSource(previous))).toBeNull();
  });
});
