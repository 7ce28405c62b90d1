/**
 * The schedule (docs/schedule.md) as configuration: `config/schedule.yaml`, validated at
 * load so that a typo stops `fluxion schedule` with a message naming the job and the field,
 * before any timer is set.
 *
 * Besides each field's own checks, a job's cron must never fire outside its active window:
 * such a tick would be skipped, and Sentry, which is given the cron as the monitor's
 * schedule, would report a missed check-in for it. So the window is a guard, and the cron
 * says exactly when runs happen.
 */
import { readFileSync } from 'node:fs';
import { Cron } from 'croner';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../core/errors.ts';
import { projectPath } from '../core/paths.ts';
import type { MonitorConfig } from './sentry-checkins.ts';

export const SCHEDULED_JOB_NAMES = ['inventario', 'ventas', 'ventas-recovery', 'abc', 'productos-refresh'] as const;
export type ScheduledJobName = (typeof SCHEDULED_JOB_NAMES)[number];

export const DEFAULT_SCHEDULE_FILE = 'config/schedule.yaml';

/** Local times of day during which ticks run: start inclusive, end exclusive (`end` < `start` crosses midnight). */
export interface ActiveWindow {
  start: string;
  end: string;
}

export interface ScheduledJob {
  name: ScheduledJobName;
  description?: string;
  /** Five-field cron expression, read in `timezone`. */
  cron: string;
  timezone: string;
  /** null: the job runs at every tick of its cron. */
  window: ActiveWindow | null;
  enabled: boolean;
  monitor: MonitorConfig;
}

export interface ScheduleConfig {
  jobs: ScheduledJob[];
}

const HH_MM = /^([01]\d|2[0-3]):[0-5]\d$/;

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const windowSchema = z
  .object({
    start: z.string().regex(HH_MM, 'must be a local time HH:MM (00:00-23:59)'),
    end: z.string().regex(HH_MM, 'must be a local time HH:MM (00:00-23:59)'),
  })
  .strict()
  .refine((w) => w.start !== w.end, { message: 'start and end are equal: use window: null for a job that runs all day', path: ['end'] });

const monitorSchema = z
  .object({
    // Sentry's slug rules: lower-case letters, digits, - and _, at most 50 characters.
    slug: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,49}$/, 'must be 1-50 lower-case letters, digits, - or _ (a Sentry monitor slug)'),
    checkin_margin: z.number().int().min(1, 'must be at least 1 minute').max(40_320),
    max_runtime: z.number().int().min(1, 'must be at least 1 minute').max(40_320),
  })
  .strict();

const jobSchema = z
  .object({
    description: z.string().min(1).optional(),
    cron: z.string().min(1),
    timezone: z.string().refine(isTimeZone, 'is not an IANA time zone (e.g. America/Caracas)'),
    window: windowSchema.nullable().default(null),
    enabled: z.boolean(),
    monitor: monitorSchema,
  })
  .strict()
  .superRefine((job, ctx) => {
    const fields = job.cron.trim().split(/\s+/);
    if (fields.length !== 5) {
      ctx.addIssue({
        code: 'custom',
        path: ['cron'],
        message: `must have 5 fields (minute hour day month weekday), got ${fields.length}: Sentry monitors read crontabs to the minute`,
      });
      return;
    }
    try {
      new Cron(job.cron, { timezone: job.timezone, paused: true, mode: '5-part' }).stop();
    } catch (err) {
      ctx.addIssue({ code: 'custom', path: ['cron'], message: `is not a valid cron expression: ${(err as Error).message}` });
      return;
    }
    // Only when the other fields are valid (zod still runs this after a failed refinement).
    if (job.window && HH_MM.test(job.window.start) && HH_MM.test(job.window.end) && isTimeZone(job.timezone)) {
      const outside = firstTickOutsideWindow(job.cron, job.timezone, job.window);
      if (outside) {
        ctx.addIssue({
          code: 'custom',
          path: ['cron'],
          message:
            `fires at ${outside} (${job.timezone}), outside the window ${job.window.start}-${job.window.end}: that tick would be ` +
            `skipped and Sentry would report it missed; limit the cron's hours to the window`,
        });
      }
    }
  });

const fileSchema = z.object({ jobs: z.record(z.string(), z.unknown()) }).strict();

/** Minutes since local midnight in `timezone`, of the whole minute nearest to `at`. */
export function localMinuteOfDay(at: Date, timezone: string): number {
  // Ticks land on whole minutes; a timer firing a few ms early or late must not move the
  // tick across a window edge, so the nearest whole minute is what counts.
  const rounded = new Date(Math.round(at.getTime() / 60_000) * 60_000);
  const parts = formatterFor(timezone).formatToParts(rounded);
  const hour = Number(parts.find((p) => p.type === 'hour')?.value);
  const minute = Number(parts.find((p) => p.type === 'minute')?.value);
  return hour * 60 + minute;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatterFor(timezone: string): Intl.DateTimeFormat {
  let f = formatters.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', { timeZone: timezone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(timezone, f);
  }
  return f;
}

function toMinutes(hhmm: string): number {
  const [h, m] = hhmm.split(':');
  return Number(h) * 60 + Number(m);
}

function formatMinutes(minutes: number): string {
  return `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
}

/** True when `at` (as a local time in `timezone`) is inside the window; always true without one. */
export function isInWindow(window: ActiveWindow | null, at: Date, timezone: string): boolean {
  if (!window) return true;
  const t = localMinuteOfDay(at, timezone);
  const start = toMinutes(window.start);
  const end = toMinutes(window.end);
  return start < end ? t >= start && t < end : t >= start || t < end;
}

/** The first local time (HH:MM) over a week at which the cron fires outside the window, if any. */
function firstTickOutsideWindow(cron: string, timezone: string, window: ActiveWindow): string | undefined {
  const job = new Cron(cron, { timezone, paused: true, mode: '5-part' });
  try {
    // A fixed reference week keeps the check deterministic; a week covers weekday fields.
    const from = new Date('2025-01-06T00:00:00Z');
    const until = from.getTime() + 8 * 24 * 3600_000;
    let at: Date | null = from;
    for (let i = 0; i < 20_000; i++) {
      at = job.nextRun(at);
      if (!at || at.getTime() > until) return undefined;
      if (!isInWindow(window, at, timezone)) return formatMinutes(localMinuteOfDay(at, timezone));
    }
    return undefined;
  } finally {
    job.stop();
  }
}

function describePath(path: PropertyKey[]): string {
  return path.map((p) => String(p)).join('.') || '(root)';
}

/** Validates the parsed YAML document; every problem is reported, each naming the job and the field. */
export function parseSchedule(doc: unknown, source: string): ScheduleConfig {
  const top = fileSchema.safeParse(doc);
  if (!top.success) {
    throw new ConfigError(top.error.issues.map((i) => `${source}: field ${describePath(i.path)}: ${i.message}`));
  }
  const problems: string[] = [];
  const jobs: ScheduledJob[] = [];
  const slugs = new Map<string, string>();
  const known = new Set<string>(SCHEDULED_JOB_NAMES);

  for (const [name, raw] of Object.entries(top.data.jobs)) {
    if (!known.has(name)) {
      problems.push(`${source}: job ${name}: unknown job (known: ${SCHEDULED_JOB_NAMES.join(', ')})`);
      continue;
    }
    const parsed = jobSchema.safeParse(raw);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        problems.push(`${source}: job ${name}: field ${describePath(issue.path)}: ${issue.message}`);
      }
      continue;
    }
    const j = parsed.data;
    const other = slugs.get(j.monitor.slug);
    if (other !== undefined) {
      problems.push(
        `${source}: job ${name}: field monitor.slug: "${j.monitor.slug}" is already the slug of job ${other} (one Sentry monitor per job)`,
      );
      continue;
    }
    slugs.set(j.monitor.slug, name);
    jobs.push({
      name: name as ScheduledJobName,
      ...(j.description === undefined ? {} : { description: j.description }),
      cron: j.cron.trim(),
      timezone: j.timezone,
      window: j.window,
      enabled: j.enabled,
      monitor: {
        slug: j.monitor.slug,
        schedule: j.cron.trim(),
        timezone: j.timezone,
        checkinMarginMinutes: j.monitor.checkin_margin,
        maxRuntimeMinutes: j.monitor.max_runtime,
      },
    });
  }
  for (const name of SCHEDULED_JOB_NAMES) {
    if (!(name in top.data.jobs)) problems.push(`${source}: job ${name}: missing (list every job; set enabled: false to turn one off)`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { jobs };
}

export function loadScheduleFile(path: string = projectPath(DEFAULT_SCHEDULE_FILE)): ScheduleConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new ConfigError([`cannot read the schedule ${path}: ${(cause as Error).message}`], { cause });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (cause) {
    throw new ConfigError([`${path} is not valid YAML: ${(cause as Error).message}`], { cause });
  }
  return parseSchedule(doc, path);
}

/** The job of that name, for one-shot commands that check in on the job's monitor. */
export function findJob(config: ScheduleConfig, name: ScheduledJobName): ScheduledJob {
  const job = config.jobs.find((j) => j.name === name);
  if (!job) throw new ConfigError([`the schedule has no job ${name}`]);
  return job;
}
