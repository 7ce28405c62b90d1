/**
 * The operations settings (docs/configuration.md is generated from these schemas): the
 * dashboard and its control API, the author of operator commands, and where a failed job's
 * mail throttle is kept. cli/config.ts composes this section with the others.
 */
import { z } from 'zod';
import { defineSection } from '../core/config/compose.ts';
import { secret, whenUnset } from '../core/config/env-var.ts';
import { projectPath } from '../core/paths.ts';

export const OPS_ENV = {
  FLUXION_OPERATOR: whenUnset(
    z
      .string()
      .trim()
      .min(1, 'must name a person (or be unset: the OS user)')
      .optional()
      .describe('who an operator command records as its author (`fluxion alertas descartar`); `--por` overrides it'),
    'the OS user',
  ),
  FLUXION_JOB_ALERT_STATE_FILE: z
    .string()
    .trim()
    .min(1)
    .default('.cache/job-alerts.json')
    .describe(
      'a job that fails as a whole (Kafka, the registry or PostgreSQL unreachable) mails at most once per job and error class per ' +
        'FLUXION_NOTIFY_THROTTLE_MINUTES; this file keeps that throttle when PostgreSQL is unreachable too ' +
        '(give a cron container a volume for it; [operations.md](operations.md))',
    ),
  FLUXION_DASHBOARD_HOST: z
    .string()
    .trim()
    .min(1)
    .default('127.0.0.1')
    .describe('dashboard: address the HTTP server binds (`0.0.0.0` in a container, behind its port mapping)'),
  FLUXION_DASHBOARD_PORT: z.coerce
    .number()
    .int()
    .min(1, 'must be a port 1-65535')
    .max(65535, 'must be a port 1-65535')
    .default(8080)
    .describe('dashboard: port of the page, `/api/*`, `/metrics`, `/healthz` and the control API (`--port` overrides it)'),
  FLUXION_DASHBOARD_SAMPLE_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(3600)
    .default(30)
    .describe('dashboard: seconds between two readings of offsets, lag and freshness (the page refreshes as often, at least every 5 s)'),
  FLUXION_DASHBOARD_HISTORY_HOURS: z.coerce
    .number()
    .gt(0)
    .max(168, 'must be at most 168 hours (a week)')
    .default(6)
    .describe('dashboard: hours of lag history kept in memory for the chart'),
  FLUXION_SYNC_TOKEN: secret(
    z
      .string()
      .trim()
      .min(16, 'must be at least 16 characters (e.g. `openssl rand -hex 32`)')
      .optional()
      .describe(
        'control API: bearer token of `POST /etl/sync` and `GET /etl/runs/:id` (at least 16 characters); unset: the control API is off',
      ),
  ),
};

/** `fluxion dashboard` (ops/dashboard/server.ts) and its control API (ops/control-api.ts). */
export interface DashboardConfig {
  host: string;
  port: number;
  sampleMs: number;
  historyMs: number;
  /** FLUXION_SYNC_TOKEN, or undefined: the control API is off. Not enumerable: never in a log or a dump of the config. */
  readonly syncToken?: string;
}

declare module '../core/config/environment.ts' {
  interface ComponentConfigs {
    dashboard: DashboardConfig;
    /** FLUXION_OPERATOR, or undefined: operator commands fall back to the OS user. */
    operator?: string;
  }
  interface NotifySettings {
    /** Where a failed job's mail throttle is kept when PostgreSQL cannot be reached (FLUXION_JOB_ALERT_STATE_FILE, resolved). */
    jobAlertStateFile: string;
  }
}

export const opsSection = defineSection(OPS_ENV, (e) => {
  const dashboard: DashboardConfig = {
    host: e.FLUXION_DASHBOARD_HOST,
    port: e.FLUXION_DASHBOARD_PORT,
    sampleMs: e.FLUXION_DASHBOARD_SAMPLE_SECONDS * 1000,
    historyMs: e.FLUXION_DASHBOARD_HISTORY_HOURS * 3_600_000,
  };
  Object.defineProperty(dashboard, 'syncToken', { value: e.FLUXION_SYNC_TOKEN, enumerable: false });
  return { operator: e.FLUXION_OPERATOR, dashboard, notify: { jobAlertStateFile: projectPath(e.FLUXION_JOB_ALERT_STATE_FILE) } };
});
