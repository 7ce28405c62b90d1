/**
 * bench/processors.ts's measuring and feeding: a pass timed from its first record to the
 * group's committed end (first, resumed, after a restart; CPU and peak RSS of the child), and
 * the inputs fed to the processors (a store's day of sales, a transactional feeder).
 */
import type { Child } from './child.ts';
import { round } from './stats.ts';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage, FluxionError } from '../../core/errors.ts';
import type { FluxionAdmin, KafkaClient, OutgoingRecord } from '../../core/kafka/client.ts';
import type { VentaLinea } from '../../core/records.ts';
import { withRetry } from '../../core/retry.ts';

// ---------------------------------------------------------------------------------------
// Timing a pass.
// ---------------------------------------------------------------------------------------

/**
 * An admin call, retried when kafkajs says its error is retriable (a leader moving while
 * others restart the shared broker); our retry policy knows only our errors, so translate.
 */
export function adminCall<T>(what: string, call: () => Promise<T>): Promise<T> {
  return withRetry({ retries: 8, initialDelayMs: 200, maxDelayMs: 5_000, factor: 2 }, async () => {
    try {
      return await call();
    } catch (err) {
      if ((err as { retriable?: unknown })?.retriable === true)
        throw new FluxionError(`${what}: ${errorMessage(err)}`, { code: 'BENCH_ADMIN', retriable: true, cause: err });
      throw err;
    }
  });
}

export async function endOffsets(admin: FluxionAdmin, topic: string): Promise<Map<number, bigint>> {
  return new Map((await adminCall(`offsets of ${topic}`, () => admin.topicOffsets(topic))).map((o) => [o.partition, BigInt(o.high)]));
}

/**
 * The instant the group's committed offsets reached `ends` (every input is written by
 * transactions, so a partition's last offset is a commit marker nobody consumes: one short).
 */
export async function groupAtEnd(
  admin: FluxionAdmin,
  group: string,
  topic: string,
  ends: Map<number, bigint>,
  child: Child,
  timeoutMs = 900_000,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let exitCode: number | undefined;
  void child.exited.then((c) => (exitCode = c));
  for (;;) {
    const offsets = await adminCall(`offsets of group ${group}`, () => admin.groupOffsets(group, topic));
    const at = performance.now();
    const done = [...ends].every(([p, end]) => end === 0n || BigInt(offsets.find((o) => o.partition === p)?.offset ?? '-1') >= end - 1n);
    if (done) return at;
    if (exitCode !== undefined)
      throw new Error(`${child.name} exited (${exitCode}) before reaching the end of ${topic}:\n${child.tail()}`);
    if (at > deadline) throw new Error(`${child.name} did not reach the end of ${topic} in ${timeoutMs} ms: ${JSON.stringify(offsets)}`);
    await sleep(50);
  }
}

export interface Pass {
  wall_seconds: number;
  rows: number;
  rows_per_second: number;
  cpu_seconds: number;
  peak_rss_mb: number;
  /**
   * Peak RssAnon (heap, buffers, native allocations) and RssFile (mapped files: a state
   * store's pages, reclaimable), sampled every 50 ms.
   */
  peak_rss_anon_mb?: number;
  peak_rss_file_mb?: number;
}

/** Peaks of RssAnon and RssFile since the child's start or its last resetPeak (VmHWM does not split them). */
export function takeRssSplit(child: Child): { peak_rss_anon_mb: number; peak_rss_file_mb: number } {
  const peak = child.peakRssSplitMb();
  return { peak_rss_anon_mb: peak.anon, peak_rss_file_mb: peak.file };
}

/** Counter values of a pass: what the process counted after it minus before it. */
export const delta = (after: Record<string, number>, before: Record<string, number>) =>
  Object.fromEntries(Object.keys(after).map((k) => [k, after[k]! - (before[k] ?? 0)]));

export function pass(rows: number, t0: number, t1: number, cpu0: number, cpu1: number, peakMb: number): Pass {
  const wall = (t1 - t0) / 1000;
  return {
    wall_seconds: round(wall),
    rows,
    rows_per_second: Math.round(rows / wall),
    cpu_seconds: round(cpu1 - cpu0),
    peak_rss_mb: Math.round(peakMb),
  };
}

/** A new process: timed from its group assignment (its start-up and group join are left out). */
export async function timeFirstPass(child: Child, admin: FluxionAdmin, group: string, topic: string, rows: number): Promise<Pass> {
  const ends = await endOffsets(admin, topic);
  const assigned = await child.waitLog('partitions assigned');
  const cpu0 = child.cpuSeconds();
  const t1 = await groupAtEnd(admin, group, topic, ends, child);
  return { ...pass(rows, assigned.at, t1, cpu0, child.cpuSeconds(), child.peakRssMb()), ...takeRssSplit(child) };
}

/** A process stopped while the input was published: timed from SIGCONT. */
export async function timeResumedPass(child: Child, admin: FluxionAdmin, group: string, topic: string, rows: number): Promise<Pass> {
  const ends = await endOffsets(admin, topic);
  child.resetPeak();
  const cpu0 = child.cpuSeconds();
  const t0 = performance.now();
  child.resume();
  const t1 = await groupAtEnd(admin, group, topic, ends, child);
  return { ...pass(rows, t0, t1, cpu0, child.cpuSeconds(), child.peakRssMb()), ...takeRssSplit(child) };
}

export interface Restart extends Pass {
  state_records: number;
  state_reloaded_records: number;
  load_seconds: number;
  load_cpu_seconds: number;
  rss_after_load_mb: number;
}

/** A new process of an existing group: loads the state, then processes what was published. */
export async function timeRestart(
  child: Child,
  admin: FluxionAdmin,
  group: string,
  topic: string,
  rows: number,
  stateTopics: number,
): Promise<Restart> {
  const ends = await endOffsets(admin, topic);
  const assigned = await child.waitLog('partitions assigned');
  const cpu0 = child.cpuSeconds();
  const loaded = await child.waitLog('state loaded', stateTopics);
  const loadCpu = child.cpuSeconds() - cpu0;
  const rssAfterLoad = child.rssMb();
  const t1 = await groupAtEnd(admin, group, topic, ends, child);
  const loads = child.logs('state loaded');
  return {
    state_records: loads.slice(0, stateTopics).reduce((sum, l) => sum + Number(l.line.records ?? 0), 0),
    // A transaction that aborts drops its partition's state, read again before the next batch.
    state_reloaded_records: loads.slice(stateTopics).reduce((sum, l) => sum + Number(l.line.records ?? 0), 0),
    load_seconds: round((loaded.at - assigned.at) / 1000),
    load_cpu_seconds: round(loadCpu),
    rss_after_load_mb: Math.round(rssAfterLoad),
    ...pass(rows, assigned.at, t1, cpu0, child.cpuSeconds(), child.peakRssMb()),
    ...takeRssSplit(child),
  };
}

// ---------------------------------------------------------------------------------------
// Inputs.
// ---------------------------------------------------------------------------------------

export const HOUR = 3_600_000;
export const RUN_ID = '0b7e1c52-8f3a-4d6e-9c1b-5a2f7d8e9b10';

/** A store's day of sales: invoices of 3 lines; a `corrected` share of the lines corrected. */
export function ventasDay(store: string, lines: number, fecha: string, corrected: number): VentaLinea[] {
  const start = Date.parse(`${fecha}T12:00:00Z`);
  const out: VentaLinea[] = [];
  for (let i = 0; i < lines; i++) {
    // Evenly spread: exactly floor(lines * corrected) lines of the day differ.
    const fix = Math.floor((i + 1) * corrected) > Math.floor(i * corrected);
    out.push({
      ubicacion_id: store,
      fecha,
      numero_factura: `${fecha.replaceAll('-', '')}-${String(Math.floor(i / 3) + 1).padStart(6, '0')}`,
      linea: (i % 3) + 1,
      fecha_hora: new Date(start + i * 1_000),
      producto_id: String(100_000 + ((i * 7) % 15_000)).padStart(6, '0'),
      cantidad: fix ? '1.000' : '2.000',
      precio_unitario: '1.2000',
      descuento: '0.0000',
      total: fix ? '1.2000' : '2.4000',
      caja: String((i % 8) + 1).padStart(2, '0'),
      anulada: false,
    });
  }
  return out;
}

export interface Feeder {
  /** Publishes each store's records in its own transaction, as the extractors do. */
  publish(byStore: OutgoingRecord[][]): Promise<void>;
  close(): Promise<void>;
}

export async function feeder(kafka: KafkaClient, topic: string, id: string): Promise<Feeder> {
  const producer = await kafka.producer({ transactionalId: id });
  return {
    async publish(byStore) {
      for (const records of byStore) await producer.transaction(async (tx) => tx.send(topic, records));
    },
    close: () => producer.disconnect(),
  };
}
