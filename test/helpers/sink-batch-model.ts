/**
 * Builders and executable models of the PostgreSQL sink's statements for the planner's unit
 * tests (test/unit/sink-batch*.test.ts): what sinks/sink-batch.ts's module comment says the
 * SQL does, applied to in-memory tables.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import type { InventoryChange, InventoryRow } from '../../core/records.ts';
import {
  HISTORICO_CLOSE_COLUMNS,
  INVENTARIO_ACTUAL_COLUMNS,
  INVENTARIO_HISTORICO_COLUMNS,
  INVENTARIO_KEY_COLUMNS,
  SinkBatchError,
  inventarioKey,
  rowsOf,
  type InventarioActualRow,
  type InventarioHistoricoRow,
  type InventoryPlan,
  type ProductoRow,
} from '../../sinks/sink-batch.ts';

// ---------------------------------------------------------------------------------------------
// Builders

export const SNAP = '3f1c9a52-8d1e-4c61-9b7a-2f4e5d6c7b8a';

export const invRow = (deposito: string, producto_id: string, cantidad: string, extra: Partial<InventoryRow> = {}): InventoryRow => ({
  deposito,
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

export interface ChangeSpec {
  op: 'c' | 'u' | 'd';
  at: string | Date;
  ubicacion?: string;
  deposito?: string;
  producto?: string;
  cantidad?: string;
  snapshot?: string;
  after?: Partial<InventoryRow>;
  /** A u's before row; by default the product was described otherwise (a u that renames it). */
  before?: Partial<InventoryRow>;
}

export function change(s: ChangeSpec): InventoryChange {
  const deposito = s.deposito ?? '01';
  const producto = s.producto ?? '000123';
  const row = invRow(deposito, producto, s.cantidad ?? '1.000', s.after);
  const before = s.op === 'u' ? invRow(deposito, producto, '0.500', s.before ?? { descripcion: `${row.descripcion} (ANTES)` }) : row;
  return {
    op: s.op,
    ubicacion_id: s.ubicacion ?? 'tienda_01',
    deposito,
    producto_id: producto,
    before: s.op === 'c' ? null : before,
    after: s.op === 'd' ? null : row,
    snapshot_id: s.snapshot ?? SNAP,
    taken_at: typeof s.at === 'string' ? new Date(s.at) : s.at,
    source: 'KLK',
  };
}

export const at = (iso: string) => new Date(iso);

export function caught(fn: () => unknown): SinkBatchError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SinkBatchError);
    return err as SinkBatchError;
  }
  throw new Error('expected a SinkBatchError');
}

export function split<T>(items: readonly T[], cuts: readonly number[]): T[][] {
  const points = [...new Set(cuts.map((c) => c % (items.length + 1)))].sort((a, b) => a - b);
  const batches: T[][] = [];
  let from = 0;
  for (const p of [...points, items.length]) {
    batches.push(items.slice(from, p));
    from = p;
  }
  return batches;
}

// ---------------------------------------------------------------------------------------------
// Executable models of the sink's statements (sinks/sink-batch.ts, module comment). Unique
// indexes are checked row by row, as PostgreSQL does for a non-deferrable index.

export const keyOf = inventarioKey;
export const pkHist = (r: Pick<InventarioHistoricoRow, 'ubicacion_id' | 'deposito' | 'producto_id' | 'valid_from'>) =>
  `${keyOf(r)}@${r.valid_from.toISOString()}`;

export type ActualTable = Map<string, InventarioActualRow>;
export type HistTable = Map<string, InventarioHistoricoRow>;
export type ProductosTable = Map<string, ProductoRow>;

export function foldActual(table: ActualTable, changes: readonly InventoryChange[]): ActualTable {
  const next = new Map(table);
  for (const c of changes) {
    if (c.op === 'd') next.delete(keyOf(c));
    else {
      const a = c.after!;
      next.set(keyOf(c), {
        ubicacion_id: c.ubicacion_id,
        deposito: c.deposito,
        producto_id: c.producto_id,
        cantidad: a.cantidad,
        costo: a.costo,
        precio: a.precio,
        activo: a.activo,
        snapshot_id: c.snapshot_id,
        taken_at: c.taken_at,
      });
    }
  }
  return next;
}

export function applyActual(table: ActualTable, plan: InventoryPlan): ActualTable {
  const next = new Map(table);
  const upserts = rowsOf(INVENTARIO_ACTUAL_COLUMNS, plan.actual.upserts);
  const deletes = rowsOf(INVENTARIO_KEY_COLUMNS, plan.actual.deletes);
  const touched = [...upserts, ...deletes].map(keyOf);
  if (new Set(touched).size !== touched.length) throw new Error('a key appears twice in the actual statements');
  for (const r of upserts) next.set(keyOf(r), r);
  for (const k of deletes) next.delete(keyOf(k));
  return next;
}

export function applyHistory(table: HistTable, plan: InventoryPlan): HistTable {
  const next = new Map(table);
  const closes = rowsOf(HISTORICO_CLOSE_COLUMNS, plan.historico.closes);
  const closeKeys = closes.map(keyOf);
  if (new Set(closeKeys).size !== closeKeys.length) throw new Error('a key appears twice in the closes');
  // 2. DELETE the row the previous batch opened at this batch's first instant
  for (const c of closes) {
    for (const [pk, r] of next)
      if (keyOf(r) === keyOf(c) && r.valid_to === null && r.valid_from.getTime() === c.valid_to.getTime()) next.delete(pk);
  }
  // 3. UPDATE ... SET valid_to WHERE valid_to IS NULL AND valid_from < t
  for (const c of closes) {
    for (const [pk, r] of next) {
      if (keyOf(r) === keyOf(c) && r.valid_to === null && r.valid_from.getTime() < c.valid_to.getTime())
        next.set(pk, { ...r, valid_to: c.valid_to });
    }
  }
  // 4. plain INSERT: the primary key and the CHECK as the table has them
  for (const r of rowsOf(INVENTARIO_HISTORICO_COLUMNS, plan.historico.opens)) {
    if (next.has(pkHist(r))) throw new Error(`duplicate key ${pkHist(r)}`);
    if (r.valid_to !== null && r.valid_to.getTime() <= r.valid_from.getTime()) throw new Error(`empty interval at ${pkHist(r)}`);
    next.set(pkHist(r), r);
  }
  return next;
}

/** The type-2 history as docs/architecture.md defines it, built from the whole sequence without any plan. */
export function intervalsOf(changes: readonly InventoryChange[]): HistTable {
  const byKey = new Map<string, InventoryChange[]>();
  for (const c of changes) {
    const steps = byKey.get(keyOf(c)) ?? [];
    if (steps.length > 0 && steps.at(-1)!.taken_at.getTime() === c.taken_at.getTime()) steps.pop();
    steps.push(c);
    byKey.set(keyOf(c), steps);
  }
  const out: HistTable = new Map();
  for (const steps of byKey.values()) {
    steps.forEach((c, i) => {
      if (c.op === 'd') return;
      const a = c.after!;
      const r: InventarioHistoricoRow = {
        ubicacion_id: c.ubicacion_id,
        deposito: c.deposito,
        producto_id: c.producto_id,
        cantidad: a.cantidad,
        costo: a.costo,
        precio: a.precio,
        activo: a.activo,
        op: c.op,
        snapshot_id: c.snapshot_id,
        valid_from: c.taken_at,
        valid_to: steps[i + 1]?.taken_at ?? null,
      };
      out.set(pkHist(r), r);
    });
  }
  return out;
}

export function productoOf(c: InventoryChange): ProductoRow {
  const a = c.after!;
  return {
    producto_id: c.producto_id,
    descripcion: a.descripcion,
    codigo_barras: a.codigo_barras,
    departamento_codigo: a.departamento_codigo,
    departamento_nombre: a.departamento_nombre,
    grupo_codigo: a.grupo_codigo,
    grupo_nombre: a.grupo_nombre,
    subgrupo_codigo: a.subgrupo_codigo,
    subgrupo_nombre: a.subgrupo_nombre,
    unidad: a.unidad,
    visto_en: c.taken_at,
    ubicacion_id: c.ubicacion_id,
  };
}

/** ON CONFLICT DO UPDATE ... WHERE (productos.visto_en, productos.ubicacion_id) <= (EXCLUDED.visto_en, EXCLUDED.ubicacion_id) */
export function upsertProducto(table: ProductosTable, r: ProductoRow): void {
  const cur = table.get(r.producto_id);
  if (
    !cur ||
    cur.visto_en.getTime() < r.visto_en.getTime() ||
    (cur.visto_en.getTime() === r.visto_en.getTime() && cur.ubicacion_id <= r.ubicacion_id)
  )
    table.set(r.producto_id, r);
}

export const sorted = <T>(m: Map<string, T>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

// ---------------------------------------------------------------------------------------------
// Generators

export const STORES = ['tienda_01', 'tienda_02'] as const;
export const START = Date.UTC(2026, 10, 30, 22, 0); // two hours before a month boundary (UTC)

export const stepArb = fc.record({
  store: fc.constantFrom(...STORES),
  deposito: fc.constantFrom('01', '02'),
  producto: fc.constantFrom('000001', '000002', '000003'),
  op: fc.constantFrom('c' as const, 'u' as const, 'd' as const),
  // 0 makes same-instant duplicates; 40 days crosses months
  gapMinutes: fc.constantFrom(0, 0, 1, 30, 40 * 24 * 60),
  cantidad: fc.integer({ min: -5000, max: 500_000 }).map((n) => (n / 1000).toFixed(3)),
  descripcion: fc.constantFrom('PAN', 'PIÑA', 'CAFÉ'),
  snapshot: fc.constantFrom('s1', 's2', 's3'),
});

/** Changes in offset order of one partition: each store's clock only moves forward, the stores interleave. */
export const changesArb = fc.array(stepArb, { maxLength: 40 }).map((steps) => {
  const clock = new Map<string, number>(STORES.map((s, i) => [s, START + i * 17 * 60_000]));
  return steps.map((s) => {
    const t = clock.get(s.store)! + s.gapMinutes * 60_000;
    clock.set(s.store, t);
    return change({
      op: s.op,
      at: new Date(t),
      ubicacion: s.store,
      deposito: s.deposito,
      producto: s.producto,
      cantidad: s.cantidad,
      snapshot: s.snapshot,
      after: { descripcion: s.descripcion },
    });
  });
});

export const cutsArb = fc.array(fc.nat({ max: 60 }), { maxLength: 8 });

// ---------------------------------------------------------------------------------------------
