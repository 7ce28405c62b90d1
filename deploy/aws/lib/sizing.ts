/**
 * Fargate CPU (units, 1024 = 1 vCPU) and memory (MiB) per task, from the benchmark figures
 * (bench/README.md). Each entry names the result file and the figure it rests on; `basis` goes
 * into the task definition's metadata so the template says it too. Fargate's sizes are fixed
 * pairs: 256 CPU takes 512-2048 MiB, 512 CPU takes 1024-4096 MiB.
 *
 * The chain's run (bench/results/2026-12-03-chain.json, 16 stores, one process each, no heap
 * limit) is the size the chain runs at; the processors get docker-compose.yml's heap limit
 * (--max-old-space-size=300), which bounded the differ's RSS at 360-375 MB
 * (bench/results/2026-11-29-chain-heap300.json). Memory is the peak with headroom for the state
 * store's file pages (RssFile, reclaimable, but counted by the task's cgroup).
 */
import type { ScheduledJobName } from '../../../ops/schedule-config.ts';
import type { ServiceName } from './plan.ts';

export interface Sizing {
  cpu: 256 | 512 | 1024;
  memoryMiB: 512 | 1024 | 2048;
  basis: string;
}

export const SIZING: Record<ScheduledJobName | ServiceName, Sizing> = {
  // 2026-12-03-chain.json cycles[].peak_rss_mb.extract-inventario: 280-310 MB; stages.extract.cpu_seconds
  // 9.91 a steady cycle: half a vCPU keeps a run near 20 s of CPU-bound work.
  inventario: {
    cpu: 512,
    memoryMiB: 1024,
    basis: 'bench/results/2026-12-03-chain.json: extract-inventario peak RSS 310 MB, 9.9 CPU s a cycle',
  },
  // 2026-12-03-chain.json cycles[].peak_rss_mb.extract-ventas: 149-211 MB.
  ventas: { cpu: 256, memoryMiB: 512, basis: 'bench/results/2026-12-03-chain.json: extract-ventas peak RSS 211 MB' },
  // The same extraction over yesterday's whole day: the ventas figure, doubled in memory for a day's lines.
  'ventas-recovery': {
    cpu: 256,
    memoryMiB: 1024,
    basis: 'bench/results/2026-12-03-chain.json: extract-ventas peak RSS 211 MB (one hour); a whole day read at 03:00',
  },
  // No bench: the recalculation is one SQL statement in PostgreSQL (sinks/abc-recalc.ts); the process only waits.
  abc: { cpu: 256, memoryMiB: 512, basis: 'no bench figure: the work runs in PostgreSQL (sinks/abc-recalc.ts)' },
  // Reads every store's catalogue as the inventory extraction does, two stores at a time.
  'productos-refresh': {
    cpu: 256,
    memoryMiB: 1024,
    basis: 'bench/results/2026-12-03-chain.json: extract-inventario peak RSS 310 MB (same read, 2 stores at a time)',
  },
  // cycles[].peak_rss_mb.differ: 416 (cycle 1) to 681 MB (cycle 3) without a heap limit; 15.8 CPU s in cycle 1, 4.4 steady.
  differ: {
    cpu: 512,
    memoryMiB: 1024,
    basis:
      'bench/results/2026-12-03-chain.json: differ peak RSS 681 MB unbounded ' +
      '(360-375 MB with heap 300, 2026-11-29-chain-heap300.json), 15.8 CPU s cycle 1',
  },
  // cycles[].peak_rss_mb.dedupe: 142-224 MB; 0.7-1.5 CPU s a cycle.
  dedupe: { cpu: 256, memoryMiB: 512, basis: 'bench/results/2026-12-03-chain.json: dedupe peak RSS 224 MB, 1.5 CPU s a cycle' },
  // cycles[].peak_rss_mb.phantom: 381-547 MB; 12.4 CPU s in cycle 1, 1.6 steady.
  phantom: { cpu: 512, memoryMiB: 1024, basis: 'bench/results/2026-12-03-chain.json: phantom peak RSS 547 MB, 12.4 CPU s cycle 1' },
  // cycles[].peak_rss_mb.sink: 323-334 MB in the chain; 558-589 MB at national size (2026-12-03-national.json).
  sink: {
    cpu: 512,
    memoryMiB: 1024,
    basis: 'bench/results/2026-12-03-chain.json: sink peak RSS 334 MB, 7.5 CPU s cycle 1 (national: 589 MB)',
  },
  // No bench: it holds throttle state and a few records; the smallest Fargate size.
  notifier: { cpu: 256, memoryMiB: 512, basis: 'no bench figure: the smallest Fargate size' },
  // Samples lag every 30 s, and a manual POST /etl/sync extracts in this process: the inventory extraction's figure.
  dashboard: {
    cpu: 512,
    memoryMiB: 1024,
    basis: 'bench/results/2026-12-03-chain.json: extract-inventario peak RSS 310 MB (a manual sync runs in the dashboard)',
  },
};
