/**
 * The one Sentry client of a process, shared by the cron check-ins (ops/sentry-checkins.ts)
 * and the error events of long-running components (the notifier's failed runs).
 *
 * - The SDK is loaded only when a DSN is set: it adds about 55 MB to a process that never
 *   uses it.
 * - The DSN is checked here (Sentry itself would only print a console warning and stay
 *   silent) and never logged whole: it holds the project's key.
 * - Without a DSN, `createSentryEvents` returns a reporter whose calls do nothing, so callers
 *   never ask "is Sentry on?". An event that cannot be sent is logged and forgotten: error
 *   reporting never fails the work it reports on.
 *
 * SENTRY_DSN and SENTRY_ENVIRONMENT are declared with the other shared variables in
 * core/config/environment.ts; commands read them from their configuration (`config.sentry`).
 */
import type * as SentryModule from '@sentry/node';
import { sentryFromEnv } from './config/environment.ts';
import { ConfigError, errorMessage } from './errors.ts';
import type { Logger } from './logger.ts';

export type SentrySdk = typeof SentryModule;

let sentryModule: Promise<SentrySdk> | undefined;
/** Imports @sentry/node once per process, on first use. */
export const loadSentry = (): Promise<SentrySdk> => (sentryModule ??= import('@sentry/node'));

export const DEFAULT_FLUSH_TIMEOUT_MS = 5_000;

export interface SentryOptions {
  dsn?: string;
  environment?: string;
  logger: Logger;
}

/** What a log line may say about a DSN: its host and project, never its key. */
export function describeDsn(dsn: string): string {
  try {
    const url = new URL(dsn);
    return `${url.protocol}//${url.host}${url.pathname}`;
  } catch {
    return '(unparseable DSN)';
  }
}

/** Checks the DSN's shape; a ConfigError naming SENTRY_DSN (never its value) when it is wrong. */
export function validateDsn(dsn: string): void {
  let url: URL;
  try {
    url = new URL(dsn);
  } catch {
    throw new ConfigError(['SENTRY_DSN=(value hidden): is not a URL (expected https://<key>@<host>/<project id>)']);
  }
  const problems: string[] = [];
  if (url.protocol !== 'https:' && url.protocol !== 'http:') problems.push('must be an http(s) URL');
  if (!url.username) problems.push('has no public key (the part before @)');
  if (!/^\/(.*\/)?\d+$/.test(url.pathname)) problems.push('must end in the numeric project id');
  if (problems.length > 0) {
    throw new ConfigError(problems.map((p) => `SENTRY_DSN=(value hidden, host ${url.host}): ${p}`));
  }
}

/**
 * Sentry is one client per process. The SDK is set up for check-ins and captured events
 * only, with every default integration off: no patching of http/fetch/console (which would
 * also instrument our own HTTP servers and the tests' fake Sentry), no global
 * uncaught-exception handlers (the CLI owns exit codes), no ESM loader hooks and no
 * OpenTelemetry (no tracing here). If some other module initialised Sentry first, its
 * client is reused.
 */
export function ensureSentryClient(Sentry: SentrySdk, dsn: string, environment: string | undefined, logger: Logger): void {
  const existing = Sentry.getClient();
  if (existing) {
    const existingDsn = existing.getOptions().dsn;
    if (existingDsn !== undefined && existingDsn !== dsn) {
      logger.warn(
        { sentry: describeDsn(existingDsn) },
        'Sentry already initialised with another DSN in this process: check-ins and events go there',
      );
    }
    return;
  }
  Sentry.init({
    dsn,
    environment,
    defaultIntegrations: false,
    integrations: [],
    registerEsmLoaderHooks: false,
    skipOpenTelemetrySetup: true,
    sendClientReports: false,
  });
}

/**
 * Validates the DSN now (synchronously: a bad DSN stops a command before any I/O), then
 * loads the SDK and sets the process's client up; resolves to the SDK.
 */
export function initSentry(dsn: string, environment: string | undefined, logger: Logger): Promise<SentrySdk> {
  validateDsn(dsn);
  return loadSentry().then((Sentry) => {
    ensureSentryClient(Sentry, dsn, environment, logger);
    return Sentry;
  });
}

/** SENTRY_DSN and SENTRY_ENVIRONMENT (falling back to ETL_ENVIRONMENT), empty meaning unset, parsed by their schemas. */
export function sentryOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): { dsn?: string; environment: string } {
  return sentryFromEnv(env);
}

// ---- error events ----------------------------------------------------------------------------

/** One event for Sentry: a message, or an error when `error` is given. */
export interface SentryEventReport {
  message: string;
  level: 'fatal' | 'error' | 'warning' | 'info';
  /** Searchable in Sentry (ubicacion_id, job, run_id, ...). */
  tags: Record<string, string>;
  /** How Sentry groups events into issues; default: by stack trace (errors) or message. */
  fingerprint?: string[];
  extra?: Record<string, unknown>;
  error?: Error;
}

export interface SentryEvents {
  /** True when a DSN was given and events are actually sent. */
  readonly enabled: boolean;
  /** Queues one event; returns at once (the SDK loads and sends in the background). */
  capture(report: SentryEventReport): void;
  /** Waits until queued events are sent (or `timeoutMs` passes); false on timeout. */
  flush(timeoutMs?: number): Promise<boolean>;
}

/**
 * `createSentryEvents({ dsn, environment, logger })`: with a DSN, events go to Sentry;
 * without, capture() only logs at debug.
 */
export function createSentryEvents(options: SentryOptions): SentryEvents {
  const logger = options.logger.child({ component: 'sentry-events' });
  const dsn = options.dsn?.trim() || undefined;
  if (!dsn) {
    logger.debug('SENTRY_DSN not set: error events are off');
    return {
      enabled: false,
      capture(report) {
        logger.debug({ tags: report.tags }, `Sentry event skipped (no DSN): ${report.message}`);
      },
      async flush() {
        return true;
      },
    };
  }
  const ready = initSentry(dsn, options.environment, logger);
  // Reported once here; capture() and flush() then see the same rejection and stay quiet.
  ready.catch((err: unknown) => logger.warn({ reason: errorMessage(err) }, 'could not load the Sentry SDK: error events are off'));
  logger.info({ sentry: describeDsn(dsn), environment: options.environment }, 'Sentry error events on');
  const pending = new Set<Promise<void>>();

  return {
    enabled: true,
    capture(report) {
      const sent = ready
        .then(
          (Sentry) => {
            try {
              const context = {
                level: report.level,
                tags: report.tags,
                ...(report.fingerprint ? { fingerprint: report.fingerprint } : {}),
                ...(report.extra ? { extra: report.extra } : {}),
              };
              const eventId = report.error
                ? Sentry.captureException(report.error, context)
                : Sentry.captureMessage(report.message, context);
              logger.debug({ eventId, tags: report.tags }, 'Sentry event queued');
            } catch (err) {
              logger.warn({ tags: report.tags, reason: errorMessage(err) }, 'could not send the Sentry event; going on');
            }
          },
          () => undefined, // the SDK did not load: warned once above
        )
        .finally(() => pending.delete(sent));
      pending.add(sent);
    },
    async flush(timeoutMs = DEFAULT_FLUSH_TIMEOUT_MS) {
      await Promise.all(pending);
      const Sentry = await ready.catch(() => undefined);
      if (!Sentry) return false;
      const done = await Sentry.flush(timeoutMs);
      if (!done) logger.warn({ timeoutMs }, 'Sentry flush timed out: some events may not have been sent');
      return done;
    },
  };
}
