import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FluxionError } from '../../core/errors.ts';
import type { InventoryChange, InventoryRow, PhantomAlert, Venta, VentaLinea } from '../../core/records.ts';
import {
  ALERTAS_COLUMNS,
  ALERTAS_OPERATOR_COLUMNS,
  ETL_RUNS_COLUMNS,
  HISTORICO_CLOSE_COLUMNS,
  INVENTARIO_ACTUAL_COLUMNS,
  INVENTARIO_HISTORICO_COLUMNS,
  INVENTARIO_KEY_COLUMNS,
  PRODUCTOS_COLUMNS,
  SinkBatchError,
  VENTAS_COLUMNS,
  columnParams,
  inventarioKey,
  mergeAlerta,
  nextVentaVersion,
  planAlertas,
  planEtlRuns,
  planInventory,
  planVentas,
  rowsOf,
  type AlertaRow,
  type AlertasPlan,
  type EtlRun,
  type InventarioActualRow,
  type InventarioHistoricoRow,
  type InventoryPlan,
  type ProductoRow,
  type VentaRow,
} from '../../sinks/sink-batch.ts';

// ---------------------------------------------------------------------------------------------
// Builders

const SNAP = '3f1c9a52-8d1e-4c61-9b7a-2f4e5d6c7b8a';

const invRow = (deposito: string, producto_id: string, cantidad: string, extra: Partial<InventoryRow> = {}): InventoryRow => ({
  deposito, producto_id, codigo_barras: null, descripcion: `P ${producto_id}`, departamento_codigo: null, departamento_nombre: null,
  grupo_codigo: null, grupo_nombre: null, subgrupo_codigo: null, subgrupo_nombre: null, unidad: 'UND', cantidad, costo: '1.0000',
  precio: '2.0000', activo: true, actualizado_en: null, ...extra,
});

interface ChangeSpec {
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

function change(s: ChangeSpec): InventoryChange {
  const deposito = s.deposito ?? '01';
  const producto = s.producto ?? '000123';
  const row = invRow(deposito, producto, s.cantidad ?? '1.000', s.after);
  const before = s.op === 'u' ? invRow(deposito, producto, '0.500', s.before ?? { descripcion: `${row.descripcion} (ANTES)` }) : row;
  return {
    op: s.op, ubicacion_id: s.ubicacion ?? 'tienda_01', deposito, producto_id: producto,
    before: s.op === 'c' ? null : before, after: s.op === 'd' ? null : row,
    snapshot_id: s.snapshot ?? SNAP, taken_at: typeof s.at === 'string' ? new Date(s.at) : s.at, source: 'KLK',
  };
}

const at = (iso: string) => new Date(iso);

function caught(fn: () => unknown): SinkBatchError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SinkBatchError);
    return err as SinkBatchError;
  }
  throw new Error('expected a SinkBatchError');
}

function split<T>(items: readonly T[], cuts: readonly number[]): T[][] {
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

const keyOf = inventarioKey;
const pkHist = (r: Pick<InventarioHistoricoRow, 'ubicacion_id' | 'deposito' | 'producto_id' | 'valid_from'>) => `${keyOf(r)}@${r.valid_from.toISOString()}`;

type ActualTable = Map<string, InventarioActualRow>;
type HistTable = Map<string, InventarioHistoricoRow>;
type ProductosTable = Map<string, ProductoRow>;

function foldActual(table: ActualTable, changes: readonly InventoryChange[]): ActualTable {
  const next = new Map(table);
  for (const c of changes) {
    if (c.op === 'd') next.delete(keyOf(c));
    else {
      const a = c.after!;
      next.set(keyOf(c), {
        ubicacion_id: c.ubicacion_id, deposito: c.deposito, producto_id: c.producto_id, cantidad: a.cantidad, costo: a.costo, precio: a.precio,
        activo: a.activo, snapshot_id: c.snapshot_id, taken_at: c.taken_at,
      });
    }
  }
  return next;
}

function applyActual(table: ActualTable, plan: InventoryPlan): ActualTable {
  const next = new Map(table);
  const upserts = rowsOf(INVENTARIO_ACTUAL_COLUMNS, plan.actual.upserts);
  const deletes = rowsOf(INVENTARIO_KEY_COLUMNS, plan.actual.deletes);
  const touched = [...upserts, ...deletes].map(keyOf);
  if (new Set(touched).size !== touched.length) throw new Error('a key appears twice in the actual statements');
  for (const r of upserts) next.set(keyOf(r), r);
  for (const k of deletes) next.delete(keyOf(k));
  return next;
}

function applyHistory(table: HistTable, plan: InventoryPlan): HistTable {
  const next = new Map(table);
  const closes = rowsOf(HISTORICO_CLOSE_COLUMNS, plan.historico.closes);
  const closeKeys = closes.map(keyOf);
  if (new Set(closeKeys).size !== closeKeys.length) throw new Error('a key appears twice in the closes');
  // 2. DELETE the row the previous batch opened at this batch's first instant
  for (const c of closes) {
    for (const [pk, r] of next) if (keyOf(r) === keyOf(c) && r.valid_to === null && r.valid_from.getTime() === c.valid_to.getTime()) next.delete(pk);
  }
  // 3. UPDATE ... SET valid_to WHERE valid_to IS NULL AND valid_from < t
  for (const c of closes) {
    for (const [pk, r] of next) {
      if (keyOf(r) === keyOf(c) && r.valid_to === null && r.valid_from.getTime() < c.valid_to.getTime()) next.set(pk, { ...r, valid_to: c.valid_to });
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
function intervalsOf(changes: readonly InventoryChange[]): HistTable {
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
        ubicacion_id: c.ubicacion_id, deposito: c.deposito, producto_id: c.producto_id, cantidad: a.cantidad, costo: a.costo, precio: a.precio,
        activo: a.activo, op: c.op, snapshot_id: c.snapshot_id, valid_from: c.taken_at, valid_to: steps[i + 1]?.taken_at ?? null,
      };
      out.set(pkHist(r), r);
    });
  }
  return out;
}

function productoOf(c: InventoryChange): ProductoRow {
  const a = c.after!;
  return {
    producto_id: c.producto_id, descripcion: a.descripcion, codigo_barras: a.codigo_barras, departamento_codigo: a.departamento_codigo,
    departamento_nombre: a.departamento_nombre, grupo_codigo: a.grupo_codigo, grupo_nombre: a.grupo_nombre, subgrupo_codigo: a.subgrupo_codigo,
    subgrupo_nombre: a.subgrupo_nombre, unidad: a.unidad, visto_en: c.taken_at, ubicacion_id: c.ubicacion_id,
  };
}

/** ON CONFLICT DO UPDATE ... WHERE (productos.visto_en, productos.ubicacion_id) <= (EXCLUDED.visto_en, EXCLUDED.ubicacion_id) */
function upsertProducto(table: ProductosTable, r: ProductoRow): void {
  const cur = table.get(r.producto_id);
  if (!cur || cur.visto_en.getTime() < r.visto_en.getTime() || (cur.visto_en.getTime() === r.visto_en.getTime() && cur.ubicacion_id <= r.ubicacion_id)) table.set(r.producto_id, r);
}

const sorted = <T>(m: Map<string, T>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

// ---------------------------------------------------------------------------------------------
// Generators

const STORES = ['tienda_01', 'tienda_02'] as const;
const START = Date.UTC(2026, 10, 30, 22, 0); // two hours before a month boundary (UTC)

const stepArb = fc.record({
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
const changesArb = fc.array(stepArb, { maxLength: 40 }).map((steps) => {
  const clock = new Map<string, number>(STORES.map((s, i) => [s, START + i * 17 * 60_000]));
  return steps.map((s) => {
    const t = clock.get(s.store)! + s.gapMinutes * 60_000;
    clock.set(s.store, t);
    return change({ op: s.op, at: new Date(t), ubicacion: s.store, deposito: s.deposito, producto: s.producto, cantidad: s.cantidad, snapshot: s.snapshot, after: { descripcion: s.descripcion } });
  });
});

const cutsArb = fc.array(fc.nat({ max: 60 }), { maxLength: 8 });

// ---------------------------------------------------------------------------------------------

describe('column lists', () => {
  // "Column order of the tables": the lists are read against the migrations themselves.
  const sql = ['001_catalogo.sql', '002_inventario.sql', '003_ventas_abc.sql', '004_operaciones.sql', '008_alertas_descartadas.sql']
    .map((f) => readFileSync(new URL(`../../sql/postgres/${f}`, import.meta.url), 'utf8'))
    .join('\n');
  // Columns of the CREATE TABLE, then those later migrations ADD, less the ones only operators write.
  const columnsOfTable = (table: string) => {
    const body = sql.split(`CREATE TABLE ${table} (`)[1]!.split(/\n\)/)[0]!;
    const created = body
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !/^(PRIMARY|CHECK|UNIQUE|CONSTRAINT|--)/.test(l) && !/DEFAULT now\(\)/.test(l))
      .map((l) => l.split(/\s+/)[0]);
    const added = sql
      .split(`ALTER TABLE ${table}\n`)
      .slice(1)
      .flatMap((part) => [...part.split(';')[0]!.matchAll(/ADD COLUMN (\w+)/g)].map((m) => m[1]!));
    return [...created, ...added].filter((c) => !(table === 'alertas' && (ALERTAS_OPERATOR_COLUMNS as readonly string[]).includes(c!)));
  };

  it.each([
    ['inventario_actual', INVENTARIO_ACTUAL_COLUMNS],
    ['inventario_historico', INVENTARIO_HISTORICO_COLUMNS],
    ['productos', PRODUCTOS_COLUMNS],
    ['ventas', VENTAS_COLUMNS],
    ['alertas', ALERTAS_COLUMNS],
    ['etl_runs', ETL_RUNS_COLUMNS],
  ])('%s: the plan columns are the table columns in table order (DEFAULT now() ones left out)', (table, columns) => {
    expect([...columns]).toEqual(columnsOfTable(table));
  });

  it('columnParams gives the arrays in the listed order', () => {
    const plan = planInventory([change({ op: 'c', at: '2026-11-27T14:00:00Z', cantidad: '5.000' })]);
    expect(columnParams(plan.historico.closes, HISTORICO_CLOSE_COLUMNS)).toEqual([['tienda_01'], ['01'], ['000123'], [at('2026-11-27T14:00:00Z')]]);
  });
});

describe('planInventory', () => {
  it('plans upserts, deletes, closes, opens, productos and months for a small batch', () => {
    const plan = planInventory([
      change({ op: 'c', at: '2026-11-27T14:00:00Z', producto: 'A', cantidad: '5.000' }),
      change({ op: 'u', at: '2026-11-27T14:00:00Z', producto: 'B', cantidad: '7.000' }),
      change({ op: 'u', at: '2026-11-27T14:30:00Z', producto: 'A', cantidad: '4.000' }),
      change({ op: 'd', at: '2026-11-27T14:30:00Z', producto: 'B' }),
    ]);
    expect(rowsOf(INVENTARIO_ACTUAL_COLUMNS, plan.actual.upserts)).toEqual([
      { ubicacion_id: 'tienda_01', deposito: '01', producto_id: 'A', cantidad: '4.000', costo: '1.0000', precio: '2.0000', activo: true, snapshot_id: SNAP, taken_at: at('2026-11-27T14:30:00Z') },
    ]);
    expect(plan.actual.deletes).toEqual({ ubicacion_id: ['tienda_01'], deposito: ['01'], producto_id: ['B'] });
    expect(plan.historico.closes).toEqual({
      ubicacion_id: ['tienda_01', 'tienda_01'], deposito: ['01', '01'], producto_id: ['A', 'B'], valid_to: [at('2026-11-27T14:00:00Z'), at('2026-11-27T14:00:00Z')],
    });
    expect(rowsOf(INVENTARIO_HISTORICO_COLUMNS, plan.historico.opens).map((r) => [r.producto_id, r.op, r.cantidad, r.valid_from.toISOString(), r.valid_to?.toISOString() ?? null])).toEqual([
      ['A', 'c', '5.000', '2026-11-27T14:00:00.000Z', '2026-11-27T14:30:00.000Z'],
      ['A', 'u', '4.000', '2026-11-27T14:30:00.000Z', null],
      ['B', 'u', '7.000', '2026-11-27T14:00:00.000Z', '2026-11-27T14:30:00.000Z'],
    ]);
    expect(plan.productos.producto_id).toEqual(['A', 'B']);
    expect(plan.productos.visto_en).toEqual([at('2026-11-27T14:30:00Z'), at('2026-11-27T14:00:00Z')]);
    expect(plan.months).toEqual([at('2026-11-01T00:00:00Z')]);
  });

  it('plans nothing for an empty batch', () => {
    const plan = planInventory([]);
    expect(plan.actual.upserts.producto_id).toEqual([]);
    expect(plan.actual.deletes.producto_id).toEqual([]);
    expect(plan.historico.opens.valid_from).toEqual([]);
    expect(plan.historico.closes.valid_to).toEqual([]);
    expect(plan.productos.producto_id).toEqual([]);
    expect(plan.months).toEqual([]);
  });

  it('keeps only the last of two changes of one key at the same instant: no empty interval', () => {
    const plan = planInventory([
      change({ op: 'c', at: '2026-11-27T14:00:00Z', cantidad: '5.000' }),
      change({ op: 'u', at: '2026-11-27T14:30:00Z', cantidad: '6.000' }),
      change({ op: 'u', at: '2026-11-27T14:30:00Z', cantidad: '7.000' }),
    ]);
    const opens = rowsOf(INVENTARIO_HISTORICO_COLUMNS, plan.historico.opens);
    expect(opens.map((r) => [r.cantidad, r.valid_from.toISOString(), r.valid_to?.toISOString() ?? null])).toEqual([
      ['5.000', '2026-11-27T14:00:00.000Z', '2026-11-27T14:30:00.000Z'],
      ['7.000', '2026-11-27T14:30:00.000Z', null],
    ]);
    expect(plan.actual.upserts.cantidad).toEqual(['7.000']);
  });

  it('a d and a c of one key at the same instant count as the c (the product is there at that instant)', () => {
    const plan = planInventory([
      change({ op: 'c', at: '2026-11-27T14:00:00Z', cantidad: '5.000' }),
      change({ op: 'd', at: '2026-11-27T14:30:00Z' }),
      change({ op: 'c', at: '2026-11-27T14:30:00Z', cantidad: '9.000' }),
    ]);
    expect(plan.actual.upserts.cantidad).toEqual(['9.000']);
    expect(plan.actual.deletes.producto_id).toEqual([]);
    expect(rowsOf(INVENTARIO_HISTORICO_COLUMNS, plan.historico.opens).map((r) => [r.op, r.valid_from.toISOString(), r.valid_to?.toISOString() ?? null])).toEqual([
      ['c', '2026-11-27T14:00:00.000Z', '2026-11-27T14:30:00.000Z'],
      ['c', '2026-11-27T14:30:00.000Z', null],
    ]);
  });

  it('supersedes a duplicate instant that straddles two batches, for u and for d', () => {
    const first = [change({ op: 'c', at: '2026-11-27T14:00:00Z', cantidad: '5.000' }), change({ op: 'u', at: '2026-11-27T14:30:00Z', cantidad: '6.000' })];
    for (const second of [[change({ op: 'u', at: '2026-11-27T14:30:00Z', cantidad: '7.000' })], [change({ op: 'd', at: '2026-11-27T14:30:00Z' })]]) {
      const batched = applyHistory(applyHistory(new Map(), planInventory(first)), planInventory(second));
      const whole = applyHistory(new Map(), planInventory([...first, ...second]));
      expect(sorted(batched)).toEqual(sorted(whole));
      expect(sorted(batched)).toEqual(sorted(intervalsOf([...first, ...second])));
    }
  });

  it('lists the UTC months of the opened intervals: an evening in Caracas on the 30th is already December', () => {
    const plan = planInventory([
      change({ op: 'c', at: '2026-11-30T19:59:00-04:00', producto: 'A' }),
      change({ op: 'c', at: '2026-11-30T23:30:00-04:00', producto: 'B' }),
      change({ op: 'u', at: '2027-01-15T10:00:00Z', producto: 'B' }),
      change({ op: 'd', at: '2027-03-01T10:00:00Z', producto: 'A' }),
    ]);
    expect(plan.months).toEqual([at('2026-11-01T00:00:00Z'), at('2026-12-01T00:00:00Z'), at('2027-01-01T00:00:00Z')]);
  });

  it('keeps the newest description of a product across stores, not the last record, and ignores d', () => {
    const plan = planInventory([
      change({ op: 'u', at: '2026-11-27T14:30:00Z', ubicacion: 'tienda_02', after: { descripcion: 'PAN CANILLA' } }),
      change({ op: 'u', at: '2026-11-27T14:00:00Z', ubicacion: 'tienda_01', after: { descripcion: 'PAN' } }),
      change({ op: 'd', at: '2026-11-27T15:00:00Z', ubicacion: 'tienda_01' }),
    ]);
    expect(rowsOf(PRODUCTOS_COLUMNS, plan.productos)).toEqual([
      expect.objectContaining({ producto_id: '000123', descripcion: 'PAN CANILLA', ubicacion_id: 'tienda_02', visto_en: at('2026-11-27T14:30:00Z') }),
    ]);
  });

  it('a u that moves a quantity or a price, not the product, leaves productos alone; a c writes it', () => {
    const same = { descripcion: 'PAN' };
    const plan = planInventory([
      change({ op: 'u', at: '2026-11-27T14:30:00Z', ubicacion: 'cedi_seco', after: same, before: same }),
      change({ op: 'c', at: '2026-11-27T14:00:00Z', ubicacion: 'tienda_01', producto: '000124', after: same }),
    ]);
    expect(rowsOf(PRODUCTOS_COLUMNS, plan.productos).map((r) => r.producto_id)).toEqual(['000124']);
    expect(rowsOf(INVENTARIO_ACTUAL_COLUMNS, plan.actual.upserts)).toHaveLength(2);
  });

  describe('refuses an impossible batch, naming topic, key, field and record', () => {
    it('c or u without an after row', () => {
      const bad = { ...change({ op: 'u', at: '2026-11-27T14:00:00Z' }), after: null };
      const err = caught(() => planInventory([change({ op: 'c', at: '2026-11-27T13:00:00Z', producto: 'X' }), bad]));
      expect(err).toBeInstanceOf(FluxionError);
      expect(err).toMatchObject({ code: 'SINK_BATCH', retriable: false, topic: 'pos.inventario.changes', key: 'tienda_01/01/000123', field: 'after', index: 1 });
      expect(err.context).toMatchObject({ topic: 'pos.inventario.changes', key: 'tienda_01/01/000123', field: 'after', index: 1 });
      expect(err.message).toBe('pos.inventario.changes key tienda_01/01/000123 (record 1 of the batch): after: op u without an after row');
    });

    it('d with an after row', () => {
      const bad = { ...change({ op: 'd', at: '2026-11-27T14:00:00Z' }), after: invRow('01', '000123', '1.000') };
      expect(caught(() => planInventory([bad]))).toMatchObject({ field: 'after', index: 0 });
    });

    it('an after row of another product than the key', () => {
      const bad = { ...change({ op: 'u', at: '2026-11-27T14:00:00Z' }), after: invRow('01', '000999', '1.000') };
      const err = caught(() => planInventory([bad]));
      expect(err).toMatchObject({ field: 'after.producto_id', key: 'tienda_01/01/000123' });
      expect(err.context.value).toBe('000999');
    });

    it('a key whose taken_at goes backwards within the batch', () => {
      const err = caught(() =>
        planInventory([change({ op: 'c', at: '2026-11-27T14:30:00Z' }), change({ op: 'c', at: '2026-11-27T14:00:00Z', producto: 'B' }), change({ op: 'u', at: '2026-11-27T14:00:00Z' })]),
      );
      expect(err).toMatchObject({ field: 'taken_at', index: 2, key: 'tienda_01/01/000123' });
      expect(err.message).toMatch(/2026-11-27T14:00:00.000Z is before 2026-11-27T14:30:00.000Z/);
    });

    it('an invalid instant or an empty key part', () => {
      expect(caught(() => planInventory([change({ op: 'c', at: new Date(Number.NaN) })]))).toMatchObject({ field: 'taken_at' });
      expect(caught(() => planInventory([{ ...change({ op: 'd', at: '2026-11-27T14:00:00Z' }), deposito: '' }]))).toMatchObject({ field: 'deposito' });
    });
  });

  it('folding the planned upserts/deletes over a table equals folding every change one by one (property)', () => {
    const tableArb = fc.array(fc.record({ store: fc.constantFrom(...STORES), deposito: fc.constantFrom('01', '02'), producto: fc.constantFrom('000001', '000002', '000003', '000004') }), { maxLength: 10 })
      .map((keys) => foldActual(new Map(), keys.map((k) => change({ op: 'c', at: '2026-11-01T00:00:00Z', ubicacion: k.store, deposito: k.deposito, producto: k.producto, cantidad: '100.000', snapshot: 's0' }))));
    fc.assert(
      fc.property(tableArb, changesArb, (table, changes) => {
        const plan = planInventory(changes);
        expect(sorted(applyActual(table, plan))).toEqual(sorted(foldActual(table, changes)));
        // every column array has one entry per row
        for (const group of [plan.actual.upserts, plan.actual.deletes, plan.historico.closes, plan.historico.opens, plan.productos]) {
          expect(new Set(Object.values(group).map((a: unknown[]) => a.length)).size).toBeLessThanOrEqual(1);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('batch boundaries do not change the history: any split equals the whole sequence equals the definition (property)', () => {
    fc.assert(
      fc.property(changesArb, cutsArb, (changes, cuts) => {
        const whole = applyHistory(new Map(), planInventory(changes));
        let batched: HistTable = new Map();
        for (const batch of split(changes, cuts)) {
          const plan = planInventory(batch);
          batched = applyHistory(batched, plan);
          // each opened month is announced to inventario_historico_asegurar_mes, once
          const months = plan.historico.opens.valid_from.map((d) => Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
          expect(plan.months.map((d) => d.getTime())).toEqual([...new Set(months)].sort((a, b) => a - b));
        }
        expect(sorted(batched)).toEqual(sorted(whole));
        expect(sorted(whole)).toEqual(sorted(intervalsOf(changes)));
        // at most one open interval per key, the one of a key that is in inventario_actual
        const open = [...whole.values()].filter((r) => r.valid_to === null).map(keyOf).sort();
        expect(open).toEqual([...foldActual(new Map(), changes).keys()].sort());
      }),
      { numRuns: 500 },
    );
  });

  it('productos after the plan, with the visto_en guard, equals applying every c/u one by one (property)', () => {
    const tableArb = fc.array(fc.record({ producto: fc.constantFrom('000001', '000002', '000003'), minutes: fc.integer({ min: -600, max: 600 }), descripcion: fc.constantFrom('VIEJO', 'OTRO') }), { maxLength: 3 })
      .map((rows) => {
        const t: ProductosTable = new Map();
        for (const r of rows) upsertProducto(t, productoOf(change({ op: 'c', at: new Date(START + r.minutes * 60_000), producto: r.producto, after: { descripcion: r.descripcion } })));
        return t;
      });
    fc.assert(
      fc.property(tableArb, changesArb, (table, changes) => {
        const byOne = new Map(table);
        for (const c of changes) if (c.after) upsertProducto(byOne, productoOf(c));
        const planned = new Map(table);
        const rows = rowsOf(PRODUCTOS_COLUMNS, planInventory(changes).productos);
        expect(new Set(rows.map((r) => r.producto_id)).size).toBe(rows.length);
        for (const r of rows) upsertProducto(planned, r);
        expect(sorted(planned)).toEqual(sorted(byOne));
      }),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------------

const linea = (extra: Partial<VentaLinea> = {}): VentaLinea => ({
  ubicacion_id: 'tienda_01', fecha: '2026-11-27', numero_factura: 'F-1', linea: 1, fecha_hora: at('2026-11-27T13:00:00Z'),
  producto_id: '000123', cantidad: '2.000', precio_unitario: '1.2000', descuento: '0.0000', total: '2.4000', caja: '03', anulada: false, ...extra,
});
const venta = (op: 'c' | 'u', fingerprint: string, extra: Partial<VentaLinea> = {}, extractedAt = '2026-11-27T14:00:00Z'): Venta => ({
  op, linea: linea(extra), fingerprint, first_seen_at: at('2026-11-27T14:00:00Z'), extracted_at: at(extractedAt),
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
    expect(caught(() => planVentas([venta('c', 'f1', { linea: 2 ** 31 })]))).toMatchObject({ topic: 'pos.ventas', field: 'linea.linea', key: `tienda_01/F-1/${2 ** 31}` });
  });

  it('no line twice in the statement, and any split into batches ends where one record at a time does (property)', () => {
    const recordArb = fc.record({ factura: fc.constantFrom('F-1', 'F-2'), linea: fc.integer({ min: 1, max: 3 }), fp: fc.constantFrom('f1', 'f2', 'f3'), store: fc.constantFrom(...STORES) });
    const toVenta = (r: { factura: string; linea: number; fp: string; store: string }, i: number) =>
      venta(i === 0 ? 'c' : 'u', r.fp, { ubicacion_id: r.store, numero_factura: r.factura, linea: r.linea, cantidad: `${r.fp.slice(1)}.000` }, new Date(START + i * 60_000).toISOString());
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

type AlertTable = Map<string, ReturnType<typeof mergeAlerta>>;

/** Upserts on alert_id (merged as writeAlertas does), checking alertas_una_abierta after every row as PostgreSQL does. */
function upsertAlertas(table: AlertTable, rows: readonly AlertaRow[]): void {
  for (const r of rows) {
    table.set(r.alert_id, mergeAlerta(table.get(r.alert_id), r));
    const open = [...table.values()].filter((a) => a.estado === 'OPEN' && a.ubicacion_id === r.ubicacion_id && a.deposito === r.deposito && a.producto_id === r.producto_id);
    if (open.length > 1) throw new Error(`duplicate key value violates unique constraint "alertas_una_abierta" (${r.producto_id})`);
  }
}

function applyAlertas(table: AlertTable, plan: AlertasPlan, order: 'resolved-first' | 'open-first' = 'resolved-first'): AlertTable {
  const next = new Map(table);
  const resolved = rowsOf(ALERTAS_COLUMNS, plan.resolved);
  const open = rowsOf(ALERTAS_COLUMNS, plan.open);
  for (const group of order === 'resolved-first' ? [resolved, open] : [open, resolved]) upsertAlertas(next, group);
  return next;
}

const alert = (alert_id: string, status: 'OPEN' | 'RESOLVED', extra: Partial<PhantomAlert> = {}): PhantomAlert => ({
  alert_id, ubicacion_id: 'tienda_01', deposito: '01', producto_id: '000123', rule: 'SELLING_AT_ZERO', confidence: 0.9, status,
  summary: 'sold 5 units while recorded at 0', evidence: { cantidad: '0.000', vendido_desde: '5.000' },
  opened_at: at('2026-11-27T14:00:00Z'), updated_at: at('2026-11-27T14:30:00Z'), ...extra,
});

describe('planAlertas', () => {
  it('resolving first lets a product close one alert and open the next in one batch; the other order cannot', () => {
    const table: AlertTable = new Map();
    upsertAlertas(table, rowsOf(ALERTAS_COLUMNS, planAlertas([alert('a1', 'OPEN')]).open));
    const plan = planAlertas([alert('a1', 'OPEN', { confidence: 0.95 }), alert('a1', 'RESOLVED'), alert('a2', 'OPEN', { rule: 'FLIP_FLOP' })]);
    expect(plan.resolved.alert_id).toEqual(['a1']);
    expect(plan.open.alert_id).toEqual(['a2']);
    expect(plan.resolved.evidencia).toEqual(['{"cantidad":"0.000","vendido_desde":"5.000"}']);
    expect([...applyAlertas(table, plan).values()].map((a) => [a.alert_id, a.estado])).toEqual([['a1', 'RESOLVED'], ['a2', 'OPEN']]);
    expect(() => applyAlertas(table, plan, 'open-first')).toThrow(/alertas_una_abierta/);
  });

  it('refuses two different alerts both left OPEN for one product', () => {
    const err = caught(() => planAlertas([alert('a1', 'OPEN'), alert('a2', 'OPEN', { producto_id: '000999' }), alert('a3', 'OPEN')]));
    expect(err).toMatchObject({ topic: 'alerts.phantom-zeros', key: 'tienda_01/01/000123', field: 'status', index: 2 });
    expect(err.message).toMatch(/a1 and a3 both end this batch OPEN/);
  });

  it('refuses an alert that moves to another product, and a confidence outside [0, 1]', () => {
    expect(caught(() => planAlertas([alert('a1', 'OPEN'), alert('a1', 'RESOLVED', { deposito: '02' })]))).toMatchObject({ field: 'alert_id', index: 1, key: 'tienda_01/02/000123' });
    expect(caught(() => planAlertas([alert('a1', 'OPEN', { confidence: 1.5 })]))).toMatchObject({ field: 'confidence', index: 0 });
  });

  it('RESOLVED records carry resuelta_en (their updated_at); OPEN records none', () => {
    const plan = planAlertas([alert('a1', 'RESOLVED', { updated_at: at('2026-11-27T16:00:00Z') }), alert('a2', 'OPEN', { producto_id: '000124' })]);
    expect(plan.resolved.resuelta_en).toEqual([at('2026-11-27T16:00:00Z')]);
    expect(plan.open.resuelta_en).toEqual([null]);
  });

  it('no alert_id twice across both groups, and a consistent alert stream in any batches never breaks the index (property)', () => {
    // a detector per product: at most one open alert, resolved before the next one opens
    const actionArb = fc.record({ producto: fc.constantFrom('000001', '000002'), action: fc.constantFrom('open', 'update', 'resolve'), confidence: fc.double({ min: 0, max: 1, noNaN: true }) });
    const streamOf = (actions: Array<{ producto: string; action: string; confidence: number }>) => {
      const open = new Map<string, string>();
      let seq = 0;
      const out: PhantomAlert[] = [];
      for (const a of actions) {
        const current = open.get(a.producto);
        if (a.action === 'resolve' && current) {
          out.push(alert(current, 'RESOLVED', { producto_id: a.producto, confidence: a.confidence }));
          open.delete(a.producto);
        } else if (current) {
          out.push(alert(current, 'OPEN', { producto_id: a.producto, confidence: a.confidence }));
        } else if (a.action !== 'resolve') {
          const id = `a${++seq}`;
          open.set(a.producto, id);
          out.push(alert(id, 'OPEN', { producto_id: a.producto, confidence: a.confidence }));
        }
      }
      return out;
    };
    fc.assert(
      fc.property(fc.array(actionArb, { maxLength: 30 }), fc.nat({ max: 30 }), cutsArb, (actions, prefix, cuts) => {
        const stream = streamOf(actions);
        const head = stream.slice(0, prefix);
        const tail = stream.slice(prefix);
        const table: AlertTable = new Map();
        for (const a of head) upsertAlertas(table, rowsOf(ALERTAS_COLUMNS, planAlertas([a])[a.status === 'OPEN' ? 'open' : 'resolved']));
        const byOne = new Map(table);
        for (const a of tail) upsertAlertas(byOne, rowsOf(ALERTAS_COLUMNS, planAlertas([a])[a.status === 'OPEN' ? 'open' : 'resolved']));
        let batched = table;
        for (const batch of split(tail, cuts)) {
          const plan = planAlertas(batch);
          const ids = [...plan.resolved.alert_id, ...plan.open.alert_id];
          expect(new Set(ids).size).toBe(ids.length);
          batched = applyAlertas(batched, plan);
        }
        expect(sorted(batched)).toEqual(sorted(byOne));
      }),
      { numRuns: 500 },
    );
  });
});

describe('mergeAlerta: a dismissed alert does not reopen on the same evidence', () => {
  const row = (status: 'OPEN' | 'RESOLVED', extra: Partial<PhantomAlert> = {}): AlertaRow => rowsOf(ALERTAS_COLUMNS, planAlertas([alert('a1', status, extra)])[status === 'OPEN' ? 'open' : 'resolved'])[0]!;
  const dismiss = (table: AlertTable, id: string) => table.set(id, { ...table.get(id)!, estado: 'DESCARTADA' });

  it('a row not dismissed follows the record, as before', () => {
    expect(mergeAlerta(undefined, row('OPEN'))).toEqual(row('OPEN'));
    expect(mergeAlerta({ estado: 'OPEN', resuelta_en: null }, row('RESOLVED'))).toEqual(row('RESOLVED'));
  });

  it("the detector's next OPEN (new confidence), a redelivered OPEN and the RESOLVED all leave it DESCARTADA; the evidence and resuelta_en follow", () => {
    const table: AlertTable = new Map();
    upsertAlertas(table, [row('OPEN')]);
    dismiss(table, 'a1');
    upsertAlertas(table, [row('OPEN', { confidence: 0.97, updated_at: at('2026-11-27T15:00:00Z') })]);
    expect(table.get('a1')).toMatchObject({ estado: 'DESCARTADA', confianza: 0.97, actualizada_en: at('2026-11-27T15:00:00Z'), resuelta_en: null });
    upsertAlertas(table, [row('RESOLVED', { updated_at: at('2026-11-27T16:00:00Z') })]);
    expect(table.get('a1')).toMatchObject({ estado: 'DESCARTADA', resuelta_en: at('2026-11-27T16:00:00Z') });
    // The OPEN replayed after a crash keeps both the dismissal and the resolution.
    upsertAlertas(table, [row('OPEN')]);
    expect(table.get('a1')).toMatchObject({ estado: 'DESCARTADA', resuelta_en: at('2026-11-27T16:00:00Z') });
  });

  it("a new episode (a new alert_id) opens beside a dismissed alert of the product: it does not hold alertas_una_abierta's slot", () => {
    const table: AlertTable = new Map();
    upsertAlertas(table, [row('OPEN')]);
    dismiss(table, 'a1');
    const next = applyAlertas(table, planAlertas([alert('a2', 'OPEN', { rule: 'FLIP_FLOP' })]));
    expect([...next.values()].map((a) => [a.alert_id, a.estado])).toEqual([['a1', 'DESCARTADA'], ['a2', 'OPEN']]);
  });

  it('whatever the batching and wherever an operator dismisses, a dismissed alert stays DESCARTADA and the index holds (property)', () => {
    // One product's detector: OPEN, updates, RESOLVED, next episode...; `dismiss` marks the
    // records after which an operator dismisses the alert they belong to.
    const stepArb = fc.record({ action: fc.constantFrom('open', 'update', 'resolve'), dismiss: fc.boolean() });
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 25 }), cutsArb, (steps, cuts) => {
        const stream: Array<{ record: PhantomAlert; dismissAfter: boolean }> = [];
        let open: string | null = null;
        let seq = 0;
        for (const s of steps) {
          if (s.action === 'resolve' && open) {
            stream.push({ record: alert(open, 'RESOLVED'), dismissAfter: false });
            open = null;
          } else if (s.action !== 'resolve') {
            open ??= `a${++seq}`;
            stream.push({ record: alert(open, 'OPEN', { confidence: (seq % 10) / 10 }), dismissAfter: s.dismiss });
          }
        }
        // Dismissals land between batches (the operator's UPDATE and the sink's transaction
        // take the row lock in turn); the batches are cut at each dismissal and at `cuts`.
        const table: AlertTable = new Map();
        const dismissed = new Set<string>();
        for (const part of split(stream, cuts)) {
          let batch: PhantomAlert[] = [];
          const flush = () => {
            if (batch.length) for (const [k, v] of applyAlertas(table, planAlertas(batch))) table.set(k, v);
            batch = [];
          };
          for (const { record, dismissAfter } of part) {
            batch.push(record);
            if (dismissAfter) {
              flush();
              const row = table.get(record.alert_id);
              if (row?.estado === 'OPEN') {
                dismiss(table, record.alert_id);
                dismissed.add(record.alert_id);
              }
            }
          }
          flush();
        }
        for (const id of dismissed) expect(table.get(id)!.estado).toBe('DESCARTADA');
        for (const [id, r] of table) if (!dismissed.has(id)) expect(r.estado).toBe(stream.filter((x) => x.record.alert_id === id).at(-1)!.record.status);
      }),
      { numRuns: 500 },
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('planEtlRuns', () => {
  const run = (extra: Partial<EtlRun> = {}): EtlRun => ({
    run_id: '1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b', job: 'INVENTARIO', ubicacion_id: 'tienda_01', status: 'OK', rows: 1000,
    started_at: at('2026-11-27T14:30:00Z'), finished_at: at('2026-11-27T14:30:09Z'), snapshot_id: SNAP, fecha: null, error_class: null, error_message: null, ...extra,
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
    expect(caught(() => planEtlRuns([run({ run_id: '' })]))).toMatchObject({ topic: 'ops.etl-runs', key: 'INVENTARIO/tienda_01', field: 'run_id' });
  });

  it('no (run_id, ubicacion_id) twice in the statement (property)', () => {
    const runArb = fc.record({ run: fc.constantFrom('r1', 'r2', 'r3'), store: fc.constantFrom('tienda_01', 'tienda_02', 'cedi_frio'), rows: fc.nat({ max: 10 }) });
    fc.assert(
      fc.property(fc.array(runArb, { maxLength: 20 }), (runs) => {
        const planned = rowsOf(ETL_RUNS_COLUMNS, planEtlRuns(runs.map((r) => run({ run_id: r.run, ubicacion_id: r.store, rows: r.rows }))));
        const keys = planned.map((r) => `${r.run_id}/${r.ubicacion_id}`);
        expect(new Set(keys).size).toBe(keys.length);
        expect(new Set(keys)).toEqual(new Set(runs.map((r) => `${r.run}/${r.store}`)));
        for (const p of planned) expect(p.rows).toBe(runs.findLast((r) => r.run === p.run_id && r.store === p.ubicacion_id)!.rows);
      }),
      { numRuns: 300 },
    );
  });
});
