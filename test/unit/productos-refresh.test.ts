/**
 * The pure half of the productos refresh: what a POS row gives productos, how rows are
 * grouped for the staging table, and the table the command prints.
 */
import { describe, expect, it } from 'vitest';
import type { InventoryRow } from '../../core/records.ts';
import { productosSummary, type ProductosOutcome } from '../../cli/productos.ts';
import { CATALOGUE_COLUMNS, catalogueBatches } from '../../sinks/productos-refresh.ts';
import { catalogueRow, PRODUCTOS_COLUMNS } from '../../sinks/sink-batch.ts';

function row(producto_id: string, extra: Partial<InventoryRow> = {}): InventoryRow {
  return {
    deposito: '01',
    producto_id,
    codigo_barras: `759${producto_id}`,
    descripcion: `PRODUCTO ${producto_id}`,
    departamento_codigo: '000003',
    departamento_nombre: 'VIVERES',
    grupo_codigo: '0031',
    grupo_nombre: 'HARINAS',
    subgrupo_codigo: '003101',
    subgrupo_nombre: 'HARINA DE MAIZ',
    unidad: 'UND',
    cantidad: '12.000',
    costo: '0.8500',
    precio: '1.2000',
    activo: true,
    actualizado_en: null,
    ...extra,
  };
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function* rows(list: InventoryRow[]): AsyncGenerator<InventoryRow> {
  yield* list;
}

describe('catalogueRow', () => {
  it('keeps the catalogue fields of a POS row and none of its stock or prices', () => {
    const r = catalogueRow(
      row('000123', {
        codigo_barras: null,
        grupo_codigo: null,
        grupo_nombre: null,
        subgrupo_codigo: null,
        subgrupo_nombre: null,
        unidad: 'KG',
      }),
    );
    expect(r).toEqual({
      producto_id: '000123',
      descripcion: 'PRODUCTO 000123',
      codigo_barras: null,
      departamento_codigo: '000003',
      departamento_nombre: 'VIVERES',
      grupo_codigo: null,
      grupo_nombre: null,
      subgrupo_codigo: null,
      subgrupo_nombre: null,
      unidad: 'KG',
    });
  });

  it('stages exactly the productos columns but where and when the product was seen', () => {
    expect(CATALOGUE_COLUMNS).toEqual(PRODUCTOS_COLUMNS.filter((c) => c !== 'visto_en' && c !== 'ubicacion_id'));
    expect(Object.keys(catalogueRow(row('1'))).sort()).toEqual([...CATALOGUE_COLUMNS].sort());
  });
});

describe('catalogueBatches', () => {
  it('holds each product once per batch, as last read (a product in two depositos)', async () => {
    const batches = await collect(
      catalogueBatches(rows([row('1'), row('2'), row('1', { deposito: '02', descripcion: 'RENOMBRADO' })]), 10),
    );
    expect(batches).toHaveLength(1);
    expect(batches[0]!.read).toBe(3);
    expect(batches[0]!.rows.map((r) => [r.producto_id, r.descripcion])).toEqual([
      ['1', 'RENOMBRADO'],
      ['2', 'PRODUCTO 2'],
    ]);
  });

  it('cuts batches at `size` distinct products and counts every row read', async () => {
    const list = Array.from({ length: 25 }, (_, i) => row(String(i % 12)));
    const batches = await collect(catalogueBatches(rows(list), 5));
    for (const b of batches) expect(new Set(b.rows.map((r) => r.producto_id)).size).toBe(b.rows.length);
    expect(batches.every((b) => b.rows.length <= 5)).toBe(true);
    expect(batches.reduce((n, b) => n + b.read, 0)).toBe(25);
    expect(new Set(batches.flatMap((b) => b.rows.map((r) => r.producto_id))).size).toBe(12);
  });

  it('yields nothing for a POS that reports no rows', async () => {
    expect(await collect(catalogueBatches(rows([])))).toEqual([]);
  });
});

describe('productosSummary', () => {
  const ok = (id: string, inserted: number, updated: number, unchanged: number, newerKept = 0): ProductosOutcome => ({
    ubicacionId: id,
    source: 'KLK',
    status: 'OK',
    durationMs: 1234,
    errorClass: null,
    errorMessage: null,
    result: {
      read: inserted + updated + unchanged + newerKept,
      productos: inserted + updated + unchanged + newerKept,
      inserted,
      updated,
      unchanged,
      newerKept,
    },
  });

  it('prints a line per store and totals the stores that landed; a failed store names its error', () => {
    const lines = productosSummary([
      ok('tienda_01', 1500, 0, 0),
      {
        ubicacionId: 'cedi_frio',
        source: 'STELLAR',
        status: 'FAILED',
        result: null,
        durationMs: 500,
        errorClass: 'POS_AUTH',
        errorMessage: 'cedi_frio: login refused',
      },
      ok('tienda_02', 0, 2, 1498, 3),
    ]);
    expect(lines[0]).toMatch(/^store\s+source\s+read\s+products\s+inserted\s+updated\s+unchanged\s+duration\s+result$/);
    expect(lines[1]).toMatch(/^tienda_01\s+KLK\s+1500\s+1500\s+1500\s+0\s+0\s+1\.2 s\s+OK$/);
    expect(lines[2]).toMatch(/^cedi_frio\s+STELLAR\s+-\s+-\s+-\s+-\s+-\s+0\.5 s\s+FAILED POS_AUTH: cedi_frio: login refused$/);
    expect(lines[3]).toMatch(/^tienda_02\s+KLK\s+1503\s+1503\s+0\s+2\s+1498\s+1\.2 s\s+OK \(3 already newer or equal\)$/);
    expect(lines.at(-1)).toBe('productos: 2 of 3 stores OK, 1 FAILED; 1500 inserted, 2 updated, 1498 unchanged');
  });
});
