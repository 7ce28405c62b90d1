/**
 * The simulated POS: its data is a pure function of the seed, a page is produced from its own
 * rows only and equals the same rows of the whole list, stock and sales stay consistent, and a
 * catalogue's size costs no heap.
 */
import { describe, expect, it } from 'vitest';
import { NO_ANOMALIES } from '../../simulators/data/anomalies.ts';
import { Catalog } from '../../simulators/data/catalog.ts';
import { StoreSimulation } from '../../simulators/data/store-simulation.ts';
import { startKlkSimulator } from '../../simulators/klk/server.ts';
import { servedInventario } from '../../simulators/faults.ts';

const klk = (products: number, seed = 'unit', anomalies = {}) =>
  new StoreSimulation({
    ubicacionId: 'tienda_01',
    pos: 'klk',
    depositos: ['01', '02'],
    products,
    seed,
    salesLinesPerHour: 600,
    anomalies,
  });

describe('StoreSimulation', () => {
  it('the same seed gives the same catalogue, stock and sales; another seed other data', () => {
    const [a, b, c] = [klk(800), klk(800), klk(800, 'other')];
    for (const s of [a, b, c]) s.advance(90);
    expect(b.inventario()).toEqual(a.inventario());
    expect(b.ventas('2026-11-27')).toEqual(a.ventas('2026-11-27'));
    // 1% of the lines are posted 30 minutes late by default: without anomalies, every line is there.
    expect(a.ventas('2026-11-27').length).toBeGreaterThan(870);
    const clean = klk(800, 'unit', NO_ANOMALIES);
    clean.advance(90);
    expect(clean.ventas('2026-11-27').length).toBe(900);
    expect(c.inventario().map((r) => r.descripcion)).not.toEqual(a.inventario().map((r) => r.descripcion));
  });

  it('product i does not depend on the catalogue size nor on the rows before it', () => {
    const small = new Catalog('s', 50);
    const big = new Catalog('s', 5_000_000);
    expect(big.at(49)).toEqual(small.at(49));
    expect([...small]).toEqual(Array.from({ length: 50 }, (_, i) => big.at(i)));
    expect(big.at(4_999_999).producto_id).toBe('5000000');
    expect(big.indexOf('000050')).toBe(49);
    expect(big.indexOf('50')).toBeUndefined();
    expect(small.indexOf('000051')).toBeUndefined();
    expect(() => small.at(50)).toThrow(/no product at index 50 of 50/);
    // The catalogue keeps its variety: weighed goods, PROCURA, products without barcode or group.
    const all = [...new Catalog('s', 3_000)];
    expect(all.filter((p) => p.unidad === 'KG').length).toBeGreaterThan(300);
    expect(all.filter((p) => p.departamento.codigo === '000017').length).toBeGreaterThan(10);
    expect(all.filter((p) => !p.codigos.some((x) => x.tipo === 'BARRA')).length).toBeGreaterThan(50);
    expect(all.filter((p) => p.grupo === null).length).toBeGreaterThan(30);
    expect(new Set(all.map((p) => p.descripcion)).size).toBeGreaterThan(1_000);
  });

  it('a page equals the same rows of the whole deposito, after sales, receipts and a set stock', () => {
    const s = klk(2_345);
    s.advance(60);
    s.setCantidad('02', '000007', -3_000n);
    for (const d of ['01', '02']) {
      const all = s.klkInventario(d);
      expect(all).toHaveLength(2_345);
      for (const [from, to] of [
        [0, 1000],
        [1000, 2000],
        [2000, 3000],
        [2340, 2345],
      ] as const)
        expect(s.klkInventarioPage(d, from, to)).toEqual(all.slice(from, to));
    }
    expect(s.klkInventario('02')[6]!.cantidad).toBe('-3.000');
    expect(s.cantidad('02', '000007')).toBe(-3_000n);
    expect(s.klkInventarioPage('99', 0, 10)).toEqual([]);
    // Beyond 32 bits of thousandths, and back.
    s.setCantidad('01', '000009', 5_000_000_000n);
    expect(s.klkInventarioPage('01', 8, 9)[0]!.cantidad).toBe('5000000.000');
    s.setCantidad('01', '000009', -4_000_000_000n);
    expect(s.cantidad('01', '000009')).toBe(-4_000_000_000n);
    s.setCantidad('01', '000009', 12_500n);
    expect(s.cantidad('01', '000009')).toBe(12_500n);
    expect(() => s.cantidad('01', '999999')).toThrow(/tienda_01: no product 999999 in deposito 01/);
    expect(() => s.setCantidad('03', '000001', 1n)).toThrow(/no product 000001 in deposito 03/);
  });

  it('sales leave the first deposito and voided lines bring their goods back', () => {
    const s = new StoreSimulation({
      ubicacionId: 'tienda_02',
      pos: 'klk',
      depositos: ['01', '02'],
      products: 300,
      changeShare: 0,
      salesLinesPerHour: 4_000,
      anomalies: NO_ANOMALIES,
    });
    const before = new Map(s.klkInventario('01').map((r) => [r.producto_id, Number(r.cantidad)]));
    const untouched = s.klkInventario('02');
    const changed: string[] = [];
    s.onStockChange((d, id) => changed.push(`${d}/${id}`));
    s.advance(60);
    const lines = s.ventas('2026-11-27');
    expect(lines.filter((l) => l.anulada).length).toBeGreaterThan(0);
    expect(s.ventasCount('2026-11-27')).toBe(lines.length);
    expect(s.ventasPage('2026-11-27', 1000, 2000)).toEqual(lines.slice(1000, 2000));
    const sold = new Map<string, number>();
    for (const l of lines) if (!l.anulada) sold.set(l.producto_id, (sold.get(l.producto_id) ?? 0) + Number(l.cantidad));
    for (const r of s.klkInventario('01'))
      expect(Number(r.cantidad)).toBeCloseTo(before.get(r.producto_id)! - (sold.get(r.producto_id) ?? 0), 3);
    expect(s.klkInventario('02')).toEqual(untouched);
    expect(new Set(changed.map((c) => c.split('/')[0]))).toEqual(new Set(['01']));
    // Lines are whole seconds and priced from the catalogue.
    const l = lines[0]!;
    expect(l.fecha_hora.getMilliseconds()).toBe(0);
    expect(l.precio_unitario).toBe(s.klkInventario('01').find((r) => r.producto_id === l.producto_id)!.precio);
  });

  it('a catalogue of a million products costs no heap until it is read', () => {
    const heap = process.memoryUsage().heapUsed;
    const s = new StoreSimulation({ ubicacionId: 'tienda_n0001', pos: 'klk', depositos: ['01'], products: 1_000_000 });
    const page = s.klkInventarioPage('01', 999_000, 1_000_000);
    expect(process.memoryUsage().heapUsed - heap).toBeLessThan(20 * 2 ** 20);
    expect(page).toHaveLength(1000);
    expect(page.at(-1)!.producto_id).toBe('1000000');
  });
});

describe('KLK simulator pages', () => {
  it('serves exactly the truth page by page, with row faults applied per page and mass zeros over the whole list', async () => {
    const s = klk(2_500);
    s.advance(30);
    const server = await startKlkSimulator({ stores: [s], apiKeys: { tienda_01: 'k' } });
    try {
      const read = async () => {
        const rows: unknown[] = [];
        for (let page = 1, total = 1; page <= total; page++) {
          const body = (await (
            await fetch(`${server.baseUrl('tienda_01')}/api/v1/inventario?deposito=02&page=${page}&page_size=700`, {
              headers: { 'x-api-key': 'k' },
            })
          ).json()) as { total_pages: number; total_items: number; items: Array<{ codigo_producto: string; cantidad: string }> };
          total = body.total_pages;
          rows.push(...body.items.map((i) => [i.codigo_producto, i.cantidad]));
        }
        return rows;
      };
      const expected = (f: Parameters<typeof servedInventario>[1]) =>
        servedInventario(s.klkInventario('02'), f).map((r) => [r.producto_id, r.cantidad]);
      expect(await read()).toEqual(expected({}));
      const faults = { phantomZeros: ['000003', '002400'], invalidDecimalFor: '001500' };
      server.faults.set('tienda_01', faults);
      expect(await read()).toEqual(expected(faults));
      server.faults.set('tienda_01', { massZerosShare: 0.3 });
      expect(await read()).toEqual(expected({ massZerosShare: 0.3 }));
      server.faults.set('tienda_01', { emptyInventory: true });
      expect(await read()).toEqual([]);
    } finally {
      await server.close();
    }
  });
});
