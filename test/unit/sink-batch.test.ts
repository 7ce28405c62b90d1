/**
 * The sink's batch plans for ventas and etl_runs (sinks/sink-batch.ts): the last record of a key
 * wins, refusals name the record, and any split into batches ends where one record at a time
 * does (the alertas plans: sink-batch-alertas.test.ts).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Venta, VentaLinea } from '../../core/records.ts';
import {
  ETL_RUNS_COLUMNS,
  VENTAS_COLUMNS,
  nextVentaVersion,
  planEtlRuns,
  planVentas,
  rowsOf,
  type EtlRun,
  type VentaRow,
} from '../../sinks/sink-batch.ts';
import { SNAP, at, caught, split, sorted, STORES, START, cutsArb } from '../helpers/sink-batch-model.ts';

// ---------------------------------------------------------------------------------------------

const linea = (extra: Partial<VentaLinea> = {}): VentaLinea => ({
  ubicacion_id: 'tienda_01',
  fecha: '2026-11-27',
  numero_factura: 'F-1',
  linea: 1,
  fecha_hora: at('2026-11-27T13:00:00Z'),
  producto_id: '000123',
  cantidad: '2.000',
  precio_unitario: '1.2000',
  descuento: '0.0000',
  total: '2.4000',
  caja: '03',
  anulada: false,
  ...extra,
});
const venta = (op: 'c' | 'u', fingerprint: string, extra: Partial<VentaLinea> = {}, extractedAt = '2026-11-27T14:00:00Z'): Venta => ({
  op,
  linea: linea(extra),
  fingerprint,
  first_seen_at: at('2026-11-27T14:00:00Z'),
  extracted_at: at(extractedAt),
});
const ventaKey = (r: Pick<VentaRow, 'ubicacion_id' | 'numero_factura' | 'linea'>) => `${r.ubicacion_id}/${r.numero_factura}/${r.linea}`;

/** One record at a time: 1 when first written, +1 when the content (fingerprint) changed. */
function foldVentas(table: Map<string, VentaRow>, ventas: readonly Venta[]): Map<string, VentaRow> {
  const next = new Map(table);
  for (const v of ventas) {
    const single = rowsOf(VENTAS_COLUMNS, planVentas([v]).upserts)[0]!;
    const cur = next.get(ventaKey(single));
    next.set(ventaKey(single), { ...single, version: !cur ? 1 : cur.version + (cur.fingerprint === v.fingerprint ? 0 : 1) });
  }
  return next;
}

function applyVentas(table: Map<string, VentaRow>, ventas: readonly Venta[]): Map<string, VentaRow> {
  const plan = planVentas(ventas);
  const next = new Map(table);
  rowsOf(VENTAS_COLUMNS, plan.upserts).forEach((r, i) => {
    const cur = next.get(ventaKey(r));
    next.set(ventaKey(r), { ...r, version: nextVentaVersion(cur, { version: r.version, first_fingerprint: plan.first_fingerprint[i]! }) });
  });
  return next;
}

describe('planVentas', () => {
  it('keeps the last record of a line and counts the versions the batch holds', () => {
    const plan = planVentas([
      venta('c', 'f1'),
      venta('c', 'f1', { linea: 2 }),
      venta('u', 'f2', { anulada: true }, '2026-11-27T15:00:00Z'),
      venta('u', 'f3', { anulada: true, cantidad: '1.000' }, '2026-11-27T16:00:00Z'),
    ]);
    const rows = rowsOf(VENTAS_COLUMNS, plan.upserts);
    expect(rows.map((r) => [r.linea, r.fingerprint, r.version, r.cantidad, r.anulada, r.extracted_at.toISOString()])).toEqual([
      [1, 'f3', 3, '1.000', true, '2026-11-27T16:00:00.000Z'],
      [2, 'f1', 1, '2.000', false, '2026-11-27T14:00:00.000Z'],
    ]);
    expect(plan.first_fingerprint).toEqual(['f1', 'f1']);
  });

  it('a line re-sent unchanged (after the dedupe state expired) is not a new version', () => {
    expect(nextVentaVersion({ version: 2, fingerprint: 'f2' }, { version: 1, first_fingerprint: 'f2' })).toBe(2);
    expect(nextVentaVersion({ version: 2, fingerprint: 'f2' }, { version: 2, first_fingerprint: 'f2' })).toBe(3);
    expect(nextVentaVersion({ version: 2, fingerprint: 'f1' }, { version: 2, first_fingerprint: 'f2' })).toBe(4);
    expect(nextVentaVersion(undefined, { version: 2, first_fingerprint: 'f1' })).toBe(2);
  });

  it('refuses a line number that does not fit the integer column', () => {
    expect(caught(() => planVentas([venta('c', 'f1', { linea: 2 ** 31 })]))).toMatchObject({
      topic: 'pos.ventas',
      field: 'linea.linea',
      key: `tienda_01/F-1/${2 ** 31}`,
    });
  });

  it('no line twice in the statement, and any split into batches ends where one record at a time does (property)', () => {
    const recordArb = fc.record({
      factura: fc.constantFrom('F-1', 'F-2'),
      linea: fc.integer({ min: 1, max: 3 }),
      fp: fc.constantFrom('f1', 'f2', 'f3'),
      store: fc.constantFrom(...STORES),
    });
    const toVenta = (r: { factura: string; linea: number; fp: string; store: string }, i: number) =>
      venta(
        i === 0 ? 'c' : 'u',
        r.fp,
        { ubicacion_id: r.store, numero_factura: r.factura, linea: r.linea, cantidad: `${r.fp.slice(1)}.000` },
        new Date(START + i * 60_000).toISOString(),
      );
    fc.assert(
      fc.property(fc.array(recordArb, { maxLength: 12 }), fc.array(recordArb, { maxLength: 30 }), cutsArb, (before, records, cuts) => {
        const table = foldVentas(new Map(), before.map(toVenta));
        const ventas = records.map(toVenta);
        let batched = table;
        for (const batch of split(ventas, cuts)) {
          const keys = rowsOf(VENTAS_COLUMNS, planVentas(batch).upserts).map(ventaKey);
          expect(new Set(keys).size).toBe(keys.length);
          batched = applyVentas(batched, batch);
        }
        expect(sorted(batched)).toEqual(sorted(foldVentas(table, ventas)));
      }),
      { numRuns: 500 },
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('planEtlRuns', () => {
  const run = (extra: Partial<EtlRun> = {}): EtlRun => ({
    run_id: '1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b',
    job: 'INVENTARIO',
    ubicacion_id: 'tienda_01',
    status: 'OK',
    rows: 1000,
    started_at: at('2026-11-27T14:30:00Z'),
    finished_at: at('2026-11-27T14:30:09Z'),
    snapshot_id: SNAP,
    fecha: null,
    error_class: null,
    error_message: null,
    ...extra,
  });

  it('keeps the last record of each (run_id, ubicacion_id), in the etl_runs column order', () => {
    const rows = planEtlRuns([run({ status: 'FAILED', rows: 0, error_class: 'TIMEOUT' }), run({ ubicacion_id: 'cedi_frio' }), run()]);
    expect(rowsOf(ETL_RUNS_COLUMNS, rows).map((r) => [r.ubicacion_id, r.status, r.rows, r.error_class])).toEqual([
      ['tienda_01', 'OK', 1000, null],
      ['cedi_frio', 'OK', 1000, null],
    ]);
    expect(Object.keys(rows)).toEqual([...ETL_RUNS_COLUMNS]);
  });

  it('refuses a record without run_id, naming the topic key job/ubicacion_id', () => {
    expect(caught(() => planEtlRuns([run({ run_id: '' })]))).toMatchObject({
      topic: 'ops.etl-runs',
      key: 'INVENTARIO/tienda_01',
      field: 'run_id',
    });
  });

  it('no (run_id, ubicacion_id) twice in the statement (property)', () => {
    const runArb = fc.record({
      run: fc.constantFrom('r1', 'r2', 'r3'),
      store: fc.constantFrom('tienda_01', 'tienda_02', 'cedi_frio'),
      rows: fc.nat({ max: 10 }),
    });
    fc.assert(
      fc.property(fc.array(runArb, { maxLength: 20 }), (runs) => {
        const planned = rowsOf(
          ETL_RUNS_COLUMNS,
          planEtlRuns(runs.map((r) => run({ run_id: r.run, ubicacion_id: r.store, rows: r.rows }))),
        );
        const keys = planned.map((r) => `${r.run_id}/${r.ubicacion_id}`);
        expect(new Set(keys).size).toBe(keys.length);
        expect(new Set(keys)).toEqual(new Set(runs.map((r) => `${r.run}/${r.store}`)));
        for (const p of planned) expect(p.rows).toBe(runs.findLast((r) => r.run === p.run_id && r.store === p.ubicacion_id)!.rows);
      }),
      { numRuns: 300 },
    );
  });
});
