/**
 * One cycle of bench/e2e.ts: both extractions at once and every stage timed to the end of its
 * input (Kafka ends, group offsets, sink_offsets), CPU, RSS, rows written, Kafka bytes and
 * freshness; then the replaced system and the COPY ceiling on the same simulator state.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import type { Ubicacion } from '../../core/config/ubicaciones.ts';
import { topicName, type TopicName } from '../../core/topics.ts';
import type { Child } from './child.ts';
import { procCpuSeconds, procStatusKb, resetPeakRss } from './proc.ts';
import { percentile, round } from './stats.ts';
import { longLived, runExtract } from './e2e-processes.ts';
import {
  type Deadline,
  groupReached,
  sinkReached,
  pgMemorySampler,
  kafkaBytes,
  rowCounters,
  settledRowCounters,
  deltaOf,
} from './e2e-measure.ts';
import { legacyRead, legacyWrite, copyPass } from './e2e-legacy.ts';
import type { StageFigures } from './e2e-report.ts';
import type { ServiceProcs } from './e2e-measure.ts';
import type { FluxionAdmin } from '../../core/kafka/client.ts';
import type { EndTracker } from '../../core/kafka/end-tracker.ts';

export interface CycleContext {
  cycle: number;
  simulatedFecha: () => Promise<string>;
  logDir: string;
  procs: Record<'differ' | 'dedupe' | 'phantom' | 'sink', Child>;
  simPids: Record<string, number>;
  svc: ServiceProcs;
  db: pg.Pool;
  prefix: string;
  scrapeAll: () => Promise<Record<string, number>>;
  concurrency: number;
  env: NodeJS.ProcessEnv;
  nodeArgs: (name: string) => string[];
  tracker: EndTracker;
  admin: FluxionAdmin;
  groups: Record<'differ' | 'dedupe' | 'phantom' | 'sink', string>;
  stores: Ubicacion[];
  /** Whether a KLK store sells (ventas are extracted). */
  withVentas: boolean;
  legacyClient: pg.Client;
  legacyStyle: 'unnest' | 'values';
  legacyBatch: number;
  noLegacy: boolean;
  timeoutMinutes: number;
}

/** One cycle: ours timed stage by stage, then the replaced system and the COPY ceiling on the same state. */
export async function runCycle(c: CycleContext): Promise<Record<string, unknown>> {
  const {
    cycle,
    simulatedFecha,
    logDir,
    procs,
    simPids,
    svc,
    db,
    prefix,
    scrapeAll,
    concurrency,
    env,
    nodeArgs,
    tracker,
    admin,
    groups,
    stores,
    legacyClient,
    legacyStyle,
    legacyBatch,
  } = c;
  const topic = (t: TopicName) => topicName(t, prefix);
  const fecha = await simulatedFecha();
  const cycleDir = join(logDir, `cycle-${cycle}`);
  mkdirSync(cycleDir, { recursive: true });

  // Before: CPU, peaks reset, counters.
  const watched: Record<string, number> = { ...Object.fromEntries(Object.entries(procs).map(([k, c]) => [k, c.pid])), ...simPids };
  if (svc.kafka) watched.kafka = svc.kafka;
  if (svc.registry) watched.registry = svc.registry;
  for (const pid of Object.values(watched)) resetPeakRss(pid);
  for (const c of longLived) c.resetPeak();
  const cpu0 = Object.fromEntries(Object.entries(watched).map(([k, pid]) => [k, procCpuSeconds(pid)]));
  const pgSampler = pgMemorySampler(svc.postmaster);
  const pgCpu0 = new Map(pgSampler.pids().map((p) => [p, procCpuSeconds(p)]));
  const rows0 = await rowCounters(db);
  const bytes0 = kafkaBytes(svc.kafkaDataDir, prefix);
  const metrics0 = await scrapeAll();
  const deadline: Deadline = { at: performance.now() + c.timeoutMinutes * 60_000, minutes: c.timeoutMinutes };
  const benchOurs0 = process.cpuUsage();

  // Ours: both extractions at once, then every stage to the end of its input.
  const t0 = performance.now();
  const [inv, ven] = await Promise.all([
    runExtract(
      'extract-inventario',
      ['extract', 'inventario', '--todas', '--concurrency', String(concurrency)],
      env,
      nodeArgs('extract-inventario'),
      cycleDir,
    ),
    c.withVentas
      ? runExtract(
          'extract-ventas',
          ['extract', 'ventas', '--todas', '--fecha', fecha, '--concurrency', String(concurrency)],
          env,
          nodeArgs('extract-ventas'),
          cycleDir,
        )
      : Promise.resolve(null),
  ]);
  const tExtracted = performance.now();
  for (const x of [inv, ven])
    if (x && x.code !== 0)
      throw new Error(`cycle ${cycle}: ${x.log} exited ${x.code}${x.failed.length ? `: failed stores ${x.failed.join(', ')}` : ''}`);
  const ends = (t: TopicName) => tracker.ends(topic(t));
  const snapshotsEnd = ends('pos.inventario.snapshots');
  const ventasRawEnd = ends('pos.ventas.raw');
  const etlEnd = ends('ops.etl-runs');
  const differDone = snapshotsEnd.then((e) =>
    groupReached(admin, groups.differ, topic('pos.inventario.snapshots'), e, procs.differ, deadline),
  );
  const dedupeDone = ventasRawEnd.then((e) => groupReached(admin, groups.dedupe, topic('pos.ventas.raw'), e, procs.dedupe, deadline));
  const changesEnd = differDone.then(() => ends('pos.inventario.changes'));
  const ventasEnd = dedupeDone.then(() => ends('pos.ventas'));
  const phantomDone = Promise.all([
    changesEnd.then((e) => groupReached(admin, groups.phantom, topic('pos.inventario.changes'), e, procs.phantom, deadline)),
    ventasEnd.then((e) => groupReached(admin, groups.phantom, topic('pos.ventas'), e, procs.phantom, deadline)),
  ]).then((ts) => Math.max(...ts));
  const alertsEnd = phantomDone.then(() => ends('alerts.phantom-zeros'));
  const sinkAt = (t: TopicName, e: Promise<Map<number, bigint>>) =>
    e.then((x) => sinkReached(db, groups.sink, topic(t), x, procs.sink, deadline));
  const sinkDone = Promise.all([
    sinkAt('pos.inventario.changes', changesEnd),
    sinkAt('pos.ventas', ventasEnd),
    sinkAt('ops.etl-runs', etlEnd),
    sinkAt('alerts.phantom-zeros', alertsEnd),
  ]).then((ts) => Math.max(...ts));
  const [tDiffer, tDedupe, tPhantom, tSink] = await Promise.all([differDone, dedupeDone, phantomDone, sinkDone]);
  const tEnd = Math.max(tSink, tPhantom);

  // After: CPU first (the cycle is over), then the counters PostgreSQL flushes within a second.
  const cpu1 = Object.fromEntries(Object.entries(watched).map(([k, pid]) => [k, procCpuSeconds(pid)]));
  const benchOurs = process.cpuUsage(benchOurs0);
  cpu1.bench = (benchOurs.user + benchOurs.system) / 1e6;
  cpu0.bench = 0;
  const pgCpu = pgSampler.pids().reduce((s, p) => s + procCpuSeconds(p) - (pgCpu0.get(p) ?? 0), 0);
  const pgMem = pgSampler.stop();
  const peaks: Record<string, number> = Object.fromEntries(
    Object.entries(watched).map(([k, pid]) => [k, Math.round(procStatusKb(pid, 'VmHWM') / 1024)]),
  );
  for (const [k, c] of Object.entries(procs)) peaks[k] = Math.round(c.peakRssMb());
  const split = Object.fromEntries(Object.entries(procs).map(([k, c]) => [k, c.peakRssSplitMb()]));
  const metrics1 = await scrapeAll();
  const rowsWritten = deltaOf(await settledRowCounters(db), rows0);
  const bytes1 = kafkaBytes(svc.kafkaDataDir, prefix);
  const m = deltaOf(metrics1, metrics0);

  // Freshness: a store's transaction committed -> its snapshot's rows committed in inventario_actual.
  const freshness: number[] = [];
  let unchangedStores = 0;
  for (const s of inv.stores) {
    const r = await db.query<{ t: Date | null }>(
      'SELECT max(actualizado_en) AS t FROM inventario_actual WHERE ubicacion_id = $1 AND snapshot_id = $2',
      [s.ubicacion, s.snapshotId],
    );
    const t = r.rows[0]?.t;
    if (t) freshness.push(Math.max(0, t.getTime() - s.at) / 1000);
    else unchangedStores++;
  }

  // The replaced system, on the same simulator state; then the COPY ceiling.
  const simCpu0 = Object.fromEntries(Object.entries(simPids).map(([k, pid]) => [k, procCpuSeconds(pid)]));
  const benchCpu0 = process.cpuUsage();
  const tr0 = performance.now();
  // --no-legacy: at national size the legacy pass would hold every row of the cycle in this
  // process (10 M rows); its figures are then zeros and its ratios meaningless.
  const reads = c.noLegacy ? [] : await legacyRead(stores, fecha, env, concurrency);
  const readSeconds = (performance.now() - tr0) / 1000;
  const benchCpu = process.cpuUsage(benchCpu0);
  const simCpu = Object.fromEntries(Object.entries(simPids).map(([k, pid]) => [k, round(procCpuSeconds(pid) - simCpu0[k]!)]));
  const write = await legacyWrite(legacyClient, reads, legacyStyle, legacyBatch);
  const legacyRowsRead = reads.reduce((s, r) => s + r.inventario.length + r.ventas.length, 0);
  const copy = await copyPass(legacyClient, reads);

  const wall = (tEnd - t0) / 1000;
  const extractRows = inv.rows + (ven?.rows ?? 0);
  const ourRowsWritten = Object.values(rowsWritten).reduce((s, n) => s + n, 0);
  const legacyTotal = readSeconds + write.seconds;
  const stage = (rows: number, done: number, upstream: number, cpu: number | null, rss: number | null): StageFigures => ({
    rows,
    done_seconds: round((done - t0) / 1000),
    rows_per_second: Math.round(rows / Math.max(0.001, (done - t0) / 1000)),
    tail_seconds: round((done - upstream) / 1000),
    cpu_seconds: cpu === null ? null : round(cpu),
    peak_rss_mb: rss,
  });
  const stages = {
    extract: {
      ...stage(
        extractRows,
        tExtracted,
        t0,
        (inv.cpuSeconds ?? 0) + (ven?.cpuSeconds ?? 0),
        Math.round(Math.max(inv.peakRssMb ?? 0, ven?.peakRssMb ?? 0)),
      ),
      inventario_rows: inv.rows,
      ventas_lines: ven?.rows ?? 0,
      inventario_seconds: round(inv.wallSeconds),
      ventas_seconds: round(ven?.wallSeconds ?? 0),
      inventario_startup_seconds: inv.startupSeconds,
      ventas_startup_seconds: ven?.startupSeconds ?? null,
      inventario_cpu_seconds: inv.cpuSeconds === null ? null : round(inv.cpuSeconds),
      ventas_cpu_seconds: ven?.cpuSeconds == null ? null : round(ven.cpuSeconds),
      inventario_peak_rss_mb: inv.peakRssMb === null ? null : Math.round(inv.peakRssMb),
      ventas_peak_rss_mb: ven?.peakRssMb == null ? null : Math.round(ven.peakRssMb),
    },
    differ: {
      ...stage(inv.rows, tDiffer, tExtracted, cpu1.differ! - cpu0.differ!, peaks.differ!),
      changes_out: m.differ_changes ?? 0,
      chunks_in: m.differ_in ?? 0,
    },
    dedupe: { ...stage(m.dedupe_in ?? 0, tDedupe, tExtracted, cpu1.dedupe! - cpu0.dedupe!, peaks.dedupe!), lines_out: m.dedupe_out ?? 0 },
    phantom: {
      ...stage(m.phantom_in ?? 0, tPhantom, Math.max(tDiffer, tDedupe), cpu1.phantom! - cpu0.phantom!, peaks.phantom!),
      alerts_out: m.phantom_out ?? 0,
    },
    sink: {
      ...stage(m.sink_records ?? 0, tSink, Math.max(tDiffer, tDedupe, tPhantom), cpu1.sink! - cpu0.sink!, peaks.sink!),
      rows_by_sink_metric: m.sink_rows ?? 0,
    },
  };
  const kafkaDelta = bytes0 && bytes1 ? deltaOf(bytes1, bytes0) : null;
  const result = {
    cycle,
    steady: cycle > 1,
    fecha,
    ours: {
      wall_seconds: round(wall),
      stages,
      rows_written: ourRowsWritten,
      rows_written_by_table: rowsWritten,
      // Rows written to the current-state tables per row whose content changed (a change
      // event): 1.0 when nothing is rewritten unchanged.
      write_amplification: stages.differ.changes_out
        ? round(((rowsWritten.inventario_actual ?? 0) + (rowsWritten.productos ?? 0)) / stages.differ.changes_out, 3)
        : null,
      kafka_bytes: kafkaDelta ? Object.values(kafkaDelta).reduce((s, n) => s + n, 0) : null,
      kafka_bytes_by_topic: kafkaDelta,
      freshness_seconds: {
        stores: freshness.length,
        stores_without_changed_rows: unchangedStores,
        p50: round(percentile(freshness, 50)),
        p95: round(percentile(freshness, 95)),
        max: freshness.length ? round(Math.max(...freshness)) : null,
        values: freshness.map((f) => round(f, 3)),
      },
      aborted_transactions: m.aborts ?? 0,
    },
    legacy: {
      style: `${legacyStyle} x ${legacyBatch}`,
      read_seconds: round(readSeconds),
      write_seconds: round(write.seconds),
      total_seconds: round(legacyTotal),
      rows_read: legacyRowsRead,
      rows_written: write.rows_written,
      statements: write.statements,
      read_cpu_seconds: round((benchCpu.user + benchCpu.system) / 1e6),
      read_simulator_cpu_seconds: simCpu,
      write_pg_cpu_seconds: write.pg_cpu_seconds,
    },
    copy: {
      seconds: round(copy.seconds, 3),
      rows: copy.rows_written,
      rows_per_second: Math.round(copy.rows_written / copy.seconds),
      pg_cpu_seconds: copy.pg_cpu_seconds,
    },
    ratios: {
      ours_to_legacy_wall: round(wall / legacyTotal),
      ours_to_copy_wall: round(wall / copy.seconds),
      legacy_to_ours_rows_written: round(write.rows_written / Math.max(1, ourRowsWritten)),
    },
    cpu_seconds: Object.fromEntries(Object.entries(cpu1).map(([k, v]) => [k, round(v - cpu0[k]!)])),
    postgres: { cpu_seconds: round(pgCpu), peak_rss_sum_mb: pgMem.rss_sum_mb, peak_anon_plus_shared_mb: pgMem.anon_plus_shared_mb },
    peak_rss_mb: {
      ...peaks,
      'extract-inventario': stages.extract.inventario_peak_rss_mb,
      'extract-ventas': stages.extract.ventas_peak_rss_mb,
    },
    peak_rss_split_mb: split,
  };
  return result;
}
