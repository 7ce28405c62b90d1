/**
 * productos_abc_recalcular() replaces productos_abc_cache atomically, against a real PostgreSQL:
 * a reader sees only the old complete cache or the new one and never waits, overlapping
 * recalculations serialise, an abort leaves the cache as it was, and a database without the
 * migration is named (the classification itself: abc.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { createPool, type Pool } from '../../core/postgres.ts';
import { createRng } from '../../simulators/data/prng.ts';
import { AbcRecalcError, recalcAbc } from '../../sinks/abc-recalc.ts';
import { freshDatabase, testLogger } from '../../fixtures/services.ts';
import { insertDataset, generate, expectedCache, readCache } from '../helpers/abc-oracle.ts';
import { abcDatabases } from '../helpers/abc-database.ts';

const { migratedDatabase, connect, cleanups } = abcDatabases();

function isDeepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

describe('atomic replace', () => {
  /** What a reader sees, in one statement. */
  const OBSERVE = `SELECT count(*)::int AS filas, count(DISTINCT calculado_en)::int AS calculos,
                          min(calculado_en)::text AS calculado_en, min(ventana_hasta)::text AS hasta,
                          max(ventana_hasta)::text AS hasta_max, coalesce(sum(valor_ventas), 0)::text AS valor,
                          count(*) FILTER (WHERE clase = 'A')::int AS a
                   FROM productos_abc_cache`;
  type Observation = Record<string, unknown>;

  async function bigData(pool: Pool): Promise<void> {
    // 8 stores x 2,500 products carried, ~250,000 sales lines: long enough a run to read during.
    await pool.query(`INSERT INTO productos (producto_id, descripcion, unidad, visto_en, ubicacion_id)
      SELECT 'P' || lpad(g::text, 5, '0'), 'x', 'UND', now(), 'tienda_01' FROM generate_series(1, 3000) g`);
    await pool.query(`INSERT INTO inventario_actual (ubicacion_id, deposito, producto_id, cantidad, activo, snapshot_id, taken_at)
      SELECT 'tienda_0' || s, '01', 'P' || lpad(g::text, 5, '0'), 1, true, gen_random_uuid(), now()
      FROM generate_series(1, 8) s, generate_series(1, 2500) g`);
    await pool.query(`INSERT INTO ventas (ubicacion_id, numero_factura, linea, fecha, fecha_hora, producto_id, cantidad, precio_unitario,
                                          descuento, total, caja, anulada, fingerprint, first_seen_at, extracted_at)
      SELECT 'tienda_0' || (1 + g % 8), 'F' || g, 1, date '2026-02-28' - (g % 120), now(),
             'P' || lpad((1 + (g::bigint * 7919) % 3000)::text, 5, '0'),
             1, 1, 0, ((g::bigint * 104729) % 1000000) / 10000.0, '01', g % 37 = 0, 'fp', now(), now()
      FROM generate_series(1, 250000) g`);
    await pool.query('ANALYZE');
  }

  it('lets a reader see only the old complete cache or the new one while a recalculation runs, never waiting for it', async () => {
    const { pool, url } = await migratedDatabase();
    await bigData(pool);
    await recalcAbc(pool, { asOf: new Date('2026-02-28T12:00:00Z'), windowDays: 90, logger: testLogger });
    const reader = await connect(url);
    await reader.query(`SET statement_timeout = '5s'`);
    const old = (await reader.query<Observation>(OBSERVE)).rows[0]!;
    // The next run covers more products (new inventory) over another window: a mix would show.
    await pool.query(`INSERT INTO inventario_actual (ubicacion_id, deposito, producto_id, cantidad, activo, snapshot_id, taken_at)
      SELECT 'tienda_0' || s, '01', 'P' || lpad(g::text, 5, '0'), 1, true, gen_random_uuid(), now()
      FROM generate_series(1, 8) s, generate_series(3001, 3300) g`);

    const seen: Array<{ o: Observation; from: number; to: number }> = [];
    let writing = true;
    const readLoop = (async () => {
      for (let i = 0; writing; i++) {
        const from = performance.now();
        // Alternate isolation levels; under REPEATABLE READ two reads must agree.
        await reader.query(i % 2 ? 'BEGIN ISOLATION LEVEL REPEATABLE READ' : 'BEGIN');
        const first = (await reader.query<Observation>(OBSERVE)).rows[0]!;
        if (i % 2) expect((await reader.query<Observation>(OBSERVE)).rows[0]).toEqual(first);
        await reader.query('COMMIT');
        seen.push({ o: first, from, to: performance.now() });
      }
    })();
    const started = performance.now();
    await recalcAbc(pool, { asOf: new Date('2026-02-20T12:00:00Z'), windowDays: 60, logger: testLogger }).finally(() => (writing = false));
    const ended = performance.now();
    await readLoop;
    const fresh = (await reader.query<Observation>(OBSERVE)).rows[0]!;

    expect(fresh).not.toEqual(old);
    expect(fresh.filas).toBeGreaterThan(old.filas as number);
    expect(fresh.calculos).toBe(1);
    const strange = seen.filter((s) => !isDeepEqual(s.o, old) && !isDeepEqual(s.o, fresh));
    expect(strange).toEqual([]);
    // The reader was not blocked: it completed reads, seeing the old cache, while the run went on.
    const during = seen.filter((s) => s.from >= started && s.to <= ended);
    expect(
      during.filter((s) => isDeepEqual(s.o, old)).length,
      `reads of the old cache completed during a ${Math.round(ended - started)} ms recalculation`,
    ).toBeGreaterThan(3);
  });

  it('keeps the old complete cache visible until commit, and to a REPEATABLE READ snapshot taken before it after', async () => {
    const { pool, url } = await migratedDatabase();
    await insertDataset(pool, generate(createRng('abc-3'), '2025-12-01', '2026-02-28'));
    await recalcAbc(pool, { asOf: new Date('2026-02-28T12:00:00Z'), logger: testLogger });
    const writer = await connect(url);
    const reader = await connect(url);
    const snapshotReader = await connect(url);
    await reader.query(`SET statement_timeout = '3s'`); // a blocked read would fail the test, not hang it
    await snapshotReader.query(`SET statement_timeout = '3s'`);
    const old = (await reader.query<Observation>(OBSERVE)).rows[0]!;
    await snapshotReader.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    expect((await snapshotReader.query<Observation>(OBSERVE)).rows[0]).toEqual(old);

    // The writer has deleted and reinserted everything, and not committed yet.
    await writer.query('BEGIN');
    await writer.query(`SELECT * FROM productos_abc_recalcular('2026-02-10T12:00:00Z', 30)`);
    expect((await writer.query<Observation>(OBSERVE)).rows[0]).not.toEqual(old);
    expect((await reader.query<Observation>(OBSERVE)).rows[0]).toEqual(old);
    await writer.query('COMMIT');

    const fresh = (await reader.query<Observation>(OBSERVE)).rows[0]!;
    expect(fresh).not.toEqual(old);
    expect(fresh.hasta).toBe('2026-02-10');
    // Unlike after a TRUNCATE, the older snapshot still sees the old complete cache.
    expect((await snapshotReader.query<Observation>(OBSERVE)).rows[0]).toEqual(old);
    await snapshotReader.query('COMMIT');
    expect((await snapshotReader.query<Observation>(OBSERVE)).rows[0]).toEqual(fresh);
  });

  it('serialises overlapping recalculations instead of failing on the primary key', async () => {
    const { pool } = await migratedDatabase();
    const ds = generate(createRng('abc-4'), '2025-12-01', '2026-02-28');
    await insertDataset(pool, ds);
    const asOf = new Date('2026-02-28T12:00:00Z');
    const results = await Promise.all([1, 2, 3].map(() => recalcAbc(pool, { asOf, logger: testLogger })));
    expect(new Set(results.map((r) => r.filas)).size).toBe(1);
    const { rows, calculadoEn } = await readCache(pool);
    expect(rows).toEqual(expectedCache(ds, asOf, 90));
    expect(calculadoEn.length).toBe(1);
  });

  it('cancels a recalculation on abort, leaving the cache as it was', async () => {
    const { pool, url } = await migratedDatabase();
    await insertDataset(pool, generate(createRng('abc-5'), '2025-12-01', '2026-02-28'));
    await recalcAbc(pool, { asOf: new Date('2026-02-28T12:00:00Z'), logger: testLogger });
    const before = await readCache(pool);
    // Another recalculation "holds" the cache: ours waits for its lock.
    const holder = await connect(url);
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE productos_abc_cache IN EXCLUSIVE MODE');
    const controller = new AbortController();
    const run = recalcAbc(pool, { asOf: new Date('2026-02-01T12:00:00Z'), logger: testLogger, signal: controller.signal }).catch(
      (e: unknown) => e,
    );
    for (let i = 0; i < 100; i++) {
      const { rows } = await pool.query(
        `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE ` +
          `'%productos_abc_recalcular%'`,
      );
      if (rows.length) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    controller.abort();
    const error = await run;
    expect(error).toBeInstanceOf(AbcRecalcError);
    expect((error as AbcRecalcError).message).toMatch(
      /ABC recalculation of productos_abc_cache \(as of 2026-02-01T12:00:00.000Z, 90-day window\) was cancelled; the cache is unchanged/,
    );
    await holder.query('COMMIT');
    expect(await readCache(pool)).toEqual(before);
  });

  it('names what failed and what to do when the database lacks the migration', async () => {
    const db = await freshDatabase();
    cleanups.push(db.drop);
    const pool = createPool({ connectionString: db.url, logger: testLogger });
    cleanups.push(() => pool.end());
    const error = await recalcAbc(pool, { asOf: new Date('2026-02-28T12:00:00Z'), logger: testLogger }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AbcRecalcError);
    expect(error).toMatchObject({
      code: 'ABC_RECALC',
      retriable: false,
      context: { table: 'productos_abc_cache', sqlstate: '42883', windowDays: 90 },
    });
    expect((error as Error).message).toMatch(
      new RegExp(
        /function productos_abc_recalcular\(.*\) does not exist \(SQLSTATE 42883\); /.source +
          /the database lacks migration 005_abc\.sql: run `fluxion migrate`/.source,
      ),
    );
  });
});
