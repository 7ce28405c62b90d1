/**
 * The control API as deployed: `fluxion dashboard` as a real process, its runs going through
 * the extractors' code to a KLK simulator and real Kafka. The rules (auth, bodies, conflicts)
 * are covered in depth by test/unit/control-api.test.ts with a fake run; here they are
 * checked once end to end, with a real run's per-store progress.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withJobLock } from '../../core/job-lock.ts';
import { PROJECT_ROOT } from '../../core/paths.ts';
import { StoreSimulation } from '../../simulators/data/store-simulation.ts';
import { startKlkSimulator, type KlkSimulator } from '../../simulators/klk/server.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';
import { testLogger } from '../../fixtures/services.ts';
import { migratedDatabase, type MigratedDatabase } from '../../fixtures/sink-run.ts';
import type { ControlApiAnswer } from '../helpers/control-api-answer.ts';

const TOKEN = 'integration-token-5c1f0e2b9a7d4e3f';
const IDS = ['tienda_01', 'tienda_02'];
const KEYS: Record<string, string> = Object.fromEntries(IDS.map((id) => [id, `key-${id}-not-a-real-secret`]));
const PRODUCTS = 1_500;

let klk: KlkSimulator;
let pipeline: TestPipeline;
let db: MigratedDatabase;
let dir: string;
let dashboard: ChildProcess;
let output = '';
let base: string;

async function call(method: string, path: string, body?: unknown, token: string | null = TOKEN) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as ControlApiAnswer };
}

beforeAll(async () => {
  klk = await startKlkSimulator({
    stores: IDS.map((id) => new StoreSimulation({ ubicacionId: id, pos: 'klk', depositos: ['01'], products: PRODUCTS })),
    apiKeys: KEYS,
  });
  // Slow enough that a second request finds the first run still going.
  klk.faults.set('tienda_01', { latencyMs: 400 });
  pipeline = await createTestPipeline();
  db = await migratedDatabase();
  dir = mkdtempSync(join(tmpdir(), 'fluxion-control-api-'));
  const file = join(dir, 'ubicaciones.yaml');
  writeFileSync(
    file,
    `ubicaciones:\n${IDS.map(
      (id) =>
        `  - id: ${id}\n    nombre: "${id}"\n    tipo: tienda\n    activa: true\n    pos: klk\n    depositos: ["01"]\n    klk:\n      ` +
        `base_url:\n        local: ${klk.baseUrl(id)}\n        production: https://${id}.invalid\n      api_key_env: ` +
        `KLK_API_KEY_${id.toUpperCase()}\n`,
    ).join('')}`,
  );
  dashboard = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'fluxion.ts'), 'dashboard', '--port', '0'], {
    env: {
      ...process.env,
      ...Object.fromEntries(IDS.map((id) => [`KLK_API_KEY_${id.toUpperCase()}`, KEYS[id]])),
      DATABASE_URL: db.url,
      FLUXION_TOPIC_PREFIX: pipeline.prefix,
      FLUXION_UBICACIONES_FILE: file,
      FLUXION_SYNC_TOKEN: TOKEN,
      FLUXION_DASHBOARD_SAMPLE_SECONDS: '60',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  dashboard.stderr!.on('data', (d: Buffer) => void (output += d.toString()));
  base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fluxion dashboard did not start in 30 s:\n${output}`)), 30_000);
    dashboard.stdout!.on('data', (d: Buffer) => {
      output += d.toString();
      // Resolved once the last start-up line (the control API's) is out.
      const m = /dashboard: (http:\/\/127\.0\.0\.1:\d+)\//.exec(output);
      if (m && /control API: .*\n/.test(output)) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    dashboard.on('exit', (code) => reject(new Error(`fluxion dashboard exited with ${code}:\n${output}`)));
  });
});

afterAll(async () => {
  if (dashboard && dashboard.exitCode === null) {
    dashboard.kill('SIGTERM');
    await new Promise((r) => dashboard.once('exit', r));
  }
  await klk?.close();
  await db?.drop();
  await pipeline?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('control API of `fluxion dashboard`', () => {
  it('prints where it listens and that the control API is on', () => {
    expect(output).toMatch(/control API: http:\/\/127\.0\.0\.1:\d+\/etl\/sync/);
  });

  it('refuses a missing or wrong token (401) and bad bodies (400)', async () => {
    expect((await call('POST', '/etl/sync', { job: 'inventario', tiendas: 'todas' }, null)).status).toBe(401);
    expect((await call('POST', '/etl/sync', { job: 'inventario', tiendas: 'todas' }, 'not-the-token')).status).toBe(401);
    const unknown = await call('POST', '/etl/sync', { job: 'inventario', tiendas: ['tienda_03'] });
    expect(unknown.status).toBe(400);
    expect(unknown.json.error).toContain('unknown ubicacion "tienda_03"');
    expect((await call('POST', '/etl/sync', { job: 'compras', tiendas: 'todas' })).status).toBe(400);
  });

  it("runs an extraction with the CLI's code: 202, 409 while it runs, then per-store results and the snapshots on Kafka", async () => {
    const started = await call('POST', '/etl/sync', { job: 'inventario', tiendas: 'todas' });
    expect(started.status).toBe(202);
    expect(started.json.tiendas).toEqual(IDS);
    const conflict = await call('POST', '/etl/sync', { job: 'inventario', tiendas: ['tienda_02'] });
    expect(conflict.status).toBe(409);
    expect(conflict.json.run_id).toBe(started.json.run_id);

    let run: ControlApiAnswer = {};
    const deadline = Date.now() + 60_000;
    const seen = new Set<string>();
    do {
      await new Promise((r) => setTimeout(r, 100));
      run = (await call('GET', started.json.status_url!)).json;
      seen.add(run.stores!.map((s) => s.status).join(','));
    } while (run.status === 'RUNNING' && Date.now() < deadline);
    expect(run.status, JSON.stringify(run)).toBe('OK');
    expect(run.stores).toEqual(IDS.map((id) => expect.objectContaining({ ubicacion_id: id, status: 'OK', rows: PRODUCTS })));
    // Progress was visible per store while it ran (tienda_02 is fast, tienda_01 slowed down).
    expect([...seen].some((s) => s.includes('OK') && s.includes('RUNNING'))).toBe(true);

    const chunks = await pipeline.read<{ snapshot_id: string; ubicacion_id: string }>('pos.inventario.snapshots');
    expect(new Set(chunks.map((c) => c.decoded.ubicacion_id))).toEqual(new Set(IDS));
    expect(new Set(chunks.map((c) => c.decoded.snapshot_id))).toEqual(new Set(run.stores!.map((s) => s.snapshot_id)));
    // The run id is the one written to ops.etl-runs.
    const etl = await pipeline.read<{ run_id: string; ubicacion_id: string; status: string }>('ops.etl-runs');
    expect(etl.map((r) => r.decoded)).toEqual(
      expect.arrayContaining(IDS.map((id) => expect.objectContaining({ run_id: started.json.run_id, ubicacion_id: id, status: 'OK' }))),
    );

    // Free again once the run ended.
    const next = await call('POST', '/etl/sync', { job: 'inventario', tiendas: ['tienda_02'] });
    expect(next.status).toBe(202);
    const until = Date.now() + 60_000;
    while ((await call('GET', next.json.status_url!)).json.status === 'RUNNING' && Date.now() < until)
      await new Promise((r) => setTimeout(r, 100));
    expect((await call('GET', next.json.status_url!)).json.status).toBe('OK');
  });

  it("ends a run at once, naming the other run, while another process holds the job's lock", async () => {
    let run: ControlApiAnswer = {};
    await withJobLock('inventario', { databaseUrl: db.url, topicPrefix: pipeline.prefix, logger: testLogger }, async () => {
      const started = await call('POST', '/etl/sync', { job: 'inventario', tiendas: 'todas' });
      expect(started.status).toBe(202);
      const deadline = Date.now() + 30_000;
      do {
        await new Promise((r) => setTimeout(r, 100));
        run = (await call('GET', started.json.status_url!)).json;
      } while (run.status === 'RUNNING' && Date.now() < deadline);
    });
    expect(run.status, JSON.stringify(run)).toBe('ERROR');
    expect(run.error).toMatch(/inventario ya se está ejecutando en otro proceso/);
    expect(run.stores!.every((s) => s.status === 'FAILED')).toBe(true);
    // The lock released, the same request runs.
    const next = await call('POST', '/etl/sync', { job: 'inventario', tiendas: ['tienda_02'] });
    expect(next.status).toBe(202);
    const until = Date.now() + 60_000;
    while ((await call('GET', next.json.status_url!)).json.status === 'RUNNING' && Date.now() < until)
      await new Promise((r) => setTimeout(r, 100));
    expect((await call('GET', next.json.status_url!)).json.status).toBe('OK');
  });

  it('never writes the token to its output, and stops cleanly on SIGTERM', async () => {
    dashboard.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => dashboard.once('exit', r));
    expect(code).toBe(0);
    expect(output).toContain('dashboard: stopped');
    expect(output).not.toContain(TOKEN);
    expect(output).not.toMatch(/"level":"(error|fatal)"/);
  });
});
