/**
 * What every consume loop reports, by loop name ("sink", "processor dedupe", "notifier"), on
 * the component's prom-client registry: slices committed and how long each took, and the
 * retries the loop waited (a service down in place, or a partition backing off).
 */
import type { Registry } from 'prom-client';
import { sharedCounter, sharedHistogram } from '../metrics.ts';

export interface LoopMetrics {
  committed(seconds: number, records: number): void;
  retried(kind: 'in_place' | 'partition'): void;
}

export function loopMetrics(registry: Registry, loop: string): LoopMetrics {
  const slices = sharedCounter(registry, {
    name: 'fluxion_consume_loop_slices_total',
    help: 'slices a consume loop committed',
    labelNames: ['loop'],
  });
  const records = sharedCounter(registry, {
    name: 'fluxion_consume_loop_records_total',
    help: 'records in committed slices',
    labelNames: ['loop'],
  });
  const seconds = sharedHistogram(registry, {
    name: 'fluxion_consume_loop_slice_seconds',
    help: 'duration of one committed slice, processing and commit',
    labelNames: ['loop'],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  const retries = sharedCounter(registry, {
    name: 'fluxion_consume_loop_retries_total',
    help: 'waits before retrying, by kind',
    labelNames: ['loop', 'kind'],
  });
  return {
    committed(s, n) {
      slices.inc({ loop });
      records.inc({ loop }, n);
      seconds.observe({ loop }, s);
    },
    retried: (kind) => retries.inc({ loop, kind }),
  };
}
