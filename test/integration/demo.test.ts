/**
 * The README's first command in short: `fluxion demo --cycles 2 --exit` sets everything up,
 * runs the simulators and every process, injects its faults, and ends with every active
 * store's data in PostgreSQL.
 */
import { afterEach, expect, it } from 'vitest';
import { loadConfig, loadUbicaciones } from '../../core/config/environment.ts';
import { createTestPipeline } from '../helpers/pipeline.ts';
import { runCli, serviceEnv, uniqueId } from '../helpers/services.ts';
import { migratedDatabase } from '../helpers/sink-run.ts';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

it('fluxion demo --cycles 2 ends with every store in PostgreSQL, the failing store reported and the mass-zero snapshot quarantined', { timeout: 180_000 }, async () => {
  const pipeline = await createTestPipeline();
  cleanups.push(() => pipeline.cleanup());
  const db = await migratedDatabase();
  cleanups.push(() => db.drop());
  const r = await runCli(['demo', '--cycles', '2', '--exit', '--klk-products', '300', '--stellar-products', '500', '--cycle-seconds', '1'], {
    ...serviceEnv(),
    DATABASE_URL: db.url,
    ETL_ENVIRONMENT: 'local',
    FLUXION_TOPIC_PREFIX: pipeline.prefix,
    FLUXION_TOPIC_PARTITIONS: '3',
    LOG_LEVEL: 'error',
    KAFKA_CLIENT_ID: uniqueId('demo'),
  });
  // The only errors logged are the injected failing store's.
  expect(r.stderr.split('\n').filter((l) => l && !l.includes('"ubicacion":"tienda_05"'))).toEqual([]);
  expect(r.code).toBe(0);
  expect(r.stdout).not.toMatch(/exited with code/);
  expect(r.stdout).toMatch(/cycle 2 .*inventario 15\/16 stores OK \(tienda_05 FAILED: HTTP_500\)/);
  expect(r.stdout).toMatch(/quarantined +tienda_07 snapshot/);
  expect(r.stdout).toMatch(/16 stores have their data in PostgreSQL/);

  const active = loadUbicaciones(loadConfig({})).filter((u) => u.activa);
  const perStore = await db.pool.query<{ ubicacion_id: string; n: string }>('SELECT ubicacion_id, count(*) AS n FROM inventario_actual GROUP BY 1');
  expect(perStore.rows.map((x) => x.ubicacion_id).sort()).toEqual(active.map((u) => u.id).sort());
  const ventas = await db.pool.query<{ ubicacion_id: string }>('SELECT DISTINCT ubicacion_id FROM ventas');
  expect(ventas.rows.map((x) => x.ubicacion_id).sort()).toEqual(active.filter((u) => u.pos === 'klk').map((u) => u.id).sort());
  expect(Number((await db.pool.query('SELECT count(*) AS n FROM productos_abc_cache')).rows[0].n)).toBeGreaterThan(0);
});
