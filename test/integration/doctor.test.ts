/**
 * `fluxion doctor` as a container entrypoint runs it: a real process against the real Kafka,
 * registry and PostgreSQL, the KLK simulator and Stellar simulators, with a store list of
 * their addresses. A stopped store, a wrong KLK key, a slow POS, missing migrations, topics
 * or subjects, an unreachable Kafka and a bad configuration each end with the right row and
 * exit code, and never print a secret.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreSimulation } from '../../simulators/data/store-simulation.ts';
import { FaultControl } from '../../simulators/faults.ts';
import { startKlkSimulator, type KlkSimulator } from '../../simulators/klk/server.ts';
import { startStellarSimulator, type StellarSimulator } from '../../simulators/stellar/server.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';
import { freshDatabase, runCli, serviceEnv } from '../../fixtures/services.ts';

const KEYS = { tienda_01: 'doctor-key-01-not-real', tienda_02: 'doctor-key-02-not-real' };
const STELLAR = { user: 'fluxion', password: 'doctor-stellar-pass' };
const SECRETS = [...Object.values(KEYS), STELLAR.password, 'wrong-key-never-printed'];

let pipeline: TestPipeline;
let db: { url: string; drop: () => Promise<void> };
let emptyDb: { url: string; drop: () => Promise<void> };
let klk: KlkSimulator;
let stellar: StellarSimulator;
let healthyFile: string;
let withStoppedFile: string;
let env: Record<string, string>;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function klkEntry(id: string, baseUrl: string): string {
  return `  - id: ${id}
    nombre: "${id}"
    tipo: tienda
    activa: true
    pos: klk
    depositos: ["01"]
    klk:
      base_url: { local: "${baseUrl}", production: "https://${id}.invalid" }
      api_key_env: KLK_API_KEY_${id.toUpperCase()}
`;
}

function stellarEntry(id: string, port: number, activa = true): string {
  return `  - id: ${id}
    nombre: "${id}"
    tipo: cedi
    activa: ${activa}
    pos: stellar
    depositos: ["0101"]
    stellar:
      host: { local: 127.0.0.1, production: ${id}.invalid }
      port: { local: ${port}, production: 1433 }
      user_env: STELLAR_USER_${id.toUpperCase()}
      password_env: STELLAR_PASSWORD_${id.toUpperCase()}
`;
}

/** Rows of the table by part: [target, status, detail]. */
function rows(stdout: string): Map<string, { status: string; line: string }> {
  const out = new Map<string, { status: string; line: string }>();
  for (const line of stdout.split('\n').slice(1)) {
    const m = /^(\S+)\s+.*?\s(OK|FAIL|SKIP)\s+[\d.]+ m?s(\s|$)/.exec(line);
    if (m) out.set(m[1]!, { status: m[2]!, line });
  }
  return out;
}

function expectNoSecret(r: { stdout: string; stderr: string }): void {
  for (const s of SECRETS) expect(r.stdout + r.stderr).not.toContain(s);
}

beforeAll(async () => {
  pipeline = await createTestPipeline();
  [db, emptyDb] = await Promise.all([freshDatabase(), freshDatabase()]);
  const sims = ['tienda_01', 'tienda_02'].map(
    (id) => new StoreSimulation({ ubicacionId: id, pos: 'klk', depositos: ['01'], products: 40 }),
  );
  klk = await startKlkSimulator({ stores: sims, apiKeys: KEYS });
  stellar = await startStellarSimulator({
    simulation: new StoreSimulation({ ubicacionId: 'cedi_frio', pos: 'stellar', depositos: ['0101'], products: 40 }),
    faults: new FaultControl(),
    ...STELLAR,
    port: 0,
  });
  const stoppedPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'fluxion-doctor-'));
  const head = 'ubicaciones:\n';
  const healthy =
    head +
    klkEntry('tienda_01', klk.baseUrl('tienda_01')) +
    klkEntry('tienda_02', klk.baseUrl('tienda_02')) +
    stellarEntry('cedi_frio', stellar.port) +
    stellarEntry('cedi_viejo', stoppedPort, false);
  healthyFile = join(dir, 'healthy.yaml');
  writeFileSync(healthyFile, healthy);
  withStoppedFile = join(dir, 'with-stopped.yaml');
  writeFileSync(withStoppedFile, healthy + stellarEntry('cedi_seco', stoppedPort));
  env = {
    ...serviceEnv(),
    DATABASE_URL: db.url,
    FLUXION_TOPIC_PREFIX: pipeline.prefix,
    FLUXION_UBICACIONES_FILE: healthyFile,
    KLK_API_KEY_TIENDA_01: KEYS.tienda_01,
    KLK_API_KEY_TIENDA_02: KEYS.tienda_02,
    STELLAR_USER_CEDI_FRIO: STELLAR.user,
    STELLAR_PASSWORD_CEDI_FRIO: STELLAR.password,
    STELLAR_USER_CEDI_SECO: STELLAR.user,
    STELLAR_PASSWORD_CEDI_SECO: STELLAR.password,
  };
  const migrated = await runCli(['migrate'], env);
  expect(migrated.code, migrated.stderr).toBe(0);
});

afterAll(async () => {
  await klk?.close();
  await stellar?.close();
  await pipeline?.cleanup();
  await db?.drop();
  await emptyDb?.drop();
});

describe('fluxion doctor', () => {
  it('exits 0 with one OK row per part when everything answers', async () => {
    const r = await runCli(['doctor'], env);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const t = rows(r.stdout);
    expect([...t.keys()]).toEqual(['config', 'kafka', 'registry', 'postgres', 'migrations', 'tienda_01', 'tienda_02', 'cedi_frio']);
    for (const [part, row] of t) expect(row.status, `${part}: ${row.line}`).toBe('OK');
    expect(t.get('config')!.line).toContain('3 active stores (2 KLK, 1 Stellar), 1 inactive');
    expect(t.get('kafka')!.line).toMatch(/1 broker; 16 of 16 topics present/);
    expect(t.get('registry')!.line).toMatch(/(\d+) of \1 subjects registered/);
    expect(t.get('migrations')!.line).toMatch(/(\d+) of \1 applied/);
    expect(t.get('tienda_01')!.line).toContain(`KLK ${klk.baseUrl('tienda_01')}`);
    expect(t.get('tienda_01')!.line).toContain('API key accepted; 40 products in the inventory');
    expect(t.get('cedi_frio')!.line).toContain(`Stellar 127.0.0.1:${stellar.port}`);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('doctor: 8 OK, 0 FAIL, 0 SKIP: ready');
    expect(r.stdout).not.toContain(new URL(env.DATABASE_URL!).password);
    expectNoSecret(r);
  });

  it('exits 1 naming a stopped store', async () => {
    const r = await runCli(['doctor'], { ...env, FLUXION_UBICACIONES_FILE: withStoppedFile });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const t = rows(r.stdout);
    expect(t.get('cedi_seco')!.status).toBe('FAIL');
    expect(t.get('cedi_seco')!.line).toContain('SQL Server port: connection refused');
    expect(t.get('cedi_frio')!.status).toBe('OK');
    expect(t.has('cedi_viejo')).toBe(false); // inactive: not checked
    expect(r.stdout).toContain('not ready; failed: cedi_seco');
  });

  it('exits 1 on a wrong KLK key, naming its variable and never printing it', async () => {
    const r = await runCli(['doctor'], { ...env, KLK_API_KEY_TIENDA_02: 'wrong-key-never-printed' });
    expect(r.code).toBe(1);
    const t = rows(r.stdout);
    expect(t.get('tienda_02')!.status).toBe('FAIL');
    expect(t.get('tienda_02')!.line).toContain('KLK refused the API key (HTTP 401): check KLK_API_KEY_TIENDA_02');
    expect(t.get('tienda_01')!.status).toBe('OK');
    expectNoSecret(r);
  });

  it('--skip-stores checks only the services; --json prints one document', async () => {
    const r = await runCli(['doctor', '--skip-stores', '--json'], { ...env, FLUXION_UBICACIONES_FILE: withStoppedFile });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as {
      exitCode: number;
      checks: Array<{ part: string; status: string; target: string; durationMs: number }>;
    };
    expect(doc.exitCode).toBe(0);
    expect(doc.checks.map((c) => [c.part, c.status])).toEqual([
      ['config', 'OK'],
      ['kafka', 'OK'],
      ['registry', 'OK'],
      ['postgres', 'OK'],
      ['migrations', 'OK'],
      ['stores', 'SKIP'],
    ]);
    expect(doc.checks.every((c) => typeof c.durationMs === 'number')).toBe(true);
  });

  it('fails a POS slower than --timeout-ms at the timeout, without hanging', async () => {
    klk.faults.set('tienda_01', { latencyMs: 5_000 });
    try {
      const started = Date.now();
      const r = await runCli(['doctor', '--timeout-ms', '1000'], env);
      expect(Date.now() - started).toBeLessThan(4_500);
      expect(r.code).toBe(1);
      expect(rows(r.stdout).get('tienda_01')!.line).toMatch(/FAIL\s+1\d{3} ms\s+no answer in 1000 ms$/);
    } finally {
      klk.faults.clear();
    }
  });

  it('names pending migrations, missing topics and unregistered subjects', async () => {
    const r = await runCli(['doctor', '--skip-stores'], {
      ...env,
      DATABASE_URL: emptyDb.url,
      FLUXION_TOPIC_PREFIX: 'doctor-nothing-here.',
    });
    expect(r.code).toBe(1);
    const t = rows(r.stdout);
    expect(t.get('postgres')!.status).toBe('OK');
    expect(t.get('migrations')!.line).toMatch(
      /FAIL.*no migration applied \(no schema_migrations table\), \d+ pending: run `fluxion migrate`/,
    );
    expect(t.get('kafka')!.line).toMatch(
      /FAIL.*16 of 16 topics missing \(doctor-nothing-here\.pos\.inventario\.snapshots, .*\): run `fluxion topics ensure`/,
    );
    expect(t.get('registry')!.line).toMatch(/FAIL.*subjects not registered .*: run `fluxion schemas register`/);
  });

  it('fails an unreachable Kafka and PostgreSQL within the timeout, skipping what depends on them', async () => {
    const port = await freePort();
    const started = Date.now();
    const r = await runCli(['doctor', '--skip-stores', '--timeout-ms', '3000'], {
      ...env,
      KAFKA_BROKERS: `127.0.0.1:${port}`,
      DATABASE_URL: `postgres://fluxion:pw-of-nobody@127.0.0.1:${port}/fluxion`,
    });
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(r.code).toBe(1);
    const t = rows(r.stdout);
    expect(t.get('kafka')!.line).toMatch(new RegExp(`^kafka\\s+127\\.0\\.0\\.1:${port}\\s+FAIL .*did not answer`));
    expect(t.get('postgres')!.line).toMatch(/FAIL.*connection refused/);
    expect(t.get('migrations')!.line).toMatch(/SKIP.*postgres is FAIL/);
    expect(t.get('registry')!.status).toBe('OK');
    expect(r.stdout + r.stderr).not.toContain('pw-of-nobody');
  });

  it('exits 2 when the configuration is invalid, saying which variable', async () => {
    const r = await runCli(['doctor'], { ...env, KAFKA_SASL_MECHANISM: 'kerberos' });
    expect(r.code).toBe(2);
    expect(rows(r.stdout).get('config')!.line).toContain('KAFKA_SASL_MECHANISM="kerberos": must be plain, scram-sha-256 or scram-sha-512');
    const noDb = await runCli(['doctor', '--skip-stores'], { ...env, DATABASE_URL: '' });
    expect(noDb.code).toBe(2);
    const t = rows(noDb.stdout);
    expect(t.get('config')!.line).toContain('DATABASE_URL is not set');
    expect(t.get('postgres')!.line).toContain('SKIP');
    expect(t.get('kafka')!.status).toBe('OK');
    const usage = await runCli(['doctor', '--timeout-ms', 'soon'], env);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--timeout-ms must be a whole number of milliseconds');
  });
});
