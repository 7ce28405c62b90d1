/** `fluxion schedule`: runs the jobs of config/schedule.yaml until SIGTERM. */
import type { Command } from 'commander';
import { projectPath } from '../core/paths.ts';
import { DEFAULT_SCHEDULE_FILE, loadScheduleFile } from '../ops/schedule-config.ts';
import { createScheduler } from '../ops/scheduler.ts';
import { createCheckins } from '../ops/sentry-checkins.ts';
import { jobAlertsOf } from './job-alerts.ts';
import { createJobRunner } from './jobs.ts';
import type { ProgramIo } from './program-io.ts';

export function registerScheduleCommand(program: Command, io: ProgramIo): void {
  program
    .command('schedule')
    .description('run the scheduled jobs (inventario, ventas, recovery, ...) with Sentry cron check-ins, until SIGTERM')
    .option('--file <path>', 'schedule file', DEFAULT_SCHEDULE_FILE)
    .action(async (opts: { file: string }) => {
      const c = io.context();
      const config = loadScheduleFile(projectPath(opts.file));
      const checkins = createCheckins({ ...c.config.sentry, logger: c.logger });
      const scheduler = createScheduler({
        jobs: config.jobs,
        run: createJobRunner(c),
        checkins,
        alerts: jobAlertsOf(c),
        logger: c.logger,
      });
      scheduler.start();
      for (const s of scheduler.status()) {
        io.out(`${s.job.padEnd(18)} ${s.enabled ? `next ${s.nextTick?.toISOString() ?? '-'}` : 'disabled'}  (${s.cron} ${s.timezone})`);
      }
      const signal = await new Promise<string>((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
      });
      io.out(`${signal}: stopping; running jobs are aborted`);
      await scheduler.stop({ timeoutMs: 60_000 });
      await checkins.flush();
    });
}
