#!/usr/bin/env node
/**
 * bench/phantom: how good are the phantom-zero alerts? A simulated week of KLK stores through
 * the real extractors and the real processors (snapshot differ, ventas dedupe, phantom
 * detector) on the shared Kafka, scored against the anomalies the simulator injected
 * (simulators/data/anomaly-score.ts). Writes bench/results/<date>-phantom.json (or --out).
 *
 *   node bench/phantom.ts [--stores 4] [--products 2000] [--days 7] [--seed bench] [--sales-per-hour N]
 *        [--rates '{"phantomZeroPerDay":2}'] [--phantom-config '{"dropThreshold":"20.000"}']
 *        [--sweep dropThreshold=5,10,20 ...] [--out file] [--partitions 3]
 *   node bench/phantom.ts --replay .cache/bench-phantom/<run> [--phantom-config ...] [--sweep ...] [--out file]
 *
 * Time is simulated and driven by the bench, never waited for: the jobs of
 * config/schedule.yaml (inventario every 30 minutes, ventas every hour, the nightly ventas
 * recovery) give the ticks of the week; at each tick the simulators advance to it, the due
 * jobs run in this process (extractors/extract-run.ts against the KLK simulator over HTTP,
 * with the tick as their clock), and the next tick waits until the differ and the dedupe,
 * then the detector, committed past everything published (as 30 real minutes would). The
 * processors run in this process too (the runtime of processors/runtime/, one group each,
 * state stores on disk), on topics under a fresh prefix, deleted at the end.
 *
 * Labels: the simulator's own (`sim.anomalies()`, simulators/data/anomalies.ts).
 *
 * Sweeps: the detector's inputs, in the order it processed them, are recorded under
 * .cache/bench-phantom/<run>/ with the labels; `--sweep param=v1,v2` replays them through the
 * detector's pure steps once per value (bench/lib/phantom-replay.ts), each PhantomConfig
 * parameter moved alone from the run's config, and `--replay <dir>` does that again later
 * without Kafka. Each live run checks that the replay under its own config writes exactly
 * the alerts the real detector wrote (`replay_check` in the results).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadUbicacionesFile, resolveUbicacion, type Ubicacion } from '../core/config/ubicaciones.ts';
import type { FluxionAdmin } from '../core/kafka/client.ts';
import { createLogger } from '../core/logger.ts';
import { PROJECT_ROOT } from '../core/paths.ts';
import type { PhantomAlert } from '../core/records.ts';
import { ayerCaracas, fechaCaracas } from '../core/time.ts';
import { topicName, type TopicName } from '../core/topics.ts';
import type { StoreOutcome } from '../core/etl-run.ts';
import { extractInventario, extractVentas, type ExtractionDeps } from '../extractors/extract-run.ts';
import { DEFAULT_PHANTOM_CONFIG } from '../processors/phantom-rules.ts';
import { createDifferSpec } from '../processors/snapshot-differ.ts';
import { createDedupeSpec } from '../processors/ventas-dedupe.ts';
import { StoreSimulation, type StoreSimulationOptions } from '../simulators/data/store-simulation.ts';
import { FaultControl } from '../simulators/faults.ts';
import { startKlkSimulator } from '../simulators/klk/server.ts';
import { createTestPipeline, type TestPipeline } from '../fixtures/pipeline.ts';
import { startProcessor, type RunningProcessor } from '../fixtures/processor-run.ts';
import { withPipelineRetry } from './lib/change-feed.ts';
import { startEndTracker, type EndTracker } from '../core/kafka/end-tracker.ts';
import { writeKlkStoreList } from './lib/klk-store-list.ts';
import { compareAlertRecords, replayDetector } from './lib/phantom-replay.ts';
import type { ScoredLabel } from '../simulators/data/anomaly-score.ts';
import { servicesEnv } from './lib/services-env.ts';
import { json, parseHours, sweepSpecs, USAGE, values, whole } from './lib/phantom-options.ts';
import { recordingPhantom } from './lib/phantom-recorder.ts';
import {
  UsageFailure,
  round,
  SNAPSHOT_MS,
  phantomConfig,
  scheduleTicks,
  datesOf,
  type Recording,
  saveRecording,
  loadRecording,
  score,
  sweep,
  summary,
  sweepLines,
} from './lib/phantom-week.ts';

const say = (text: string) => process.stdout.write(`${text}\n`);
const note = (text: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${text}\n`);
const POLL_MS = 50;

// ---------------------------------------------------------------------------------------
// The live run.
// ---------------------------------------------------------------------------------------

const cleanups: Array<() => Promise<unknown>> = [];
async function cleanup(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c().catch((err: unknown) => note(`cleanup: ${(err as Error).message}`));
}

async function live(): Promise<{ rec: Recording; results: Record<string, unknown> }> {
  const stores = whole('stores');
  const products = whole('products');
  const days = whole('days');
  const partitions = whole('partitions');
  const seed = values.seed!;
  const salesPerHour = values['sales-per-hour'] !== undefined ? whole('sales-per-hour', 0) : Math.round((2_000 * products) / 15_000);
  const rates = json('rates');
  const openingHours = values['opening-hours'] ? parseHours(values['opening-hours']) : undefined;
  const config = phantomConfig(DEFAULT_PHANTOM_CONFIG, json('phantom-config'));
  sweepSpecs(); // refuse a bad --sweep before an hour of work
  if (!/^\d{4}-\d{2}-\d{2}$/.test(values.start!)) throw new UsageFailure(`--start must be a date YYYY-MM-DD, got "${values.start}"`);
  // Midnight in Caracas of the first day: the week starts with that day's first tick.
  const from = new Date(`${values.start}T00:00:00-04:00`);
  const to = new Date(from.getTime() + days * 86_400_000);
  const ticks = scheduleTicks(from, to);
  if (!ticks.some((t) => t.jobs.has('inventario'))) throw new UsageFailure('config/schedule.yaml gives no inventario tick in that period');
  const t0 = performance.now();
  const runId = `${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}-${seed}`;
  const dir = join(PROJECT_ROOT, '.cache', 'bench-phantom', runId);
  mkdirSync(dir, { recursive: true });
  for (const [name, value] of Object.entries(servicesEnv())) process.env[name] ??= value;
  const logger = createLogger({ level: 'warn', destination: 2 });

  // The stores: simulations, the KLK simulator over HTTP, a store list pointing at it.
  const idPrefix = 'tienda_p';
  const ids = Array.from({ length: stores }, (_, i) => `${idPrefix}${String(i + 1).padStart(4, '0')}`);
  const startAt = ticks[0]!.at;
  const sims = ids.map((id) => {
    const options: StoreSimulationOptions = {
      ubicacionId: id,
      pos: 'klk',
      depositos: ['01'],
      products,
      seed: `${seed}:${id}`,
      startAt,
      salesLinesPerHour: salesPerHour,
    };
    if (Object.keys(rates).length) options.anomalies = rates;
    if (openingHours) options.openingHours = openingHours;
    return new StoreSimulation(options);
  });
  const faults = new FaultControl();
  const apiKeys = Object.fromEntries(ids.map((id) => [id, `bench-key-${id}`]));
  const klk = await startKlkSimulator({ stores: sims, apiKeys, faults, logger });
  cleanups.push(() => klk.close());
  const listFile = join(dir, 'ubicaciones.yaml');
  const list = writeKlkStoreList(listFile, stores, klk.port, idPrefix, 'generated by bench/phantom');
  const ubicaciones: Ubicacion[] = loadUbicacionesFile(listFile).map((u) => resolveUbicacion(u, 'local'));
  const env: NodeJS.ProcessEnv = Object.fromEntries(list.map((s) => [s.apiKeyEnv, apiKeys[s.id]!]));

  // Topics under a fresh prefix; the three processors in this process, the detector recorded.
  const pipeline: TestPipeline = await withPipelineRetry(() => createTestPipeline(partitions));
  cleanups.push(() => pipeline.cleanup());
  const stateDir = join(dir, 'state');
  cleanups.push(async () => rmSync(stateDir, { recursive: true, force: true }));
  const recorder = recordingPhantom();
  const recorded = recorder.recorded;
  const group = (name: string) => `${pipeline.prefix}fluxion-${name}`;
  const processors: Record<string, RunningProcessor> = {};
  const processorOptions = { partitions, config: { stateDir, phantom: config } };
  for (const [name, factory] of [
    ['differ', createDifferSpec],
    ['dedupe', createDedupeSpec],
    ['phantom', recorder.factory],
  ] as const) {
    processors[name] = await startProcessor(factory, pipeline, group(name), processorOptions);
    cleanups.push(() => processors[name]!.stop());
  }
  let crashed: string | undefined;
  for (const [name, p] of Object.entries(processors))
    void p.finished.then((err) => err && (crashed ??= `${name}: ${(err as Error).message ?? String(err)}`));

  const topic = (t: TopicName) => topicName(t, pipeline.prefix);
  const admin: FluxionAdmin = await pipeline.kafka.admin();
  cleanups.push(() => admin.disconnect());
  const tracker: EndTracker = await startEndTracker(
    process.env.KAFKA_BROKERS!.split(','),
    `${pipeline.prefix}bench-end-tracker`,
    (['pos.inventario.snapshots', 'pos.ventas.raw', 'pos.inventario.changes', 'pos.ventas'] as const).map(topic),
    admin,
  );
  cleanups.push(() => tracker.stop());

  const deadlineAt = performance.now() + 60 * 60_000;
  async function reached(name: string, t: TopicName, ends: Map<number, bigint>): Promise<void> {
    for (;;) {
      const committed = await admin.groupOffsets(group(name), topic(t));
      if ([...ends].every(([p, end]) => BigInt(committed.find((o) => o.partition === p)?.offset ?? '-1') >= end)) return;
      if (crashed) throw new Error(`processor ${crashed}`);
      if (performance.now() > deadlineAt) throw new Error(`${name} did not reach the end of ${topic(t)} within an hour`);
      await sleep(POLL_MS);
    }
  }
  /** Until the differ and the dedupe, then the detector, committed past every record published. */
  async function settled(): Promise<void> {
    const t = performance.now();
    const [snapshots, raw] = await Promise.all([tracker.ends(topic('pos.inventario.snapshots')), tracker.ends(topic('pos.ventas.raw'))]);
    await Promise.all([reached('differ', 'pos.inventario.snapshots', snapshots), reached('dedupe', 'pos.ventas.raw', raw)]);
    const t1 = performance.now();
    timing.differ_dedupe_seconds += (t1 - t) / 1000;
    const [changes, ventas] = await Promise.all([tracker.ends(topic('pos.inventario.changes')), tracker.ends(topic('pos.ventas'))]);
    await Promise.all([reached('phantom', 'pos.inventario.changes', changes), reached('phantom', 'pos.ventas', ventas)]);
    timing.phantom_seconds += (performance.now() - t1) / 1000;
  }

  // The week, tick by tick.
  let now = startAt;
  const deps: ExtractionDeps = {
    kafka: pipeline.kafka,
    registry: pipeline.registry,
    logger,
    env,
    topicPrefix: pipeline.prefix,
    now: () => now,
  };
  const extractOptions = { concurrency: 4, retry: { retries: 2, initialDelayMs: 100, maxDelayMs: 500, factor: 2 } };
  const snapshotTimes: Record<string, string[]> = Object.fromEntries(ids.map((id) => [id, []]));
  const counts = { inventario: 0, ventas: 0, 'ventas-recovery': 0, rows: 0, lines: 0 };
  const timing = { extract_seconds: 0, differ_dedupe_seconds: 0, phantom_seconds: 0 };
  const cpu0 = process.cpuUsage();
  const cpuSeconds = () => {
    const u = process.cpuUsage(cpu0);
    return (u.user + u.system) / 1e6;
  };
  note(
    `bench/phantom: ${stores} stores x ${products} products, ${days} days from ${values.start} (${ticks.length} ticks), topics ` +
      `${pipeline.prefix}*, run dir ${dir}`,
  );
  for (const [i, tick] of ticks.entries()) {
    const minutes = (tick.at.getTime() - now.getTime()) / 60_000;
    if (minutes > 0) for (const s of sims) s.advance(minutes);
    now = tick.at;
    const te = performance.now();
    const runs: Array<Promise<StoreOutcome[]>> = [];
    if (tick.jobs.has('inventario')) runs.push(extractInventario(ubicaciones, deps, extractOptions));
    if (tick.jobs.has('ventas')) runs.push(extractVentas(ubicaciones, fechaCaracas(now), 'VENTAS', deps, extractOptions));
    if (tick.jobs.has('ventas-recovery')) runs.push(extractVentas(ubicaciones, ayerCaracas(now), 'VENTAS_RECOVERY', deps, extractOptions));
    const outcomes = (await Promise.all(runs)).flat();
    const failed = outcomes.filter((o) => o.status === 'FAILED');
    if (failed.length)
      throw new Error(`tick ${now.toISOString()}: ${failed.map((f) => `${f.ubicacionId} ${f.errorClass}: ${f.errorMessage}`).join('; ')}`);
    for (const job of tick.jobs) counts[job]++;
    for (const o of outcomes) {
      if (o.snapshotId) {
        snapshotTimes[o.ubicacionId]!.push(now.toISOString());
        counts.rows += o.rows;
      } else counts.lines += o.rows;
    }
    timing.extract_seconds += (performance.now() - te) / 1000;
    await settled();
    if ((i + 1) % 20 === 0 || i === ticks.length - 1) {
      const t = Object.values(timing)
        .map((x) => Math.round(x))
        .join('/');
      note(
        `tick ${i + 1}/${ticks.length} ${now.toISOString()}: ${recorded.length} detector inputs; ` +
          `${Math.round((performance.now() - t0) / 1000)} s (extract/differ+dedupe/phantom ${t} s, this process ` +
          `${Math.round(cpuSeconds())} CPU s)`,
      );
    }
  }
  // Anomalies still going at the end of the week stay open (end null).
  const labels: ScoredLabel[] = sims.flatMap((s) => s.anomalies());
  const alerts = (await pipeline.read<PhantomAlert>('alerts.phantom-zeros')).map((r) => r.decoded);
  const wallSeconds = round((performance.now() - t0) / 1000, 1);

  const departments = Object.fromEntries(
    sims.map((s) => [s.ubicacionId, Object.fromEntries([...s.catalog].map((p) => [p.producto_id, p.departamento.codigo]))]),
  );
  const parameters = {
    stores,
    products,
    days,
    seed,
    start: values.start,
    partitions,
    sales_lines_per_hour: salesPerHour,
    rates,
    opening_hours: openingHours ?? 'simulator default',
    phantom_config: config,
    labels_source: 'simulator (sim.anomalies())',
    grace_minutes: SNAPSHOT_MS / 60_000,
    schedule: 'config/schedule.yaml: inventario, ventas, ventas-recovery',
    ticks: ticks.length,
    cycles: { inventario: counts.inventario, ventas: counts.ventas, ventas_recovery: counts['ventas-recovery'] },
    rows_extracted: counts.rows,
    sales_lines_read: counts.lines,
    detector_inputs: recorded.length,
    detector_inputs_reprocessed: recorder.reprocessed(),
    wall_seconds: wallSeconds,
    extract_seconds: round(timing.extract_seconds, 1),
    differ_dedupe_seconds: round(timing.differ_dedupe_seconds, 1),
    phantom_seconds: round(timing.phantom_seconds, 1),
    cpu_seconds: round(cpuSeconds(), 1),
    load_average_1m_at_end: round(loadavg()[0]!, 1),
    machine: { cpus: cpus().length, memory_gb: round(totalmem() / 2 ** 30, 1), node: process.version },
    command: `node bench/phantom.ts ${process.argv.slice(2).join(' ')}`.trim(),
    recording: dir.slice(PROJECT_ROOT.length + 1),
  };
  const rec: Recording = {
    dir,
    inputs: recorded,
    labels,
    alerts,
    departments,
    snapshotTimes,
    stores: ids,
    days: datesOf(from, days),
    config,
    parameters,
  };
  await saveRecording(rec);
  const check = compareAlertRecords(alerts, replayDetector(recorded, config));
  return {
    rec,
    results: {
      replay_check: { ...check, equal: check.only_real.length === 0 && check.only_replayed.length === 0 && check.real === check.replayed },
    },
  };
}

async function main(): Promise<void> {
  if (values.help) {
    say(USAGE);
    return;
  }
  const replaying = values.replay !== undefined;
  const { rec, results } = replaying
    ? { rec: loadRecording(resolve(values.replay!)), results: {} as Record<string, unknown> }
    : await live();
  const config = replaying ? phantomConfig(rec.config, json('phantom-config')) : rec.config;
  const records = replaying ? replayDetector(rec.inputs, config) : rec.alerts;
  const s = score(rec, records);
  const { matches, ...figures } = s;
  writeFileSync(join(rec.dir, replaying ? 'matches-replay.json' : 'matches.json'), `${JSON.stringify(matches)}\n`);
  const sweeps = sweep(rec, config, sweepSpecs());
  const out = {
    bench: 'phantom',
    date: new Date().toISOString(),
    precision: figures.precision,
    recall: figures.recall,
    median_ttd_minutes: figures.median_ttd_minutes,
    alerts_per_store_day: figures.alerts_per_store_day,
    by_rule: figures.by_rule,
    by_kind: figures.by_kind,
    alerts: figures.alerts,
    true_positives: figures.true_positives,
    false_positives: figures.false_positives,
    duplicate_alerts: figures.duplicate_alerts,
    labels: figures.labels,
    ...results,
    ...(sweeps.length ? { sweeps } : {}),
    parameters: replaying
      ? { ...rec.parameters, phantom_config: config, replayed_from: rec.dir.slice(PROJECT_ROOT.length + 1) }
      : rec.parameters,
  };
  const file = values.out
    ? resolve(values.out)
    : replaying
      ? join(rec.dir, 'replay.json')
      : join(PROJECT_ROOT, 'bench', 'results', `${new Date().toISOString().slice(0, 10)}-phantom.json`);
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);

  const p = rec.parameters as Record<string, unknown>;
  say(
    `bench/phantom${replaying ? ' (replay, no Kafka)' : ''}: ${String(p.stores)} stores x ${String(p.products)} products, ` +
      `${String(p.days)} days, ${String(p.ticks)} ticks; labels: ${String(p.labels_source)}`,
  );
  for (const line of summary(s)) say(line);
  if (!replaying) {
    const c = results.replay_check as { equal: boolean; real: number; replayed: number };
    say(
      `replay check: the pure replay under this config writes ${c.equal ? 'the same' : 'DIFFERENT'} alert records (${c.real} real, ` +
        `${c.replayed} replayed)`,
    );
    say(
      `wall ${String(p.wall_seconds)} s (extraction ${String(p.extract_seconds)} s, differ and dedupe ` +
        `${String(p.differ_dedupe_seconds)} s, detector ${String(p.phantom_seconds)} s; ${String(p.cpu_seconds)} CPU s in this process, ` +
        `load average ${String(p.load_average_1m_at_end)} at the end)`,
    );
  }
  if (sweeps.length) {
    say('sweeps (one parameter moved at a time, pure replay):');
    for (const line of sweepLines(sweeps)) say(line);
  }
  say(`results: ${file}`);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void cleanup().finally(() => process.exit(130)));
main()
  .then(cleanup)
  .then(() => process.exit(0))
  .catch(async (err: unknown) => {
    await cleanup();
    if (err instanceof UsageFailure) {
      process.stderr.write(`${err.message}\n${USAGE}\n`);
      process.exit(2);
    }
    process.stderr.write(`bench/phantom failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
