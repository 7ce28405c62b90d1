import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FluxionError } from '../../core/errors.ts';
import {
  ALERTAS_COLUMNS,
  ALERTAS_OPERATOR_COLUMNS,
  ETL_RUNS_COLUMNS,
  HISTORICO_CLOSE_COLUMNS,
  INVENTARIO_ACTUAL_COLUMNS,
  INVENTARIO_HISTORICO_COLUMNS,
  PRODUCTOS_COLUMNS,
  VENTAS_COLUMNS,
  columnParams,
  planInventory,
  rowsOf,
} from '../../sinks/sink-batch.ts';
import {
  SNAP,
  invRow,
  change,
  at,
  caught,
  split,
  keyOf,
  type HistTable,
  type ProductosTable,
  foldActual,
  applyActual,
  applyHistory,
  intervalsOf,
  productoOf,
  upsertProducto,
  sorted,
  STORES,
  START,
  changesArb,
  cutsArb,
} from '../helpers/sink-batch-model.ts';

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
    expect(columnParams(plan.historico.closes, HISTORICO_CLOSE_COLUMNS)).toEqual([
      ['tienda_01'],
      ['01'],
      ['000123'],
      [at('2026-11-27T14:00:00Z')],
    ]);
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
      {
        ubicacion_id: 'tienda_01',
        deposito: '01',
        producto_id: 'A',
        cantidad: '4.000',
        costo: '1.0000',
        precio: '2.0000',
        activo: true,
        snapshot_id: SNAP,
        taken_at: at('2026-11-27T14:30:00Z'),
      },
    ]);
    expect(plan.actual.deletes).toEqual({ ubicacion_id: ['tienda_01'], deposito: ['01'], producto_id: ['B'] });
    expect(plan.historico.closes).toEqual({
      ubicacion_id: ['tienda_01', 'tienda_01'],
      deposito: ['01', '01'],
      producto_id: ['A', 'B'],
      valid_to: [at('2026-11-27T14:00:00Z'), at('2026-11-27T14:00:00Z')],
    });
    expect(
      rowsOf(INVENTARIO_HISTORICO_COLUMNS, plan.historico.opens).map((r) => [
        r.producto_id,
        r.op,
        r.cantidad,
        r.valid_from.toISOString(),
        r.valid_to?.toISOString() ?? null,
      ]),
    ).toEqual([
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
    expect(
      rowsOf(INVENTARIO_HISTORICO_COLUMNS, plan.historico.opens).map((r) => [
        r.op,
        r.valid_from.toISOString(),
        r.valid_to?.toISOString() ?? null,
      ]),
    ).toEqual([
      ['c', '2026-11-27T14:00:00.000Z', '2026-11-27T14:30:00.000Z'],
      ['c', '2026-11-27T14:30:00.000Z', null],
    ]);
  });

  it('supersedes a duplicate instant that straddles two batches, for u and for d', () => {
    const first = [
      change({ op: 'c', at: '2026-11-27T14:00:00Z', cantidad: '5.000' }),
      change({ op: 'u', at: '2026-11-27T14:30:00Z', cantidad: '6.000' }),
    ];
    for (const second of [
      [change({ op: 'u', at: '2026-11-27T14:30:00Z', cantidad: '7.000' })],
      [change({ op: 'd', at: '2026-11-27T14:30:00Z' })],
    ]) {
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
      expect.objectContaining({
        producto_id: '000123',
        descripcion: 'PAN CANILLA',
        ubicacion_id: 'tienda_02',
        visto_en: at('2026-11-27T14:30:00Z'),
      }),
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
      expect(err).toMatchObject({
        code: 'SINK_BATCH',
        retriable: false,
        topic: 'pos.inventario.changes',
        key: 'tienda_01/01/000123',
        field: 'after',
        index: 1,
      });
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
        planInventory([
          change({ op: 'c', at: '2026-11-27T14:30:00Z' }),
          change({ op: 'c', at: '2026-11-27T14:00:00Z', producto: 'B' }),
          change({ op: 'u', at: '2026-11-27T14:00:00Z' }),
        ]),
      );
      expect(err).toMatchObject({ field: 'taken_at', index: 2, key: 'tienda_01/01/000123' });
      expect(err.message).toMatch(/2026-11-27T14:00:00.000Z is before 2026-11-27T14:30:00.000Z/);
    });

    it('an invalid instant or an empty key part', () => {
      expect(caught(() => planInventory([change({ op: 'c', at: new Date(Number.NaN) })]))).toMatchObject({ field: 'taken_at' });
      expect(caught(() => planInventory([{ ...change({ op: 'd', at: '2026-11-27T14:00:00Z' }), deposito: '' }]))).toMatchObject({
        field: 'deposito',
      });
    });
  });

  it('folding the planned upserts/deletes over a table equals folding every change one by one (property)', () => {
    const tableArb = fc
      .array(
        fc.record({
          store: fc.constantFrom(...STORES),
          deposito: fc.constantFrom('01', '02'),
          producto: fc.constantFrom('000001', '000002', '000003', '000004'),
        }),
        { maxLength: 10 },
      )
      .map((keys) =>
        foldActual(
          new Map(),
          keys.map((k) =>
            change({
              op: 'c',
              at: '2026-11-01T00:00:00Z',
              ubicacion: k.store,
              deposito: k.deposito,
              producto: k.producto,
              cantidad: '100.000',
              snapshot: 's0',
            }),
          ),
        ),
      );
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
        const open = [...whole.values()]
          .filter((r) => r.valid_to === null)
          .map(keyOf)
          .sort();
        expect(open).toEqual([...foldActual(new Map(), changes).keys()].sort());
      }),
      { numRuns: 500 },
    );
  });

  it('productos after the plan, with the visto_en guard, equals applying every c/u one by one (property)', () => {
    const tableArb = fc
      .array(
        fc.record({
          producto: fc.constantFrom('000001', '000002', '000003'),
          minutes: fc.integer({ min: -600, max: 600 }),
          descripcion: fc.constantFrom('VIEJO', 'OTRO'),
        }),
        { maxLength: 3 },
      )
      .map((rows) => {
        const t: ProductosTable = new Map();
        for (const r of rows)
          upsertProducto(
            t,
            productoOf(
              change({ op: 'c', at: new Date(START + r.minutes * 60_000), producto: r.producto, after: { descripcion: r.descripcion } }),
            ),
          );
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
