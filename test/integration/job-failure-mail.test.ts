/**
 * A job that fails as a whole mails the operators (ops/job-failure-mail.ts), as an operator's
 * cron runs it: `fluxion extract` with Kafka unreachable (a port nobody listens on) and
 * `fluxion abc recalc` with PostgreSQL unreachable, each a real process, with a fake SendGrid
 * on 127.0.0.1. The registry and the KLK store are real (the simulator, on a port of its own).
 * The throttle must hold across processes: a second failure within the window mails nothing.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { StoreSimulation } from '../../simulators/data/store-simulation.ts';
import { startKlkSimulator, type KlkSimulator } from '../../simulators/klk/server.ts';
import { fakeSendGrid, type FakeSendGrid } from '../helpers/fake-sendgrid.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';
import { runCli } from '../../fixtures/services.ts';
import { migratedDatabase, type MigratedDatabase } from '../../fixtures/sink-run.ts';

const API_KEY = 'SG.fluxion-job-test-key-0123456789';
const STORE = 'tienda_01';
const KLK_KEY = 'job-mail-test-key';

let sendgrid: FakeSendGrid;
let klk: KlkSimulator;
let pipeline: TestPipeline;
let db: MigratedDatabase;
let dir: string;
let ubicacionesFile: string;
let deadPort: number;

/** A port that refuses connections: bound once, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  [sendgrid, pipeline, db, deadPort] = await Promise.all([fakeSendGrid(), createTestPipeline(1), migratedDatabase(), closedPort()]);
  klk = await startKlkSimulator({
    stores: [new StoreSimulation({ ubicacionId: STORE, pos: 'klk', depositos: ['01'], products: 50, seed: 'job-mail' })],
    apiKeys: { [STORE]: KLK_KEY },
    port: 0,
  });
  dir = mkdtempSync(join(tmpdir(), 'fluxion-job-mail-'));
  ubicacionesFile = join(dir, 'ubicaciones.yaml');
  writeFileSync(
    ubicacionesFile,
    toYaml({
      ubicaciones: [
        {
          id: STORE,
          nombre: 'Job mail test',
          tipo: 'tienda',
          activa: true,
          pos: 'klk',
          depositos: ['01'],
          klk: {
            base_url: { local: klk.baseUrl(STORE), production: 'https://tienda01.invalid' },
            api_key_env: 'KLK_API_KEY_JOB_TEST',
            timeout_ms: 3_000,
          },
        },
      ],
    }),
  );
}, 120_000);

afterAll(async () => {
  await klk?.close();
  await sendgrid?.close();
  await pipeline?.cleanup();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function env(extra: Record<string, string>): Record<string, string> {
  return {
    ETL_ENVIRONMENT: 'local',
    FLUXION_UBICACIONES_FILE: ubicacionesFile,
    FLUXION_TOPIC_PREFIX: pipeline.prefix,
    KLK_API_KEY_JOB_TEST: KLK_KEY,
    SENDGRID_API_KEY: API_KEY,
    SENDGRID_BASE_URL: sendgrid.url,
    FLUXION_NOTIFY_FROM: 'Fluxion <etl@lagranja.example>',
    FLUXION_NOTIFY_TO: 'ops@lagranja.example',
    FLUXION_NOTIFY_THROTTLE_MINUTES: '60',
    FLUXION_LOCALE: '',
    SENTRY_DSN: '',
    LOG_LEVEL: 'info',
    ...extra,
  };
}

const jobMails = (job: string) => sendgrid.mails.filter((m) => m.body.subject.includes(` ${job} `));

// Concurrent: the two jobs have their own throttle files, mails (told apart by job) and dead
// targets, and each spends its time in a CLI's retries against a port nobody answers.
describe.concurrent('a job that fails as a whole mails the operators', () => {
  it('fluxion extract with Kafka unreachable mails once (in Spanish); a second failure within the window does not; exit codes unchanged', {
    timeout: 240_000,
  }, async () => {
    const stateFile = join(dir, 'extract-alerts.json');
    const e = env({ KAFKA_BROKERS: `127.0.0.1:${deadPort}`, DATABASE_URL: db.url, FLUXION_JOB_ALERT_STATE_FILE: stateFile });
    const first = await runCli(['extract', 'inventario', '--tienda', STORE], e);
    // As before this change: the store FAILED, so exit 1, and the summary names the cause.
    expect(first.code, first.stderr).toBe(1);
    expect(first.stdout).toMatch(
      new RegExp(
        `^${STORE}\\s+KLK\\s+0\\s+[\\d.]+ s\\s+FAILED SERVICE_UNAVAILABLE: Kafka at 127\\.0\\.0\\.1:${deadPort} did not answer`,
        'm',
      ),
    );
    expect(jobMails('inventario')).toHaveLength(1);
    const mail = jobMails('inventario')[0]!;
    expect(mail.body.subject).toBe('[Fluxion local] el trabajo inventario falló por completo: Kafka inaccesible (SERVICE_UNAVAILABLE)');
    expect(mail.authorization).toBe(`Bearer ${API_KEY}`);
    expect(mail.body.categories).toEqual(['fluxion-job', 'job_failed']);
    const text = mail.body.content[0]!.value;
    expect(text).toContain(`127.0.0.1:${deadPort}`);
    expect(text).toMatch(new RegExp(`^tiendas no publicadas: +${STORE}$`, 'm'));
    expect(text).toContain('Revise los brokers');
    // Remembered where the next run (a fresh process) finds it: PostgreSQL and the file.
    const row = (await db.pool.query('SELECT clave, retenidos FROM avisos_trabajos')).rows;
    expect(row).toEqual([{ clave: 'inventario/kafka/SERVICE_UNAVAILABLE', retenidos: 0 }]);
    expect(Object.keys(JSON.parse(readFileSync(stateFile, 'utf8')))).toEqual(['inventario/kafka/SERVICE_UNAVAILABLE']);

    const second = await runCli(['extract', 'inventario', '--tienda', STORE], e);
    expect(second.code).toBe(1);
    expect(jobMails('inventario')).toHaveLength(1);
    expect(second.stderr).toContain('job failure mail held back by the throttle');
    expect((await db.pool.query('SELECT retenidos FROM avisos_trabajos')).rows).toEqual([{ retenidos: 1 }]);
    expect(first.stderr + second.stderr).not.toContain(API_KEY);
  });

  it('fluxion abc recalc with PostgreSQL unreachable mails once (in English by setting), the throttle kept in the local file; exit code ' +
    'unchanged', {
    timeout: 120_000,
  }, async () => {
    const stateFile = join(dir, 'abc-alerts.json');
    const e = env({
      DATABASE_URL: `postgres://fluxion:secret-pw@127.0.0.1:${deadPort}/fluxion`,
      FLUXION_JOB_ALERT_STATE_FILE: stateFile,
      FLUXION_LOCALE: 'en',
    });
    const first = await runCli(['abc', 'recalc'], e);
    expect(first.code, first.stderr).toBe(1);
    expect(first.stderr).toContain('PostgreSQL is not reachable');
    const mails = jobMails('abc');
    expect(mails).toHaveLength(1);
    expect(mails[0]!.body.subject).toBe('[Fluxion local] job abc failed as a whole: PostgreSQL unreachable (ABC_RECALC)');
    expect(mails[0]!.body.content[0]!.value).toContain('productos_abc_cache (or what this job writes) stays as it was');
    expect(mails[0]!.body.content[0]!.value).not.toContain('secret-pw');
    // PostgreSQL could not hold the throttle (it is the failure): the file did.
    expect(first.stderr).toContain('the mail throttle could not be read there; using the others');
    expect(JSON.parse(readFileSync(stateFile, 'utf8'))['abc/postgres/ABC_RECALC']).toMatchObject({ heldBack: 0 });

    const second = await runCli(['abc', 'recalc'], e);
    expect(second.code).toBe(1);
    expect(jobMails('abc')).toHaveLength(1);
    expect(JSON.parse(readFileSync(stateFile, 'utf8'))['abc/postgres/ABC_RECALC']).toMatchObject({ heldBack: 1 });
    expect(first.stderr + second.stderr).not.toContain('secret-pw');
  });
});
