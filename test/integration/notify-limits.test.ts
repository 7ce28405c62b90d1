/**
 * `fluxion notify` as a real process, what limits its mails: without SENDGRID_API_KEY it only
 * logs what it would send, and a phantom-zeros mail keeps to the daily budget and leaves out
 * dismissed alerts (the mails of each kind: notify.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { createTestPipeline } from '../../fixtures/pipeline.ts';
import { waitForGroupEnd } from '../../fixtures/processor-run.ts';
import { migratedDatabase } from '../../fixtures/sink-run.ts';
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
  it('without SENDGRID_API_KEY logs what it would send, says so once, and sends nothing; in English with FLUXION_LOCALE=en', {
    timeout: 60_000,
  }, async () => {
    const { sendgrid } = services;
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
    const { sendgrid } = services;
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
