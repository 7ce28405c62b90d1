/**
 * The scheduler driven by its own tick() and an injected clock: no test waits for a cron
 * time, except the one that proves start() wires croner (a per-second cron, under 3 s).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { Logger } from '../../core/logger.ts';
import type { ScheduledJob, ScheduledJobName } from '../../ops/schedule-config.ts';
import { loadScheduleFile } from '../../ops/schedule-config.ts';
import type { CheckinHandle, Checkins, MonitorConfig } from '../../ops/sentry-checkins.ts';
import {
  createScheduler,
  JobAlreadyRunningError,
  JobDisabledError,
  SchedulerStoppedError,
  type JobOutcome,
  type Scheduler,
} from '../../ops/scheduler.ts';

/** A pino logger whose lines land in an array. */
function captureLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { logger, lines };
}

/** Check-ins recorded in memory: [slug, status] in order. */
function fakeCheckins(): Checkins & { events: Array<[string, string]> } {
  const events: Array<[string, string]> = [];
  return {
    events,
    enabled: true,
    async start(monitor: MonitorConfig): Promise<CheckinHandle> {
      events.push([monitor.slug, 'in_progress']);
      return {
        checkInId: `id-${events.length}`,
        ok: () => void events.push([monitor.slug, 'ok']),
        error: () => void events.push([monitor.slug, 'error']),
      };
    },
    async flush() {
      return true;
    },
  };
}

/** A run the test finishes by hand; it also ends (rejecting) when its signal aborts. */
function controllableRun() {
  const calls: ScheduledJobName[] = [];
  const pending: Array<{ job: ScheduledJobName; finish: (o: JobOutcome) => void; fail: (e: unknown) => void; signal: AbortSignal }> = [];
  const run = (job: ScheduledJobName, signal: AbortSignal) =>
    new Promise<JobOutcome>((resolve, reject) => {
      calls.push(job);
      pending.push({ job, finish: resolve, fail: reject, signal });
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
  return { run, calls, pending };
}

/** Lets pending callbacks run until `cond` holds (no timers involved). */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setImmediate(r));
  if (!cond()) throw new Error('condition never held');
}

const caracas = (hhmm: string) => new Date(`2025-03-10T${hhmm}:00-04:00`);

function job(name: ScheduledJobName, extra: Partial<ScheduledJob> = {}): ScheduledJob {
  const cron = extra.cron ?? '0,30 6-21 * * *';
  return {
    name,
    cron,
    timezone: 'America/Caracas',
    window: { start: '06:00', end: '22:00' },
    enabled: true,
    monitor: { slug: `etl-${name}`, schedule: cron, timezone: 'America/Caracas', checkinMarginMinutes: 5, maxRuntimeMinutes: 25 },
    ...extra,
  };
}

let scheduler: Scheduler | undefined;
afterEach(async () => {
  await scheduler?.stop({ timeoutMs: 1000 });
  scheduler = undefined;
});

function setup(jobs: ScheduledJob[], at = caracas('10:00')) {
  const clock = { now: at };
  const { logger, lines } = captureLogger();
  const checkins = fakeCheckins();
  const r = controllableRun();
  scheduler = createScheduler({ jobs, run: r.run, checkins, logger, now: () => clock.now });
  return { scheduler, clock, lines, checkins, ...r };
}

describe('scheduler: no overlapping runs', () => {
  it('skips a tick while the previous run of the job is still going, logging at warn how long it has run', async () => {
    const t = setup([job('inventario')]);
    const first = t.scheduler.tick('inventario');
    expect(first.action).toBe('started');

    t.clock.now = caracas('10:30');
    expect(t.scheduler.tick('inventario')).toEqual({ action: 'skipped', reason: 'overlap' });
    const warn = t.lines.find((l) => l.level === 40);
    expect(warn).toMatchObject({ job: 'inventario', runningForMs: 30 * 60_000, msg: expect.stringMatching(/still going/) });
    expect(warn?.runId).toBe(first.action === 'started' ? first.runId : undefined);

    await until(() => t.pending.length === 1); // the run has checked in and is waiting on its work
    expect(t.calls).toEqual(['inventario']);
    t.pending[0]!.finish({ ok: true, summary: '16 stores' });
    const result = first.action === 'started' ? await first.done : undefined;
    expect(result).toMatchObject({
      job: 'inventario',
      ok: true,
      summary: '16 stores',
      durationMs: 30 * 60_000,
      trigger: 'schedule',
      aborted: false,
    });

    t.clock.now = caracas('11:00');
    expect(t.scheduler.tick('inventario').action).toBe('started');
    await until(() => t.calls.length === 2);
  });

  it('runs different jobs side by side', () => {
    const t = setup([job('inventario'), job('ventas', { cron: '0 6-21 * * *' })]);
    expect(t.scheduler.tick('inventario').action).toBe('started');
    expect(t.scheduler.tick('ventas').action).toBe('started');
    expect(t.scheduler.status().map((s) => [s.job, s.running?.runId !== undefined])).toEqual([
      ['inventario', true],
      ['ventas', true],
    ]);
  });

  it('runNow refuses a job that is running, with a typed error, and returns the result otherwise', async () => {
    const t = setup([job('ventas', { cron: '0 6-21 * * *' })]);
    const tick = t.scheduler.tick('ventas');
    t.clock.now = caracas('10:05');
    const refused = await t.scheduler.runNow('ventas').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(JobAlreadyRunningError);
    expect(refused).toMatchObject({ code: 'JOB_RUNNING', context: { job: 'ventas', runningForMs: 5 * 60_000 } });

    await until(() => t.pending.length === 1);
    t.pending[0]!.finish({ ok: true, summary: 'done' });
    if (tick.action === 'started') await tick.done;
    const manual = t.scheduler.runNow('ventas');
    await until(() => t.pending.length === 2);
    t.pending[1]!.finish({ ok: true, summary: 'manual done' });
    await expect(manual).resolves.toMatchObject({ ok: true, summary: 'manual done', trigger: 'manual' });
  });
});

describe('scheduler: window and enabled flag', () => {
  it('does nothing at a tick outside the active window, in the job time zone', async () => {
    const t = setup([job('inventario')], caracas('05:30'));
    expect(t.scheduler.tick('inventario')).toEqual({ action: 'skipped', reason: 'outside-window' });
    t.clock.now = caracas('22:00');
    expect(t.scheduler.tick('inventario')).toEqual({ action: 'skipped', reason: 'outside-window' });
    // A timer a few ms early for 22:00 is still the 22:00 tick.
    t.clock.now = new Date(caracas('22:00').getTime() - 3);
    expect(t.scheduler.tick('inventario')).toEqual({ action: 'skipped', reason: 'outside-window' });
    expect(t.calls).toEqual([]);
    expect(t.checkins.events).toEqual([]);

    // 06:00 Caracas is 10:00 UTC.
    t.clock.now = new Date('2025-03-10T10:00:00Z');
    expect(t.scheduler.tick('inventario').action).toBe('started');
    await until(() => t.calls.length > 0);
    expect(t.calls).toEqual(['inventario']);
  });

  it('runs a job without a window at any hour', () => {
    const t = setup([job('ventas-recovery', { cron: '0 3 * * *', window: null })], caracas('03:00'));
    expect(t.scheduler.tick('ventas-recovery').action).toBe('started');
  });

  it('never runs a disabled job: ticks skip it, runNow refuses it, start() sets no timer for it', async () => {
    const t = setup([job('productos-refresh', { cron: '* * * * * *', window: null, enabled: false })]);
    expect(t.scheduler.tick('productos-refresh')).toEqual({ action: 'skipped', reason: 'disabled' });
    await expect(t.scheduler.runNow('productos-refresh')).rejects.toBeInstanceOf(JobDisabledError);
    t.scheduler.start();
    expect(t.scheduler.status()[0]).toMatchObject({ job: 'productos-refresh', enabled: false, nextTick: null });
    await new Promise((r) => setTimeout(r, 1200)); // a per-second cron would have fired by now
    expect(t.calls).toEqual([]);
    expect(t.lines.some((l) => l.msg === 'job disabled: no timer')).toBe(true);
  });

  it('refuses an unknown job name', () => {
    const t = setup([job('inventario')]);
    expect(() => t.scheduler.tick('abc')).toThrow(/unknown job "abc"/);
  });
});

describe('scheduler: check-ins', () => {
  it('checks in in_progress then ok, or error when the run reports ok:false or throws', async () => {
    const t = setup([job('inventario'), job('ventas', { cron: '0 6-21 * * *' }), job('abc', { cron: '0 4 * * *', window: null })]);
    const a = t.scheduler.runNow('inventario');
    const b = t.scheduler.runNow('ventas');
    const c = t.scheduler.runNow('abc');
    await until(() => t.pending.length === 3);
    t.pending[0]!.finish({ ok: true, summary: 'all stores' });
    t.pending[1]!.finish({ ok: false, summary: '1 of 12 stores failed' });
    t.pending[2]!.fail(new Error('database unreachable'));
    await expect(a).resolves.toMatchObject({ ok: true });
    await expect(b).resolves.toMatchObject({ ok: false, summary: '1 of 12 stores failed' });
    const rc = await c;
    expect(rc).toMatchObject({ ok: false, summary: 'database unreachable' });
    expect(rc.error).toBeInstanceOf(Error);

    const bySlug = (slug: string) => t.checkins.events.filter(([s]) => s === slug).map(([, status]) => status);
    expect(bySlug('etl-inventario')).toEqual(['in_progress', 'ok']);
    expect(bySlug('etl-ventas')).toEqual(['in_progress', 'error']);
    expect(bySlug('etl-abc')).toEqual(['in_progress', 'error']);

    const failed = t.lines.find((l) => l.msg === 'run failed' && l.job === 'abc');
    expect(failed).toMatchObject({
      level: 50,
      component: 'scheduler',
      runId: rc.runId,
      durationMs: 0,
      err: { message: 'database unreachable' },
    });
  });
});

describe('scheduler: stop()', () => {
  it('aborts running jobs through their signal and waits for them to settle', async () => {
    const t = setup([job('inventario'), job('ventas', { cron: '0 6-21 * * *' })]);
    const a = t.scheduler.tick('inventario');
    const b = t.scheduler.tick('ventas');
    await until(() => t.pending.length === 2);
    const s = t.scheduler;
    await s.stop();
    expect(t.pending.map((p) => p.signal.aborted)).toEqual([true, true]);
    expect(t.pending[0]!.signal.reason).toBeInstanceOf(SchedulerStoppedError);
    // Both runs have settled by the time stop() resolved.
    expect(s.status().every((j) => j.running === null)).toBe(true);
    for (const tick of [a, b]) {
      if (tick.action !== 'started') throw new Error('expected a start');
      await expect(tick.done).resolves.toMatchObject({ ok: false, aborted: true });
    }
    expect(t.checkins.events.map(([, st]) => st)).toEqual(['in_progress', 'in_progress', 'error', 'error']);
    expect(s.tick('inventario')).toEqual({ action: 'skipped', reason: 'stopped' });
    await expect(s.runNow('inventario')).rejects.toBeInstanceOf(SchedulerStoppedError);
  });

  it('stops waiting after timeoutMs for a run that ignores its signal', async () => {
    const { logger, lines } = captureLogger();
    scheduler = createScheduler({
      jobs: [job('abc', { window: null })],
      run: () => new Promise(() => {}),
      checkins: fakeCheckins(),
      logger,
    });
    scheduler.tick('abc');
    const started = Date.now();
    await scheduler.stop({ timeoutMs: 50 });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(lines.some((l) => l.level === 40 && /ignore their abort signal/.test(String(l.msg)))).toBe(true);
  });
});

describe('scheduler: croner timers', () => {
  it('start() ticks each enabled job on its cron (a per-second cron here)', async () => {
    const t = setup([job('inventario', { cron: '* * * * * *', window: null })]);
    t.scheduler.start();
    expect(t.scheduler.status()[0]!.nextTick).toBeInstanceOf(Date);
    const deadline = Date.now() + 3000;
    while (t.calls.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    expect(t.calls).toEqual(['inventario']);
    await t.scheduler.stop();
    expect(t.checkins.events).toEqual([
      ['etl-inventario', 'in_progress'],
      ['etl-inventario', 'error'],
    ]);
  });

  it('accepts the checked-in schedule', () => {
    const { logger } = captureLogger();
    const s = createScheduler({
      jobs: loadScheduleFile().jobs,
      run: async () => ({ ok: true, summary: '' }),
      checkins: fakeCheckins(),
      logger,
      now: () => caracas('10:10'),
    });
    const status = s.status();
    expect(status.find((j) => j.job === 'inventario')?.nextTick).toEqual(caracas('10:30'));
    expect(status.find((j) => j.job === 'ventas-recovery')?.nextTick).toEqual(new Date('2025-03-11T03:00:00-04:00'));
    expect(status.find((j) => j.job === 'abc')?.nextTick).toEqual(new Date('2025-03-11T04:00:00-04:00'));
    expect(status.find((j) => j.job === 'productos-refresh')?.nextTick).toEqual(caracas('12:15'));
  });
});
