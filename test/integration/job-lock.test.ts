/**
 * One run of a job at a time across processes (core/job-lock.ts), as scheduled containers
 * need it: `fluxion extract inventario --todas` as real processes against a slowed KLK
 * simulator, real Kafka and a PostgreSQL database never migrated. A second run started while
 * the first holds the lock exits JOB_LOCKED_EXIT_CODE with the Spanish message and publishes
 * nothing; the first ends OK; a run killed with -9 frees the lock at once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createJobRunner } from '../../cli/jobs.ts';
import { createContext } from '../../cli/context.ts';
import { JOB_LOCKED_EXIT_CODE, jobLockKey } from '../../core/job-lock.ts';
import { PROJECT_ROOT } from '../../core/paths.ts';
import { writeKlkStoreList } from '../../bench/lib/klk-store-list.ts';
import { StoreSimulation } from '../../simulators/data/store-simulation.ts';
import { startKlkSimulator, type KlkSimulator } from '../../simulators/klk/server.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';
import { freshDatabase, runCli, type CliResult } from '../../fixtures/services.ts';

// The ids bench/lib/klk-store-list.ts gives two stores with the prefix tienda_.
const IDS = ['tienda_0001', 'tienda_0002'];
const KEYS: Record<string, string> = Object.fromEntries(
  IDS.map((id) => [`KLK_API_KEY_${id.toUpperCase()}`, `key-${id}-not-a-real-secret`]),
);
const PRODUCTS = 1_000;

let klk: KlkSimulator;
let pipeline: TestPipeline;
let db: { url: string; drop: () => Promise<void> };
let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  klk = await startKlkSimulator({
    stores: IDS.map((id) => new StoreSimulation({ ubicacionId: id, pos: 'klk', depositos: ['01'], products: PRODUCTS })),
    apiKeys: Object.fromEntries(IDS.map((id) => [id, KEYS[`KLK_API_KEY_${id.toUpperCase()}`]!])),
  });
  // Slow (2.5 s an answer, several answers a read): the first run holds the lock for several seconds.
  klk.faults.set(IDS[0]!, { latencyMs: 2_500 });
  pipeline = await createTestPipeline();
  db = await freshDatabase();
  dir = mkdtempSync(join(tmpdir(), 'fluxion-job-lock-'));
  const file = join(dir, 'ubicaciones.yaml');
  const written = writeKlkStoreList(file, IDS.length, klk.port, 'tienda_', 'job-lock test: two KLK stores on the simulator');
  expect(written.map((s) => s.id)).toEqual(IDS);
  env = { ...KEYS, DATABASE_URL: db.url, FLUXION_TOPIC_PREFIX: pipeline.prefix, FLUXION_UBICACIONES_FILE: file, FLUXION_LOCALE: 'es' };
});

afterAll(async () => {
  await klk?.close();
  await pipeline?.cleanup();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Starts the CLI as its own process; resolves with its exit code and output when it ends. */
function startCli(args: string[], extra: Record<string, string> = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'fluxion.ts'), ...args], {
    env: { ...process.env, LOG_LEVEL: 'warn', ...env, ...extra },
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => void (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => void (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr })),
  );
  return { child, done };
}

/** Waits until some session of the test database holds the advisory lock of `job`. */
async function waitForLockHeld(job: string, timeoutMs = 30_000): Promise<string> {
  const key = BigInt.asUintN(64, jobLockKey(job, pipeline.prefix));
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const r = await client.query<{ application_name: string }>(
        `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::oid AND l.objid = $2::oid`,
        [String(key >> 32n), String(key & 0xffff_ffffn)],
      );
      if (r.rows[0]) return r.rows[0].application_name;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`no session took the lock of ${job} within ${timeoutMs} ms`);
  } finally {
    await client.end();
  }
}

async function snapshotsOf(store: string): Promise<Set<string>> {
  const chunks = await pipeline.read<{ ubicacion_id: string; snapshot_id: string }>('pos.inventario.snapshots');
  return new Set(chunks.filter((c) => c.decoded.ubicacion_id === store).map((c) => c.decoded.snapshot_id));
}

describe('job lock: one run of a job at a time across processes', () => {
  it('a second `extract inventario --todas` exits 75 with the Spanish message while the first runs; the first ends OK', async () => {
    const first = startCli(['extract', 'inventario', '--todas']);
    const holder = await waitForLockHeld('inventario');
    expect(holder).toMatch(/^fluxion inventario /);

    const second = await runCli(['extract', 'inventario', '--todas'], env);
    expect(second.code).toBe(JOB_LOCKED_EXIT_CODE);
    expect(second.stderr).toMatch(
      new RegExp(
        'fluxion: el trabajo inventario ya se está ejecutando en otro proceso ' +
          '\\(fluxion inventario [^,]+ en [\\d.:a-f]+, desde las \\d\\d:\\d\\d hora de Caracas\\); ' +
          'esta corrida no empezó y no cambió nada',
      ),
    );
    // It read no store and printed no summary.
    expect(second.stdout).not.toContain('stores OK');

    const r = await first.done;
    expect(r.stderr, r.stderr).not.toMatch(/"level":"(error|fatal)"/);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('2 of 2 stores OK');
    // One snapshot per store: the refused run published nothing.
    expect((await snapshotsOf(IDS[0]!)).size).toBe(1);
    expect((await snapshotsOf(IDS[1]!)).size).toBe(1);

    // Released at the end: the next run starts and ends OK.
    const third = await runCli(['extract', 'inventario', '--tienda', IDS[1]!], env);
    expect(third.code, third.stderr).toBe(0);
    expect((await snapshotsOf(IDS[1]!)).size).toBe(2);
  });

  it('other jobs and other topic prefixes are not held back; a run killed with -9 frees the lock at once', async () => {
    const first = startCli(['extract', 'inventario', '--tienda', IDS[0]!]);
    await waitForLockHeld('inventario');
    // ventas is another job: it runs beside the inventario run.
    const ventas = await runCli(['extract', 'ventas', '--tienda', IDS[1]!], env);
    expect(ventas.code, ventas.stderr).toBe(0);
    // Another prefix is another pipeline (a test, an environment): its own lock.
    const other = await createTestPipeline();
    try {
      const elsewhere = await runCli(['extract', 'inventario', '--tienda', IDS[1]!], { ...env, FLUXION_TOPIC_PREFIX: other.prefix });
      expect(elsewhere.code, elsewhere.stderr).toBe(0);
    } finally {
      await other.cleanup();
    }
    first.child.kill('SIGKILL');
    await first.done;
    const after = await runCli(['extract', 'inventario', '--tienda', IDS[1]!], env);
    expect(after.code, after.stderr).toBe(0);
    expect(after.stdout).toContain('1 of 1 stores OK');
  });

  it("fluxion schedule's runner takes the same lock: refused, it reports the holder without a failure to mail", async () => {
    const first = startCli(['extract', 'inventario', '--todas']);
    await waitForLockHeld('inventario');
    const c = createContext({ ...process.env, ...env, LOG_LEVEL: 'silent' }, () => undefined);
    try {
      const outcome = await createJobRunner(c)('inventario', new AbortController().signal);
      expect(outcome.ok).toBe(false);
      expect(outcome.failure).toBeNull();
      expect(outcome.summary).toMatch(/^el trabajo inventario ya se está ejecutando en otro proceso \(fluxion inventario /);
    } finally {
      await c.close();
    }
    expect((await first.done).code).toBe(0);
  });
});
