/**
 * The sink's two row sources (sinks/postgres-writer.ts): the same plans written through COPY
 * staging tables and through unnest arrays leave identical tables; and productos is written
 * only where a description changed (the write-amplification goal of issue 16); and a change
 * that would reopen a closed history interval is refused with HistoryOrderError.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Pool } from '../../core/postgres.ts';
import { withTransaction } from '../../core/postgres.ts';
import type { InventoryChange, InventoryRow } from '../../core/records.ts';
import { HistoryOrderError, writeInventory, type WriteCounts } from '../../sinks/postgres-writer.ts';
import { planInventory } from '../../sinks/sink-batch.ts';
import { inventoryRow, uuidFrom } from '../../fixtures/inventory-feed.ts';
import { buildSinkFeed } from '../helpers/sink-feed.ts';
import { migratedDatabase, type MigratedDatabase } from '../../fixtures/sink-run.ts';

const dbs: MigratedDatabase[] = [];
afterAll(async () => {
  await Promise.all(dbs.map((d) => d.drop()));
});
async function database(): Promise<MigratedDatabase> {
  const db = await migratedDatabase();
  dbs.push(db);
  return db;
}

const ALWAYS_COPY = { copyMinRows: 0 };
const NEVER_COPY = { copyMinRows: Number.POSITIVE_INFINITY };

/** Writes `changes` in slices of the given sizes (cycling), one transaction each. */
async function writeSlices(
  pool: Pool,
  changes: readonly InventoryChange[],
  sizes: readonly number[],
  options: { copyMinRows: number },
): Promise<WriteCounts[]> {
  const out: WriteCounts[] = [];
  for (let i = 0, s = 0; i < changes.length; s++) {
    const size = sizes[s % sizes.length]!;
    const plan = planInventory(changes.slice(i, i + size));
    out.push(await withTransaction(pool, (client) => writeInventory(client, plan, undefined, options)));
    i += size;
  }
  return out;
}

async function dump(pool: Pool) {
  const q = async (sql: string) => (await pool.query(sql)).rows;
  return {
    actual: await q(
      'SELECT ubicacion_id, deposito, producto_id, cantidad, costo, precio, activo, snapshot_id, taken_at FROM inventario_actual ' +
        'ORDER BY 1, 2, 3',
    ),
    historico: await q(
      'SELECT ubicacion_id, deposito, producto_id, cantidad, costo, precio, activo, op, snapshot_id, valid_from, valid_to FROM ' +
        'inventario_historico ORDER BY 1, 2, 3, valid_from',
    ),
    productos: await q(
      'SELECT producto_id, descripcion, codigo_barras, departamento_codigo, departamento_nombre, grupo_codigo, grupo_nombre, ' +
        'subgrupo_codigo, subgrupo_nombre, unidad, visto_en, ubicacion_id FROM productos ORDER BY 1',
    ),
  };
}

const AT = Date.UTC(2026, 10, 30, 23, 0); // an hour before a month boundary: history in two partitions
const change = (
  store: string,
  op: 'c' | 'u' | 'd',
  minutes: number,
  after: InventoryRow | null,
  producto = after?.producto_id ?? '000001',
): InventoryChange => ({
  ubicacion_id: store,
  deposito: after?.deposito ?? '01',
  producto_id: producto,
  source: 'KLK',
  op,
  before: null,
  after,
  snapshot_id: uuidFrom(`${store}/${minutes}`),
  taken_at: new Date(AT + minutes * 60_000),
});

describe('sink writer: COPY staging and unnest arrays', () => {
  it('the same changes, through COPY and through unnest, in slices of any size, leave identical tables', {
    timeout: 120_000,
  }, async () => {
    const feed = buildSinkFeed({
      stores: ['tienda_01', 'tienda_02', 'tienda_03'],
      products: 700,
      cycles: 4,
      ventasPerStore: 0,
      alertsPerStore: 0,
      start: new Date(AT),
    });
    // Text COPY must escape, and NULLs must stay NULLs: a description with a tab, a newline,
    // a backslash and a "\N"; a row with no cost or price.
    const odd = {
      ...inventoryRow(9_001, '1.000'),
      descripcion: 'TAB\tNL\nCR\rBACK\\SLASH \\N',
      subgrupo_codigo: null,
      costo: null,
      precio: null,
    };
    const extra = [
      change('tienda_01', 'c', 0, odd),
      change('tienda_01', 'u', 200, { ...odd, cantidad: '2.000' }),
      // the same instant twice: the later record wins, in one slice or across two
      change('tienda_02', 'c', 200, odd),
      change('tienda_02', 'u', 200, { ...odd, cantidad: '3.500', descripcion: 'OTRA' }),
      change('tienda_02', 'd', 300, null, odd.producto_id),
    ];
    const changes = [...feed.changes, ...extra];
    expect(changes.length).toBeGreaterThan(2_500);

    const viaCopy = await database();
    const viaUnnest = await database();
    const smallSlices = await database();
    const slices = [2_500, 1, 1_700, 3];
    const copied = await writeSlices(viaCopy.pool, changes, slices, ALWAYS_COPY);
    await writeSlices(viaUnnest.pool, changes, slices, NEVER_COPY);
    await writeSlices(smallSlices.pool, changes, [97], NEVER_COPY);
    expect(copied.some((c) => c.historico_opened >= 1_000)).toBe(true);

    const a = await dump(viaCopy.pool);
    const b = await dump(viaUnnest.pool);
    const c = await dump(smallSlices.pool);
    expect(a.actual.length).toBeGreaterThan(2_000);
    expect(a.historico.length).toBe(changes.length - changes.filter((x) => x.op === 'd').length - 1);
    expect(a).toEqual(b);
    // Other slices: the same inventory and history. productos holds the same descriptions;
    // which store's snapshot last wrote one (visto_en, ubicacion_id) depends on the slices,
    // since a description equal to the stored one is not written again.
    expect(a.actual).toEqual(c.actual);
    expect(a.historico).toEqual(c.historico);
    const described = (rows: Array<Record<string, unknown>>) => rows.map(({ visto_en: _v, ubicacion_id: _u, ...content }) => content);
    expect(described(a.productos)).toEqual(described(c.productos));
    expect(a.productos.find((p) => p.producto_id === odd.producto_id)).toMatchObject({ descripcion: 'OTRA', subgrupo_codigo: null });
    const oddHistory = a.historico.filter((h) => h.producto_id === odd.producto_id && h.ubicacion_id === 'tienda_01');
    expect(oddHistory.map((h) => h.costo)).toEqual([null, null]);
  });

  it('COPY staging commits with the transaction: a rolled-back slice leaves nothing, the next one writes', async () => {
    const db = await database();
    const rows = Array.from({ length: 1_200 }, (_, i) => change('tienda_01', 'c', 0, inventoryRow(i + 1, '5.000')));
    await expect(
      withTransaction(db.pool, async (client) => {
        await writeInventory(client, planInventory(rows), undefined, ALWAYS_COPY);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect((await db.pool.query('SELECT count(*)::int AS n FROM inventario_actual')).rows[0].n).toBe(0);
    await writeSlices(db.pool, rows, [1_200], ALWAYS_COPY);
    await writeSlices(
      db.pool,
      rows.map((r) => ({
        ...r,
        op: 'u' as const,
        taken_at: new Date(r.taken_at.getTime() + 60_000),
        after: { ...r.after!, cantidad: '6.000' },
      })),
      [1_200],
      ALWAYS_COPY,
    );
    const n = (
      await db.pool.query(
        'SELECT (SELECT count(*) FROM inventario_actual)::int AS a, (SELECT count(*) FROM inventario_historico)::int AS h',
      )
    ).rows[0];
    expect(n).toEqual({ a: 1_200, h: 2_400 });
  });
});

describe('sink writer: productos written only where a description changed', () => {
  for (const [name, options] of [
    ['COPY', ALWAYS_COPY],
    ['unnest', NEVER_COPY],
  ] as const) {
    it(`quantity-only changes leave productos rows untouched (same xmin, no update counted) [${name}]`, { timeout: 60_000 }, async () => {
      const db = await database();
      const stores = ['tienda_01', 'tienda_02'];
      const products = 1_500;
      const cycle = (n: number, op: 'c' | 'u', cantidad: string, descripcion?: (p: number) => string | undefined) =>
        stores.flatMap((s) =>
          Array.from({ length: products }, (_, i) => {
            const row = inventoryRow(i + 1, cantidad);
            return change(s, op, n * 30, { ...row, descripcion: descripcion?.(i + 1) ?? row.descripcion });
          }),
        );
      const first = await writeSlices(db.pool, cycle(0, 'c', '1.000'), [2_000], options);
      expect(first.reduce((n, c) => n + c.productos, 0)).toBe(products);
      // xmin changes when a row is rewritten, xmax when it is merely locked (ON CONFLICT ... WHERE false).
      const xmins = async () =>
        new Map(
          (
            await db.pool.query<{ producto_id: string; xmin: string; xmax: string; visto_en: Date }>(
              'SELECT producto_id, xmin::text AS xmin, xmax::text AS xmax, visto_en FROM productos',
            )
          ).rows.map((r) => [r.producto_id, r]),
        );
      const before = await xmins();

      // Cycle 2: every quantity changes, no description does.
      const second = await writeSlices(db.pool, cycle(1, 'u', '2.000'), [2_000], options);
      expect(second.reduce((n, c) => n + c.productos, 0)).toBe(0);
      expect(second.reduce((n, c) => n + c.actual_upserts, 0)).toBe(stores.length * products);
      expect(await xmins()).toEqual(before);

      // Cycle 3: ten products renamed in one store: exactly those ten rows are written.
      const renamed = (p: number) => (p % 150 === 0 ? `NUEVO ${p}` : undefined);
      const third = await writeSlices(
        db.pool,
        cycle(2, 'u', '3.000', (p) => renamed(p)).filter((c) => c.ubicacion_id === 'tienda_01'),
        [2_000],
        options,
      );
      expect(third.reduce((n, c) => n + c.productos, 0)).toBe(10);
      const after = await xmins();
      const changed = [...after]
        .filter(([id, r]) => r.xmin !== before.get(id)!.xmin)
        .map(([id]) => id)
        .sort();
      expect(changed).toEqual(Array.from({ length: 10 }, (_, i) => String((i + 1) * 150).padStart(6, '0')));
      expect((await db.pool.query("SELECT descripcion FROM productos WHERE producto_id = '000150'")).rows[0].descripcion).toBe(
        'NUEVO 150',
      );

      // An older snapshot's description never overwrites a newer one.
      await writeSlices(db.pool, [change('tienda_02', 'u', 45, { ...inventoryRow(150, '9.000'), descripcion: 'VIEJO' })], [1], options);
      expect((await db.pool.query("SELECT descripcion FROM productos WHERE producto_id = '000150'")).rows[0].descripcion).toBe(
        'NUEVO 150',
      );
    });
  }
});

describe('sink writer: a key whose taken_at goes backwards across batches', () => {
  for (const [name, options] of [
    ['unnest', NEVER_COPY],
    ['COPY', ALWAYS_COPY],
  ] as const) {
    it(`is refused with HistoryOrderError (sqlstate 23505), leaving the history as it was [${name}]`, { timeout: 60_000 }, async () => {
      const db = await database();
      // [0, 60) closed, [60, ∞) open; then the instant 0 again, in a later batch.
      await writeSlices(
        db.pool,
        [change('tienda_01', 'c', 0, inventoryRow(1, '1.000')), change('tienda_01', 'u', 60, inventoryRow(1, '2.000'))],
        [2],
        options,
      );
      const before = (await dump(db.pool)).historico;
      const backwards = planInventory([change('tienda_01', 'u', 0, inventoryRow(1, '3.000'))]);
      const refusal = await withTransaction(db.pool, (client) => writeInventory(client, backwards, undefined, options)).catch(
        (e: unknown) => e,
      );
      expect(refusal).toBeInstanceOf(HistoryOrderError);
      expect(refusal).toMatchObject({
        sqlstate: '23505',
        code: 'HISTORY_ORDER',
        retriable: false,
        context: { table: 'inventario_historico' },
      });
      expect((refusal as Error).message).toBe(
        '1 history row(s) would reopen a closed interval of "inventario_historico": a key\'s taken_at went backwards',
      );
      expect((await dump(db.pool)).historico).toEqual(before);
      expect(before.map((h) => h.cantidad)).toEqual(['1.000', '2.000']);
    });
  }
});
