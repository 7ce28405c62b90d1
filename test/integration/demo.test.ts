/**
 * The README's demo command in short: `fluxion demo --cycles 2 --exit`, twice in a row, each
 * run in its own topics and database (the second removes the first's, and says so), each
 * ending with every active store's data in PostgreSQL and a true summary: the failing store,
 * the quarantined snapshot, freshness figures, no NaN or Infinity. A child killed mid-run
 * makes the run exit 1 naming it and its log; `--clean` leaves nothing behind.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, expect, it } from 'vitest';
import { loadConfig, loadUbicaciones } from '../../cli/config.ts';
import { createKafkaClient } from '../../core/kafka/client.ts';
import { PROJECT_ROOT } from '../../core/paths.ts';
import { runCli, serviceEnv, testLogger, uniqueId, type CliResult } from '../../fixtures/services.ts';

const workDir = mkdtempSync(join(tmpdir(), 'fluxion-demo-'));
const basePrefix = `${uniqueId('demo')}.`;
const kafka = createKafkaClient({ brokers: serviceEnv().KAFKA_BROKERS.split(','), clientId: 'fluxion-test', logger: testLogger });

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const env = () => ({
  ...serviceEnv(),
  ETL_ENVIRONMENT: 'local',
  FLUXION_TOPIC_PREFIX: basePrefix,
  FLUXION_TOPIC_PARTITIONS: '3',
  LOG_LEVEL: 'error',
  KAFKA_CLIENT_ID: uniqueId('demo'),
});
const demoArgs = async () => [
  'demo',
  '--cycles',
  '2',
  '--exit',
  '--klk-products',
  '300',
  '--stellar-products',
  '500',
  '--cycle-seconds',
  '1',
  '--dashboard-port',
  String(await freePort()),
  '--work-dir',
  workDir,
];

async function topicsUnder(prefix: string): Promise<string[]> {
  const admin = await kafka.admin();
  try {
    return (await admin.listTopics()).filter((t) => t.startsWith(prefix));
  } finally {
    await admin.disconnect();
  }
}

async function databaseExists(name: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: serviceEnv().DATABASE_URL });
  await c.connect();
  try {
    return (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
  } finally {
    await c.end();
  }
}

function scopeOf(stdout: string): { prefix: string; database: string } {
  const m = /scope: this run's own topics \(prefix "([^"]+)"\) and database (\S+);/.exec(stdout);
  expect(m, stdout).not.toBeNull();
  return { prefix: m![1]!, database: m![2]! };
}

/** A true summary: the injected faults show, and every figure is a number. */
function expectTrueSummary(r: CliResult): void {
  // The only errors logged are the injected failing store's.
  expect(r.stderr.split('\n').filter((l) => l && !l.includes('"ubicacion":"tienda_05"'))).toEqual([]);
  expect(r.code, r.stdout).toBe(0);
  expect(r.stdout).not.toMatch(/ended before the demo did|NOT AS EXPECTED|NaN|Infinity/);
  expect(r.stdout).toMatch(/cycle 2 .*inventario 15\/16 stores OK \(tienda_05 FAILED: HTTP_500\)/);
  expect(r.stdout).toMatch(/failed runs +tienda_05 2 FAILED \(HTTP_500\)/);
  expect(r.stdout).toMatch(/quarantined +tienda_07 snapshot [0-9a-f-]{36} \(\d+ of \d+ products with stock dropped to 0/);
  expect(r.stdout).toMatch(/stale +none/);
  expect(r.stdout).toMatch(/freshness +extraction end to rows committed: p50 \d+\.\d s, p95 \d+\.\d s, max \d+\.\d s over 15 stores/);
  expect(r.stdout).toMatch(/16 stores have their data in PostgreSQL; every injected fault shows/);
}

afterAll(async () => {
  // Whatever a failed assertion left: this test's demo runs only (its own work dir).
  await runCli(['demo', '--clean', '--work-dir', workDir], env());
  rmSync(workDir, { recursive: true, force: true });
});

it('fluxion demo --cycles 2 twice in a row: each run in its own topics and database, each summary true', {
  timeout: 420_000,
}, async () => {
  const first = await runCli(await demoArgs(), env());
  expectTrueSummary(first);
  const one = scopeOf(first.stdout);
  expect(one.prefix.startsWith(`${basePrefix}demo-`)).toBe(true);
  expect(await topicsUnder(one.prefix)).not.toEqual([]);

  const second = await runCli(await demoArgs(), env());
  expectTrueSummary(second);
  const two = scopeOf(second.stdout);
  expect(two.prefix).not.toBe(one.prefix);
  expect(second.stdout).toContain(`reset: removed the earlier demo run`);
  expect(second.stdout).toMatch(new RegExp(`\\d+ topics \\(prefix "${one.prefix.replace(/\./g, '\\.')}"\\), database ${one.database}`));
  expect(await topicsUnder(one.prefix)).toEqual([]);
  expect(await databaseExists(one.database)).toBe(false);

  // The second run's data is in its own database.
  const db = new pg.Client({
    connectionString: Object.assign(new URL(serviceEnv().DATABASE_URL), { pathname: `/${two.database}` }).toString(),
  });
  await db.connect();
  try {
    const active = loadUbicaciones(loadConfig({})).filter((u) => u.activa);
    const perStore = await db.query<{ ubicacion_id: string }>('SELECT DISTINCT ubicacion_id FROM inventario_actual');
    expect(perStore.rows.map((x) => x.ubicacion_id).sort()).toEqual(active.map((u) => u.id).sort());
    const ventas = await db.query<{ ubicacion_id: string }>('SELECT DISTINCT ubicacion_id FROM ventas');
    expect(ventas.rows.map((x) => x.ubicacion_id).sort()).toEqual(
      active
        .filter((u) => u.pos === 'klk')
        .map((u) => u.id)
        .sort(),
    );
    expect(Number((await db.query('SELECT count(*) AS n FROM productos_abc_cache')).rows[0].n)).toBeGreaterThan(0);
  } finally {
    await db.end();
  }

  const clean = await runCli(['demo', '--clean', '--work-dir', workDir], env());
  expect(clean.code, clean.stderr).toBe(0);
  expect(clean.stdout).toContain('clean: 1 earlier demo run(s) removed');
  expect(await topicsUnder(two.prefix)).toEqual([]);
  expect(await databaseExists(two.database)).toBe(false);
});

it('a child process killed mid-run makes the demo exit 1, naming it and its log', { timeout: 240_000 }, async () => {
  const proc = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'fluxion.ts'), ...(await demoArgs())], {
    env: { ...process.env, ...env() },
    cwd: PROJECT_ROOT,
  });
  let stdout = '';
  let killed = false;
  proc.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    const m = /dedupe \(pid (\d+)\)/.exec(stdout);
    if (m && !killed) {
      killed = true;
      // Once the first cycle is under way, so the demo is past its set-up.
      setTimeout(() => process.kill(Number(m[1]), 'SIGKILL'), 3_000);
    }
  });
  const code = await new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
  expect(killed, stdout).toBe(true);
  expect(code, stdout).toBe(1);
  expect(stdout).toContain(`error: dedupe ended before the demo did (signal SIGKILL); its log: ${join(workDir, 'dedupe.log')}`);
  expect(stdout).not.toMatch(/summary after/);

  // What the stopped run made is removed like any other run's.
  const scope = scopeOf(stdout);
  const clean = await runCli(['demo', '--clean', '--work-dir', workDir], env());
  expect(clean.code, `${clean.stdout}${clean.stderr}`).toBe(0);
  expect(await topicsUnder(scope.prefix)).toEqual([]);
  expect(await databaseExists(scope.database)).toBe(false);
});
