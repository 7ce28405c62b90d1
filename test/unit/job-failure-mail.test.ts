/**
 * A job that fails as a whole, without services: what counts as one, what its mail says in
 * each language, the throttle kept in two memories (one may be down: it is the failing
 * service), and the scheduler mailing a failed run but not an aborted one.
 * test/integration/job-failure-mail.test.ts runs the real commands.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, ServiceUnavailableError, UsageError, type OurService } from '../../core/errors.ts';
import { createLogger } from '../../core/logger.ts';
import type { Mailer, MailMessage } from '../../core/mail/sendgrid.ts';
import type { ThrottleEntry } from '../../core/throttle.ts';
import { AbcRecalcError } from '../../sinks/abc-recalc.ts';
import {
  createJobAlerts,
  fileThrottleMemory,
  jobFailureMail,
  jobFailureOf,
  jobFailureOfOutcomes,
  withFailureMail,
  type JobFailure,
  type ThrottleMemory,
} from '../../ops/job-failure-mail.ts';
import { createScheduler } from '../../ops/scheduler.ts';
import type { ScheduledJob } from '../../ops/schedule-config.ts';
import { createCheckins } from '../../ops/sentry-checkins.ts';

const logger = createLogger({ level: 'silent' });
const MIN = 60_000;
const T0 = Date.UTC(2026, 11, 3, 10, 0, 0);
const dir = mkdtempSync(join(tmpdir(), 'fluxion-job-alerts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const kafkaDown = new ServiceUnavailableError(
  'Kafka at 127.0.0.1:1 did not answer while trying to connect the producer: Connection error: connect ECONNREFUSED 127.0.0.1:1',
  { context: { brokers: '127.0.0.1:1' }, service: 'kafka' },
);

function fakeMailer(answers: Array<Error | null> = []): Mailer & { sent: MailMessage[] } {
  const sent: MailMessage[] = [];
  return {
    delivering: true,
    sent,
    async send(mail) {
      const a = answers.shift();
      if (a) throw a;
      sent.push(mail);
    },
  };
}

function memoryOf(name: string, down = false): ThrottleMemory & { entries: Map<string, ThrottleEntry> } {
  const entries = new Map<string, ThrottleEntry>();
  return {
    name,
    entries,
    async get(key) {
      if (down) throw new Error(`${name} is down`);
      return entries.get(key) ?? null;
    },
    async put(key, e) {
      if (down) throw new Error(`${name} is down`);
      entries.set(key, e);
    },
  };
}

describe('what fails as a whole', () => {
  it('a thrown service error does, named by its service; usage and configuration errors do not', () => {
    expect(jobFailureOf('inventario', kafkaDown)).toMatchObject({
      job: 'inventario',
      service: 'kafka',
      errorClass: 'SERVICE_UNAVAILABLE',
      stores: [],
    });
    expect(
      jobFailureOf(
        'ventas',
        new ServiceUnavailableError('schema registry at http://127.0.0.1:1 did not answer GET /subjects/x/versions: fetch failed', {
          service: 'registry',
        }),
      ),
    ).toMatchObject({ service: 'registry' });
    expect(
      jobFailureOf(
        'abc',
        new AbcRecalcError('ABC recalculation of productos_abc_cache failed: PostgreSQL is not reachable: connect ECONNREFUSED', {
          service: 'postgres',
        }),
      ),
    ).toMatchObject({ service: 'postgres', errorClass: 'ABC_RECALC' });
    expect(jobFailureOf('abc', new Error('boom'))).toMatchObject({ service: 'job', errorClass: 'UNEXPECTED' });
    expect(jobFailureOf('inventario', new UsageError('say which stores'))).toBeNull();
    expect(jobFailureOf('inventario', new ConfigError(['KAFKA_BROKERS is not set']))).toBeNull();
    // Secrets in a connection string never reach a mail.
    expect(jobFailureOf('abc', new Error('postgres://fluxion:hunter2@db:5432/x refused'))!.message).not.toContain('hunter2');
  });

  it('stores failing on Kafka or the registry do (their run records could not be published); POS failures do not', () => {
    const store = (id: string, errorClass: string | null, msg: string | null = null, errorService: OurService | null = null) => ({
      ubicacionId: id,
      status: errorClass ? ('FAILED' as const) : ('OK' as const),
      errorClass,
      errorMessage: msg,
      errorService,
    });
    expect(
      jobFailureOfOutcomes('inventario', [
        store('tienda_01', null),
        store('tienda_02', 'POS_UNAVAILABLE', 'x'),
        store('tienda_03', 'POS_AUTH', 'y'),
      ]),
    ).toBeNull();
    expect(
      jobFailureOfOutcomes('inventario', [
        store('tienda_01', 'SERVICE_UNAVAILABLE', kafkaDown.message, kafkaDown.service),
        store('tienda_02', 'POS_DATA', 'z'),
        store('cedi_frio', 'SERVICE_UNAVAILABLE', kafkaDown.message, kafkaDown.service),
      ]),
    ).toEqual({
      job: 'inventario',
      service: 'kafka',
      errorClass: 'SERVICE_UNAVAILABLE',
      message: kafkaDown.message,
      stores: ['tienda_01', 'cedi_frio'],
    });
  });

  it('a POS failure whose run record could not be published either mails, naming the service that kept the notifier blind', () => {
    const posDown = {
      ubicacionId: 'tienda_02',
      status: 'FAILED' as const,
      errorClass: 'POS_UNAVAILABLE',
      errorMessage: 'tienda_02: KLK did not answer',
    };
    expect(jobFailureOfOutcomes('inventario', [posDown])).toBeNull();
    expect(
      jobFailureOfOutcomes('inventario', [
        {
          ...posDown,
          unrecorded: { errorClass: 'SERVICE_UNAVAILABLE', errorMessage: kafkaDown.message, errorService: kafkaDown.service },
        },
      ]),
    ).toEqual({
      job: 'inventario',
      service: 'kafka',
      errorClass: 'SERVICE_UNAVAILABLE',
      message: kafkaDown.message,
      stores: ['tienda_02'],
    });
  });
});

describe('the mail', () => {
  const failure: JobFailure = {
    job: 'inventario',
    service: 'kafka',
    errorClass: 'SERVICE_UNAVAILABLE',
    message: kafkaDown.message,
    stores: ['tienda_01', 'tienda_02'],
  };

  it('speaks Spanish by default and English by setting; names job, service, error and stores', () => {
    const es = jobFailureMail(failure, { environment: 'production', throttleMs: 60 * MIN, nowMs: T0 });
    expect(es.subject).toBe('[Fluxion] el trabajo inventario falló por completo: Kafka inaccesible (SERVICE_UNAVAILABLE)');
    expect(es.text).toContain('El trabajo inventario falló por completo');
    expect(es.text).toMatch(/^tiendas no publicadas: +tienda_01, tienda_02$/m);
    expect(es.text).toContain(kafkaDown.message);
    expect(es.text).toContain('2026-12-03 06:00:00 America/Caracas');
    expect(es).toMatchObject({ kind: 'JOB_FAILED', key: 'inventario/kafka/SERVICE_UNAVAILABLE' });
    const en = jobFailureMail(failure, {
      locale: 'en',
      environment: 'local',
      throttleMs: 60 * MIN,
      nowMs: T0,
      heldBack: { count: 3, sinceMs: T0 - 50 * MIN },
    });
    expect(en.subject).toBe('[Fluxion local] job inventario failed as a whole: Kafka unreachable (SERVICE_UNAVAILABLE)');
    expect(en.text).toContain(
      '3 more failure(s) of this job for the same cause were not mailed since 2026-12-03 05:10:00 America/Caracas',
    );
  });
});

describe('the throttle across runs', () => {
  const failure = jobFailureOf('inventario', kafkaDown)!;

  it('one mail per key per interval, whichever memory answers; the next says how many were held back', async () => {
    const pg = memoryOf('postgres');
    const file = fileThrottleMemory(join(dir, 'a.json'));
    let now = T0;
    const mailer = fakeMailer();
    // Each run is a new process: a new createJobAlerts, remembering only through the memories.
    const run = (memories: ThrottleMemory[]) =>
      createJobAlerts({ mailer: async () => mailer, memories, logger, throttleMs: 60 * MIN, now: () => now }).failed(failure);
    expect(await run([pg, file])).toBe('sent');
    now += 30 * MIN;
    expect(await run([pg, file])).toBe('held-back');
    // PostgreSQL is down now (or is the failure): the file still knows.
    now += 10 * MIN;
    expect(await run([memoryOf('postgres', true), file])).toBe('held-back');
    expect(JSON.parse(readFileSync(join(dir, 'a.json'), 'utf8'))['inventario/kafka/SERVICE_UNAVAILABLE']).toEqual({
      lastSentMs: T0,
      heldBack: 2,
      heldBackSinceMs: T0 + 30 * MIN,
    });
    // The file is lost (a new container): PostgreSQL still knows, though it missed one count.
    now += 5 * MIN;
    expect(await run([pg, fileThrottleMemory(join(dir, 'new.json'))])).toBe('held-back');
    now = T0 + 61 * MIN;
    expect(await run([pg, file])).toBe('sent');
    expect(mailer.sent).toHaveLength(2);
    expect(mailer.sent[1]!.text).toMatch(/^[23] falla\(s\) más de este trabajo/m);
    // Another cause of the same job is not held back by this one.
    expect(
      await run([pg, file]).then(() =>
        createJobAlerts({ mailer: async () => mailer, memories: [pg, file], logger, throttleMs: 60 * MIN, now: () => now }).failed({
          ...failure,
          service: 'registry',
        }),
      ),
    ).toBe('sent');
  });

  it('a mail SendGrid did not take is not remembered: the next failure mails again', async () => {
    const pg = memoryOf('postgres');
    const mailer = fakeMailer([new Error('SendGrid answered HTTP 503')]);
    const alerts = createJobAlerts({ mailer: async () => mailer, memories: [pg], logger, throttleMs: 60 * MIN, now: () => T0 });
    expect(await alerts.failed(failure)).toBe('not-delivered');
    expect(pg.entries.size).toBe(0);
    expect(await alerts.failed(failure)).toBe('sent');
  });

  it('with every memory down it still mails (too many mails rather than none), and never throws', async () => {
    const mailer = fakeMailer();
    // A state file whose directory is a file: it can be neither read nor written.
    const notADir = join(dir, 'not-a-dir');
    writeFileSync(notADir, 'x');
    const alerts = createJobAlerts({
      mailer: async () => mailer,
      memories: [memoryOf('postgres', true), fileThrottleMemory(join(notADir, 'x.json'))],
      logger,
      throttleMs: 60 * MIN,
      now: () => T0,
    });
    expect(await alerts.failed(failure)).toBe('sent');
    expect(await alerts.failed(failure)).toBe('sent');
    const broken = createJobAlerts({
      mailer: async () => {
        throw new Error('no sender');
      },
      memories: [],
      logger,
      throttleMs: MIN,
    });
    expect(await broken.failed(failure)).toBe('not-delivered');
  });

  it("withFailureMail rethrows the job's own error and returns its own result", async () => {
    const mailer = fakeMailer();
    const alerts = createJobAlerts({ mailer: async () => mailer, memories: [memoryOf('m')], logger, throttleMs: 60 * MIN, now: () => T0 });
    await expect(
      withFailureMail(alerts, 'abc', async () => {
        throw kafkaDown;
      }),
    ).rejects.toBe(kafkaDown);
    await expect(
      withFailureMail(alerts, 'abc', async () => {
        throw new UsageError('bad');
      }),
    ).rejects.toThrow('bad');
    expect(
      await withFailureMail(
        alerts,
        'ventas',
        async () => 42,
        () => ({ ...failure, job: 'ventas' }),
      ),
    ).toBe(42);
    expect(mailer.sent.map((m) => m.key)).toEqual(['abc/kafka/SERVICE_UNAVAILABLE', 'ventas/kafka/SERVICE_UNAVAILABLE']);
  });
});

describe('the scheduler mails a run that fails as a whole', () => {
  const job = (name: ScheduledJob['name']): ScheduledJob => ({
    name,
    cron: '0 4 * * *',
    timezone: 'America/Caracas',
    window: null,
    enabled: true,
    monitor: { slug: `etl-${name}`, schedule: '0 4 * * *', timezone: 'America/Caracas', checkinMarginMinutes: 5, maxRuntimeMinutes: 30 },
  });

  it('a thrown error or an outcome naming a failure mails; a store failure or an aborted run does not', async () => {
    const failed: JobFailure[] = [];
    const alerts = {
      failed: async (f: JobFailure) => {
        failed.push(f);
        return 'sent' as const;
      },
    };
    const outcomes: Record<string, () => Promise<{ ok: boolean; summary: string; failure?: JobFailure | null }>> = {
      abc: async () => {
        throw new AbcRecalcError('ABC recalculation failed: PostgreSQL is not reachable', { service: 'postgres' });
      },
      inventario: async () => ({
        ok: false,
        summary: '0 of 1 stores OK',
        failure: jobFailureOfOutcomes('inventario', [
          {
            ubicacionId: 'tienda_01',
            status: 'FAILED',
            errorClass: 'SERVICE_UNAVAILABLE',
            errorMessage: kafkaDown.message,
            errorService: kafkaDown.service,
          },
        ]),
      }),
      ventas: async () => ({ ok: false, summary: '1 of 2 stores OK, 1 FAILED', failure: null }),
    };
    let aborted: AbortSignal | undefined;
    const run = (name: string, signal: AbortSignal) => {
      if (name !== 'ventas-recovery') return outcomes[name]!();
      aborted = signal;
      // Stopped by the scheduler: it throws its abort reason, as the extractors do.
      return new Promise<never>((_, reject) => {
        if (signal.aborted) reject(signal.reason);
        else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    };
    const scheduler = createScheduler({
      jobs: [job('abc'), job('inventario'), job('ventas'), job('ventas-recovery')],
      run,
      checkins: createCheckins({ logger }),
      alerts,
      logger,
    });
    const abc = await scheduler.runNow('abc');
    expect(abc).toMatchObject({ ok: false, aborted: false });
    expect(abc).not.toHaveProperty('failure');
    await scheduler.runNow('inventario');
    await scheduler.runNow('ventas');
    const recovery = scheduler.runNow('ventas-recovery');
    await scheduler.stop();
    expect(await recovery).toMatchObject({ ok: false, aborted: true });
    expect(aborted?.aborted).toBe(true);
    expect(failed.map((f) => `${f.job}/${f.service}/${f.errorClass}`)).toEqual([
      'abc/postgres/ABC_RECALC',
      'inventario/kafka/SERVICE_UNAVAILABLE',
    ]);
  });
});
