/**
 * `fluxion sink postgres`: runs the PostgreSQL sink until SIGTERM/SIGINT. Kafka's retriable
 * faults are waited out in-process (docs/kafka-faults.md); any other crash exits 1 so the
 * supervisor restarts it; it resumes from the offsets stored in PostgreSQL.
 */
import type { Server } from 'node:http';
import type { Command } from 'commander';
import { Registry } from 'prom-client';
import { UsageError } from '../core/errors.ts';
import { serveMetrics } from '../core/metrics.ts';
import { createAbcTrigger } from '../sinks/abc-trigger.ts';
import { createPostgresSink } from '../sinks/postgres-sink.ts';
import { parsePort } from './process.ts';
import type { ProgramIo } from './program-io.ts';

export function registerSinkCommand(program: Command, io: ProgramIo): void {
  program
    .command('sink')
    .description(
      'write pos.inventario.changes, pos.ventas, alerts.phantom-zeros and ops.etl-runs into PostgreSQL, exactly once, until SIGTERM',
    )
    .argument('<target>', 'postgres')
    .option('--group <id>', 'consumer group (default <prefix>fluxion-sink-postgres); its offsets live in sink_offsets')
    .option('--metrics-port <port>', 'serve Prometheus metrics at http://127.0.0.1:<port>/metrics')
    .option('--no-abc', 'do not recalculate productos_abc_cache after new ventas (the daily job still does)')
    .action(async (target: string, opts: { group?: string; metricsPort?: string; abc: boolean }) => {
      if (target !== 'postgres') throw new UsageError(`unknown sink "${target}": the only sink is postgres`);
      const c = io.context();
      const registry = new Registry();
      const port = opts.metricsPort ? parsePort(opts.metricsPort) : undefined;
      const pool = c.pool();
      const abc = opts.abc ? createAbcTrigger(pool, c.config.abc, c.logger) : undefined;
      const sink = createPostgresSink(
        {
          kafka: c.kafka(),
          registry: c.registry(),
          pool,
          logger: c.logger,
          topicPrefix: c.config.topics.prefix,
          metricsRegistry: registry,
          onVentasCommitted: abc?.request,
        },
        {
          groupId: opts.group ?? `${c.config.topics.prefix}fluxion-sink-postgres`,
          maxBatch: c.config.sink.maxBatch,
          sessionTimeoutMs: c.config.processors.sessionTimeoutMs,
        },
      );
      abc?.checkStaleOnStart();
      const server: Server | undefined = port ? serveMetrics(registry, port) : undefined;
      const stop = (signal: string) => {
        c.logger.info({ signal }, 'stopping on signal');
        void sink.stop();
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
      try {
        await sink.run();
      } finally {
        server?.close();
        await abc?.stop();
      }
      io.out('sink postgres: stopped');
    });
}
