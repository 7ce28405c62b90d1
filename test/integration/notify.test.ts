/**
 * `fluxion notify` as an operator runs it (a real process) against the real broker and
 * registry, with a fake SendGrid (keeps every POST /v3/mail/send, answers 202) and a fake
 * Sentry (keeps every envelope) on 127.0.0.1. Records are real Avro on a test's own topics.
 * Without a SendGrid key and the phantom-zero budget: notify-limits.test.ts. The SendGrid mailer
 * alone and the command's refusals: notify-mailer.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { QuarantineRecord } from '../../core/records.ts';
import { uuidFrom } from '../../fixtures/inventory-feed.ts';
import { createTestPipeline } from '../../fixtures/pipeline.ts';
import { waitForGroupEnd } from '../../fixtures/processor-run.ts';
import { uniqueId } from '../../fixtures/services.ts';
import {
  API_KEY,
  etlRun,
  feeder,
  FROM,
  logLines,
  notifyServices,
  phantomAlert,
  startNotify,
  TO,
  until,
} from '../helpers/notify-process.ts';

const services = notifyServices();
const { pipelines, children } = services;

describe('fluxion notify', () => {
  it('mails failed runs (throttled per store), an unreachable store, a quarantine and many phantom zeros; failed runs go to Sentry with ' +
    'tags', {
    timeout: 90_000,
  }, async () => {
    const { sendgrid, sentry } = services;
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
});
