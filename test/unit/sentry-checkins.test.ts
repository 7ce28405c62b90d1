/**
 * Check-ins sent by the real @sentry/node client to a fake Sentry: an HTTP server on
 * 127.0.0.1 that keeps every envelope posted to /api/1/envelope/. Sentry is one client per
 * process, so this file initialises it once (vitest runs each test file in its own worker).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { ConfigError } from '../../core/errors.ts';
import {
  createCheckins,
  describeDsn,
  sentryOptionsFromEnv,
  withCheckin,
  type Checkins,
  type MonitorConfig,
} from '../../ops/sentry-checkins.ts';

interface CheckInItem {
  check_in_id: string;
  monitor_slug: string;
  status: 'in_progress' | 'ok' | 'error';
  duration?: number;
  environment?: string;
  monitor_config?: { schedule: { type: string; value: string }; timezone?: string; checkin_margin?: number; max_runtime?: number };
}

const received: Array<{ path: string; items: Array<{ header: Record<string, unknown>; payload: unknown }> }> = [];
const logLines: string[] = [];
const logger = pino({ level: 'debug' }, { write: (s: string) => void logLines.push(s) });
let server: Server;
let dsn: string;
let checkins: Checkins;

/** An envelope: a header line, then (item header line, payload line) pairs. */
function parseEnvelope(body: string) {
  const lines = body.split('\n').filter((l) => l.length > 0);
  const items: Array<{ header: Record<string, unknown>; payload: unknown }> = [];
  for (let i = 1; i + 1 < lines.length; i += 2) {
    items.push({ header: JSON.parse(lines[i]!), payload: JSON.parse(lines[i + 1]!) });
  }
  return { header: JSON.parse(lines[0]!), items };
}

function checkInsOf(slug: string): CheckInItem[] {
  return received
    .flatMap((e) => e.items)
    .filter((i) => i.header.type === 'check_in')
    .map((i) => i.payload as CheckInItem)
    .filter((c) => c.monitor_slug === slug);
}

const monitor = (slug: string): MonitorConfig => ({
  slug,
  schedule: '0,30 6-21 * * *',
  timezone: 'America/Caracas',
  checkinMarginMinutes: 5,
  maxRuntimeMinutes: 25,
});

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      const envelope = parseEnvelope(body.toString('utf8'));
      received.push({ path: req.url ?? '', items: envelope.items });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  dsn = `http://publickey@127.0.0.1:${port}/1`;
  checkins = createCheckins({ dsn, environment: 'test', logger });
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('Sentry check-ins, received by a fake Sentry', () => {
  it('sends in_progress with the monitor config, then ok with the duration, under one check-in id', async () => {
    const result = await withCheckin(checkins, monitor('fluxion-test-ok'), async () => {
      await new Promise((r) => setTimeout(r, 20));
      return 42;
    });
    expect(result).toBe(42);
    await expect(checkins.flush(5000)).resolves.toBe(true);

    expect(received.every((e) => e.path.startsWith('/api/1/envelope/'))).toBe(true);
    const items = checkInsOf('fluxion-test-ok');
    expect(items.map((c) => c.status)).toEqual(['in_progress', 'ok']);
    const [start, end] = items as [CheckInItem, CheckInItem];
    expect(end.check_in_id).toBe(start.check_in_id);
    expect(start.check_in_id).toMatch(/^[0-9a-f]{32}$/);
    expect(start.monitor_config).toEqual({
      schedule: { type: 'crontab', value: '0,30 6-21 * * *' },
      timezone: 'America/Caracas',
      checkin_margin: 5,
      max_runtime: 25,
    });
    expect(start.environment).toBe('test');
    expect(end.duration).toBeGreaterThanOrEqual(0.015);
    expect(end.duration).toBeLessThan(5);
  });

  it('sends error when the function throws, and rethrows', async () => {
    await expect(
      withCheckin(checkins, monitor('fluxion-test-throws'), async () => {
        throw new Error('KLK answered 503');
      }),
    ).rejects.toThrow('KLK answered 503');
    await checkins.flush(5000);
    const items = checkInsOf('fluxion-test-throws');
    expect(items.map((c) => c.status)).toEqual(['in_progress', 'error']);
    expect(items[1]!.check_in_id).toBe(items[0]!.check_in_id);
    expect(typeof items[1]!.duration).toBe('number');
  });

  it('sends error for a result that isOk rejects (a store failed, no exception)', async () => {
    const r = await withCheckin(checkins, monitor('fluxion-test-partial'), async () => ({ failed: 1 }), { isOk: (x) => x.failed === 0 });
    expect(r).toEqual({ failed: 1 });
    await checkins.flush(5000);
    expect(checkInsOf('fluxion-test-partial').map((c) => c.status)).toEqual(['in_progress', 'error']);
  });

  it('finishes a check-in once: a second status is ignored', async () => {
    const handle = await checkins.start(monitor('fluxion-test-twice'));
    handle.ok();
    handle.error(new Error('late'));
    await checkins.flush(5000);
    expect(checkInsOf('fluxion-test-twice').map((c) => c.status)).toEqual(['in_progress', 'ok']);
  });

  it('never logs the DSN key', () => {
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('\n')).not.toContain('publickey');
    expect(logLines.join('\n')).toContain(describeDsn(dsn));
    expect(describeDsn(dsn)).not.toContain('publickey');
  });
});

describe('Sentry check-ins without a DSN', () => {
  it('does nothing, and says so at debug', async () => {
    const lines: string[] = [];
    const quiet = createCheckins({ logger: pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) }) });
    const before = received.length;
    expect(quiet.enabled).toBe(false);
    await expect(withCheckin(quiet, monitor('fluxion-test-off'), async () => 'ran')).resolves.toBe('ran');
    await expect(quiet.flush(100)).resolves.toBe(true);
    await checkins.flush(1000);
    expect(received.length).toBe(before);
    expect(lines.some((l) => /"level":"?(debug|20)"?/.test(l) && l.includes('check-ins are off'))).toBe(true);
  });

  it('reads SENTRY_DSN and SENTRY_ENVIRONMENT, empty meaning unset', () => {
    expect(sentryOptionsFromEnv({ SENTRY_DSN: '', ETL_ENVIRONMENT: 'production' })).toEqual({ dsn: undefined, environment: 'production' });
    expect(sentryOptionsFromEnv({ SENTRY_DSN: 'https://k@o1.ingest.sentry.io/2', SENTRY_ENVIRONMENT: 'staging' })).toEqual({
      dsn: 'https://k@o1.ingest.sentry.io/2',
      environment: 'staging',
    });
  });

  it('rejects a malformed DSN with a ConfigError that hides the key', () => {
    let caught: unknown;
    try {
      createCheckins({ dsn: 'https://sekret@sentry.example.com/not-a-project', logger });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).problems).toEqual([
      'SENTRY_DSN=(value hidden, host sentry.example.com): must end in the numeric project id',
    ]);
    expect((caught as Error).message).not.toContain('sekret');
  });
});
