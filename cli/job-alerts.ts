/** The failure mails of a command's jobs (ops/job-failure-mail.ts), from its context: one per command. */
import { jobAlertsFromConfig, type JobAlerts } from '../ops/job-failure-mail.ts';
import type { CommandContext } from './context.ts';

const made = new WeakMap<CommandContext, JobAlerts>();

export function jobAlertsOf(c: CommandContext): JobAlerts {
  let alerts = made.get(c);
  if (!alerts) {
    // PostgreSQL keeps the throttle when DATABASE_URL is set; the local file always does.
    alerts = jobAlertsFromConfig(c.config, c.logger, () => (c.config.databaseUrl ? c.pool() : undefined));
    made.set(c, alerts);
  }
  return alerts;
}
