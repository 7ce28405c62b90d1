/**
 * `fluxion notify`: mails failed extractions, unreachable stores and massive stockouts
 * (sinks/notifier.ts), until SIGTERM/SIGINT. Kafka's retriable faults are waited out
 * in-process (docs/kafka-faults.md); any other consumer crash exits 1 so the supervisor
 * restarts it from the committed offsets.
 */
import type { Command } from 'commander';
import { requireNotifyDelivery } from '../core/config/environment.ts';
import { createSentryEvents } from '../core/sentry.ts';
import { descartadas } from '../sinks/alertas.ts';
import { createMailer, createNotifier } from '../sinks/notifier.ts';
import type { ProgramIo } from './program-io.ts';

export function registerNotifyCommand(program: Command, io: ProgramIo): void {
  program
    .command('notify')
    .description(
      'mail (SendGrid) failed extractions, unreachable stores and massive stockouts (quarantined snapshots) and phantom zeros to ' +
        'count (the most confident, within a daily budget per store), throttled per store; failed runs also go to Sentry. Runs until ' +
        'SIGTERM',
    )
    .option('--group <id>', 'consumer group (default fluxion-notify, with the topic prefix)')
    .action(async (opts: { group?: string }) => {
      const c = io.context();
      // Everything is checked before any I/O: recipients, Kafka, registry, the Sentry DSN.
      requireNotifyDelivery(c.config);
      const kafka = c.kafka();
      const registry = c.registry();
      const sentry = createSentryEvents({ ...c.config.sentry, logger: c.logger });
      const { prefix } = c.config.topics;
      const n = c.config.notify;
      const mailer = await createMailer(n, c.logger);
      const notifier = createNotifier(
        // With PostgreSQL configured, alerts an operator dismissed are left out of the mails.
        {
          kafka,
          registry,
          logger: c.logger,
          mailer,
          sentry,
          dismissedAlerts: c.config.databaseUrl ? (ids) => descartadas(c.pool(), ids) : undefined,
        },
        {
          groupId: opts.group ?? `${prefix}fluxion-notify`,
          topicPrefix: prefix,
          sessionTimeoutMs: c.config.processors.sessionTimeoutMs,
          rules: {
            throttleMs: n.throttleMs,
            phantomStoreThreshold: n.phantomStoreThreshold,
            phantomWindowMs: n.phantomWindowMs,
            phantomDailyBudget: n.phantomDailyBudget,
            maxAgeMs: n.maxAgeMs,
            environment: c.config.environment,
            locale: c.config.locale,
          },
        },
      );
      const stop = (signal: string) => {
        c.logger.info({ signal }, 'stopping on signal');
        void notifier.stop();
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
      await notifier.run();
      io.out('notify: stopped');
    });
}
