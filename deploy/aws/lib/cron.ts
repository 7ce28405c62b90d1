/**
 * A job's five-field cron of config/schedule.yaml (minute hour day month weekday, Vixie cron
 * as croner reads it) as the six-field `cron(...)` of EventBridge Scheduler, so the schedule
 * is written once. The differences that matter: one of day-of-month and day-of-week must be
 * `?`, weekdays count from SUN=1 (written here as names, so no number is misread), steps
 * start from a value (`0/30`, not `*\/30`), and a year field closes it.
 *
 * What the two cannot both say (a day of the month AND a weekday: Vixie fires on either,
 * EventBridge needs one; a weekday step) stops the synth with a message naming the job.
 */
const WEEKDAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'] as const;

export class CronConversionError extends Error {}

function weekdayName(value: string, expression: string): string {
  if (/^[A-Za-z]{3}$/.test(value) && WEEKDAYS.includes(value.toUpperCase() as (typeof WEEKDAYS)[number])) return value.toUpperCase();
  const n = Number(value);
  if (!/^\d$/.test(value) || n > 7) throw new CronConversionError(`"${expression}": weekday "${value}" is not 0-7 or SUN-SAT`);
  return WEEKDAYS[n % 7]!;
}

function weekdays(field: string, expression: string): string {
  return field
    .split(',')
    .map((part) => {
      if (part.includes('/'))
        throw new CronConversionError(`"${expression}": a weekday step (${part}) has no EventBridge form; list the days`);
      const [from, to] = part.split('-');
      return to === undefined ? weekdayName(from!, expression) : `${weekdayName(from!, expression)}-${weekdayName(to, expression)}`;
    })
    .join(',');
}

/** `*\/n` becomes `first/n`; anything else is the same in both dialects. */
function steps(field: string, first: number): string {
  return field.replace(/^\*\//, `${first}/`);
}

/** `cron(...)` of EventBridge Scheduler for a five-field cron; read in the schedule's own time zone. */
export function toEventBridgeCron(expression: string): string {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5)
    throw new CronConversionError(`"${expression}": expected 5 fields (minute hour day month weekday), got ${fields.length}`);
  const [minute, hour, day, month, weekday] = fields as [string, string, string, string, string];
  const anyDay = day === '*' || day === '?';
  const anyWeekday = weekday === '*' || weekday === '?';
  if (!anyDay && !anyWeekday) {
    throw new CronConversionError(
      `"${expression}": restricts both the day of the month and the weekday; EventBridge takes one of them (cron fires on either)`,
    );
  }
  const dayField = anyDay ? (anyWeekday ? '*' : '?') : steps(day, 1);
  const weekdayField = anyWeekday ? '?' : weekdays(weekday, expression);
  return `cron(${steps(minute, 0)} ${steps(hour, 0)} ${dayField} ${steps(month, 1)} ${weekdayField} *)`;
}
