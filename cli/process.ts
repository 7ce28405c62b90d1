/**
 * `fluxion process differ|dedupe|phantom`: runs one stream processor until SIGTERM/SIGINT
 * (finishing or aborting the open transaction, then leaving the group). Kafka's retriable
 * faults are waited out in-process (docs/kafka-faults.md); any other crash exits 1 so the
 * supervisor (compose `restart:`, systemd, Kubernetes) restarts it from the committed offsets
 * and state.
 */
import type { Server } from 'node:http';
import type { Command } from 'commander';
import { UsageError } from '../core/errors.ts';
import { classifyKafkaError, isRetriableKafkaError, KAFKA_FAULT_RETRY } from '../core/kafka/faults.ts';
import { withRetry } from '../core/retry.ts';
import { serveMetrics } from '../core/metrics.ts';
import { defaultRuntimeMetrics } from '../processors/runtime/metrics.ts';
import type { ProcessorFactory } from '../processors/runtime/processor-kind.ts';
import { createStreamProcessor } from '../processors/runtime/stream-processor.ts';
import type { ProgramIo } from './program-io.ts';

/** Loaded on demand: `fluxion process differ` does not load the phantom rules. */
export const PROCESSORS: Record<string, { description: string; load: () => Promise<ProcessorFactory> }> = {
  differ: {
    description: 'pos.inventario.snapshots -> pos.inventario.changes (+ state, quarantine)',
    load: async () => (await import('../processors/snapshot-differ.ts')).createDifferSpec,
  },
  dedupe: {
    description: 'pos.ventas.raw -> pos.ventas (+ state)',
    load: async () => (await import('../processors/ventas-dedupe.ts')).createDedupeSpec,
  },
  phantom: {
    description: 'pos.inventario.changes + pos.ventas -> alerts.phantom-zeros (+ state)',
    load: async () => (await import('../processors/phantom-detector.ts')).createPhantomSpec,
  },
};

export function registerProcessCommand(program: Command, io: ProgramIo): void {
  program
    .command('process')
    .description(
      `run a stream processor until SIGTERM: ${Object.entries(PROCESSORS)
        .map(([k, v]) => `${k} (${v.description})`)
        .join('; ')}`,
    )
    .argument('<kind>', Object.keys(PROCESSORS).join(' | '))
    .option('--group <id>', 'consumer group (default fluxion-<kind>, with the topic prefix)')
    .option('--metrics-port <n>', 'serve Prometheus /metrics on 127.0.0.1:<n>')
    .action(async (kind: string, opts: { group?: string; metricsPort?: string }) => {
      const entry = PROCESSORS[kind];
      if (!entry) throw new UsageError(`unknown processor "${kind}": use one of ${Object.keys(PROCESSORS).join(', ')}`);
      const c = io.context();
      const metrics = defaultRuntimeMetrics();
      const { prefix, partitions } = c.config.topics;
      const factory = await entry.load();
      // A spec may read Kafka when it is built (partition counts): a broker starting or
      // restarting is waited out here too, as the processor's consumer does (docs/kafka-faults.md).
      const kafka = c.kafka();
      const spec = await withRetry(
        KAFKA_FAULT_RETRY,
        () =>
          factory({
            kafka,
            registry: c.registry(),
            logger: c.logger,
            topicPrefix: prefix,
            partitions,
            config: c.config.processors,
            metrics,
          }),
        { retriable: isRetriableKafkaError, onRetry: (err) => kafka.faults.fault(`process ${kind}: ${classifyKafkaError(err).cause}`) },
      );
      const processor = createStreamProcessor(
        spec,
        { kafka, logger: c.logger, metrics },
        {
          groupId: opts.group ?? `${prefix}fluxion-${kind}`,
          maxBatch: c.config.processors.maxBatch,
          sessionTimeoutMs: c.config.processors.sessionTimeoutMs,
        },
      );
      let server: Server | undefined;
      if (opts.metricsPort) server = serveMetrics(metrics.registry, parsePort(opts.metricsPort));
      const stop = (signal: string) => {
        c.logger.info({ signal, processor: kind }, 'stopping on signal');
        void processor.stop();
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
      try {
        await processor.run();
      } finally {
        server?.close();
      }
      io.out(`process ${kind}: stopped`);
    });
}

/** --metrics-port, checked at the edge. */
export function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new UsageError(`--metrics-port must be a TCP port, got "${value}"`);
  return port;
}
