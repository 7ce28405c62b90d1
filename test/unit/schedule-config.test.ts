import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { readFileSync } from 'node:fs';
import { projectPath } from '../../core/paths.ts';
import { problemsOf } from '../helpers/config-errors.ts';
import { findJob, isInWindow, loadScheduleFile, parseSchedule, SCHEDULED_JOB_NAMES } from '../../ops/schedule-config.ts';

/** The checked-in document, as a fresh object a test may mutate. */
function checkedIn(): { jobs: Record<string, Record<string, unknown>> } {
  return parseYaml(readFileSync(projectPath('config/schedule.yaml'), 'utf8'));
}

describe('the checked-in schedule', () => {
  const config = loadScheduleFile();

  it('lists the five jobs of docs/schedule.md, in America/Caracas, every one enabled (none is a stub)', () => {
    expect(config.jobs.map((j) => j.name).sort()).toEqual([...SCHEDULED_JOB_NAMES].sort());
    for (const job of config.jobs) {
      expect(job.timezone).toBe('America/Caracas');
      expect(job.monitor).toMatchObject({ schedule: job.cron, timezone: 'America/Caracas' });
    }
    expect(config.jobs.filter((j) => !j.enabled).map((j) => j.name)).toEqual([]);
  });

  it(
    'inventario runs every 30 minutes and ventas hourly, from 06:00 within the 06:00-22:00 window; the nightly jobs at 03:00 and 04:00; ' +
      'productos-refresh every 6 hours at :15',
    () => {
      const inventario = findJob(config, 'inventario');
      expect(inventario.window).toEqual({ start: '06:00', end: '22:00' });
      expect(inventario.cron).toBe('0,30 6-21 * * *');
      expect(findJob(config, 'ventas').cron).toBe('0 6-21 * * *');
      expect(findJob(config, 'ventas-recovery')).toMatchObject({ cron: '0 3 * * *', window: null });
      expect(findJob(config, 'abc')).toMatchObject({ cron: '0 4 * * *', window: null });
      // Every 6 hours, off the :00 and :30 minutes at which inventario reads the same POS.
      expect(findJob(config, 'productos-refresh')).toMatchObject({ cron: '15 */6 * * *', window: null });
    },
  );

  it('gives each job its own Sentry monitor, with max_runtime under the interval of the frequent jobs', () => {
    const slugs = config.jobs.map((j) => j.monitor.slug);
    expect(new Set(slugs).size).toBe(slugs.length);
    expect(findJob(config, 'inventario').monitor.maxRuntimeMinutes).toBeLessThan(30);
    expect(findJob(config, 'ventas').monitor.maxRuntimeMinutes).toBeLessThan(60);
  });

  it('keeps the Sentry monitor names of the replaced ETL (etl-<job>), so history and alert rules carry over at cut-over', () => {
    expect(Object.fromEntries(config.jobs.map((j) => [j.name, j.monitor.slug]))).toEqual({
      inventario: 'etl-inventario',
      ventas: 'etl-ventas',
      'ventas-recovery': 'etl-ventas-recovery',
      abc: 'etl-abc',
      'productos-refresh': 'etl-productos-refresh',
    });
  });
});

describe('a schedule with mistakes', () => {
  it('names the job and the field of each problem, all at once', () => {
    const doc = checkedIn();
    doc.jobs.inventario!.timezone = 'America/Caracass';
    (doc.jobs.ventas!.monitor as Record<string, unknown>).checkin_margin = 0;
    (doc.jobs.abc!.monitor as Record<string, unknown>).slug = 'Fluxion ABC';
    doc.jobs['ventas-recovery']!.enabled = 'yes';
    doc.jobs['productos-refresh']!.window = { start: '6:00', end: '22:00' };
    const problems = problemsOf(() => parseSchedule(doc, 'schedule.yaml'));
    expect(problems).toHaveLength(5);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^schedule\.yaml: job inventario: field timezone: is not an IANA time zone/),
        expect.stringMatching(/^schedule\.yaml: job ventas: field monitor\.checkin_margin: must be at least 1 minute/),
        expect.stringMatching(/^schedule\.yaml: job abc: field monitor\.slug: must be 1-50 lower-case/),
        expect.stringMatching(/^schedule\.yaml: job ventas-recovery: field enabled: /),
        expect.stringMatching(/^schedule\.yaml: job productos-refresh: field window\.start: must be a local time HH:MM/),
      ]),
    );
  });

  it('rejects a cron that is not five valid fields', () => {
    const doc = checkedIn();
    doc.jobs.inventario!.cron = '0 */30 6-21 * * *';
    doc.jobs.ventas!.cron = '0 6-25 * * *';
    const problems = problemsOf(() => parseSchedule(doc, 's.yaml'));
    expect(problems).toEqual([
      expect.stringMatching(/^s\.yaml: job inventario: field cron: must have 5 fields .* got 6/),
      expect.stringMatching(/^s\.yaml: job ventas: field cron: is not a valid cron expression/),
    ]);
  });

  it('rejects a cron that fires outside its window (Sentry would see a missed check-in)', () => {
    const doc = checkedIn();
    doc.jobs.inventario!.cron = '*/30 6-22 * * *';
    expect(problemsOf(() => parseSchedule(doc, 's.yaml'))).toEqual([
      expect.stringMatching(/^s\.yaml: job inventario: field cron: fires at 22:00 \(America\/Caracas\), outside the window 06:00-22:00/),
    ]);
  });

  it('rejects unknown and missing jobs, unknown fields and a slug used twice', () => {
    const doc = checkedIn();
    doc.jobs.inventory = doc.jobs.inventario!;
    delete doc.jobs.abc;
    doc.jobs.ventas!.retries = 3;
    (doc.jobs['productos-refresh']!.monitor as Record<string, unknown>).slug = 'etl-ventas-recovery';
    const problems = problemsOf(() => parseSchedule(doc, 's.yaml'));
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^s\.yaml: job inventory: unknown job \(known: inventario, /),
        expect.stringMatching(/^s\.yaml: job abc: missing/),
        expect.stringMatching(/^s\.yaml: job ventas: field \(root\): Unrecognized key.*retries/),
        expect.stringMatching(
          /^s\.yaml: job productos-refresh: field monitor\.slug: "etl-ventas-recovery" is already the slug of job ventas-recovery/,
        ),
      ]),
    );
  });

  it('reports an unreadable or non-YAML file naming the path', () => {
    expect(problemsOf(() => loadScheduleFile('/nonexistent/schedule.yaml'))[0]).toMatch(
      /cannot read the schedule \/nonexistent\/schedule\.yaml/,
    );
    expect(problemsOf(() => parseSchedule({ jobs: [] }, 's.yaml'))[0]).toMatch(/^s\.yaml: field jobs: /);
  });
});

describe('isInWindow', () => {
  const w = { start: '06:00', end: '22:00' };
  const caracas = (hhmmss: string) => new Date(`2025-03-10T${hhmmss}-04:00`);

  it('includes the start, excludes the end, in the job time zone', () => {
    expect(isInWindow(w, caracas('05:59:00'), 'America/Caracas')).toBe(false);
    expect(isInWindow(w, caracas('06:00:00'), 'America/Caracas')).toBe(true);
    expect(isInWindow(w, caracas('21:30:00'), 'America/Caracas')).toBe(true);
    expect(isInWindow(w, caracas('22:00:00'), 'America/Caracas')).toBe(false);
    // 10:00 UTC is 06:00 in Caracas but 11:00 in Madrid: the zone decides.
    expect(isInWindow({ start: '06:00', end: '07:00' }, new Date('2025-03-10T10:00:00Z'), 'America/Caracas')).toBe(true);
    expect(isInWindow({ start: '06:00', end: '07:00' }, new Date('2025-03-10T10:00:00Z'), 'Europe/Madrid')).toBe(false);
  });

  it('reads a tick a few ms off a whole minute as that minute', () => {
    expect(isInWindow(w, new Date(caracas('06:00:00').getTime() - 5), 'America/Caracas')).toBe(true);
    expect(isInWindow(w, new Date(caracas('22:00:00').getTime() - 5), 'America/Caracas')).toBe(false);
  });

  it('handles a window that crosses midnight, and no window', () => {
    const night = { start: '22:00', end: '02:00' };
    expect(isInWindow(night, caracas('23:00:00'), 'America/Caracas')).toBe(true);
    expect(isInWindow(night, caracas('01:59:00'), 'America/Caracas')).toBe(true);
    expect(isInWindow(night, caracas('12:00:00'), 'America/Caracas')).toBe(false);
    expect(isInWindow(null, caracas('03:00:00'), 'America/Caracas')).toBe(true);
  });
});
