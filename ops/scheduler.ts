/**
 * The scheduler behind `fluxion schedule`: croner timers in each job's time zone, the
 * active window and the enabled flag honoured at every tick, never two runs of one job at
 * once, Sentry check-ins around every run, and a mail when a run fails as a whole
 * (ops/job-failure-mail.ts: it threw, or its outcome names such a failure).
 *
 *   const scheduler = createScheduler({ jobs, run, checkins, logger });
 *   scheduler.start();            // timers on
 *   ...
 *   await scheduler.stop();       // timers off, running jobs aborted and awaited
 *   await checkins.flush();
 *
 * `tick(job)` is exactly what a timer does, so tests (and a clock injected as `now`) drive the
 * scheduler without waiting for real time; `runNow(job)` is a manual run (control API).
 */
import { randomUUID } from 'node:crypto';
import { Cron } from 'croner';
import { ConfigError, FluxionError, UsageError, errorMessage, type FluxionErrorOptions } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { jobFailureOf, type JobAlerts, type JobFailure } from './job-failure-mail.ts';
import { isInWindow, type ScheduledJob, type ScheduledJobName } from './schedule-config.ts';
import type { Checkins } from './sentry-checkins.ts';

/** The outcome of one run as the job's code reports it (the same code the CLI runs). */
export interface JobOutcome {
  ok: boolean;
  summary: string;
  /** Set when the run failed as a whole without throwing (its stores could not be published): mailed. */
  failure?: JobFailure | null;
}

/** Runs one job; must stop promptly when `signal` aborts. */
export type RunJob = (job: ScheduledJobName, signal: AbortSignal) => Promise<JobOutcome>;

export type RunTrigger = 'schedule' | 'manual';

export interface RunResult extends JobOutcome {
  job: ScheduledJobName;
  runId: string;
  trigger: RunTrigger;
  startedAt: Date;
  durationMs: number;
  /** What `run` threw, when it threw (then ok is false and summary is its message). */
  error?: unknown;
  /** True when the run was aborted by `stop()`. */
  aborted: boolean;
}

export type SkipReason = 'disabled' | 'outside-window' | 'overlap' | 'stopped';

export type TickOutcome = { action: 'started'; runId: string; done: Promise<RunResult> } | { action: 'skipped'; reason: SkipReason };

export interface JobStatus {
  job: ScheduledJobName;
  enabled: boolean;
  cron: string;
  timezone: string;
  window: ScheduledJob['window'];
  running: { runId: string; trigger: RunTrigger; startedAt: Date; runningForMs: number } | null;
  /** Next tick of the cron (whether or not it will fall in the window); null when disabled. */
  nextTick: Date | null;
  last: Omit<RunResult, 'error'> | null;
}

export interface Scheduler {
  /** Sets a timer for every enabled job. Idempotent. */
  start(): void;
  /** What a timer does at a tick: run the job unless disabled, outside its window, or still running. */
  tick(job: ScheduledJobName): TickOutcome;
  /** Runs the job now, ignoring its window; refuses a disabled job or one already running. */
  runNow(job: ScheduledJobName): Promise<RunResult>;
  /** Stops the timers, aborts running jobs and waits for them (at most `timeoutMs`, if given). */
  stop(options?: { timeoutMs?: number }): Promise<void>;
  status(): JobStatus[];
}

export interface SchedulerDeps {
  jobs: ScheduledJob[];
  run: RunJob;
  checkins: Checkins;
  /** Mails a run that fails as a whole (throttled); none: only Sentry hears of it. */
  alerts?: JobAlerts;
  logger: Logger;
  /** The clock for windows and durations; replaceable in tests. */
  now?: () => Date;
}

/** A manual run was asked for while the job is still running. */
export class JobAlreadyRunningError extends FluxionError {
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'JOB_RUNNING', retriable: true, ...options });
  }
}

/** A manual run was asked for a job the schedule disables. */
export class JobDisabledError extends FluxionError {
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'JOB_DISABLED', ...options });
  }
}

/** The scheduler is stopping or stopped; also the abort reason given to running jobs. */
export class SchedulerStoppedError extends FluxionError {
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'SCHEDULER_STOPPED', ...options });
  }
}

interface RunningRun {
  runId: string;
  trigger: RunTrigger;
  startedAt: Date;
  controller: AbortController;
  done: Promise<RunResult>;
}

export function createScheduler(deps: SchedulerDeps): Scheduler {
  const { run, checkins } = deps;
  const now = deps.now ?? (() => new Date());
  const logger = deps.logger.child({ component: 'scheduler' });

  // Required arguments checked before any timer is set.
  if (typeof run !== 'function') throw new UsageError('createScheduler: run must be a function');
  const jobs = new Map<ScheduledJobName, ScheduledJob>();
  for (const job of deps.jobs) {
    if (jobs.has(job.name)) throw new ConfigError([`job ${job.name}: listed twice`]);
    jobs.set(job.name, job);
  }

  const running = new Map<ScheduledJobName, RunningRun>();
  const last = new Map<ScheduledJobName, RunResult>();
  const timers = new Map<ScheduledJobName, Cron>();
  let stopped = false;
  let stopping: Promise<void> | undefined;

  function jobOf(name: ScheduledJobName): ScheduledJob {
    const job = jobs.get(name);
    if (!job) throw new UsageError(`unknown job ${JSON.stringify(name)} (scheduled: ${[...jobs.keys()].join(', ')})`);
    return job;
  }

  /** Marks the job running synchronously (so a second tick sees it at once), then runs it. */
  function launch(job: ScheduledJob, trigger: RunTrigger): RunningRun {
    const runId = randomUUID().slice(0, 8);
    const startedAt = now();
    const controller = new AbortController();
    const log = logger.child({ job: job.name, runId });
    const entry: RunningRun = { runId, trigger, startedAt, controller, done: undefined as unknown as Promise<RunResult> };
    running.set(job.name, entry);

    entry.done = (async (): Promise<RunResult> => {
      log.info({ trigger }, 'run started');
      let outcome: JobOutcome;
      let error: unknown;
      let handle: Awaited<ReturnType<Checkins['start']>> | undefined;
      try {
        handle = await checkins.start(job.monitor);
      } catch (err) {
        log.warn({ err }, 'check-in in_progress failed; running anyway');
      }
      try {
        outcome = await run(job.name, controller.signal);
      } catch (err) {
        error = err;
        outcome = { ok: false, summary: errorMessage(err) };
      }
      const durationMs = now().getTime() - startedAt.getTime();
      const aborted = controller.signal.aborted;
      try {
        if (outcome.ok) handle?.ok();
        else handle?.error(error ?? new Error(outcome.summary));
      } catch (err) {
        log.warn({ err }, 'check-in ok/error failed');
      }
      // An aborted run was stopped by us (shutdown), not failed by a service.
      const failure = aborted ? null : error !== undefined ? jobFailureOf(job.name, error) : (outcome.failure ?? null);
      if (failure && deps.alerts) await deps.alerts.failed(failure);
      const { failure: _mailed, ...reported } = outcome;
      const result: RunResult = {
        job: job.name,
        runId,
        trigger,
        startedAt,
        durationMs,
        ...reported,
        aborted,
        ...(error === undefined ? {} : { error }),
      };
      if (outcome.ok) log.info({ durationMs, summary: outcome.summary }, 'run succeeded');
      else log.error({ durationMs, summary: outcome.summary, aborted, ...(error === undefined ? {} : { err: error }) }, 'run failed');
      running.delete(job.name);
      last.set(job.name, result);
      return result;
    })();
    return entry;
  }

  function tick(name: ScheduledJobName): TickOutcome {
    const job = jobOf(name);
    if (stopped) return { action: 'skipped', reason: 'stopped' };
    if (!job.enabled) {
      logger.debug({ job: name }, 'tick skipped: job disabled');
      return { action: 'skipped', reason: 'disabled' };
    }
    const at = now();
    if (!isInWindow(job.window, at, job.timezone)) {
      logger.debug({ job: name, at: at.toISOString(), window: job.window }, 'tick skipped: outside the active window');
      return { action: 'skipped', reason: 'outside-window' };
    }
    const current = running.get(name);
    if (current) {
      logger.warn(
        { job: name, runId: current.runId, runningForMs: at.getTime() - current.startedAt.getTime() },
        'tick skipped: the previous run of this job is still going',
      );
      return { action: 'skipped', reason: 'overlap' };
    }
    const entry = launch(job, 'schedule');
    return { action: 'started', runId: entry.runId, done: entry.done };
  }

  return {
    start() {
      if (stopped) throw new SchedulerStoppedError('the scheduler was stopped; create a new one');
      for (const job of jobs.values()) {
        if (!job.enabled) {
          logger.info({ job: job.name }, 'job disabled: no timer');
          continue;
        }
        if (timers.has(job.name)) continue;
        const timer = new Cron(
          job.cron,
          {
            timezone: job.timezone,
            // tick() does not throw for a known job; this is the last line of defence.
            catch: (err) => logger.error({ job: job.name, err }, 'tick failed'),
          },
          () => {
            tick(job.name);
          },
        );
        timers.set(job.name, timer);
        logger.info(
          { job: job.name, cron: job.cron, timezone: job.timezone, window: job.window, nextTick: timer.nextRun()?.toISOString() },
          'job scheduled',
        );
      }
    },

    tick,

    async runNow(name) {
      const job = jobOf(name);
      if (stopped) throw new SchedulerStoppedError(`job ${name}: the scheduler is stopping`, { context: { job: name } });
      if (!job.enabled) throw new JobDisabledError(`job ${name} is disabled in the schedule`, { context: { job: name } });
      const current = running.get(name);
      if (current) {
        const runningForMs = now().getTime() - current.startedAt.getTime();
        throw new JobAlreadyRunningError(
          `job ${name} is already running (run ${current.runId}, for ${Math.round(runningForMs / 1000)} s)`,
          {
            context: { job: name, runId: current.runId, runningForMs },
          },
        );
      }
      return launch(job, 'manual').done;
    },

    stop(options = {}) {
      if (stopping) return stopping;
      stopped = true;
      for (const timer of timers.values()) timer.stop();
      timers.clear();
      const runs = [...running.entries()];
      if (runs.length > 0) logger.info({ jobs: runs.map(([job, r]) => ({ job, runId: r.runId })) }, 'stopping: aborting running jobs');
      for (const [job, r] of runs)
        r.controller.abort(
          new SchedulerStoppedError(`job ${job}: aborted, the scheduler is stopping`, { context: { job, runId: r.runId } }),
        );
      const settled = Promise.all(runs.map(([, r]) => r.done)).then(() => undefined);
      stopping = (async () => {
        if (options.timeoutMs === undefined) return settled;
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), options.timeoutMs);
        });
        const first = await Promise.race([settled, timedOut]);
        clearTimeout(timer);
        if (first === 'timeout') {
          logger.warn(
            { timeoutMs: options.timeoutMs, jobs: [...running.keys()] },
            'stopped without waiting longer for runs that ignore their abort signal',
          );
        }
      })().then(() => logger.info('scheduler stopped'));
      return stopping;
    },

    status() {
      const at = now();
      return [...jobs.values()].map((job): JobStatus => {
        const r = running.get(job.name);
        const l = last.get(job.name);
        let nextTick: Date | null = null;
        if (job.enabled && !stopped) {
          const pattern = new Cron(job.cron, { timezone: job.timezone, paused: true });
          nextTick = pattern.nextRun(at);
          pattern.stop();
        }
        let lastView: JobStatus['last'] = null;
        if (l) {
          const { error: _omitted, ...rest } = l;
          lastView = rest;
        }
        return {
          job: job.name,
          enabled: job.enabled,
          cron: job.cron,
          timezone: job.timezone,
          window: job.window,
          running: r
            ? { runId: r.runId, trigger: r.trigger, startedAt: r.startedAt, runningForMs: at.getTime() - r.startedAt.getTime() }
            : null,
          nextTick,
          last: lastView,
        };
      });
    },
  };
}
