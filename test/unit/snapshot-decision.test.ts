import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { InventoryRow, QuarantineRecord } from '../../core/records.ts';
import {
  decideSnapshot,
  judgeSnapshot,
  staleReason,
  supersededBy,
  type AppliedSnapshot,
  type SnapshotFacts,
} from '../../processors/snapshot-decision.ts';
import {
  applyChanges,
  diffSnapshot,
  DEFAULT_QUARANTINE,
  packSnapshot,
  type StoreRows,
  type StoreState,
} from '../../processors/snapshot-diff.ts';

describe('judgeSnapshot: a stale snapshot told apart from one read again', () => {
  const T = Date.parse('2026-11-27T14:00:00Z');
  // The store's last applied snapshot "A2", completed by the record at offset 500.
  const applied: AppliedSnapshot = { snapshot_id: 'A2', taken_at: T, offset: 500n };
  const seen = (snapshot_id: string, minutes: number, offset: bigint) => ({ snapshot_id, taken_at: T + minutes * 60_000, offset });

  it('applies the first snapshot of a store and one taken after the applied one', () => {
    expect(judgeSnapshot(seen('A1', -30, 10n), undefined, false)).toEqual({ kind: 'newer' });
    expect(judgeSnapshot(seen('A3', 30, 600n), applied, false)).toEqual({ kind: 'newer' });
  });

  it('skips the applied snapshot and any snapshot with a quarantine record, whatever their offsets', () => {
    expect(judgeSnapshot(seen('A2', 0, 480n), applied, false)).toEqual({ kind: 'reread', why: 'applied' });
    expect(judgeSnapshot(seen('A2', 0, 900n), applied, false)).toEqual({ kind: 'reread', why: 'applied' });
    expect(judgeSnapshot(seen('Q3', 30, 900n), applied, true)).toEqual({ kind: 'reread', why: 'decided' });
    expect(judgeSnapshot(seen('S0', -60, 900n), applied, true)).toEqual({ kind: 'reread', why: 'decided' });
  });

  it('skips an older snapshot read at or before the offset that completed the applied one (a restart reads it again)', () => {
    expect(judgeSnapshot(seen('A1', -30, 200n), applied, false)).toEqual({ kind: 'reread', why: 'read-before-applied' });
    expect(judgeSnapshot(seen('A1', -30, 500n), applied, false)).toEqual({ kind: 'reread', why: 'read-before-applied' });
  });

  it('calls stale an older or same-instant snapshot first read after the applied one, naming the applied one', () => {
    expect(judgeSnapshot(seen('S0', -60, 501n), applied, false)).toEqual({ kind: 'stale', applied });
    expect(judgeSnapshot(seen('S1', 0, 700n), applied, false)).toEqual({ kind: 'stale', applied });
  });

  it('takes an older snapshot as read again when the state does not hold the applied offset (written by an older differ)', () => {
    expect(judgeSnapshot(seen('S0', -60, 900n), { snapshot_id: 'A2', taken_at: T }, false)).toEqual({
      kind: 'reread',
      why: 'applied-offset-unknown',
    });
  });

  it('splits the older sightings at the applied offset: at or before it read again, after it stale (property)', () => {
    // Whatever the sequence, a sighting at or before the applied offset is never stale, and
    // one after it is stale exactly when it is not newer and not decided.
    fc.assert(
      fc.property(fc.integer({ min: -120, max: 120 }), fc.bigInt({ min: 0n, max: 1_000n }), fc.boolean(), (minutes, offset, decided) => {
        const v = judgeSnapshot(seen('X', minutes, offset), applied, decided);
        if (decided) expect(v.kind).toBe('reread');
        else if (minutes > 0) expect(v.kind).toBe('newer');
        else expect(v.kind).toBe(offset <= 500n ? 'reread' : 'stale');
      }),
    );
  });

  it('words the reason with both snapshot ids and both taken_at', () => {
    expect(staleReason({ snapshot_id: 'S0', taken_at: new Date(T - 3_600_000) }, applied)).toBe(
      'stale: taken at 2026-11-27T13:00:00.000Z, before snapshot A2 (taken at 2026-11-27T14:00:00.000Z) which was already applied',
    );
  });
});

describe('decideSnapshot: what the differ does with a complete snapshot', () => {
  const T = Date.parse('2026-11-27T14:00:00Z');
  const at = (minutes: number) => new Date(T + minutes * 60_000);
  const row = (producto_id: string, cantidad: string): InventoryRow => ({
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
    costo: null,
    precio: null,
    activo: true,
    actualizado_en: null,
  });
  const snapshot = (id: string, minutes: number, cantidad = '5.000') =>
    packSnapshot({
      snapshot_id: id,
      ubicacion_id: 'tienda_01',
      source: 'KLK',
      taken_at: at(minutes),
      rows: [row('A', cantidad), row('B', cantidad)],
    });
  // The store's state: both products with stock, applied by snapshot A2 at T, completed at offset 500.
  const rows: StoreState = applyChanges(new Map(), diffSnapshot(new Map(), snapshot('A2', 0)).changes);
  const applied: AppliedSnapshot = { snapshot_id: 'A2', taken_at: T, offset: 500n };
  /** Rows that fail the test when read: the decision must not need the store. */
  const unread: StoreRows = {
    entries() {
      throw new Error('the store rows were read');
    },
  };
  const facts = (over: Partial<SnapshotFacts>): SnapshotFacts => ({
    snapshot: snapshot('A3', 30),
    chunkCount: 2,
    release: null,
    applied,
    known: undefined,
    rows,
    rule: DEFAULT_QUARANTINE,
    partition: 4,
    offset: 900n,
    firstOffset: 880n,
    ...over,
  });
  const quarantined = (id: string, minutes: number, extra: Partial<QuarantineRecord> = {}): QuarantineRecord => ({
    snapshot_id: id,
    ubicacion_id: 'tienda_01',
    source: 'KLK',
    taken_at: at(minutes),
    status: 'QUARANTINED',
    reason: 'empty snapshot (the store had 2 products)',
    row_count: 0,
    chunk_count: 1,
    partition: 4,
    first_offset: 700,
    updated_at: at(minutes),
    note: null,
    ...extra,
  });

  it('applies a newer snapshot (and the first of a store) that the quarantine rule lets through', () => {
    expect(decideSnapshot(facts({}))).toEqual({ kind: 'apply' });
    expect(decideSnapshot(facts({ applied: undefined, rows: new Map() }))).toEqual({ kind: 'apply' });
  });

  it('quarantines a newer snapshot the rule refuses, with a record naming where its chunks are', () => {
    expect(decideSnapshot(facts({ snapshot: snapshot('A3', 30, '0.000') }))).toEqual({
      kind: 'quarantine',
      record: {
        snapshot_id: 'A3',
        ubicacion_id: 'tienda_01',
        source: 'KLK',
        taken_at: at(30),
        status: 'QUARANTINED',
        reason: '2 of 2 products with stock dropped to 0 or below and 0 vanished (100.0% > 30%)',
        row_count: 2,
        chunk_count: 2,
        partition: 4,
        first_offset: 880,
        updated_at: at(30),
        note: null,
      },
    });
  });

  it('skips a known snapshot (the applied one, or one with a quarantine record) without reading the store', () => {
    expect(decideSnapshot(facts({ snapshot: snapshot('A2', 0), rows: unread }))).toEqual({ kind: 'skip', why: 'applied' });
    expect(decideSnapshot(facts({ known: quarantined('A3', 30), rows: unread }))).toEqual({ kind: 'skip', why: 'decided' });
    expect(decideSnapshot(facts({ snapshot: snapshot('A1', -30), offset: 400n, rows: unread }))).toEqual({
      kind: 'skip',
      why: 'read-before-applied',
    });
  });

  it('records an older snapshot first read after the applied one as STALE, timed at the applied one', () => {
    const d = decideSnapshot(facts({ snapshot: snapshot('S0', -60), rows: unread }));
    expect(d).toEqual({
      kind: 'stale',
      applied,
      record: {
        snapshot_id: 'S0',
        ubicacion_id: 'tienda_01',
        source: 'KLK',
        taken_at: at(-60),
        status: 'STALE',
        reason: staleReason({ snapshot_id: 'S0', taken_at: at(-60) }, applied),
        row_count: 2,
        chunk_count: 2,
        partition: 4,
        first_offset: 880,
        updated_at: new Date(T),
        note: null,
      },
    });
  });

  it("releases a quarantined snapshot newer than the applied one, without the rule, with the operator's note and time", () => {
    const known = quarantined('A3', 30, { status: 'RELEASE_REQUESTED', note: 'asked by ops' });
    const empty = snapshot('A3', 30, '0.000');
    expect(decideSnapshot(facts({ snapshot: empty, known, release: { note: 'counted by hand', at: at(90) }, rows: unread }))).toEqual({
      kind: 'release',
      record: { ...known, status: 'RELEASED', updated_at: at(90), note: 'counted by hand' },
    });
    // Without a note or a time, the record keeps its note and takes the snapshot's taken_at.
    expect(decideSnapshot(facts({ snapshot: empty, known, release: { note: null, at: null }, rows: unread }))).toEqual({
      kind: 'release',
      record: { ...known, status: 'RELEASED', updated_at: at(30), note: 'asked by ops' },
    });
  });

  it('supersedes a released snapshot that is not newer than the applied one', () => {
    const known = quarantined('Q1', -30);
    expect(decideSnapshot(facts({ snapshot: snapshot('Q1', -30), known, release: { note: null, at: null }, rows: unread }))).toEqual({
      kind: 'supersede-release',
      record: { ...known, status: 'SUPERSEDED', updated_at: at(-30), note: 'not applied: snapshot A2 of the store is newer' },
    });
    expect(
      decideSnapshot(facts({ snapshot: snapshot('Q0', 0), known: quarantined('Q0', 0), release: { note: null, at: null } })).kind,
    ).toBe('supersede-release');
  });

  it('ignores a release of a snapshot that is not waiting for one, naming its status', () => {
    const release = { note: null, at: null };
    expect(decideSnapshot(facts({ release, rows: unread }))).toEqual({ kind: 'ignore-release', status: 'unknown' });
    for (const status of ['RELEASED', 'SUPERSEDED', 'STALE'] as const) {
      expect(decideSnapshot(facts({ release, known: quarantined('A3', 30, { status }), rows: unread }))).toEqual({
        kind: 'ignore-release',
        status,
      });
    }
  });
});

describe('supersededBy: the quarantined snapshots an applied one leaves unreleasable', () => {
  const at = (minutes: number) => new Date(Date.parse('2026-11-27T14:00:00Z') + minutes * 60_000);
  const q = (snapshot_id: string, minutes: number, status: QuarantineRecord['status'], ubicacion_id = 'tienda_01'): QuarantineRecord => ({
    snapshot_id,
    ubicacion_id,
    source: 'KLK',
    taken_at: at(minutes),
    status,
    reason: 'r',
    row_count: 0,
    chunk_count: 1,
    partition: 0,
    first_offset: 0,
    updated_at: at(minutes),
    note: null,
  });

  it("supersedes the store's older QUARANTINED and RELEASE_REQUESTED records only, timed at the applied snapshot", () => {
    const records = [
      q('Q1', -60, 'QUARANTINED'),
      q('Q2', -30, 'RELEASE_REQUESTED'),
      q('Q3', 30, 'QUARANTINED'),
      q('R1', -90, 'RELEASED'),
      q('S1', -90, 'STALE'),
      q('O1', -60, 'QUARANTINED', 'tienda_02'),
      q('A3', 0, 'QUARANTINED'),
    ];
    const out = supersededBy({ snapshot_id: 'A3', ubicacion_id: 'tienda_01', taken_at: at(0) }, records);
    expect(out).toEqual([
      { ...records[0], status: 'SUPERSEDED', updated_at: at(0), note: 'superseded by snapshot A3 taken at 2026-11-27T14:00:00.000Z' },
      { ...records[1], status: 'SUPERSEDED', updated_at: at(0), note: 'superseded by snapshot A3 taken at 2026-11-27T14:00:00.000Z' },
    ]);
  });
});
