/** The job lock (core/job-lock.ts) with a command's configuration: one run of a job at a time. */
import { withJobLock } from '../core/job-lock.ts';
import type { ScheduledJobName } from '../ops/schedule-config.ts';
import type { CommandContext } from './context.ts';

export function lockedJob<T>(c: CommandContext, job: ScheduledJobName, work: () => Promise<T>): Promise<T> {
  return withJobLock(
    job,
    { databaseUrl: c.config.databaseUrl, topicPrefix: c.config.topics.prefix, logger: c.logger, locale: c.config.locale },
    work,
  );
}
