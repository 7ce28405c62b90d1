/**
 * The SendGrid mailer alone against a fake SendGrid on 127.0.0.1: retries on 5xx and 429,
 * none on 4xx, never the key in a log; and `fluxion notify` refusing a half-configured
 * environment. The notifier end to end: notify.test.ts.
 */
import { createServer } from 'node:http';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSendGridMailer, MailDeliveryError } from '../../core/mail/sendgrid.ts';
import type { Mail } from '../../sinks/notify-rules.ts';
import { fakeSendGrid, listen, type FakeSendGrid } from '../helpers/fake-sendgrid.ts';
import { runCli } from '../../fixtures/services.ts';

const API_KEY = 'SG.fluxion-test-key-0123456789';
const FROM = 'Fluxion <etl@lagranja.example>';
const TO = ['ops@lagranja.example', 'gerencia@lagranja.example'];

let sendgrid: FakeSendGrid;

beforeAll(async () => {
  sendgrid = await fakeSendGrid();
});

afterEach(() => {
  sendgrid.mails.length = 0;
  sendgrid.answers.length = 0;
  sendgrid.requests = 0;
});

afterAll(async () => {
  await sendgrid.close();
});

describe('fluxion notify configuration', () => {
  it(
    'refuses to start (exit 2) with a key but no sender or recipients, or a malformed Sentry DSN, naming the variables and hiding the ' +
      'secrets',
    async () => {
      const noRecipients = await runCli(['notify'], { SENDGRID_API_KEY: API_KEY, FLUXION_NOTIFY_FROM: '', FLUXION_NOTIFY_TO: '' });
      expect(noRecipients.code).toBe(2);
      expect(noRecipients.stderr).toContain('FLUXION_NOTIFY_FROM is not set: SENDGRID_API_KEY is');
      expect(noRecipients.stderr).toContain('FLUXION_NOTIFY_TO is not set: SENDGRID_API_KEY is');
      expect(noRecipients.stderr).not.toContain(API_KEY);

      const badDsn = await runCli(['notify'], { SENDGRID_API_KEY: '', SENTRY_DSN: 'https://sekret@sentry.example.com/not-a-project' });
      expect(badDsn.code).toBe(2);
      expect(badDsn.stderr).toContain('SENTRY_DSN=(value hidden, host sentry.example.com): must end in the numeric project id');
      expect(badDsn.stderr).not.toContain('sekret');
    },
  );
});

describe('the SendGrid mailer', () => {
  const mail: Mail = {
    kind: 'EXTRACTION_FAILED',
    key: 'EXTRACTION_FAILED/tienda_02',
    ubicacion_id: 'tienda_02',
    subject: '[Fluxion] tienda_02: test',
    text: 'body',
  };
  const fast = { retries: 2, initialDelayMs: 10, maxDelayMs: 20, factor: 2 };

  function capture() {
    const lines: string[] = [];
    return { lines, logger: pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) }) };
  }

  it('retries a 5xx and a 429 and delivers; refuses a 4xx at once with its status; never logs the key', async () => {
    const { lines, logger } = capture();
    const mailer = await createSendGridMailer({ apiKey: API_KEY, baseUrl: sendgrid.url, from: FROM, to: TO, logger, retry: fast });
    const before = sendgrid.requests;
    sendgrid.answers.push(503, 429);
    let heartbeats = 0;
    await mailer.send(mail, { heartbeat: async () => void heartbeats++ });
    expect(sendgrid.requests - before).toBe(3);
    expect(heartbeats).toBe(2); // the consumer's session is kept alive while it waits
    expect(sendgrid.mails.map((m) => m.body.subject)).toEqual([mail.subject]);

    sendgrid.answers.push(400);
    const err = await mailer.send(mail).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MailDeliveryError);
    expect((err as MailDeliveryError).status).toBe(400);
    expect((err as Error).message).toBe('SendGrid answered HTTP 400: fake SendGrid says 400');
    expect(sendgrid.requests - before).toBe(4);

    const retries = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'SendGrid did not take the mail; retrying');
    expect(retries.map((l) => l.status)).toEqual([503, 429]);
    expect(lines.join('\n')).not.toContain(API_KEY);
  });

  it('gives up on an unreachable SendGrid after its retries, with a typed error that holds no key', async () => {
    const { lines, logger } = capture();
    const closed = createServer();
    const port = await listen(closed);
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const mailer = await createSendGridMailer({
      apiKey: API_KEY,
      baseUrl: `http://127.0.0.1:${port}`,
      from: FROM,
      to: TO,
      logger,
      retry: fast,
    });
    const err = await mailer.send(mail).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MailDeliveryError);
    expect((err as MailDeliveryError).status).toBeUndefined();
    expect((err as Error).message).toMatch(/could not be reached: ECONNREFUSED/);
    expect((err as Error).cause).toBeUndefined();
    expect(lines.filter((l) => l.includes('retrying'))).toHaveLength(2);
    expect(JSON.stringify(err) + lines.join('\n')).not.toContain(API_KEY);
  });
});
