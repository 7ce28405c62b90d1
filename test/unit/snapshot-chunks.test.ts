/** SnapshotChunks' chunks are byte for byte what encoding each row on its own and concatenating gives. */
import { describe, expect, it } from 'vitest';
import avro from 'avsc';
import { createAvroType, loadSubjectSchemas } from '../../core/avro/schemas.ts';
import { confluentFrame } from '../../core/avro/wire.ts';
import { createSnapshotEncoding, SnapshotChunks } from '../../extractors/snapshot-chunks.ts';
import type { InventoryRow } from '../../extractors/inventory-row.ts';

const schema = loadSubjectSchemas().find((s) => s.topic === 'pos.inventario.snapshots')!.schema;
const encoding = createSnapshotEncoding(schema, 42);
const identity = {
  snapshotId: '6f1c2a4e-1b2c-4d5e-8f90-123456789abc',
  ubicacionId: 'tienda_01',
  source: 'KLK' as const,
  takenAt: new Date(1_764_400_000_000),
};
const row = (i: number, v = 0): InventoryRow => ({
  deposito: i % 3 ? '01' : '02',
  producto_id: `P${String(i).padStart(6, '0')}`,
  codigo_barras: i % 7 ? `759${String(i).padStart(10, '0')}` : null,
  descripcion: `HARINA ${'X'.repeat(i % 40)}`,
  departamento_codigo: '01',
  departamento_nombre: 'VIVERES',
  grupo_codigo: '0101',
  grupo_nombre: null,
  subgrupo_codigo: null,
  subgrupo_nombre: null,
  unidad: 'UND',
  cantidad: `${(i * 37 + v) % 5000}.${String(i % 1000).padStart(3, '0')}`,
  costo: i % 11 ? `${(i * 13) % 900}.0001` : null,
  precio: `${(i * 17) % 1200}.5000`,
  activo: i % 50 !== 0,
  actualizado_en: i % 5 ? new Date(1_764_400_000_000 + i) : null,
});

/** The former implementation: one Buffer per row in a Map (delete + set keeps the last read last). */
function reference(rows: InventoryRow[], chunkSize: number): Buffer[] {
  const LONG = avro.Type.forSchema('long');
  const m = new Map<string, Buffer>();
  for (const r of rows) {
    const k = `${r.deposito}\u0000${r.producto_id}`;
    m.delete(k);
    m.set(k, encoding.item.toBuffer(r));
  }
  const enc = [...m.values()];
  const count = Math.max(1, Math.ceil(enc.length / chunkSize));
  return Array.from({ length: count }, (_, i) => {
    const part = enc.slice(i * chunkSize, (i + 1) * chunkSize);
    const header = encoding.head.toBuffer({
      snapshot_id: identity.snapshotId,
      ubicacion_id: identity.ubicacionId,
      source: identity.source,
      taken_at: identity.takenAt,
      chunk_index: i,
      chunk_count: count,
      row_count: enc.length,
    });
    const body = part.length ? Buffer.concat([LONG.toBuffer(part.length), ...part, LONG.toBuffer(0)]) : LONG.toBuffer(0);
    return confluentFrame(42, Buffer.concat([header, body]));
  });
}

describe('SnapshotChunks', () => {
  it('matches the per-row encoding, past the first buffer and with products read twice', () => {
    const rows = Array.from({ length: 15_000 }, (_, i) => row(i));
    for (let i = 0; i < 300; i++) rows.splice(500 + i * 40, 0, row(i * 17, 1)); // re-reads with new values
    const chunks = new SnapshotChunks(encoding, identity, 1_000);
    for (const r of rows) chunks.add(r);
    const want = reference(rows, 1_000);
    expect(chunks.rowCount).toBe(15_000);
    expect(chunks.duplicates).toBe(300);
    const got = chunks.build();
    expect(got.length).toBe(want.length);
    for (const [i, b] of got.entries()) expect(Buffer.compare(b, want[i]!)).toBe(0);
  });

  it("writes what encoding each whole chunk value with the committed schema gives (the topic codec's own encode)", () => {
    const whole = createAvroType(schema);
    const rows = Array.from({ length: 2_500 }, (_, i) => row(i));
    const chunks = new SnapshotChunks(encoding, identity, 1_000);
    for (const r of rows) chunks.add(r);
    const got = chunks.build();
    expect(got.length).toBe(3);
    got.forEach((b, i) => {
      const value = {
        snapshot_id: identity.snapshotId,
        ubicacion_id: identity.ubicacionId,
        source: identity.source,
        taken_at: identity.takenAt,
        chunk_index: i,
        chunk_count: 3,
        row_count: 2_500,
        rows: rows.slice(i * 1_000, (i + 1) * 1_000),
      };
      expect(b.toString('hex')).toBe(confluentFrame(42, whole.toBuffer(value)).toString('hex'));
    });
  });

  it('builds one chunk without rows for an empty snapshot, and refuses a bad row', () => {
    const chunks = new SnapshotChunks(encoding, identity);
    expect(chunks.build().map((b) => b.toString('hex'))).toEqual(reference([], 1_000).map((b) => b.toString('hex')));
    expect(() => chunks.add({ ...row(1), cantidad: 'abc' })).toThrow();
    expect(chunks.rowCount).toBe(0);
  });
});
