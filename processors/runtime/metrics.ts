/**
 * Counters of the stream runtime, on a prom-client registry the caller can expose (an HTTP
 * `/metrics` endpoint is the CLI's business, not the runtime's).
 */
import { Counter, Registry } from 'prom-client';

export interface RuntimeMetrics {
  registry: Registry;
  /** Records read from input topics (also those that went to a DLQ). */
  recordsIn: Counter<'processor' | 'topic'>;
  /** Records written to output topics by committed transactions. */
  recordsOut: Counter<'processor' | 'topic'>;
  /** Records sent to a dead-letter topic by committed transactions. */
  recordsDlq: Counter<'processor' | 'topic'>;
  transactions: Counter<'processor'>;
  aborts: Counter<'processor' | 'reason'>;
}

export function createRuntimeMetrics(registry: Registry = new Registry()): RuntimeMetrics {
  return {
    registry,
    recordsIn: new Counter({
      name: 'fluxion_processor_records_in_total',
      help: 'records consumed by a stream processor',
      labelNames: ['processor', 'topic'],
      registers: [registry],
    }),
    recordsOut: new Counter({
      name: 'fluxion_processor_records_out_total',
      help: 'records produced by committed transactions',
      labelNames: ['processor', 'topic'],
      registers: [registry],
    }),
    recordsDlq: new Counter({
      name: 'fluxion_processor_records_dlq_total',
      help: 'records sent to a dead-letter topic',
      labelNames: ['processor', 'topic'],
      registers: [registry],
    }),
    transactions: new Counter({
      name: 'fluxion_processor_transactions_total',
      help: 'committed transactions',
      labelNames: ['processor'],
      registers: [registry],
    }),
    aborts: new Counter({
      name: 'fluxion_processor_aborts_total',
      help: 'aborted transactions',
      labelNames: ['processor', 'reason'],
      registers: [registry],
    }),
  };
}

let shared: RuntimeMetrics | undefined;

/** The process-wide metrics every processor shares unless given its own. */
export function defaultRuntimeMetrics(): RuntimeMetrics {
  shared ??= createRuntimeMetrics();
  return shared;
}

// Shared with the sink and the notifier; re-exported for the processors' callers.
export { counterValue } from '../../core/metrics.ts';
