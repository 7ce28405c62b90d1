/**
 * The shape every operator mail shares (the notifier's, sinks/notify-rules.ts, and a failed
 * job's, ops/job-failure-mail.ts): the subject prefix, instants in the stores' time zone with
 * their UTC instant, and aligned "label: value" tables.
 */
import { BUSINESS_TIME_ZONE } from '../time.ts';

const localTime = new Intl.DateTimeFormat('sv-SE', {
  timeZone: BUSINESS_TIME_ZONE,
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hourCycle: 'h23',
});

/** "2026-11-27 08:30:00 America/Caracas (2026-11-27T12:30:00.000Z)". */
export function formatInstant(d: Date | number): string {
  const date = typeof d === 'number' ? new Date(d) : d;
  return `${localTime.format(date)} ${BUSINESS_TIME_ZONE} (${date.toISOString()})`;
}

export const formatMinutes = (ms: number): string => `${Math.round(ms / 60_000)} min`;

/** `[Fluxion]` in production; `[Fluxion local]` elsewhere, so a test mail never looks like a real one. */
export function subjectPrefix(environment: string | undefined): string {
  return !environment || environment === 'production' ? '[Fluxion]' : `[Fluxion ${environment}]`;
}

/** "2026-11-27 08:30": an instant to the minute in the stores' time zone (tables an operator scans). */
export const formatLocalMinute = (d: Date | number): string => localTime.format(typeof d === 'number' ? new Date(d) : d).slice(0, 16);

/** "label:   value" lines, aligned; rows without a value are left out. */
export function mailTable(rows: Array<[string, string | number | null | undefined]>): string {
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  return rows
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${`${k}:`.padEnd(width)}${v}`)
    .join('\n');
}
