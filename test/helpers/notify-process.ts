/**
 * `fluxion notify` as a real process for the integration tests (notify.test.ts,
 * notify-limits.test.ts): a fake Sentry on 127.0.0.1 keeping every envelope, the CLI started
 * with a test's environment, records fed as real Avro on a test's own topics, and the hooks
 * that start the fakes and stop what each test started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { createTopicCodec } from '../../core/avro/topic-codec.ts';
import type { KafkaClient } from '../../core/kafka/client.ts';
import { PROJECT_ROOT } from '../../core/paths.ts';
import type { PhantomAlert, QuarantineRecord } from '../../core/records.ts';
import type { EtlRun } from '../../sinks/notify-rules.ts';
import { uuidFrom } from '../../fixtures/inventory-feed.ts';
import { fakeSendGrid, listen, readBody, type FakeSendGrid } from './fake-sendgrid.ts';
import type { TestPipeline } from '../../fixtures/pipeline.ts';

export const API_KEY = 'SG.fluxion-test-key-0123456789';
export const FROM = 'Fluxion <etl@lagranja.example>';
export const TO = ['ops@lagranja.example', 'gerencia@lagranja.example'];

// ---- fakes -----------------------------------------------------------------------------------

export interface SentryEvent {
  level?: string;
  environment?: string;
  tags?: Record<string, string>;
  fingerprint?: string[];
  exception?: { values: Array<{ type: string; value: string }> };
}

export interface FakeSentry {
  dsn: string;
  events: SentryEvent[];
  close(): Promise<void>;
}

export async function fakeSentry(): Promise<FakeSentry> {
  const events: SentryEvent[] = [];
  const server = createServer(async (req, res) => {
    let body = await readBody(req);
    if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
    // An envelope: a header line, then (item header, payload) line pairs.
    const lines = body
      .toString('utf8')
      .split('\n')
      .filter((l) => l.length > 0);
    for (let i = 1; i + 1 < lines.length; i += 2) {
      if (JSON.parse(lines[i]!).type === 'event') events.push(JSON.parse(lines[i + 1]!));
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  const port = await listen(server);
  return {
    dsn: `http://publickey@127.0.0.1:${port}/1`,
    events,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

// ---- the CLI as a process --------------------------------------------------------------------

export interface RunningCli {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

export function startNotify(env: Record<string, string>): RunningCli {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'fluxion.ts'), 'notify'], {
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      LOG_LEVEL: 'info',
      FLUXION_SESSION_TIMEOUT_MS: '6000',
      SENTRY_DSN: '',
      SENDGRID_API_KEY: '',
      FLUXION_LOCALE: '',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

export async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const logLines = (text: string): Array<Record<string, unknown>> =>
  text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

// ---- records ---------------------------------------------------------------------------------

export function etlRun(store: string, status: 'OK' | 'FAILED', errorClass: string | null, message: string | null, n: number): EtlRun {
  const finished = new Date(Date.now() - 60_000 + n);
  return {
    run_id: uuidFrom(`run-${store}-${n}-${Math.random()}`),
    job: 'INVENTARIO',
    ubicacion_id: store,
    status,
    rows: status === 'OK' ? 1200 : 0,
    started_at: new Date(finished.getTime() - 15_000),
    finished_at: finished,
    snapshot_id: null,
    fecha: null,
    error_class: errorClass,
    error_message: message,
  };
}

export function phantomAlert(store: string, n: number): PhantomAlert {
  const producto = String(n).padStart(6, '0');
  const at = new Date(Date.now() - 30 * 60_000 + n * 1000);
  return {
    alert_id: uuidFrom(`alert-${store}-${n}-${Math.random()}`),
    ubicacion_id: store,
    deposito: '01',
    producto_id: producto,
    rule: 'UNEXPLAINED_DROP',
    confidence: 0.9,
    status: 'OPEN',
    summary: `${store} deposito 01 producto ${producto}: dropped from 50.000 to 0 with 1.000 sold`,
    evidence: { from_quantity: '50.000' },
    opened_at: at,
    updated_at: at,
  };
}

export async function produce(
  kafka: KafkaClient,
  topic: string,
  records: Array<{ ubicacionId: string; key: string; value: Buffer }>,
): Promise<void> {
  const producer = await kafka.producer();
  await producer.send(topic, records);
  await producer.disconnect();
}

export interface Feeder {
  runs(runs: EtlRun[]): Promise<void>;
  quarantine(q: QuarantineRecord): Promise<void>;
  alerts(alerts: PhantomAlert[]): Promise<void>;
  topics: string[];
}

export async function feeder(p: TestPipeline): Promise<Feeder> {
  const t = {
    runs: `${p.prefix}ops.etl-runs`,
    quarantine: `${p.prefix}pos.inventario.quarantine`,
    alerts: `${p.prefix}alerts.phantom-zeros`,
  };
  const [runs, quarantine, alerts] = await Promise.all([
    createTopicCodec<EtlRun>(p.registry, 'ops.etl-runs', t.runs),
    createTopicCodec<QuarantineRecord>(p.registry, 'pos.inventario.quarantine', t.quarantine),
    createTopicCodec<PhantomAlert>(p.registry, 'alerts.phantom-zeros', t.alerts),
  ]);
  return {
    topics: [t.runs, t.quarantine, t.alerts],
    runs: (list) =>
      produce(
        p.kafka,
        t.runs,
        list.map((r) => ({ ubicacionId: r.ubicacion_id, key: `${r.job}/${r.ubicacion_id}`, value: runs.encode(r) })),
      ),
    quarantine: (q) => produce(p.kafka, t.quarantine, [{ ubicacionId: q.ubicacion_id, key: q.snapshot_id, value: quarantine.encode(q) }]),
    alerts: (list) =>
      produce(
        p.kafka,
        t.alerts,
        list.map((a) => ({
          ubicacionId: a.ubicacion_id,
          key: `${a.ubicacion_id}/${a.deposito}/${a.producto_id}`,
          value: alerts.encode(a),
        })),
      ),
  };
}

// ---- tests -----------------------------------------------------------------------------------

/** The fakes and what a test started, shared by a test file; sendgrid and sentry are set in its beforeAll. */
export interface NotifyServices {
  sendgrid: FakeSendGrid;
  sentry: FakeSentry;
  pipelines: TestPipeline[];
  children: RunningCli[];
}

/** Registers the file's hooks: the fakes start once, each test's processes and topics go after it. */
export function notifyServices(): NotifyServices {
  const s = { pipelines: [] as TestPipeline[], children: [] as RunningCli[] } as NotifyServices;
  beforeAll(async () => {
    s.sendgrid = await fakeSendGrid();
    s.sentry = await fakeSentry();
  });
  afterEach(async () => {
    for (const c of s.children.splice(0)) if (c.child.exitCode === null) c.child.kill('SIGKILL');
    for (const p of s.pipelines.splice(0)) await p.cleanup();
    s.sendgrid.mails.length = 0;
    s.sendgrid.answers.length = 0;
    s.sendgrid.requests = 0;
    s.sentry.events.length = 0;
  });
  afterAll(async () => {
    await s.sendgrid.close();
    await s.sentry.close();
  });
  return s;
}
