/**
 * productos_abc_recalcular() (sql/postgres/005_abc.sql) and recalcAbc() against a real
 * PostgreSQL: every row of productos_abc_cache is compared with an independent computation
 * written here in TypeScript (exact BigInt arithmetic, no SQL) on seeded sales with exact
 * ties, zero-sales products, voided lines, returns and lines outside the window;
 * `fluxion abc recalc`; the sink's trigger at start. Readers never see a half-written cache,
 * overlapping recalculations serialise: abc-atomic.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { createRng } from '../../simulators/data/prng.ts';
import { recalcAbc } from '../../sinks/abc-recalc.ts';
import { createAbcTrigger } from '../../sinks/abc-trigger.ts';
import { runCli, testLogger } from '../../fixtures/services.ts';
import {
  type Linea,
  type Dataset,
  $,
  addDays,
  businessDate,
  insertDataset,
  generate,
  expectedCache,
  readCache,
  countsOf,
  countsOfResult,
} from '../helpers/abc-oracle.ts';
import { abcDatabases } from '../helpers/abc-database.ts';

const { migratedDatabase, connect, cleanups } = abcDatabases();

describe('productos_abc_recalcular', () => {
  it('matches an independent computation per store and chain-wide, with ties, zero sales, voided lines and returns', async () => {
    const { pool } = await migratedDatabase();
    // 02:30 UTC on 1 March is 22:30 on 28 February in Caracas: the window ends on the 28th.
    const asOf = new Date('2026-03-01T02:30:00Z');
    const ds = generate(createRng('abc-1'), '2025-12-01', '2026-02-28');
    await insertDataset(pool, ds);

    const result = await recalcAbc(pool, { asOf, logger: testLogger });
    expect(result).toMatchObject({ windowDays: 90, ventanaDesde: '2025-12-01', ventanaHasta: '2026-02-28' });
    const expected = expectedCache(ds, asOf, 90);
    const actual = await readCache(pool);
    expect(actual.rows.length).toBe(expected.length);
    expect(actual.rows).toEqual(expected);
    expect(actual.calculadoEn).toEqual([result.calculadoEn.toISOString()]);
    expect(countsOfResult(result)).toEqual(countsOf(expected));
    expect(result.alcances.map((a) => a.alcance)).toEqual(['cadena', 'tienda_01', 'tienda_02', 'tienda_03', 'tienda_04', 'tienda_05']);
    expect(result.filas).toBe(expected.length);

    // The data really has what the test claims to cover.
    const row = (alcance: string, p: string) => actual.rows.find((r) => r.alcance === alcance && r.producto_id === p)!;
    for (const c of ['A', 'B', 'C'])
      expect(
        actual.rows.some((r) => r.alcance === 'cadena' && r.clase === c && r.valor_ventas !== '0.0000'),
        c,
      ).toBe(true);
    // Equal values: ranked next to each other by producto_id.
    expect(row('cadena', 'TIE1').valor_ventas).toBe(row('cadena', 'TIE2').valor_ventas);
    expect(row('cadena', 'TIE2').ranking).toBe(row('cadena', 'TIE1').ranking + 1);
    expect(row('cadena', 'TIE3').ranking).toBe(row('cadena', 'TIE1').ranking + 2);
    expect(row('tienda_02', 'TIE4').valor_ventas).toBe(row('tienda_02', 'TIE5').valor_ventas);
    expect(row('tienda_02', 'TIE4').ranking).toBe(row('tienda_02', 'TIE5').ranking - 1);
    expect(row('cadena', 'B-caso').ranking).toBeLessThan(row('cadena', 'b-caso').ranking); // byte order, not linguistic
    expect(row('cadena', 'b-caso').ranking).toBeLessThan(row('cadena', 'Ñame').ranking);
    expect(row('tienda_01', 'VOID1')).toMatchObject({ clase: 'C', valor_ventas: '0.0000', porcentaje_acumulado: null });
    expect(row('tienda_01', 'RET1')).toMatchObject({ clase: 'C', valor_ventas: '0.0000' });
    expect(row('cadena', 'RET1').valor_ventas).toBe('7.0000'); // 5 - 8 + 10
    expect(row('cadena', 'NET0')).toMatchObject({ clase: 'C', valor_ventas: '0.0000' });
    expect(row('cadena', 'NEVER')).toMatchObject({ clase: 'C', valor_ventas: '0.0000' });
    expect(actual.rows.some((r) => r.alcance !== 'cadena' && r.producto_id === 'NEVER')).toBe(false);
    expect(actual.rows.some((r) => r.producto_id === 'OUTSIDE')).toBe(false);
  });

  it('replaces the whole cache on the next run: another window and as-of, changed inventory, nothing left over', async () => {
    const { pool } = await migratedDatabase();
    const ds = generate(createRng('abc-2'), '2025-12-01', '2026-02-28');
    await insertDataset(pool, ds);
    await recalcAbc(pool, { asOf: new Date('2026-03-01T02:30:00Z'), logger: testLogger });

    // tienda_05 closes (its inventory and recent sales gone), a new product appears.
    await pool.query(`DELETE FROM inventario_actual WHERE ubicacion_id = 'tienda_05'`);
    await pool.query(`DELETE FROM ventas WHERE ubicacion_id = 'tienda_05' AND fecha >= '2026-01-01'`);
    const more: Dataset = {
      productos: ['NUEVO'],
      inventario: [{ ubicacion: 'tienda_02', deposito: '01', producto: 'NUEVO' }],
      ventas: [{ ubicacion: 'tienda_02', producto: 'NUEVO', total: $(1234.5678), fecha: '2026-02-10', anulada: false }],
    };
    await insertDataset(pool, more);
    const remaining: Dataset = {
      productos: [...ds.productos, ...more.productos],
      inventario: [...ds.inventario.filter((i) => i.ubicacion !== 'tienda_05'), ...more.inventario],
      ventas: [...ds.ventas.filter((l) => !(l.ubicacion === 'tienda_05' && l.fecha >= '2026-01-01')), ...more.ventas],
    };

    const asOf = new Date('2026-02-15T15:00:00-04:00');
    const result = await recalcAbc(pool, { asOf, windowDays: 30, logger: testLogger });
    expect(result).toMatchObject({ ventanaDesde: '2026-01-17', ventanaHasta: '2026-02-15' });
    expect((await readCache(pool)).rows).toEqual(expectedCache(remaining, asOf, 30));
    // tienda_05 has no inventory and no sales in this window: it is no longer an alcance.
    expect(result.alcances.map((a) => a.alcance)).not.toContain('tienda_05');
  });

  it('pins the class boundaries: the product reaching or crossing 80% is A, the one reaching or crossing 95% is B', async () => {
    const { pool } = await migratedDatabase();
    const v = (producto: string, total: number, ubicacion = 'tienda_01'): Linea => ({
      ubicacion,
      producto,
      total: $(total),
      fecha: '2026-02-20',
      anulada: false,
    });
    await insertDataset(pool, {
      productos: ['p1', 'p2', 'p3', 'p4', 'p5'],
      inventario: [],
      ventas: [
        v('p1', 50),
        v('p2', 30),
        v('p3', 15),
        v('p4', 5),
        v('p1', 70, 'tienda_02'),
        v('p2', 20, 'tienda_02'),
        v('p3', 10, 'tienda_02'),
      ],
    });
    await recalcAbc(pool, { asOf: new Date('2026-02-28T12:00:00Z'), logger: testLogger });
    const { rows } = await readCache(pool);
    expect(rows.filter((r) => r.alcance === 'tienda_01').map((r) => [r.producto_id, r.clase, r.porcentaje_acumulado, r.ranking])).toEqual([
      ['p1', 'A', '50.000000', 1],
      ['p2', 'A', '80.000000', 2], // 50% before it: A, although it takes the sum to exactly 80%
      ['p3', 'B', '95.000000', 3], // 80% before it: B
      ['p4', 'C', '100.000000', 4], // 95% before it: C
    ]);
    expect(rows.filter((r) => r.alcance === 'tienda_02').map((r) => [r.producto_id, r.clase, r.porcentaje_acumulado])).toEqual([
      ['p1', 'A', '70.000000'],
      ['p2', 'A', '90.000000'], // crosses 80% (70% before it): A
      ['p3', 'B', '100.000000'], // crosses 95% (90% before it): B
    ]);
    expect(rows.find((r) => r.alcance === 'cadena' && r.producto_id === 'p5')).toMatchObject({
      clase: 'C',
      ranking: 5,
      porcentaje_acumulado: null,
    });
  });

  it('gives an empty database a summary of zeros, and refuses a window of 0 days in SQL too', async () => {
    const { pool, url } = await migratedDatabase();
    const result = await recalcAbc(pool, { logger: testLogger });
    expect(result.alcances).toEqual([
      { alcance: 'cadena', productos: { A: 0, B: 0, C: 0 }, valor: { A: '0.0000', B: '0.0000', C: '0.0000' } },
    ]);
    expect(result.filas).toBe(0);
    const c = await connect(url);
    const error = await c.query(`SELECT * FROM productos_abc_recalcular(now(), 0)`).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: '22023' });
  });
});

describe('fluxion abc recalc', () => {
  it('recalculates and prints rows per class for the chain and each store', async () => {
    const { pool, url } = await migratedDatabase();
    const ds = generate(createRng('abc-cli'), '2025-12-01', '2026-02-28');
    await insertDataset(pool, ds);
    const result = await runCli(['abc', 'recalc', '--as-of', '2026-02-28'], { DATABASE_URL: url });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const expected = expectedCache(ds, new Date('2026-02-28T12:00:00-04:00'), 90);
    expect((await readCache(pool)).rows).toEqual(expected);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^abc: window 2025-12-01\.\.2026-02-28 \(90 days, as of 2026-02-28T16:00:00\.000Z\), computed at \S+ in \d+\.\d s$/,
    );
    expect(lines[1]).toMatch(/^alcance\s+A\s+B\s+C\s+total$/);
    const counts = countsOf(expected);
    for (const alcance of ['cadena', 'tienda_01', 'tienda_05']) {
      const c = counts[alcance]!;
      expect(lines, alcance).toContainEqual(
        expect.stringMatching(new RegExp(`^${alcance}\\s+${c.A}\\s+${c.B}\\s+${c.C}\\s+${c.A! + c.B! + c.C!}$`)),
      );
    }
    expect(lines.at(-1)).toBe(
      `productos_abc_cache: ${expected.length} rows (A ${expected.filter((r) => r.clase === 'A').length}, B ` +
        `${expected.filter((r) => r.clase === 'B').length}, C ${expected.filter((r) => r.clase === 'C').length}) for the chain and 5 ` +
        `stores, window 2025-12-01..2026-02-28 (90 days)`,
    );

    const narrow = await runCli(['abc', 'recalc', '--window-days', '7', '--as-of', '2026-02-15T23:30:00-04:00'], { DATABASE_URL: url });
    expect(narrow.code).toBe(0);
    expect(narrow.stdout).toContain('abc: window 2026-02-09..2026-02-15 (7 days, as of 2026-02-16T03:30:00.000Z)');
    expect((await readCache(pool)).rows).toEqual(expectedCache(ds, new Date('2026-02-16T03:30:00Z'), 7));
  });

  it('exits 2 with a clear message on bad arguments, before touching the database', async () => {
    // An unreachable database: the arguments must be refused first.
    const env = { DATABASE_URL: 'postgres://fluxion:s3cret@127.0.0.1:1/nothing' };
    const days = await runCli(['abc', 'recalc', '--window-days', '0'], env);
    expect(days).toMatchObject({ code: 2, stdout: '' });
    expect(days.stderr).toContain('fluxion: --window-days must be a whole number of days from 1 to 3660, got "0"');
    const date = await runCli(['abc', 'recalc', '--as-of', '2026-02-30'], env);
    expect(date.code).toBe(2);
    expect(date.stderr).toContain(
      'fluxion: --as-of must be a date YYYY-MM-DD (a business day in America/Caracas) or an instant with its offset',
    );
    const unknown = await runCli(['abc', 'recalc', '--windowdays', '7'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown option '--windowdays'/);
  });

  it('exits 1 naming PostgreSQL when the database is unreachable, without the password', async () => {
    const result = await runCli(['abc', 'recalc'], { DATABASE_URL: 'postgres://fluxion:s3cret@127.0.0.1:1/nothing' });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/ABC recalculation of productos_abc_cache .* failed: PostgreSQL is not reachable/);
    expect(result.stderr).not.toContain('s3cret');
  });
});

describe("the sink's ABC trigger at start", () => {
  it('recalculates if ventas were extracted after the last calculation (sink killed before its debounced run), else not', async () => {
    const { pool } = await migratedDatabase();
    const trigger = createAbcTrigger(pool, { windowDays: 90, debounceMs: 0 }, testLogger);
    cleanups.push(() => trigger.stop());
    // No ventas, no cache: nothing to do.
    expect(await trigger.requestIfStale()).toBe(false);

    const today = businessDate(new Date());
    await insertDataset(pool, generate(createRng('abc-stale'), addDays(today, -10), today));
    // ventas extracted, no calculation since: stale, and the recalculation it starts fills the cache.
    expect(await trigger.requestIfStale()).toBe(true);
    let cache = await readCache(pool);
    for (let i = 0; i < 100 && cache.rows.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      cache = await readCache(pool);
    }
    expect(cache.rows.length).toBeGreaterThan(0);
    await trigger.stop();
    // The cache is newer than every line: a restart does not recalculate again.
    expect(await createAbcTrigger(pool, { windowDays: 90, debounceMs: 0 }, testLogger).requestIfStale()).toBe(false);
  });
});
