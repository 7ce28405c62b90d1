/** The snapshot differ's (processors/snapshot-differ.ts) Prometheus counters, registered once per registry. */
import { Counter, type Registry } from 'prom-client';
import { registeredMetric } from './runtime/metrics.ts';

export function differMetrics(registry: Registry) {
  const snapshotsCounter = registeredMetric(
    registry,
    'fluxion_differ_snapshots_total',
    () =>
      new Counter({
        name: 'fluxion_differ_snapshots_total',
        help:
          'snapshots by outcome: applied, quarantined, released, superseded, stale (older than the applied one, recorded in the ' +
          'quarantine), dropped (incomplete), skipped (read again, already decided)',
        labelNames: ['outcome'],
        registers: [registry],
      }),
  );
  const changesCounter = registeredMetric(
    registry,
    'fluxion_differ_changes_total',
    () =>
      new Counter({
        name: 'fluxion_differ_changes_total',
        help: 'change events emitted, by op (c/u/d)',
        labelNames: ['op'],
        registers: [registry],
      }),
  );
  return { snapshotsCounter, changesCounter };
}
