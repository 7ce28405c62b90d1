/**
 * test/integration/abc.test.ts's oracle: seeded sales data (exact ties, zero-sales products,
 * voided lines, returns, lines outside the window), written into PostgreSQL, and the ABC
 * classification computed independently in TypeScript (exact BigInt arithmetic, no SQL) to
 * compare productos_abc_cache with row by row.
 */
import type pg from 'pg';
import type { Pool } from '../../core/postgres.ts';
import type { Rng } from '../../simulators/data/prng.ts';
import type { AbcRecalcResult } from '../../sinks/abc-recalc.ts';

// ---------------------------------------------------------------------------------------------
// Test data. Money is kept as BigInt ten-thousandths, as numeric(18,4) holds it.

export interface Linea {
  ubicacion: string;
  fecha: string;
  producto: string;
  total: bigint;
  anulada: boolean;
}

export interface Dataset {
  productos: string[];
  inventario: Array<{ ubicacion: string; deposito: string; producto: string }>;
  ventas: Linea[];
}

export const money = (units: bigint): string => {
  const sign = units < 0n ? '-' : '';
  const abs = units < 0n ? -units : units;
  return `${sign}${abs / 10_000n}.${String(abs % 10_000n).padStart(4, '0')}`;
};
export const $ = (whole: number): bigint => BigInt(Math.round(whole * 10_000));

/** YYYY-MM-DD plus n days (UTC arithmetic on calendar dates). */
export function addDays(fecha: string, n: number): string {
  const [y, m, d] = fecha.split('-').map(Number);
  return new Date(Date.UTC(y!, m! - 1, d! + n)).toISOString().slice(0, 10);
}

/** The business date of an instant in America/Caracas (UTC-4, no daylight saving). */
export const businessDate = (instant: Date): string => new Date(instant.getTime() - 4 * 3_600_000).toISOString().slice(0, 10);

export async function insertDataset(c: pg.Client | Pool, ds: Dataset): Promise<void> {
  if (ds.productos.length) {
    await c.query(
      `INSERT INTO productos (producto_id, descripcion, unidad, visto_en, ubicacion_id)
       SELECT p, 'producto ' || p, 'UND', now(), 'tienda_01' FROM unnest($1::text[]) AS p`,
      [ds.productos],
    );
  }
  if (ds.inventario.length) {
    await c.query(
      `INSERT INTO inventario_actual (ubicacion_id, deposito, producto_id, cantidad, activo, snapshot_id, taken_at)
       SELECT u, d, p, 1, true, gen_random_uuid(), now() FROM unnest($1::text[], $2::text[], $3::text[]) AS x(u, d, p)`,
      [ds.inventario.map((i) => i.ubicacion), ds.inventario.map((i) => i.deposito), ds.inventario.map((i) => i.producto)],
    );
  }
  // Invoice numbers are unique per call; a line number per invoice keeps the key unique.
  const batch = Math.random().toString(36).slice(2, 8);
  for (let i = 0; i < ds.ventas.length; i += 5_000) {
    const chunk = ds.ventas.slice(i, i + 5_000);
    await c.query(
      `INSERT INTO ventas (ubicacion_id, numero_factura, linea, fecha, fecha_hora, producto_id, cantidad, precio_unitario, descuento,
                           total, caja, anulada, fingerprint, first_seen_at, extracted_at)
       SELECT u, $7 || '-' || n, 1, f, (f + time '12:00') AT TIME ZONE 'America/Caracas', p, 1, t, 0, t, '01', a, 'fp', now(), now()
       FROM unnest($1::text[], $2::date[], $3::text[], $4::numeric[], $5::boolean[], $6::int[]) AS x(u, f, p, t, a, n)`,
      [
        chunk.map((l) => l.ubicacion),
        chunk.map((l) => l.fecha),
        chunk.map((l) => l.producto),
        chunk.map((l) => money(l.total)),
        chunk.map((l) => l.anulada),
        chunk.map((_, j) => i + j),
        batch,
      ],
    );
  }
}

/**
 * Seeded sales for 5 stores: random products and amounts over a span wider than the window
 * (both sides), voided lines, returns, products sold but never in productos, and deliberate
 * edge cases: exact ties (same lines, and different lines with equal sums), a product with
 * only voided lines, returns that outweigh sales in one store but not chain-wide, a net of
 * exactly 0, and ids whose byte order differs from a linguistic one.
 */
export function generate(rng: Rng, desde: string, hasta: string): Dataset {
  const stores = ['tienda_01', 'tienda_02', 'tienda_03', 'tienda_04', 'tienda_05'];
  const catalog = Array.from({ length: 80 }, (_, i) => `P${String(i + 1).padStart(4, '0')}`);
  const special = ['TIE1', 'TIE2', 'TIE3', 'TIE4', 'TIE5', 'VOID1', 'RET1', 'NET0', 'b-caso', 'B-caso', 'Ñame', 'NEVER'];
  const ds: Dataset = { productos: [...catalog, ...special], inventario: [], ventas: [] };
  const span = { from: addDays(desde, -12), days: daysBetween(addDays(desde, -12), addDays(hasta, 4)) };
  const fechaAleatoria = () => addDays(span.from, rng.int(0, span.days));
  const line = (ubicacion: string, producto: string, total: bigint, fecha = fechaAleatoria(), anulada = false) =>
    ds.ventas.push({ ubicacion, producto, total, fecha, anulada });

  for (const u of stores) {
    for (const p of catalog) {
      if (rng.chance(0.6)) ds.inventario.push({ ubicacion: u, deposito: '01', producto: p });
      if (rng.chance(0.1)) ds.inventario.push({ ubicacion: u, deposito: '02', producto: p });
    }
    for (const p of ['TIE1', 'TIE2', 'TIE3', 'VOID1', 'b-caso', 'B-caso'])
      ds.inventario.push({ ubicacion: u, deposito: '01', producto: p });
    for (const p of catalog) {
      if (!rng.chance(0.7)) continue;
      // Skewed, so that the classes are not all B: a few products sell a lot.
      const scale = rng.chance(0.15) ? 50_000 : rng.chance(0.3) ? 5_000 : 500;
      for (let k = rng.int(1, 6); k > 0; k--) {
        const total = BigInt(rng.int(1, scale * 10_000));
        const r = rng.next();
        if (r < 0.1) line(u, p, total, undefined, true);
        else if (r < 0.15) line(u, p, -total / 5n);
        else line(u, p, total);
      }
    }
    // Sold here, carried nowhere and not in productos: still classified (store and chain).
    if (rng.chance(0.5)) line(u, `Z${u.slice(-2)}`, BigInt(rng.int(1, 2_000_000)), hasta);
    // Exact ties: the same lines for three products.
    const tieFecha = fechaInWindow(rng, desde, hasta);
    const tieTotal = BigInt(rng.int(1, 30_000_000));
    for (const p of ['TIE1', 'TIE2', 'TIE3']) line(u, p, tieTotal, tieFecha);
    // Equal sums from different lines.
    const inWindow = () => fechaInWindow(rng, desde, hasta);
    line(u, 'TIE4', $(200), inWindow());
    line(u, 'TIE5', $(120), desde);
    line(u, 'TIE5', $(80), hasta);
    line(u, 'b-caso', $(33.3333), inWindow());
    line(u, 'B-caso', $(33.3333), inWindow());
    line(u, 'Ñame', $(33.3333), inWindow());
    line(u, 'VOID1', $(999), hasta, true);
    line(u, 'NET0', $(12.5), inWindow());
    line(u, 'NET0', $(-12.5), inWindow());
  }
  // Returns outweigh sales in tienda_01 (value 0 there) but not chain-wide.
  line('tienda_01', 'RET1', $(5), desde);
  line('tienda_01', 'RET1', $(-8), hasta);
  line('tienda_02', 'RET1', $(10), hasta);
  // Lines just outside the window on both sides, big enough to change every class if counted.
  line('tienda_03', 'P0001', $(9_999_999), addDays(desde, -1));
  line('tienda_03', 'P0002', $(9_999_999), addDays(hasta, 1));
  line('tienda_04', 'OUTSIDE', $(9_999_999), addDays(desde, -1));
  return ds;
}

export function daysBetween(a: string, b: string): number {
  return Math.round((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / 86_400_000);
}

export function fechaInWindow(rng: Rng, desde: string, hasta: string): string {
  return addDays(desde, rng.int(0, daysBetween(desde, hasta)));
}

// ---------------------------------------------------------------------------------------------
// The independent computation

export interface CacheRow {
  alcance: string;
  producto_id: string;
  clase: 'A' | 'B' | 'C';
  valor_ventas: string;
  porcentaje_acumulado: string | null;
  ranking: number;
  ventana_desde: string;
  ventana_hasta: string;
}

export const byteOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** round(n / d, 6) half away from zero, as PostgreSQL rounds numerics, for n, d > 0. */
export function percent6(acumulado: bigint, total: bigint): string {
  const scaled = (acumulado * 100n * 1_000_000n * 2n + total) / (2n * total);
  return `${scaled / 1_000_000n}.${String(scaled % 1_000_000n).padStart(6, '0')}`;
}

export function classify(alcance: string, netos: Map<string, bigint>, desde: string, hasta: string): CacheRow[] {
  const items = [...netos].map(([producto, neto]) => ({ producto, valor: neto > 0n ? neto : 0n }));
  items.sort((x, y) => (x.valor === y.valor ? byteOrder(x.producto, y.producto) : x.valor > y.valor ? -1 : 1));
  const total = items.reduce((s, x) => s + x.valor, 0n);
  let before = 0n;
  return items.map((x, i) => {
    const clase = x.valor === 0n ? 'C' : before * 100n < total * 80n ? 'A' : before * 100n < total * 95n ? 'B' : 'C';
    before += x.valor;
    return {
      alcance,
      producto_id: x.producto,
      clase,
      valor_ventas: money(x.valor),
      porcentaje_acumulado: x.valor === 0n ? null : percent6(before, total),
      ranking: i + 1,
      ventana_desde: desde,
      ventana_hasta: hasta,
    };
  });
}

export function expectedCache(ds: Dataset, asOf: Date, windowDays: number): CacheRow[] {
  const hasta = businessDate(asOf);
  const desde = addDays(hasta, -(windowDays - 1));
  const inWindow = ds.ventas.filter((l) => l.fecha >= desde && l.fecha <= hasta);
  const stores = new Map<string, Map<string, bigint>>();
  const chain = new Map<string, bigint>();
  const add = (m: Map<string, bigint>, p: string, v: bigint) => m.set(p, (m.get(p) ?? 0n) + v);
  const store = (u: string) => {
    let m = stores.get(u);
    if (!m) stores.set(u, (m = new Map()));
    return m;
  };
  for (const p of ds.productos) add(chain, p, 0n);
  for (const i of ds.inventario) {
    add(store(i.ubicacion), i.producto, 0n);
    add(chain, i.producto, 0n);
  }
  for (const l of inWindow) {
    const v = l.anulada ? 0n : l.total;
    add(store(l.ubicacion), l.producto, v);
    add(chain, l.producto, v);
  }
  const rows = [...classify('cadena', chain, desde, hasta)];
  for (const [u, m] of stores) rows.push(...classify(u, m, desde, hasta));
  return sortRows(rows);
}

export const sortRows = (rows: CacheRow[]): CacheRow[] =>
  rows.sort((a, b) => byteOrder(a.alcance, b.alcance) || byteOrder(a.producto_id, b.producto_id));

export async function readCache(c: pg.Client | Pool): Promise<{ rows: CacheRow[]; calculadoEn: string[] }> {
  const { rows } = await c.query<CacheRow & { calculado_en: Date }>(
    `SELECT alcance, producto_id, clase, valor_ventas::text AS valor_ventas, porcentaje_acumulado::text AS porcentaje_acumulado,
            ranking, ventana_desde::text AS ventana_desde, ventana_hasta::text AS ventana_hasta, calculado_en
     FROM productos_abc_cache`,
  );
  const calculadoEn = [...new Set(rows.map((r) => r.calculado_en.toISOString()))];
  return { rows: sortRows(rows.map(({ calculado_en: _, ...r }) => r)), calculadoEn };
}

/** Counts per alcance and class, as the summary of recalcAbc reports them. */
export function countsOf(rows: CacheRow[]): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const r of rows) {
    out[r.alcance] ??= { A: 0, B: 0, C: 0 };
    out[r.alcance]![r.clase]! += 1;
  }
  return out;
}

export function countsOfResult(r: AbcRecalcResult): Record<string, Record<string, number>> {
  return Object.fromEntries(r.alcances.map((a) => [a.alcance, { ...a.productos }]));
}

// ---------------------------------------------------------------------------------------------
