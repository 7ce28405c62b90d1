/**
 * `fluxion notify` as an operator runs it (a real process) against the real broker and
 * registry, with a fake SendGrid (keeps every POST /v3/mail/send, answers 202) and a fake
 * Sentry (keeps every envelope) on 127.0.0.1. Records are real Avro on a test's own topics.
 * The SendGrid mailer alone and the command's refusals: notify-mailer.test.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTopicCodec } from '../../core/avro/topic-codec.ts';
import type { KafkaClient } from '../../core/kafka/client.ts';
import { PROJECT_ROOT } from '../../core/paths.ts';
import type { PhantomAlert, QuarantineRecord } from '../../core/records.ts';
import type { EtlRun } from '../../sinks/notify-rules.ts';
import { uuidFrom } from '../../fixtures/inventory-feed.ts';
import { fakeSendGrid, listen, readBody, type FakeSendGrid } from '../helpers/fake-sendgrid.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';
import { waitForGroupEnd } from '../../fixtures/processor-run.ts';
import { uniqueId } from '../../fixtures/services.ts';
import { migratedDatabase } from '../../fixtures/sink-run.ts';

const API_KEY = 'SG.fluxion-test-key-0123456789';
const FROM = 'Fluxion <etl@lagranja.example>';
const TO = ['ops@lagranja.example', 'gerencia@lagranja.example'];

// ---- fakes -----------------------------------------------------------------------------------

interface SentryEvent {
  level?: string;
  environment?: string;
  tags?: Record<string, string>;
  fingerprint?: string[];
  exception?: { values: Array<{ type: string; value: string }> };
}

async function fakeSentry(): Promise<{ dsn: string; events: SentryEvent[]; close(): Promise<void> }> {
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

interface RunningCli {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function startNotify(env: Record<string, string>): RunningCli {
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

async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const logLines = (text: string): Array<Record<string, unknown>> =>
  text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

// ---- records ---------------------------------------------------------------------------------

function etlRun(store: string, status: 'OK' | 'FAILED', errorClass: string | null, message: string | null, n: number): EtlRun {
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

function phantomAlert(store: string, n: number): PhantomAlert {
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

async function produce(
  kafka: KafkaClient,
  topic: string,
  records: Array<{ ubicacionId: string; key: string; value: Buffer }>,
): Promise<void> {
  const producer = await kafka.producer();
  await producer.send(topic, records);
  await producer.disconnect();
}

interface Feeder {
  runs(runs: EtlRun[]): Promise<void>;
  quarantine(q: QuarantineRecord): Promise<void>;
  alerts(alerts: PhantomAlert[]): Promise<void>;
  topics: string[];
}

async function feeder(p: TestPipeline): Promise<Feeder> {
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

let sendgrid: FakeSendGrid;
let sentry: Awaited<ReturnType<typeof fakeSentry>>;
const pipelines: TestPipeline[] = [];
const children: RunningCli[] = [];

beforeAll(async () => {
  sendgrid = await fakeSendGrid();
  sentry = await fakeSentry();
});

afterEach(async () => {
  for (const c of children.splice(0)) if (c.child.exitCode === null) c.child.kill('SIGKILL');
  for (const p of pipelines.splice(0)) await p.cleanup();
  sendgrid.mails.length = 0;
  sendgrid.answers.length = 0;
  sendgrid.requests = 0;
  sentry.events.length = 0;
});

afterAll(async () => {
  await sendgrid.close();
  await sentry.close();
});

describe('fluxion notify', () => {
  it('mails failed runs (throttled per store), an unreachable store, a quarantine and many phantom zeros; failed runs go to Sentry with ' +
    'tags', {
    timeout: 90_000,
  }, async () => {
    const pipeline = await createTestPipeline(3);
    pipelines.push(pipeline);
    const feed = await feeder(pipeline);

    const dataError = 'tienda_02: page 1, item 42 (producto 000042): field cantidad: "12,5" is not an exact decimal(18,3)';
    const failures = [
      etlRun('tienda_02', 'FAILED', 'POS_DATA', dataError, 1),
      etlRun('tienda_02', 'FAILED', 'POS_DATA', dataError, 2), // same store within the throttle interval: no mail
      etlRun(
        'tienda_03',
        'FAILED',
        'POS_UNAVAILABLE',
        'tienda_03: KLK GET /inventario?page=1 failed: connect ECONNREFUSED 10.0.3.5:443',
        3,
      ),
      etlRun('tienda_01', 'OK', null, null, 4),
    ];
    await feed.runs(failures);
    const quarantined: QuarantineRecord = {
      snapshot_id: uuidFrom(`snapshot-${uniqueId()}`),
      ubicacion_id: 'tienda_04',
      source: 'KLK',
      taken_at: new Date(Date.now() - 120_000),
      status: 'QUARANTINED',
      reason: '900 of 1200 products with stock (75.0%) dropped to 0 or vanished; the limit is 30%',
      row_count: 1200,
      chunk_count: 2,
      partition: 0,
      first_offset: 0,
      updated_at: new Date(Date.now() - 120_000),
      note: null,
    };
    await feed.quarantine(quarantined);
    // tienda_05 reaches the threshold (5), tienda_06 stays below it.
    await feed.alerts([
      ...[1, 2, 3, 4, 5, 6].map((n) => phantomAlert('tienda_05', n)),
      ...[1, 2, 3].map((n) => phantomAlert('tienda_06', n)),
    ]);

    const cli = startNotify({
      FLUXION_TOPIC_PREFIX: pipeline.prefix,
      SENDGRID_API_KEY: API_KEY,
      SENDGRID_BASE_URL: sendgrid.url,
      FLUXION_NOTIFY_FROM: FROM,
      FLUXION_NOTIFY_TO: TO.join(', '),
      FLUXION_NOTIFY_THROTTLE_MINUTES: '60',
      FLUXION_NOTIFY_PHANTOM_STORE_THRESHOLD: '5',
      FLUXION_NOTIFY_PHANTOM_WINDOW_MINUTES: '60',
      SENTRY_DSN: sentry.dsn,
    });
    children.push(cli);

    await until('4 mails', () => sendgrid.mails.length >= 4);
    await waitForGroupEnd(pipeline.kafka, `${pipeline.prefix}fluxion-notify`, feed.topics, 30_000, false);

    // A failure while it runs: read live, mailed at once.
    const live = etlRun(
      'cedi_frio',
      'FAILED',
      'ESOCKET',
      'cedi_frio: Stellar 10.0.9.2:1433/VAD10 failed while streaming: Connection lost - read ECONNRESET',
      5,
    );
    await feed.runs([live]);
    await until('the live mail', () => sendgrid.mails.length >= 5);
    await waitForGroupEnd(pipeline.kafka, `${pipeline.prefix}fluxion-notify`, feed.topics, 30_000, false);
    await until('4 Sentry events', () => sentry.events.length >= 4, 15_000);
    await new Promise((r) => setTimeout(r, 500)); // anything extra would have come by now

    // In Spanish: FLUXION_LOCALE is not set (the next test sets it to en).
    const subjects = sendgrid.mails.map((m) => m.body.subject).sort();
    expect(subjects).toEqual([
      '[Fluxion local] cedi_frio: POS inaccesible, falló la extracción INVENTARIO (ESOCKET)',
      '[Fluxion local] tienda_02: falló la extracción INVENTARIO (POS_DATA)',
      '[Fluxion local] tienda_03: POS inaccesible, falló la extracción INVENTARIO (POS_UNAVAILABLE)',
      '[Fluxion local] tienda_04: quiebre masivo, snapshot en cuarentena',
      // Mailed when the 5th alert arrives; the 6th is held back by the throttle.
      '[Fluxion local] tienda_05: 5 ceros fantasma por contar (60 min)',
    ]);
    for (const m of sendgrid.mails) {
      expect(m.authorization).toBe(`Bearer ${API_KEY}`);
      expect(m.body.personalizations[0]!.to.map((t) => t.email)).toEqual(TO);
      expect(m.body.from).toEqual({ email: 'etl@lagranja.example', name: 'Fluxion' });
      expect(m.body.content[0]!.type).toBe('text/plain');
    }
    const body = (store: string) => sendgrid.mails.find((m) => m.body.subject.includes(` ${store}:`))!.body.content[0]!.value;
    expect(body('tienda_02')).toContain(dataError);
    expect(body('tienda_02')).toContain(failures[0]!.run_id);
    expect(body('tienda_03')).toContain('connect ECONNREFUSED 10.0.3.5:443');
    expect(body('tienda_04')).toContain(quarantined.reason);
    expect(body('tienda_04')).toContain(`fluxion quarantine release ${quarantined.snapshot_id}`);
    expect(body('tienda_04')).toContain('NO se aplicó');
    expect(body('tienda_05')).toContain('tienda_05 deposito 01 producto 000005');

    // Every FAILED run is a Sentry event (the throttled one too), tagged by store, job and run.
    const events = sentry.events.map((e) => e.tags!).sort((a, b) => a.run_id!.localeCompare(b.run_id!));
    const failedRuns = [failures[0]!, failures[1]!, failures[2]!, live].sort((a, b) => a.run_id.localeCompare(b.run_id));
    expect(events).toEqual(
      failedRuns.map((r) =>
        expect.objectContaining({ ubicacion_id: r.ubicacion_id, job: 'INVENTARIO', run_id: r.run_id, error_class: r.error_class }),
      ),
    );
    const tienda03 = sentry.events.find((e) => e.tags!.ubicacion_id === 'tienda_03')!;
    expect(tienda03).toMatchObject({
      level: 'error',
      environment: 'local',
      fingerprint: ['fluxion-etl-run-failed', 'INVENTARIO', 'tienda_03', 'POS_UNAVAILABLE'],
    });
    expect(tienda03.exception!.values[0]).toMatchObject({
      type: 'EtlRunFailedError',
      value: expect.stringContaining('connect ECONNREFUSED 10.0.3.5:443'),
    });

    const logs = logLines(cli.stderr());
    expect(logs.filter((l) => l.msg === 'mail held back by the throttle' && l.key === 'EXTRACTION_FAILED/tienda_02')).toHaveLength(1);

    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    expect(cli.stdout()).toContain('notify: stopped');
    expect(cli.stderr()).not.toContain(API_KEY);
    expect(cli.stderr()).not.toContain('publickey');
  });

  it('without SENDGRID_API_KEY logs what it would send, says so once, and sends nothing; in English with FLUXION_LOCALE=en', {
    timeout: 60_000,
  }, async () => {
    const pipeline = await createTestPipeline(3);
    pipelines.push(pipeline);
    const feed = await feeder(pipeline);
    await feed.runs([
      etlRun(
        'tienda_09',
        'FAILED',
        'POS_AUTH',
        'tienda_09: KLK refused the API key (HTTP 401) on GET /inventario: check KLK_API_KEY_TIENDA_09',
        1,
      ),
      etlRun(
        'tienda_09',
        'FAILED',
        'POS_AUTH',
        'tienda_09: KLK refused the API key (HTTP 401) on GET /inventario: check KLK_API_KEY_TIENDA_09',
        2,
      ),
    ]);
    const cli = startNotify({
      FLUXION_TOPIC_PREFIX: pipeline.prefix,
      SENDGRID_BASE_URL: sendgrid.url,
      FLUXION_NOTIFY_TO: TO.join(','),
      FLUXION_LOCALE: 'en',
    });
    children.push(cli);
    await until('the consumer to start', () => cli.stderr().includes('notifier starting'));
    await waitForGroupEnd(pipeline.kafka, `${pipeline.prefix}fluxion-notify`, feed.topics, 30_000, false);
    await until('the would-send line', () => cli.stderr().includes('would send'), 5_000);
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);

    const logs = logLines(cli.stderr());
    expect(logs.filter((l) => l.msg === 'SENDGRID_API_KEY is not set: mails are logged, not sent')).toHaveLength(1);
    const wouldSend = logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('would send:'));
    expect(wouldSend).toEqual([
      expect.objectContaining({
        level: 'info',
        msg: 'would send: [Fluxion local] tienda_09: INVENTARIO extraction failed (POS_AUTH)',
        subject: '[Fluxion local] tienda_09: INVENTARIO extraction failed (POS_AUTH)',
        to: TO,
        key: 'EXTRACTION_FAILED/tienda_09',
        ubicacion_id: 'tienda_09',
      }),
    ]);
    expect(logs.filter((l) => l.msg === 'mail held back by the throttle')).toHaveLength(1);
    expect(sendgrid.requests).toBe(0);
  });

  it('a phantom-zeros mail lists the most confident alerts within the daily budget, counts the rest, and never an alert an operator ' +
    'dismissed', {
    timeout: 60_000,
  }, async () => {
    const [pipeline, db] = await Promise.all([createTestPipeline(3), migratedDatabase()]);
    pipelines.push(pipeline);
    try {
      const feed = await feeder(pipeline);
      const alerts = [0.99, 0.6, 0.8, 0.7, 0.5].map((confidence, i) => ({ ...phantomAlert('tienda_07', i + 1), confidence }));
      // The most confident one was dismissed in alertas (`fluxion alertas descartar`) before the notifier read it.
      const d = alerts[0]!;
      await db.pool.query(
        `INSERT INTO alertas (alert_id, ubicacion_id, deposito, producto_id, regla, confianza, estado, resumen, evidencia, abierta_en,
                              actualizada_en, nota, descartada_por, descartada_en)
         VALUES ($1, $2, $3, $4, $5, $6, 'DESCARTADA', $7, '{}', $8, $8, 'conteo: 12 en anaquel', 'ana', now())`,
        [d.alert_id, d.ubicacion_id, d.deposito, d.producto_id, d.rule, d.confidence, d.summary, d.opened_at],
      );
      await feed.alerts(alerts);
      const cli = startNotify({
        FLUXION_TOPIC_PREFIX: pipeline.prefix,
        DATABASE_URL: db.url,
        SENDGRID_API_KEY: API_KEY,
        SENDGRID_BASE_URL: sendgrid.url,
        FLUXION_NOTIFY_FROM: FROM,
        FLUXION_NOTIFY_TO: TO.join(','),
        FLUXION_NOTIFY_PHANTOM_STORE_THRESHOLD: '4',
        FLUXION_NOTIFY_PHANTOM_DAILY_BUDGET: '2',
      });
      children.push(cli);
      await until('the phantom-zeros mail', () => sendgrid.mails.length >= 1);
      await waitForGroupEnd(pipeline.kafka, `${pipeline.prefix}fluxion-notify`, feed.topics, 30_000, false);
      cli.child.kill('SIGTERM');
      expect(await cli.exited).toBe(0);

      expect(sendgrid.mails).toHaveLength(1);
      const text = sendgrid.mails[0]!.body.content[0]!.value;
      // Four alerts counted (the dismissed one is not), two listed by confidence, two more counted.
      expect(sendgrid.mails[0]!.body.subject).toBe('[Fluxion local] tienda_07: 4 ceros fantasma por contar (60 min)');
      const listed = [...text.matchAll(/^ {2}- (\d\.\d\d) .* (\S+)$/gm)].map((m) => [m[1], m[2]]);
      expect(listed).toEqual([
        ['0.80', alerts[2]!.alert_id],
        ['0.70', alerts[3]!.alert_id],
      ]);
      expect(text).toContain('Las más confiables primero (a lo sumo 2 alertas por tienda y día):');
      expect(text).toContain('y 2 más en la tabla alertas (fluxion alertas listar --tienda tienda_07)');
      expect(text).not.toContain(d.alert_id);
      expect(
        logLines(cli.stderr())
          .filter((l) => l.msg === 'dismissed alerts left out of phantom-zero mails')
          .map((l) => l.dismissed),
      ).toEqual([[d.alert_id]]);
    } finally {
      await db.drop();
    }
  });
});
