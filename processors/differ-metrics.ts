/** The snapshot differ's (processors/snapshot-differ.ts) Prometheus counters, registered once per registry. */
import type { Registry } from 'prom-client';
import { sharedCounter } from '../core/metrics.ts';

export function differMetrics(registry: Registry) {
  const snapshotsCounter = sharedCounter(registry, {
    name: 'fluxion_differ_snapshots_total',
    help:
      'snapshots by outcome: applied, quarantined, released, superseded, stale (older than the applied one, recorded in the ' +
      'quarantine), dropped (incomplete), skipped (read again, already decided)',
    labelNames: ['outcome'],
  });
  const changesCounter = sharedCounter(registry, {
    name: 'fluxion_differ_changes_total',
    help: 'change events emitted, by op (c/u/d)',
    labelNames: ['op'],
  });
  return { snapshotsCounter, changesCounter };
}
