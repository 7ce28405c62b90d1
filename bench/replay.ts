#!/usr/bin/env node
/**
 * bench/replay: `fluxion replay historico` (sinks/historico-replay.ts replayHistorico, in this
 * process) rebuilding inventario_historico from change events already on a topic. Reports
 * change events per second (events applied / the replay's own wall time, shadow table, swap
 * and coverage checks included). Writes bench/results/<date>-replay.json.
 *
 *   node bench/replay.ts [--stores 20] [--products 10000] [--cycles 6] [--changed 0.05]
 *                        [--runs 3] [--partitions 6] [--batch 20000] [--before <worktree>] [--log-level warn] [--out <file>]
 *
 * The events: cycle 1 of every store (`--products` `c` events a store), then `--cycles` - 1
 * snapshots changing `--changed` of the rows (`u` events), as bench/sink.ts builds them;
 * published once beforehand (not timed). Each pass gets a freshly migrated database (empty
 * live table, no sink position: the replay reads every partition to its end) and is checked
 * against the expected history afterwards.
 *
 * `--before <worktree>` loads replayHistorico from another checkout (e.g. `git worktree add
 * /tmp/before main`) and alternates its passes with this checkout's, on the same events in
 * the same run: before/after figures that share the machine's load.
 *
 * Needs the services (`scripts/services up`; it reads `scripts/services env` itself).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createLogger } from '../core/logger.ts';
import { PROJECT_ROOT } from '../core/paths.ts';
import type { InventoryChange, InventoryRow } from '../core/records.ts';
import type { replayHistorico as ReplayFn } from '../sinks/historico-replay.ts';
import { cycleRows, uuidFrom } from '../fixtures/inventory-feed.ts';
import { createTestPipeline } from '../fixtures/pipeline.ts';
import { migratedDatabase } from '../fixtures/sink-run.ts';
import { publishChanges, withPipelineRetry } from './lib/change-feed.ts';
import { machineBusySeconds } from './lib/proc.ts';
import { servicesEnv } from './lib/services-env.ts';
import { median, round } from './lib/stats.ts';

const { values } = parseArgs({
  options: {
    stores: { type: 'string', default: '20' },
    products: { type: 'string', default: '10000' },
    cycles: { type: 'string', default: '6' },
    changed: { type: 'string', default: '0.05' },
    runs: { type: 'string', default: '3' },
    partitions: { type: 'string', default: '6' },
    batch: { type: 'string', default: '20000' },
    before: { type: 'string' },
    'log-level': { type: 'string', default: 'warn' },
    out: { type: 'string' },
  },
});

if (!process.env.KAFKA_BROKERS || !process.env.SCHEMA_REGISTRY_URL || !process.env.DATABASE_URL) {
  for (const [name, value] of Object.entries(servicesEnv())) process.env[name] ??= value;
}

const GOAL_EVENTS_PER_SECOND = 100_000;
const CYCLE_MS = 30 * 60_000;
const log = createLogger({ level: values['log-level'] as 'warn', destination: 2 });
const say = (text: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${text}\n`);

interface Pass {
  code: string;
  run: number;
  events: number;
  applied: number;
  wall_seconds: number;
  events_per_second: number;
  rows: number;
  node_cpu_seconds: number;
  /** Everything else on the machine (PostgreSQL, Kafka, other users) over the pass. */
  other_cpu_seconds: number;
  load_average_1m: number;
}

async function main(): Promise<void> {
  const stores = Number(values.stores);
  const products = Number(values.products);
  const cycles = Number(values.cycles);
  const changed = Number(values.changed);
  const runs = Number(values.runs);
  const partitions = Number(values.partitions);
  const batchSize = Number(values.batch);
  for (const [name, v] of Object.entries({ stores, products, cycles, runs, partitions, batch: batchSize })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
  }
  const codes: Array<[string, typeof ReplayFn]> = [['this checkout', (await import('../sinks/historico-replay.ts')).replayHistorico]];
  if (values.before) {
    const dir = resolve(values.before);
    codes.unshift([`before (${dir})`, (await import(join(dir, 'sinks', 'historico-replay.ts'))).replayHistorico as typeof ReplayFn]);
  }

  const start = Date.UTC(2026, 10, 30, 22, 0); // cycles cross a month boundary: two partitions
  const byStore: InventoryChange[][] = [];
  let opens = 0;
  for (let s = 1; s <= stores; s++) {
    const store = `tienda_${String(s).padStart(2, '0')}`;
    const changes: InventoryChange[] = [];
    let prev: InventoryRow[] = [];
    for (let c = 1; c <= cycles; c++) {
      const rows = cycleRows(store, c, products, changed);
      const takenAt = new Date(start + (c - 1) * CYCLE_MS);
      const snapshotId = uuidFrom(`bench-replay/${store}/${c}`);
      rows.forEach((r, i) => {
        const before = prev[i];
        if (before && before.cantidad === r.cantidad) return;
        changes.push({
          ubicacion_id: store,
          deposito: r.deposito,
          producto_id: r.producto_id,
          source: 'KLK',
          op: before ? 'u' : 'c',
          before: before ?? null,
          after: r,
          snapshot_id: snapshotId,
          taken_at: takenAt,
        });
      });
      prev = rows;
    }
    opens += changes.length;
    byStore.push(changes);
  }
  const events = opens;
  const pipeline = await withPipelineRetry(() => createTestPipeline(partitions));
  const passes: Pass[] = [];
  try {
    say(`publishing ${events} change events (${stores} stores x ${products} products, ${cycles} cycles) on ${pipeline.prefix}`);
    await publishChanges(pipeline, byStore, partitions);
    byStore.length = 0;
    for (let run = 1; run <= runs; run++) {
      for (const [code, replay] of codes) {
        const db = await migratedDatabase();
        try {
          say(`run ${run}: ${code}`);
          const cpu0 = process.cpuUsage();
          const busy0 = machineBusySeconds();
          const t0 = performance.now();
          const r = await replay(
            { kafka: pipeline.kafka, registry: pipeline.registry, pool: db.pool, logger: log, topicPrefix: pipeline.prefix },
            { sinkGroup: `bench-replay-${run}`, batchSize },
          );
          const wall = (performance.now() - t0) / 1000;
          const cpu = process.cpuUsage(cpu0);
          const nodeCpu = (cpu.user + cpu.system) / 1e6;
          const check = (
            await db.pool.query<{ n: string; open: string }>(
              'SELECT count(*)::text AS n, count(*) FILTER (WHERE valid_to IS NULL)::text AS open FROM inventario_historico',
            )
          ).rows[0]!;
          if (r.applied !== events || Number(check.n) !== events || Number(check.open) !== stores * products) {
            throw new Error(
              `${code}: applied ${r.applied}, history ${check.n} rows (${check.open} open); expected ${events} and ` +
                `${stores * products} open`,
            );
          }
          const pass: Pass = {
            code,
            run,
            events,
            applied: r.applied,
            wall_seconds: round(wall, 3),
            events_per_second: Math.round(r.applied / wall),
            rows: r.rows,
            node_cpu_seconds: round(nodeCpu),
            other_cpu_seconds: round(machineBusySeconds() - busy0 - nodeCpu),
            load_average_1m: round(loadavg()[0]!, 2),
          };
          passes.push(pass);
          process.stdout.write(`${JSON.stringify(pass)}\n`);
        } finally {
          await db.drop();
        }
      }
    }
  } finally {
    await pipeline.cleanup().catch(() => undefined);
  }

  const medians = Object.fromEntries(
    codes.map(([code]) => {
      const mine = passes.filter((p) => p.code === code);
      const m = (f: (p: Pass) => number, digits = 3) => round(median(mine.map(f)), digits);
      return [
        code,
        {
          wall_seconds: m((p) => p.wall_seconds),
          events_per_second: Math.round(m((p) => p.events_per_second)),
          node_cpu_seconds: m((p) => p.node_cpu_seconds, 2),
          other_cpu_seconds: m((p) => p.other_cpu_seconds, 2),
        },
      ];
    }),
  );
  const ours = medians['this checkout']!;
  const report = {
    bench: 'replay',
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model,
      memory_gb: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      load_average_at_end: loadavg().map((x) => round(x, 2)),
    },
    scenario: { stores, products, cycles, changed_share: changed, events, runs, partitions, batch_size: batchSize },
    passes,
    medians,
    goals: {
      min_events_per_second: GOAL_EVENTS_PER_SECOND,
      events_per_second: ours.events_per_second,
      met: ours.events_per_second >= GOAL_EVENTS_PER_SECOND,
    },
    note:
      'events_per_second: change events applied / wall time of replayHistorico (coverage checks, shadow table creation, every ' +
      'transaction of --batch events, the swap under ACCESS EXCLUSIVE). ' +
      'Each pass has its own freshly migrated database with an empty inventario_historico and no sink position, so the replay reads ' +
      'every partition to its end. node_cpu_seconds: this process (Kafka reads, Avro decode, planning, COPY text); other_cpu_seconds: ' +
      'the rest of the machine (PostgreSQL, Kafka, other users). ' +
      'With --before, the two checkouts alternate within each run on the same events.',
  };
  for (const [code, m] of Object.entries(medians))
    process.stdout.write(
      `${code}: ${m.wall_seconds} s, ${m.events_per_second} events/s (median of ${runs}), node CPU ${m.node_cpu_seconds} s, rest of ` +
        `the machine ${m.other_cpu_seconds} CPU s\n`,
    );
  process.stdout.write(`goal: ${JSON.stringify(report.goals)}\n`);
  const file = values.out ? resolve(values.out) : join(PROJECT_ROOT, 'bench', 'results', `${report.date.slice(0, 10)}-replay.json`);
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`written ${file}\n`);
}

await main();
process.exit(0);
