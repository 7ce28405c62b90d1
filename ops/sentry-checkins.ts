/**
 * Sentry cron check-ins around a job run: `in_progress` when it starts (carrying the
 * monitor's config, so Sentry creates or updates the monitor: schedule, time zone, margin,
 * max runtime), then `ok` or `error` with the duration, under the same check-in id.
 *
 * Without a DSN every call is a no-op, so commands never need to ask "is Sentry on?".
 * A check-in that cannot be sent is logged and forgotten: monitoring never fails a job.
 *
 * SENTRY_DSN (unset: check-ins off; holds a key, never logged whole) and SENTRY_ENVIRONMENT
 * are declared in core/config/environment.ts; commands pass `config.sentry`.
 */
import { errorMessage } from '../core/errors.ts';
import { CORE_ENV_VARS, type EnvVarSpec } from '../core/config/environment.ts';
import type { Logger } from '../core/logger.ts';
import { DEFAULT_FLUSH_TIMEOUT_MS, describeDsn, initSentry, sentryOptionsFromEnv, type SentrySdk } from '../core/sentry.ts';

// The SDK loading, DSN checks and the one client per process live in core/sentry.ts (the
// notifier's error events share them); re-exported here so callers keep one import.
export { DEFAULT_FLUSH_TIMEOUT_MS, describeDsn, sentryOptionsFromEnv };

type Sentry = SentrySdk;

export const SENTRY_ENV_VARS: EnvVarSpec[] = CORE_ENV_VARS.filter((v) => v.name.startsWith('SENTRY_'));

/** One Sentry cron monitor, as the schedule configuration describes it. */
export interface MonitorConfig {
  /** Sentry monitor slug (lower-case letters, digits, - and _). */
  slug: string;
  /** Five-field crontab the job runs on; Sentry expects a check-in at each of its times. */
  schedule: string;
  /** IANA time zone the crontab is read in. */
  timezone: string;
  /** Minutes after an expected time before Sentry calls the check-in missed. */
  checkinMarginMinutes: number;
  /** Minutes a run may stay in_progress before Sentry calls it timed out. */
  maxRuntimeMinutes: number;
}

export interface CheckinHandle {
  /** Sentry's check-in id; undefined when check-ins are off. */
  readonly checkInId: string | undefined;
  ok(): void;
  error(err?: unknown): void;
}

export interface Checkins {
  /** True when a DSN was given and check-ins are actually sent. */
  readonly enabled: boolean;
  start(monitor: MonitorConfig): Promise<CheckinHandle>;
  /** Waits until queued check-ins are sent (or `timeoutMs` passes); false on timeout. Call before a one-shot process exits. */
  flush(timeoutMs?: number): Promise<boolean>;
}

export interface CheckinsOptions {
  dsn?: string;
  environment?: string;
  logger: Logger;
}

const NOOP_HANDLE: CheckinHandle = Object.freeze({ checkInId: undefined, ok() {}, error() {} });

/**
 * `createCheckins({ dsn, environment, logger })`: with a DSN, check-ins go to Sentry;
 * without, start() returns a handle that does nothing (logged at debug).
 */
export function createCheckins(options: CheckinsOptions): Checkins {
  const logger = options.logger.child({ component: 'sentry-checkins' });
  const dsn = options.dsn?.trim() || undefined;

  if (!dsn) {
    logger.debug('SENTRY_DSN not set: cron check-ins are off');
    return {
      enabled: false,
      async start(monitor) {
        logger.debug({ monitor: monitor.slug }, 'check-in skipped (no DSN)');
        return NOOP_HANDLE;
      },
      async flush() {
        return true;
      },
    };
  }

  const ready = initSentry(dsn, options.environment, logger);
  logger.info({ sentry: describeDsn(dsn), environment: options.environment }, 'Sentry cron check-ins on');

  function send(
    Sentry: Sentry,
    monitor: MonitorConfig,
    checkIn: Parameters<Sentry['captureCheckIn']>[0],
    config?: Parameters<Sentry['captureCheckIn']>[1],
  ): string | undefined {
    try {
      return Sentry.captureCheckIn(checkIn, config);
    } catch (err) {
      logger.warn({ monitor: monitor.slug, status: checkIn.status, err }, 'could not send the check-in; the job goes on');
      return undefined;
    }
  }

  return {
    enabled: true,

    async start(monitor) {
      const Sentry = await ready;
      const startedAt = performance.now();
      const checkInId = send(
        Sentry,
        monitor,
        { monitorSlug: monitor.slug, status: 'in_progress' },
        {
          schedule: { type: 'crontab', value: monitor.schedule },
          timezone: monitor.timezone,
          checkinMargin: monitor.checkinMarginMinutes,
          maxRuntime: monitor.maxRuntimeMinutes,
        },
      );
      logger.debug({ monitor: monitor.slug, checkInId }, 'check-in in_progress');
      let finished = false;
      const finish = (status: 'ok' | 'error', err?: unknown) => {
        if (finished) {
          logger.warn({ monitor: monitor.slug, checkInId, status }, 'check-in already finished; ignoring the second status');
          return;
        }
        finished = true;
        if (checkInId === undefined) return;
        const duration = (performance.now() - startedAt) / 1000;
        send(Sentry, monitor, { monitorSlug: monitor.slug, status, checkInId, duration });
        logger.debug(
          { monitor: monitor.slug, checkInId, status, durationS: duration, ...(err === undefined ? {} : { reason: errorMessage(err) }) },
          `check-in ${status}`,
        );
      };
      return {
        checkInId,
        ok: () => finish('ok'),
        error: (err?: unknown) => finish('error', err),
      };
    },

    async flush(timeoutMs = DEFAULT_FLUSH_TIMEOUT_MS) {
      const Sentry = await ready;
      const done = await Sentry.flush(timeoutMs);
      if (!done) logger.warn({ timeoutMs }, 'Sentry flush timed out: some check-ins may not have been sent');
      return done;
    },
  };
}

export interface WithCheckinOptions<T> {
  /**
   * Whether a result that did not throw is a success. Commands that report failures in their
   * result instead of throwing (a store failed: exit code 1) say so here; default: always ok.
   */
  isOk?: (result: T) => boolean;
}

/**
 * Wraps one run of `fn` in check-ins: in_progress, then ok, or error when `fn` throws (the
 * error is rethrown) or `isOk` says no. It does not flush: a one-shot command calls
 * `checkins.flush()` once before it exits.
 */
export async function withCheckin<T>(
  checkins: Checkins,
  monitor: MonitorConfig,
  fn: () => Promise<T>,
  options: WithCheckinOptions<T> = {},
): Promise<T> {
  const handle = await checkins.start(monitor);
  let result: T;
  try {
    result = await fn();
  } catch (err) {
    handle.error(err);
    throw err;
  }
  if (options.isOk && !options.isOk(result)) handle.error();
  else handle.ok();
  return result;
}
