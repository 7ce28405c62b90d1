/**
 * The productos refresh against the real PostgreSQL and the two POS simulators (KLK over
 * HTTP, Stellar over TDS through the mssql driver): productos ends up holding exactly the
 * catalogue the POS systems report, only differing rows are written, a failing store writes
 * nothing while the others land, and the command's exit codes say so.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Ubicacion } from '../../core/config/ubicaciones.ts';
import { MIGRATIONS_DIR } from '../../core/paths.ts';
import { createPool, type Pool } from '../../core/postgres.ts';
import { createContext } from '../../cli/context.ts';
import { createJobRunner } from '../../cli/jobs.ts';
import { refreshProductos, type ProductosOutcome } from '../../cli/productos.ts';
import { migrate } from '../../ops/migrate.ts';
import { StoreSimulation } from '../../simulators/data/store-simulation.ts';
import { FaultControl } from '../../simulators/faults.ts';
import { startKlkSimulator, type KlkSimulator } from '../../simulators/klk/server.ts';
import { startStellarSimulator, type StellarSimulator } from '../../simulators/stellar/server.ts';
import { catalogueRow, type CatalogueRow } from '../../sinks/sink-batch.ts';
import { freshDatabase, runCli, testLogger } from '../../fixtures/services.ts';

const FAST_RETRY = { retries: 1, initialDelayMs: 20, maxDelayMs: 50, factor: 2 };
const env = {
  KLK_API_KEY_TIENDA_01: 'k1',
  KLK_API_KEY_TIENDA_02: 'k2',
  STELLAR_USER_CEDI_FRIO: 'fluxion',
  STELLAR_PASSWORD_CEDI_FRIO: 'cedi-frio-pass',
};

// tienda_01 and cedi_frio share one chain catalogue (the same seed: product 000042 is the same
// product in both); tienda_02 describes its products differently, so a row of it in productos
// can be told apart.
let tienda01: StoreSimulation;
let tienda02: StoreSimulation;
let cedi: StoreSimulation;
let klk: KlkSimulator;
let stellar: StellarSimulator;
const faults = new FaultControl();
const stores: Record<string, Ubicacion> = {};
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  tienda01 = new StoreSimulation({ ubicacionId: 'tienda_01', pos: 'klk', depositos: ['01'], products: 1_500, seed: 'chain' });
  tienda02 = new StoreSimulation({ ubicacionId: 'tienda_02', pos: 'klk', depositos: ['01'], products: 1_200 });
  cedi = new StoreSimulation({ ubicacionId: 'cedi_frio', pos: 'stellar', depositos: ['0101', '0102'], products: 2_000, seed: 'chain' });
  klk = await startKlkSimulator({ stores: [tienda01, tienda02], apiKeys: { tienda_01: 'k1', tienda_02: 'k2' }, faults });
  stellar = await startStellarSimulator({ simulation: cedi, faults, user: 'fluxion', password: 'cedi-frio-pass', port: 0 });
  for (const s of [tienda01, tienda02]) {
    stores[s.ubicacionId] = {
      id: s.ubicacionId,
      nombre: s.ubicacionId,
      tipo: 'tienda',
      activa: true,
      pos: 'klk',
      depositos: ['01'],
      klk: {
        baseUrl: klk.baseUrl(s.ubicacionId),
        apiKeyEnv: `KLK_API_KEY_${s.ubicacionId.toUpperCase()}`,
        pageSize: 500,
        timeoutMs: 5_000,
      },
    };
  }
  stores.cedi_frio = {
    id: 'cedi_frio',
    nombre: 'CEDI Frio',
    tipo: 'cedi',
    activa: true,
    pos: 'stellar',
    depositos: ['0101', '0102'],
    stellar: {
      host: '127.0.0.1',
      port: stellar.port,
      database: 'VAD10',
      userEnv: 'STELLAR_USER_CEDI_FRIO',
      passwordEnv: 'STELLAR_PASSWORD_CEDI_FRIO',
      encrypt: false,
      connectTimeoutMs: 5_000,
      requestTimeoutMs: 30_000,
    },
  };
});

afterAll(async () => {
  await stellar?.close();
  await klk?.close();
});

afterEach(async () => {
  faults.clear();
  while (cleanups.length) await cleanups.pop()!();
});

async function database(migrated = true): Promise<{ url: string; pool: Pool }> {
  const db = await freshDatabase();
  cleanups.push(db.drop);
  const pool = createPool({ connectionString: db.url, logger: testLogger, max: 4 });
  cleanups.push(() => pool.end());
  if (migrated) await migrate(pool, MIGRATIONS_DIR, testLogger);
  return { url: db.url, pool };
}

/** What a POS's catalogue says, one row per product (the last read, as the refresh keeps). */
function truth(...sims: StoreSimulation[]): Map<string, CatalogueRow> {
  const out = new Map<string, CatalogueRow>();
  for (const s of sims) for (const r of s.inventario()) out.set(r.producto_id, catalogueRow(r));
  return out;
}

type DbRow = CatalogueRow & { ubicacion_id: string; visto_en: Date; actualizado_en: Date };
async function productos(pool: Pool): Promise<Map<string, DbRow>> {
  const r = await pool.query<DbRow>('SELECT * FROM productos ORDER BY producto_id');
  return new Map(r.rows.map((x) => [x.producto_id, x]));
}

const catalogueOf = ({ ubicacion_id: _u, visto_en: _v, actualizado_en: _a, ...row }: DbRow): CatalogueRow => row;
const total = (o: ProductosOutcome[], k: 'inserted' | 'updated' | 'unchanged' | 'newerKept') =>
  o.reduce((n, x) => n + (x.result?.[k] ?? 0), 0);
const statuses = (o: ProductosOutcome[]) => o.map((x) => `${x.ubicacionId}:${x.status}${x.errorClass ? ` ${x.errorClass}` : ''}`);

describe('refreshProductos (KLK and Stellar simulators, real PostgreSQL)', () => {
  it('fills productos with the catalogue every POS reports, one row per product; a second run writes nothing', async () => {
    const { pool } = await database();
    const deps = { pool, env, logger: testLogger };
    const first = await refreshProductos([stores.tienda_01!, stores.cedi_frio!], deps, { retry: FAST_RETRY });
    expect(statuses(first)).toEqual(['tienda_01:OK', 'cedi_frio:OK']);

    const expected = truth(tienda01, cedi);
    // The CEDI's query keeps active products with a barcode only; the union covers both POS.
    expect(expected.size).toBeGreaterThan(1_500);
    const got = await productos(pool);
    expect(got.size).toBe(expected.size);
    for (const [id, row] of expected) expect(catalogueOf(got.get(id)!), id).toEqual(row);
    expect(new Set([...got.values()].map((r) => r.ubicacion_id))).toEqual(new Set(['tienda_01', 'cedi_frio']));
    // A product both POS describe alike is written once: the second store finds it unchanged.
    expect(total(first, 'inserted')).toBe(expected.size);
    expect(total(first, 'updated')).toBe(0);
    expect(first[0]!.result!.read).toBe(1_500);
    expect(first[1]!.result!.read).toBe(cedi.inventario().length);
    expect(first[1]!.result!.productos).toBe(new Set(cedi.inventario().map((r) => r.producto_id)).size);

    const second = await refreshProductos([stores.tienda_01!, stores.cedi_frio!], deps, { retry: FAST_RETRY });
    expect(statuses(second)).toEqual(['tienda_01:OK', 'cedi_frio:OK']);
    expect([total(second, 'inserted'), total(second, 'updated'), total(second, 'newerKept')]).toEqual([0, 0, 0]);
    expect(second.map((o) => o.result!.unchanged)).toEqual(second.map((o) => o.result!.productos));
    // Not one row touched: no actualizado_en moved.
    const after = await productos(pool);
    for (const [id, row] of got) expect(after.get(id)!.actualizado_en, id).toEqual(row.actualizado_en);
  });

  it('repairs rows edited or lost in PostgreSQL, takes a rename at the POS, and leaves a newer description alone', async () => {
    const { pool } = await database();
    const deps = { pool, env, logger: testLogger };
    const both = [stores.tienda_01!, stores.cedi_frio!];
    await refreshProductos(both, deps, { retry: FAST_RETRY, concurrency: 1 });

    // Products only the CEDI reports (ids beyond tienda_01's 1,500).
    const onlyCedi = cedi
      .inventario()
      .filter((r) => Number(r.producto_id) > 1_500)
      .map((r) => r.producto_id);
    const [renamed, newer] = [onlyCedi[0]!, onlyCedi[1]!];
    await pool.query(`UPDATE productos SET descripcion = 'EDITADO A MANO', unidad = 'X' WHERE producto_id = '000010'`);
    await pool.query(`DELETE FROM productos WHERE producto_id = '000011'`);
    // As if the sink had applied a snapshot taken after this run: that description is newer.
    await pool.query(
      `UPDATE productos SET descripcion = 'DE UN SNAPSHOT POSTERIOR', visto_en = now() + interval '1 hour' WHERE producto_id = $1`,
      [newer],
    );
    const before = cedi.producto(renamed)!.descripcion;
    cedi.renombrar(renamed, 'NOMBRE NUEVO EN EL POS');
    try {
      const run = await refreshProductos(both, deps, { retry: FAST_RETRY, concurrency: 1 });
      expect(statuses(run)).toEqual(['tienda_01:OK', 'cedi_frio:OK']);
      expect(run[0]!.result).toMatchObject({ inserted: 1, updated: 1, newerKept: 0 });
      expect(run[1]!.result).toMatchObject({ inserted: 0, updated: 1, newerKept: 1 });
      const got = await productos(pool);
      const expected = truth(tienda01, cedi);
      expect(catalogueOf(got.get('000010')!)).toEqual(expected.get('000010'));
      expect(catalogueOf(got.get('000011')!)).toEqual(expected.get('000011'));
      expect(got.get(renamed)).toMatchObject({ descripcion: 'NOMBRE NUEVO EN EL POS', ubicacion_id: 'cedi_frio' });
      expect(got.get(newer)!.descripcion).toBe('DE UN SNAPSHOT POSTERIOR');
      expect(got.size).toBe(expected.size);
    } finally {
      cedi.renombrar(renamed, before);
    }
  });

  it('a failing store is reported and writes nothing; the others land', async () => {
    const { pool } = await database();
    // tienda_02 answers a bad decimal on its third page, after 1,000 good rows; the CEDI refuses the login.
    faults.set('tienda_02', { invalidDecimalFor: '001100' });
    const outcomes = await refreshProductos(
      [stores.tienda_02!, stores.cedi_frio!, stores.tienda_01!],
      { pool, env: { ...env, STELLAR_PASSWORD_CEDI_FRIO: 'wrong-pass' }, logger: testLogger },
      { retry: FAST_RETRY },
    );
    expect(statuses(outcomes)).toEqual(['tienda_02:FAILED POS_DATA', 'cedi_frio:FAILED POS_AUTH', 'tienda_01:OK']);
    expect(outcomes[0]!.errorMessage).toMatch(/tienda_02: .*001100.*cantidad/);
    expect(outcomes[1]!.errorMessage).toMatch(/cedi_frio: .*STELLAR_PASSWORD_CEDI_FRIO/);
    expect(outcomes[1]!.errorMessage).not.toContain('wrong-pass');
    const got = await productos(pool);
    const expected = truth(tienda01);
    expect(got.size).toBe(expected.size);
    for (const [id, row] of expected) expect(catalogueOf(got.get(id)!), id).toEqual(row);
    expect(new Set([...got.values()].map((r) => r.ubicacion_id))).toEqual(new Set(['tienda_01']));
    // Nothing of the temporary staging outlives a store, failed or not.
    expect((await pool.query(`SELECT count(*)::int AS n FROM pg_class WHERE relname = 'productos_refresh'`)).rows[0].n).toBe(0);
  });
});

describe('refreshProductos: a POS that reports no products', () => {
  it('is not a failure and removes nothing from productos', async () => {
    const { pool } = await database();
    const deps = { pool, env, logger: testLogger };
    await refreshProductos([stores.tienda_01!], deps, { retry: FAST_RETRY });
    faults.set('tienda_01', { emptyInventory: true });
    const run = await refreshProductos([stores.tienda_01!], deps, { retry: FAST_RETRY });
    expect(statuses(run)).toEqual(['tienda_01:OK']);
    expect(run[0]!.result).toEqual({ read: 0, productos: 0, inserted: 0, updated: 0, unchanged: 0, newerKept: 0 });
    expect((await productos(pool)).size).toBe(1_500);
  });
});

describe('fluxion productos refresh (CLI)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fluxion-productos-'));
    const klkStore = (id: string) => `  - id: ${id}
    nombre: "${id}"
    tipo: tienda
    activa: true
    pos: klk
    depositos: ["01"]
    klk:
      base_url: { local: "${klk.baseUrl(id)}", production: "https://${id}.example.invalid" }
      api_key_env: KLK_API_KEY_${id.toUpperCase()}
`;
    writeFileSync(join(dir, 'ubicaciones.yaml'), `ubicaciones:\n${klkStore('tienda_01')}${klkStore('tienda_02')}`);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const cliEnv = (url: string, extra: Record<string, string> = {}) => ({
    ...env,
    DATABASE_URL: url,
    ETL_ENVIRONMENT: 'local',
    FLUXION_UBICACIONES_FILE: join(dir, 'ubicaciones.yaml'),
    SENTRY_DSN: '',
    ...extra,
  });

  it('exits 0 with one line per store, and 1 naming the store that failed while the others land', async () => {
    const { url, pool } = await database();
    const ok = await runCli(['productos', 'refresh', '--todas'], cliEnv(url));
    expect(ok.stderr, ok.stderr).not.toMatch(/"level":(50|60)/);
    expect(ok.code).toBe(0);
    // The two stores share products and commit in either order: whichever lands second finds
    // the shared rows already written ("N already newer or equal"); the total is the same.
    expect(ok.stdout).toMatch(/^tienda_01\s+KLK\s+1500\s+1500\s+\d+\s+\d+\s+\d+\s+[\d.]+ s\s+OK( \(\d+ already newer or equal\))?$/m);
    expect(ok.stdout).toMatch(/^tienda_02\s+KLK\s+1200\s+1200\s+\d+\s+\d+\s+\d+\s+[\d.]+ s\s+OK( \(\d+ already newer or equal\))?$/m);
    expect(ok.stdout).toMatch(/^productos: 2 of 2 stores OK; 1500 inserted, \d+ updated, \d+ unchanged$/m);
    expect((await productos(pool)).size).toBe(1_500);

    await pool.query('TRUNCATE productos');
    const failed = await runCli(
      ['productos', 'refresh', '--tienda', 'tienda_01', '--tienda', 'tienda_02'],
      cliEnv(url, { KLK_API_KEY_TIENDA_02: 'wrong-secret-key' }),
    );
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(
      /^tienda_02\s+KLK\s+-\s+-\s+-\s+-\s+-\s+[\d.]+ s\s+FAILED POS_AUTH: tienda_02: KLK refused the API key/m,
    );
    expect(failed.stdout).toContain('productos: 1 of 2 stores OK, 1 FAILED; 1500 inserted, 0 updated, 0 unchanged');
    expect(failed.stdout + failed.stderr).not.toContain('wrong-secret-key');
    const got = await productos(pool);
    expect(got.size).toBe(1_500);
    expect(new Set([...got.values()].map((r) => r.ubicacion_id))).toEqual(new Set(['tienda_01']));
  });

  it('is what the scheduler runs as productos-refresh: not ok, naming the failed store, while the other lands', async () => {
    const { url, pool } = await database();
    const c = createContext(
      { ...process.env, ...cliEnv(url, { KLK_API_KEY_TIENDA_02: 'wrong-secret-key' }), LOG_LEVEL: 'silent' },
      () => undefined,
    );
    try {
      const outcome = await createJobRunner(c)('productos-refresh', new AbortController().signal);
      expect(outcome).toEqual({ ok: false, summary: 'productos: 1 of 2 stores OK, 1 FAILED; 1500 inserted, 0 updated, 0 unchanged' });
    } finally {
      await c.close();
    }
    expect((await productos(pool)).size).toBe(1_500);
  });

  it('exits 2 on a database never migrated, before reading any POS, and on a missing store selection', async () => {
    const { url } = await database(false);
    const cold = await runCli(['productos', 'refresh', '--todas'], cliEnv(url));
    expect(cold.code).toBe(2);
    expect(cold.stderr).toContain('the database has no productos table (migration 001_catalogo.sql): run `fluxion migrate` first');
    expect(cold.stdout).not.toMatch(/tienda_0/);
    const none = await runCli(['productos', 'refresh'], cliEnv(url));
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('say which stores: --todas or --tienda ID');
  });
});
