#!/usr/bin/env node
/**
 * bench/e2e: the whole pipeline, cycle after cycle, against the simulators, side by side with
 * the system it replaces and with the COPY ceiling, on the same simulated data in one run.
 * Writes bench/results/<date>-<scenario>.json (or --out).
 *
 *   bench/e2e --scenario chain|national [--cycles 4] [--klk-products N] [--stellar-products N]
 *             [--stores N] [--change-share 0.05] [--concurrency 4] [--legacy unnest|values]
 *             [--legacy-batch N] [--keep] [--kill-differ] [--no-legacy] [--cpu-prof <dir>] [--out <file>] [--log-dir <dir>]
 *
 * Every Fluxion process is the CLI in its own process, as production runs them: the KLK
 * simulator (`fluxion simulate klk`, advanced through its control API), the Stellar simulators
 * (`fluxion simulate stellar`, advanced with SIGUSR2), `process differ|dedupe|phantom`,
 * `sink postgres --no-abc`, and per cycle `extract inventario --todas` and
 * `extract ventas --todas` at once. A cycle of ours is timed from the start of the
 * extractors to the instant every processor group and the sink (its sink_offsets) reached
 * the last record of every topic they read. Then, on the same simulator state, the replaced
 * system: every store read with the extractors' own reading code (no Kafka) and every row
 * upserted into tables shaped like inventario_actual and ventas; then COPY of those rows
 * into empty tables. Then the simulators move 30 simulated minutes.
 *
 * Topics live under a fresh prefix and the tables in a fresh database, both deleted at the
 * end unless --keep. Child logs: .cache/bench-e2e/<run>/ (or --log-dir).
 * Needs the services (bench/e2e starts them; `node bench/e2e.ts` reads `scripts/services env`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { loadConfig, loadUbicaciones } from '../core/config/environment.ts';
import { readSecret, readStellarTls, type Ubicacion } from '../core/config/ubicaciones.ts';
import { createKafkaClient } from '../core/kafka/client.ts';
import type { FluxionAdmin } from '../core/kafka/types.ts';
import { createLogger } from '../core/logger.ts';
import { PROJECT_ROOT } from '../core/paths.ts';
import { DEFAULT_RETRY } from '../core/retry.ts';
import { fechaCaracas } from '../core/time.ts';
import { topicName, type TopicName } from '../core/topics.ts';
import { createKlkApi } from '../extractors/klk-api.ts';
import type { InventoryRow } from '../extractors/inventory-row.ts';
import type { VentaLinea } from '../extractors/venta-line.ts';
import { INVENTARIO_ACTUAL_COLUMNS } from '../sinks/sink-batch.ts';
import { freePort, scrape, startChild, type Child } from './lib/child.ts';
import { copyField, copyInto, createActualShapedTable, INVENTARIO_ACTUAL_TYPES, INVENTARIO_KEY, unnestUpsert, valuesUpsert } from './lib/pg-writes.ts';
import { childPids, procCpuSeconds, procStatusKb, resetPeakRss } from './lib/proc.ts';
import { startEndTracker } from '../core/kafka/end-tracker.ts';
import { servicesEnv } from './lib/services-env.ts';
import { median, percentile, round } from './lib/stats.ts';

const { values } = parseArgs({
  options: {
    scenario: { type: 'string' },
    cycles: { type: 'string', default: '4' },
    'klk-products': { type: 'string' },
    'stellar-products': { type: 'string' },
    stores: { type: 'string' },
    'change-share': { type: 'string', default: '0.05' },
    concurrency: { type: 'string', default: '4' },
    legacy: { type: 'string', default: 'unnest' },
    'legacy-batch': { type: 'string' },
    'klk-port': { type: 'string', default: '38701' },
    'timeout-minutes': { type: 'string', default: '30' },
    keep: { type: 'boolean', default: false },
    'kill-differ': { type: 'boolean', default: false },
    'no-legacy': { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    'heap-mb': { type: 'string' },
    'node-args': { type: 'string', default: '' },
    out: { type: 'string' },
    'log-dir': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

const USAGE = `usage: bench/e2e --scenario chain|national [--cycles 4] [--klk-products N] [--stellar-products N] [--stores N]
                 [--change-share 0.05] [--concurrency 4] [--legacy unnest|values] [--legacy-batch N]
                 [--keep] [--kill-differ] [--no-legacy] [--cpu-prof <dir>] [--heap-mb N] [--node-args='<flags>'] [--out <file>] [--log-dir <dir>] [--timeout-minutes 30]
  chain:    the store list's active stores (12 KLK x 15,000 products, 4 Stellar x 40,000 a deposito)
  national: --stores KLK stores (default 500) x --klk-products (default 1,000; 20,000 is the target, scaled down)`;

class UsageFailure extends Error {}

function intOption(name: string, fallback: number, min = 1): number {
  const raw = values[name as keyof typeof values];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new UsageFailure(`--${name} must be a whole number >= ${min}, got "${String(raw)}"`);
  return n;
}

// The production image's V8 flags for every Fluxion process (Dockerfile).
const NODE_OPTIONS = '--max-semi-space-size=8';
const fluxion = join(PROJECT_ROOT, 'bin', 'fluxion.ts');
const exitUsage = join(PROJECT_ROOT, 'bench', 'lib', 'exit-usage.ts');
/** Issue 16's goals (bench/README.md reads the results against them). */
const GOALS = {
  max_ratio_to_legacy: 0.8,
  max_cycle1_ratio_to_legacy: 2,
  min_fewer_rows_factor: 15,
  max_freshness_p95_seconds: 2,
  max_write_amplification: 1.05,
  max_fluxion_rss_mb: 300,
  max_national_cycle_seconds: 600,
  max_restart_seconds: 30,
  max_kafka_bytes_share: 0.25,
};
/** The last chain run before issue 16 (no compression): the Kafka-bytes goal's baseline. */
const BEFORE_FILE = join(PROJECT_ROOT, 'bench', 'results', '2026-11-29-chain.json');
const PIPELINE_CPU = ['differ', 'dedupe', 'phantom', 'sink', 'kafka'];

/** CPU seconds of the pipeline in a cycle: the extractors, the processors, the sink and Kafka. */
function pipelineCpu(r: Record<string, unknown>): number {
  const cpu = r.cpu_seconds as Record<string, number>;
  const extract = ((r.ours as { stages: { extract: { cpu_seconds: number | null } } }).stages.extract.cpu_seconds) ?? 0;
  return PIPELINE_CPU.reduce((sum, k) => sum + (cpu[k] ?? 0), extract);
}

/** Steady medians of Kafka bytes and pipeline CPU in BEFORE_FILE, or null when it is not there. */
function before(): { kafka_bytes: number; pipeline_cpu_seconds: number; file: string } | null {
  if (!existsSync(BEFORE_FILE)) return null;
  const cycles = (JSON.parse(readFileSync(BEFORE_FILE, 'utf8')) as { cycles: Array<Record<string, unknown>> }).cycles.filter((c) => c.steady);
  return {
    kafka_bytes: median(cycles.map((c) => (c.ours as { kafka_bytes: number }).kafka_bytes)),
    pipeline_cpu_seconds: round(median(cycles.map(pipelineCpu))),
    file: BEFORE_FILE.slice(PROJECT_ROOT.length + 1),
  };
}
const NATIONAL_TARGET = { stores: 500, products: 20_000 };
const POLL_MS = 100;
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const out = (line = '') => process.stdout.write(`${line}\n`);

// ---------------------------------------------------------------------------------------
// The run's resources, released on every exit path.
// ---------------------------------------------------------------------------------------

const longLived: Child[] = [];
const simulators: Array<{ name: string; proc: ChildProcess }> = [];
const running = new Set<ChildProcess>();
const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const p of running) p.kill('SIGKILL');
    await Promise.all(longLived.map((c) => c.stop().catch(() => undefined)));
    for (const s of simulators) if (s.proc.exitCode === null) s.proc.kill('SIGTERM');
    for (const c of cleanups.reverse()) await c().catch((err: unknown) => out(`cleanup: ${(err as Error).message}`));
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    out(`\n${signal}: stopping every child and cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------
// Stores, simulators, children.
// ---------------------------------------------------------------------------------------

/** A store list of `n` KLK stores on one port (the national scenario). */
function nationalStoreList(file: string, n: number, port: number): void {
  const lines = ['# generated by bench/e2e (national scenario)', 'ubicaciones:'];
  for (let i = 1; i <= n; i++) {
    const id = `tienda_n${String(i).padStart(4, '0')}`;
    lines.push(
      `  - id: ${id}`,
      `    nombre: "Tienda nacional ${i}"`,
      '    tipo: tienda',
      '    activa: true',
      '    pos: klk',
      '    depositos: ["01"]',
      '    klk:',
      '      base_url:',
      `        local: http://127.0.0.1:${port}/${id}`,
      `        production: https://klk-${id}.example.invalid`,
      `      api_key_env: KLK_API_KEY_${id.toUpperCase()}`,
    );
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
}

/** Credentials the simulators and the extractors both read. */
function secretsFor(stores: Ubicacion[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const u of stores) {
    if (u.pos === 'klk') env[u.klk.apiKeyEnv] = `bench-key-${u.id}`;
    else {
      env[u.stellar.userEnv] = 'fluxion_bench';
      env[u.stellar.passwordEnv] = `bench-password-${u.id}`;
    }
  }
  return env;
}

/** Runs a set-up command to its end; its output goes to the log directory. */
async function runCli(args: string[], env: NodeJS.ProcessEnv, logDir: string): Promise<string> {
  const log = join(logDir, `${args.slice(0, 2).join('-')}.log`);
  const proc = spawn(process.execPath, [fluxion, ...args], { env, cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  let text = '';
  proc.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const code = await new Promise<number>((r) => proc.on('close', (c) => r(c ?? 1)));
  running.delete(proc);
  writeFileSync(log, text);
  if (code !== 0) throw new Error(`fluxion ${args.join(' ')} failed (exit ${code}); see ${log}:\n${text.split('\n').slice(-15).join('\n')}`);
  return text;
}

/** Starts a simulator process and waits for its ready lines. */
async function startSimulator(name: string, args: string[], env: NodeJS.ProcessEnv, logDir: string, ready: (text: string) => boolean): Promise<ChildProcess> {
  const log = createWriteStream(join(logDir, `${name}.log`));
  const proc = spawn(process.execPath, args, { env, cwd: PROJECT_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  simulators.push({ name, proc });
  proc.stderr!.pipe(log);
  let text = '';
  await new Promise<void>((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} not ready within 5 minutes; see ${join(logDir, `${name}.log`)}`)), 300_000);
    proc.stdout!.on('data', (d: Buffer) => {
      log.write(d);
      text += d.toString();
      if (ready(text)) {
        clearTimeout(timer);
        resolveReady();
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before it was ready; see ${join(logDir, `${name}.log`)}`));
    });
  });
  return proc;
}

interface ExtractRun {
  code: number;
  wallSeconds: number;
  cpuSeconds: number | null;
  peakRssMb: number | null;
  rows: number;
  /** Per store: when its transaction committed (the 'store extracted' log line) and its snapshot. */
  stores: Array<{ ubicacion: string; at: number; snapshotId: string | null; rows: number; ms: number }>;
  /** From the spawn to the first store's read starting (node start-up, imports, connections). */
  startupSeconds: number | null;
  failed: string[];
  log: string;
}

/** One `fluxion extract ...` process; CPU and peak RSS reported by itself on exit (bench/lib/exit-usage.ts). */
async function runExtract(name: string, args: string[], env: NodeJS.ProcessEnv, nodeArgs: string[], logDir: string): Promise<ExtractRun> {
  const log = join(logDir, `${name}.log`);
  const usageFile = join(logDir, `${name}.usage.jsonl`);
  writeFileSync(usageFile, '');
  const file = createWriteStream(log);
  const t0 = performance.now();
  const spawnedAt = Date.now();
  const proc = spawn(process.execPath, [...nodeArgs, '--import', exitUsage, fluxion, ...args], { env: { ...env, LOG_LEVEL: 'info', FLUXION_BENCH_USAGE_FILE: usageFile }, cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  const stores: ExtractRun['stores'] = [];
  const failed: string[] = [];
  let buffered = '';
  proc.stdout!.pipe(file);
  proc.stderr!.on('data', (d: Buffer) => {
    file.write(d);
    buffered += d.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    for (const text of parts) {
      if (!text.startsWith('{')) continue;
      try {
        const line = JSON.parse(text) as Record<string, unknown>;
        if (line.msg === 'store extracted') stores.push({ ubicacion: String(line.ubicacion), at: Date.parse(String(line.time)), snapshotId: (line.snapshot_id as string | null) ?? null, rows: Number(line.rows ?? 0), ms: Number(line.ms ?? 0) });
        if (line.msg === 'store extraction failed') failed.push(`${String(line.ubicacion)}: ${String(line.error_class)}`);
      } catch {
        // not a log line
      }
    }
  });
  const code = await new Promise<number>((r) => proc.on('close', (c) => r(c ?? 1)));
  running.delete(proc);
  file.end();
  const wallSeconds = (performance.now() - t0) / 1000;
  const usage = readFileSync(usageFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { cpu_seconds: number; max_rss_mb: number }).at(-1);
  const firstStart = Math.min(...stores.map((x) => x.at - x.ms));
  const startupSeconds = stores.length ? round((firstStart - spawnedAt) / 1000) : null;
  return { code, wallSeconds, cpuSeconds: usage?.cpu_seconds ?? null, peakRssMb: usage?.max_rss_mb ?? null, rows: stores.reduce((s, x) => s + x.rows, 0), stores, startupSeconds, failed, log };
}

// ---------------------------------------------------------------------------------------
// Where a stage is: Kafka ends, group offsets, sink_offsets.
// ---------------------------------------------------------------------------------------

const reached = (ends: Map<number, bigint>, at: (p: number) => bigint) => [...ends].every(([p, end]) => at(p) >= end);

interface Deadline {
  at: number;
  minutes: number;
}

/** The instant the group's committed offsets reached `ends` (polled every 100 ms). */
async function groupReached(admin: FluxionAdmin, group: string, topic: string, ends: Map<number, bigint>, child: Child, deadline: Deadline): Promise<number> {
  let exit: number | undefined;
  void child.exited.then((c) => (exit = c));
  for (;;) {
    const committed = await admin.groupOffsets(group, topic);
    const now = performance.now();
    if (reached(ends, (p) => BigInt(committed.find((o) => o.partition === p)?.offset ?? '-1'))) return now;
    if (exit !== undefined) throw new Error(`${child.name} exited (${exit}) before reaching the end of ${topic}:\n${child.tail()}`);
    if (now > deadline.at) throw new Error(`${child.name} did not reach the end of ${topic} within ${deadline.minutes} minutes (see its log)`);
    await sleep(POLL_MS);
  }
}

/** The instant the sink's sink_offsets reached `ends`. */
async function sinkReached(db: pg.Pool, group: string, topic: string, ends: Map<number, bigint>, child: Child, deadline: Deadline): Promise<number> {
  let exit: number | undefined;
  void child.exited.then((c) => (exit = c));
  for (;;) {
    const stored = await db.query<{ partition: number; next_offset: string }>('SELECT partition, next_offset FROM sink_offsets WHERE consumer_group = $1 AND topic = $2', [group, topic]);
    const now = performance.now();
    if (reached(ends, (p) => BigInt(stored.rows.find((r) => r.partition === p)?.next_offset ?? '-1'))) return now;
    if (exit !== undefined) throw new Error(`the sink exited (${exit}) before reaching the end of ${topic}:\n${child.tail()}`);
    if (now > deadline.at) throw new Error(`the sink did not reach the end of ${topic} within ${deadline.minutes} minutes (see its log)`);
    await sleep(POLL_MS);
  }
}

// ---------------------------------------------------------------------------------------
// Services: pids, CPU, RSS, Kafka's bytes on disk, PostgreSQL's row counters.
// ---------------------------------------------------------------------------------------

interface ServiceProcs {
  kafka: number | null;
  registry: number | null;
  postmaster: number | null;
  kafkaDataDir: string | null;
}

function pidFile(file: string): number | null {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return pid > 0 && existsSync(`/proc/${pid}`) ? pid : null;
  } catch {
    return null;
  }
}

async function serviceProcs(db: pg.Pool): Promise<ServiceProcs> {
  const dir = resolve(PROJECT_ROOT, process.env.FLUXION_SERVICES_DIR ?? join('.cache', 'services'));
  // The postmaster is the parent of our own backend (a cluster on this machine only).
  const me = (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  let postmaster: number | null = null;
  if (existsSync(`/proc/${me}/stat`)) {
    const stat = readFileSync(`/proc/${me}/stat`, 'utf8');
    postmaster = Number(stat.slice(stat.lastIndexOf(') ') + 2).split(' ')[1]);
  }
  const data = join(dir, 'kafka', 'data');
  return { kafka: pidFile(join(dir, 'kafka', 'kafka.pid')), registry: pidFile(join(dir, 'registry', 'registry.pid')), postmaster, kafkaDataDir: existsSync(data) ? data : null };
}

const pgPids = (postmaster: number | null) => (postmaster ? [postmaster, ...childPids(postmaster)] : []);

/** Peak memory of PostgreSQL's processes over a cycle, sampled every 250 ms. */
function pgMemorySampler(postmaster: number | null) {
  let pids = pgPids(postmaster);
  let rssSum = 0;
  let privateSum = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    if (++ticks % 4 === 0) pids = pgPids(postmaster);
    let rss = 0;
    let anon = 0;
    let shmem = 0;
    for (const p of pids) {
      rss += procStatusKb(p, 'VmRSS');
      anon += procStatusKb(p, 'RssAnon');
      shmem = Math.max(shmem, procStatusKb(p, 'RssShmem'));
    }
    rssSum = Math.max(rssSum, rss);
    privateSum = Math.max(privateSum, anon + shmem);
  }, 250);
  return {
    pids: () => pids,
    stop() {
      clearInterval(timer);
      return { rss_sum_mb: Math.round(rssSum / 1024), anon_plus_shared_mb: Math.round(privateSum / 1024) };
    },
  };
}

/** Bytes of the prefix's log segments (*.log) per topic under Kafka's data directory. */
function kafkaBytes(dataDir: string | null, prefix: string): Record<string, number> | null {
  if (!dataDir) return null;
  const sizes: Record<string, number> = {};
  for (const name of readdirSync(dataDir)) {
    if (!name.startsWith(prefix)) continue;
    const topic = name.replace(/-\d+$/, '');
    for (const f of readdirSync(join(dataDir, name))) {
      if (f.endsWith('.log')) sizes[topic] = (sizes[topic] ?? 0) + statSync(join(dataDir, name, f)).size;
    }
  }
  return sizes;
}

/** n_tup_ins + n_tup_upd + n_tup_del per table (our tables only: not the bench's legacy/COPY tables). */
async function rowCounters(db: pg.Pool): Promise<Record<string, number>> {
  const r = await db.query<{ relname: string; n: string }>("SELECT relname, (n_tup_ins + n_tup_upd + n_tup_del)::text AS n FROM pg_stat_user_tables WHERE relname NOT LIKE 'bench\\_%'");
  return Object.fromEntries(r.rows.map((x) => [x.relname, Number(x.n)]));
}

/**
 * The counters once every backend has reported: a busy backend flushes its statistics at most
 * once a second, an idle one up to 10 s later (PGSTAT_IDLE_INTERVAL), so counters read at
 * once lose the last writes of a cycle to the next one. Read until two reads 1.5 s apart agree.
 */
async function settledRowCounters(db: pg.Pool): Promise<Record<string, number>> {
  let last = await rowCounters(db);
  for (let i = 0; i < 10; i++) {
    await sleep(1_500);
    const now = await rowCounters(db);
    if (Object.keys(now).length === Object.keys(last).length && Object.entries(now).every(([k, v]) => last[k] === v)) return now;
    last = now;
  }
  return last;
}

const deltaOf = (after: Record<string, number>, before: Record<string, number>) =>
  Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => (v as number) !== 0)) as Record<string, number>;

// ---------------------------------------------------------------------------------------
// The replaced system: read every store (the extractors' reading code), UPSERT every row.
// ---------------------------------------------------------------------------------------

const LEGACY_INV = 'bench_legacy_inventario';
const LEGACY_VENTAS = 'bench_legacy_ventas';
const COPY_INV = 'bench_copy_inventario';
const COPY_VENTAS = 'bench_copy_ventas';
const VENTAS_COLUMNS = ['ubicacion_id', 'numero_factura', 'linea', 'fecha', 'fecha_hora', 'producto_id', 'cantidad', 'precio_unitario', 'descuento', 'total', 'caja', 'anulada', 'extracted_at'] as const;
const VENTAS_TYPES = ['text', 'text', 'integer', 'date', 'timestamptz', 'text', 'numeric', 'numeric', 'numeric', 'numeric', 'text', 'boolean', 'timestamptz'];
const VENTAS_KEY = ['ubicacion_id', 'numero_factura', 'linea'];

type Cell = string | number | boolean | Date | null;
interface StoreRead {
  ubicacion: string;
  inventario: Cell[][];
  ventas: Cell[][];
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  }));
  return results;
}

async function legacyRead(stores: Ubicacion[], fecha: string, env: NodeJS.ProcessEnv, concurrency: number): Promise<StoreRead[]> {
  const logger = createLogger({ level: 'warn', destination: 2 });
  const { stellarInventario } = await import('../extractors/stellar-inventario.ts');
  return mapLimit(stores, concurrency, async (u) => {
    const signal = AbortSignal.timeout(15 * 60_000);
    const snapshotId = randomUUID();
    const takenAt = new Date();
    const inv = new Map<string, Cell[]>();
    const add = (r: InventoryRow) => inv.set(`${r.deposito}\u0000${r.producto_id}`, [u.id, r.deposito, r.producto_id, r.cantidad, r.costo, r.precio, r.activo, snapshotId, takenAt]);
    const ventas = new Map<string, Cell[]>();
    if (u.pos === 'klk') {
      const api = createKlkApi({ ubicacionId: u.id, baseUrl: u.klk.baseUrl, apiKey: readSecret(env, u.klk.apiKeyEnv, u.id), apiKeyEnv: u.klk.apiKeyEnv, pageSize: u.klk.pageSize, requestTimeoutMs: u.klk.timeoutMs, retry: DEFAULT_RETRY, signal, logger });
      for (const d of u.depositos) for await (const r of api.inventario(d)) add(r);
      const extractedAt = new Date();
      for await (const l of api.ventas(fecha) as AsyncGenerator<VentaLinea>) {
        ventas.set(`${l.numero_factura}\u0000${l.linea}`, [u.id, l.numero_factura, l.linea, l.fecha, l.fecha_hora, l.producto_id, l.cantidad, l.precio_unitario, l.descuento, l.total, l.caja, l.anulada, extractedAt]);
      }
    } else {
      for (const d of u.depositos) {
        const rows = stellarInventario(
          {
            ubicacionId: u.id, host: u.stellar.host, port: u.stellar.port, database: u.stellar.database,
            user: readSecret(env, u.stellar.userEnv, u.id), password: readSecret(env, u.stellar.passwordEnv, u.id), passwordEnv: u.stellar.passwordEnv,
            tls: readStellarTls(u, env), connectTimeoutMs: u.stellar.connectTimeoutMs, requestTimeoutMs: u.stellar.requestTimeoutMs, signal, logger,
          },
          d,
        );
        for await (const r of rows) add(r);
      }
    }
    return { ubicacion: u.id, inventario: [...inv.values()], ventas: [...ventas.values()] };
  });
}

async function createLegacyTables(db: pg.Pool): Promise<void> {
  await createActualShapedTable(db, LEGACY_INV);
  await db.query(`DROP TABLE IF EXISTS ${LEGACY_VENTAS}`);
  // ventas' columns, key and indexes, without what the dedupe adds.
  await db.query(`CREATE TABLE ${LEGACY_VENTAS} (LIKE ventas INCLUDING ALL)`);
  await db.query(`ALTER TABLE ${LEGACY_VENTAS} DROP COLUMN fingerprint, DROP COLUMN first_seen_at, DROP COLUMN version`);
}

interface WritePass {
  seconds: number;
  rows_written: number;
  statements: number;
  pg_cpu_seconds: number;
}

/** Every store in its own transaction: its inventory and its day of sales upserted. */
async function legacyWrite(client: pg.Client, reads: StoreRead[], style: 'unnest' | 'values', batch: number): Promise<WritePass> {
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const touch = 'actualizado_en = now()';
  const statement = (table: string, columns: readonly string[], types: readonly string[], key: readonly string[], rows: number, extra: string) =>
    style === 'unnest' ? unnestUpsert(table, columns, types, key, extra) : valuesUpsert(table, columns, key, rows, extra);
  const params = (rows: Cell[][], width: number): unknown[] => (style === 'unnest' ? Array.from({ length: width }, (_, c) => rows.map((r) => r[c])) : rows.flat());
  const cpu0 = procCpuSeconds(pid);
  const t0 = performance.now();
  let written = 0;
  let statements = 0;
  for (const s of reads) {
    await client.query('BEGIN');
    for (const [table, columns, types, key, rows, extra] of [
      [LEGACY_INV, INVENTARIO_ACTUAL_COLUMNS, INVENTARIO_ACTUAL_TYPES, INVENTARIO_KEY, s.inventario, touch],
      [LEGACY_VENTAS, VENTAS_COLUMNS, VENTAS_TYPES, VENTAS_KEY, s.ventas, ''],
    ] as const) {
      for (let i = 0; i < rows.length; i += batch) {
        const slice = rows.slice(i, i + batch);
        const r = await client.query(statement(table, columns, types, key, slice.length, extra), params(slice, columns.length));
        written += r.rowCount ?? 0;
        statements++;
      }
    }
    await client.query('COMMIT');
  }
  return { seconds: (performance.now() - t0) / 1000, rows_written: written, statements, pg_cpu_seconds: round(procCpuSeconds(pid) - cpu0) };
}

function copyChunks(rows: Iterable<Cell[]>): Buffer[] {
  const chunks: Buffer[] = [];
  let lines: string[] = [];
  for (const r of rows) {
    lines.push(`${r.map(copyField).join('\t')}\n`);
    if (lines.length === 1_000) {
      chunks.push(Buffer.from(lines.join('')));
      lines = [];
    }
  }
  if (lines.length) chunks.push(Buffer.from(lines.join('')));
  return chunks;
}

/** COPY of the same rows into empty tables shaped like the legacy ones (the ceiling). */
async function copyPass(client: pg.Client, reads: StoreRead[]): Promise<WritePass> {
  await createActualShapedTable(client, COPY_INV);
  await client.query(`DROP TABLE IF EXISTS ${COPY_VENTAS}`);
  await client.query(`CREATE TABLE ${COPY_VENTAS} (LIKE ${LEGACY_VENTAS} INCLUDING ALL)`);
  const inv = copyChunks(reads.flatMap((s) => s.inventario));
  const ven = copyChunks(reads.flatMap((s) => s.ventas));
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const cpu0 = procCpuSeconds(pid);
  const t0 = performance.now();
  let written = await copyInto(client, COPY_INV, inv);
  written += await copyInto(client, COPY_VENTAS, ven, [...VENTAS_COLUMNS]);
  return { seconds: (performance.now() - t0) / 1000, rows_written: written, statements: 2, pg_cpu_seconds: round(procCpuSeconds(pid) - cpu0) };
}

// ---------------------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------------------

interface StageFigures {
  rows: number;
  /** Seconds from the cycle's start until the stage reached the end of its input. */
  done_seconds: number;
  /** rows / done_seconds. */
  rows_per_second: number;
  /** done_seconds minus the upstream stage's: the time the stage adds after its input ended. */
  tail_seconds: number;
  cpu_seconds: number | null;
  peak_rss_mb: number | null;
}

async function main(): Promise<void> {
  if (values.help) {
    out(USAGE);
    return;
  }
  const scenario = values.scenario;
  if (scenario !== 'chain' && scenario !== 'national') throw new UsageFailure(`--scenario must be chain or national\n${USAGE}`);
  const cycles = intOption('cycles', 4);
  const concurrency = intOption('concurrency', 4);
  const changeShare = Number(values['change-share']);
  if (!(changeShare > 0 && changeShare < 1)) throw new UsageFailure(`--change-share must be between 0 and 1, got ${values['change-share']}`);
  const legacyStyle = values.legacy;
  if (legacyStyle !== 'unnest' && legacyStyle !== 'values') throw new UsageFailure('--legacy must be unnest or values');
  const legacyBatch = intOption('legacy-batch', legacyStyle === 'unnest' ? 5_000 : 500);
  const timeoutMinutes = intOption('timeout-minutes', 30);
  const heapMb = values['heap-mb'] === undefined ? null : intOption('heap-mb', 0, 64);
  const klkProducts = intOption('klk-products', scenario === 'chain' ? 15_000 : 1_000);
  const stellarProducts = intOption('stellar-products', 40_000);
  if (scenario === 'chain' && values.stores !== undefined) throw new UsageFailure('--stores is for the national scenario (chain = the store list)');
  const nationalStores = intOption('stores', NATIONAL_TARGET.stores);

  // Services.
  const services = (() => {
    try {
      return servicesEnv();
    } catch (err) {
      throw new Error(`cannot read the services' addresses (scripts/services env): ${(err as Error).message}\nstart them with scripts/services up (bench/e2e does it for you)`);
    }
  })();
  for (const name of ['KAFKA_BROKERS', 'SCHEMA_REGISTRY_URL', 'DATABASE_URL']) if (!services[name]) throw new Error(`scripts/services env gave no ${name}: run scripts/services up`);
  const runId = `e2e${Date.now().toString(36)}`;
  const prefix = `${runId}.`;
  const logDir = resolve(values['log-dir'] ?? join(PROJECT_ROOT, '.cache', 'bench-e2e', runId));
  mkdirSync(logDir, { recursive: true });
  const logger = createLogger({ level: 'error', destination: 2 });
  const kafka = createKafkaClient({ brokers: services.KAFKA_BROKERS!.split(','), clientId: 'fluxion-bench-e2e', logger });
  const adminDb = new pg.Pool({ connectionString: services.DATABASE_URL, max: 1, connectionTimeoutMillis: 5_000 });
  cleanups.push(() => adminDb.end());
  const reachable = async (what: string, check: () => Promise<unknown>) => {
    try {
      await Promise.race([check(), sleep(15_000).then(() => Promise.reject(new Error('no answer in 15 s')))]);
    } catch (err) {
      throw new Error(`${what} is not reachable (${(err as Error).message}): start the services with scripts/services up (bench/e2e does it for you)`);
    }
  };
  await reachable(`PostgreSQL at ${new URL(services.DATABASE_URL!).host}`, () => adminDb.query('SELECT 1'));
  await reachable(`the schema registry at ${services.SCHEMA_REGISTRY_URL}`, async () => {
    const r = await fetch(`${services.SCHEMA_REGISTRY_URL}/subjects`);
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
  });
  const admin = await kafka.admin();
  cleanups.push(() => admin.disconnect());
  await reachable(`Kafka at ${services.KAFKA_BROKERS}`, () => admin.describeCluster());

  // The database and the store list.
  await adminDb.query(`CREATE DATABASE ${runId}`);
  const dbUrl = new URL(services.DATABASE_URL!);
  dbUrl.pathname = `/${runId}`;
  const db = new pg.Pool({ connectionString: dbUrl.toString(), max: 3, application_name: 'fluxion-bench-e2e' });
  let ubicacionesFile = process.env.FLUXION_UBICACIONES_FILE ?? 'config/ubicaciones.yaml';
  const klkPort = intOption('klk-port', 38701);
  if (scenario === 'national') {
    ubicacionesFile = join(logDir, 'ubicaciones.yaml');
    nationalStoreList(ubicacionesFile, nationalStores, klkPort);
  }
  const baseEnv: NodeJS.ProcessEnv = { ...process.env, ...services, ETL_ENVIRONMENT: 'local', FLUXION_UBICACIONES_FILE: resolve(PROJECT_ROOT, ubicacionesFile) };
  const stores = loadUbicaciones(loadConfig(baseEnv)).filter((u) => u.activa);
  const klkStores = stores.filter((u) => u.pos === 'klk');
  const stellarStores = stores.filter((u) => u.pos === 'stellar');
  const env: NodeJS.ProcessEnv = { ...baseEnv, ...secretsFor(stores), DATABASE_URL: dbUrl.toString(), FLUXION_TOPIC_PREFIX: prefix, FLUXION_STATE_DIR: join(logDir, 'state'), LOG_LEVEL: 'info', NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${NODE_OPTIONS}`.trim() };
  const partitions = loadConfig(env).topics.partitions;
  cleanups.push(async () => {
    await db.end();
    if (values.keep) {
      out(`kept: database ${runId} (${dbUrl.toString().replace(/:[^:@/]*@/, ':***@')}), topics ${prefix}*, logs and state stores ${logDir}`);
      return;
    }
    rmSync(join(logDir, 'state'), { recursive: true, force: true });
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(prefix));
    if (topics.length) await admin.deleteTopics(topics);
    // FORCE refuses while an autovacuum worker (the superuser's) is in the database: it ends
    // within seconds, so try again rather than leave a database of 400,000 rows behind.
    for (let attempt = 1; ; attempt++) {
      try {
        await adminDb.query(`DROP DATABASE IF EXISTS ${runId} WITH (FORCE)`);
        break;
      } catch (err) {
        if (attempt >= 10) throw err;
        await sleep(1_000);
      }
    }
    const subjects = (await (await fetch(`${services.SCHEMA_REGISTRY_URL}/subjects`)).json()) as string[];
    for (const s of subjects.filter((x) => x.startsWith(prefix))) await fetch(`${services.SCHEMA_REGISTRY_URL}/subjects/${encodeURIComponent(s)}`, { method: 'DELETE' }).catch(() => undefined);
    out(`cleaned up: ${topics.length} topics ${prefix}*, database ${runId}, ${subjects.filter((x) => x.startsWith(prefix)).length} registry subjects (logs kept in ${logDir})`);
  });

  const scaled =
    scenario === 'national' && (nationalStores < NATIONAL_TARGET.stores || klkProducts < NATIONAL_TARGET.products)
      ? {
          target: `${NATIONAL_TARGET.stores} stores x ${fmt(NATIONAL_TARGET.products)} products (${fmt(NATIONAL_TARGET.stores * NATIONAL_TARGET.products)} rows a cycle)`,
          run: `${nationalStores} stores x ${fmt(klkProducts)} products (${fmt(nationalStores * klkProducts)} rows a cycle)`,
          reason:
            'scaled down in rows per store: at the target size cycle 1 alone writes 10 M change events (and 10 M history rows) through a sink measured at 4,000-8,000 events/s ' +
            '(bench/sink: 20-40 minutes), the differ would hold about 6 GB of state (about 600 bytes a row, bench/processors), and the KLK simulator holds every store in one process; ' +
            'the store count is kept so per-store costs (transactions, snapshots, freshness) are the national ones',
        }
      : null;
  const expected = { klk_stores: klkStores.length, stellar_locations: stellarStores.length, stellar_depositos: stellarStores.reduce((s, u) => s + u.depositos.length, 0) };
  out(`bench/e2e ${scenario}: ${klkStores.length} KLK stores x ${fmt(klkProducts)} products, ${stellarStores.length} Stellar locations (${expected.stellar_depositos} depositos) x ${fmt(stellarProducts)} products a deposito, ${(changeShare * 100).toFixed(1)}% changing per cycle, ${cycles} cycles`);
  if (scaled) out(`SCALED: ${scaled.run} instead of ${scaled.target}: ${scaled.reason}`);
  out(`run ${runId}: topics ${prefix}*, database ${runId}, logs ${logDir}`);

  // Set-up through the CLI.
  await runCli(['migrate'], env, logDir);
  await runCli(['topics', 'ensure'], env, logDir);
  await runCli(['schemas', 'register'], env, logDir);
  const followed: TopicName[] = ['pos.inventario.snapshots', 'pos.ventas.raw', 'ops.etl-runs', 'pos.inventario.changes', 'pos.ventas', 'alerts.phantom-zeros'];
  const tracker = await startEndTracker(services.KAFKA_BROKERS!.split(','), `${prefix}bench-end-tracker`, followed.map((t) => topicName(t, prefix)), admin);
  cleanups.push(() => tracker.stop());

  // Simulators.
  const simEnv = { ...env, LOG_LEVEL: 'warn' };
  const share = String(changeShare);
  let klkUrl: string | null = null;
  let stellarSim: ChildProcess | null = null;
  if (klkStores.length) {
    await startSimulator('simulate-klk', [fluxion, 'simulate', 'klk', '--products', String(klkProducts), '--change-share', share], simEnv, logDir, (t) => t.includes('KLK simulator:'));
    const first = klkStores[0] as Extract<Ubicacion, { pos: 'klk' }>;
    klkUrl = new URL(first.klk.baseUrl).origin;
  }
  if (stellarStores.length) {
    const want = stellarStores.length;
    stellarSim = await startSimulator('simulate-stellar', [fluxion, 'simulate', 'stellar', '--products', String(stellarProducts), '--change-share', share], simEnv, logDir, (t) => (t.match(/Stellar simulator:/g) ?? []).length >= want);
  }
  let stellarReplies = '';
  stellarSim?.stdout!.on('data', (d: Buffer) => (stellarReplies += d.toString()));
  const advance = async () => {
    if (klkUrl) {
      const r = await fetch(`${klkUrl}/_control/advance`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"minutes":30}' });
      if (!r.ok) throw new Error(`KLK simulator: advance answered HTTP ${r.status}`);
    }
    if (stellarSim) {
      const before = (stellarReplies.match(/advanced /g) ?? []).length;
      stellarSim.kill('SIGUSR2');
      const deadline = Date.now() + 120_000;
      while ((stellarReplies.match(/advanced /g) ?? []).length <= before) {
        if (Date.now() > deadline) throw new Error('Stellar simulator did not advance within 2 minutes');
        await sleep(20);
      }
    }
  };
  const simulatedFecha = async () => {
    if (!klkUrl) return fechaCaracas(new Date('2026-11-27T14:00:00Z'));
    const r = (await (await fetch(`${klkUrl}/_control/stores`)).json()) as Array<{ clock: string }>;
    return fechaCaracas(new Date(r[0]!.clock));
  };

  // Every long-running Fluxion process.
  const profDir = values['cpu-prof'] ? resolve(values['cpu-prof']) : null;
  // --heap-mb: V8's old-space limit for every Fluxion process, as docker-compose.yml sets it
  // for the processors; without it V8 lets the heap grow to about twice what is live.
  const heapArgs = heapMb === null ? [] : [`--max-old-space-size=${heapMb}`];
  // --node-args: more V8/node flags for every Fluxion process (extractors included), e.g.
  // --import=bench/lib/memory-breakdown.ts to see what a peak RSS is made of.
  const extraNodeArgs = values['node-args']!.split(' ').filter(Boolean);
  const nodeArgs = (name: string) => [...heapArgs, ...extraNodeArgs, ...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${join(profDir, name)}`] : [])];
  const ports: Record<string, number> = {};
  const procs: Record<'differ' | 'dedupe' | 'phantom' | 'sink', Child> = {} as never;
  for (const kind of ['differ', 'dedupe', 'phantom', 'sink'] as const) {
    ports[kind] = await freePort();
    const args = kind === 'sink' ? ['sink', 'postgres', '--no-abc'] : ['process', kind];
    const child = startChild(kind, [...nodeArgs(kind), fluxion, ...args, '--metrics-port', String(ports[kind])], env, logDir);
    longLived.push(child);
    procs[kind] = child;
  }
  const groups = { differ: `${prefix}fluxion-differ`, dedupe: `${prefix}fluxion-dedupe`, phantom: `${prefix}fluxion-phantom`, sink: `${prefix}fluxion-sink-postgres` };
  {
    const exitedEarly: string[] = [];
    for (const c of longLived) void c.exited.then((code) => exitedEarly.push(`${c.name} (exit ${code})`));
    const deadline = Date.now() + 120_000;
    for (;;) {
      const described = await admin.describeGroups(Object.values(groups));
      if (described.every((g) => g.state === 'Stable' && g.members >= 1)) break;
      if (exitedEarly.length) throw new Error(`${exitedEarly.join(', ')} exited at start; see ${logDir}`);
      if (Date.now() > deadline) throw new Error(`the processes did not join their groups within 2 minutes: ${JSON.stringify(described)}; see ${logDir}`);
      await sleep(250);
    }
  }
  out(`processes up: ${longLived.map((c) => `${c.name} (pid ${c.pid})`).join(', ')}`);

  const svc = await serviceProcs(db);
  const simPids = Object.fromEntries(simulators.map((s) => [s.name, s.proc.pid!]));
  const scrapeAll = async () => ({
    differ_changes: await scrape(ports.differ!, 'fluxion_differ_changes_total'),
    differ_in: await scrape(ports.differ!, 'fluxion_processor_records_in_total'),
    dedupe_in: await scrape(ports.dedupe!, 'fluxion_processor_records_in_total'),
    dedupe_out: await scrape(ports.dedupe!, 'fluxion_processor_records_out_total'),
    phantom_in: await scrape(ports.phantom!, 'fluxion_processor_records_in_total'),
    phantom_out: await scrape(ports.phantom!, 'fluxion_processor_records_out_total'),
    sink_records: await scrape(ports.sink!, 'fluxion_sink_records_total'),
    sink_rows: await scrape(ports.sink!, 'fluxion_sink_rows_total'),
    aborts: (await scrape(ports.differ!, 'fluxion_processor_aborts_total')) + (await scrape(ports.dedupe!, 'fluxion_processor_aborts_total')) + (await scrape(ports.phantom!, 'fluxion_processor_aborts_total')),
  });

  await createLegacyTables(db);
  const legacyClient = new pg.Client({ connectionString: dbUrl.toString(), application_name: 'fluxion-bench-legacy' });
  await legacyClient.connect();
  cleanups.push(() => legacyClient.end());

  const results: Array<Record<string, unknown>> = [];
  const deadlineOf = (): Deadline => ({ at: performance.now() + timeoutMinutes * 60_000, minutes: timeoutMinutes });
  const topic = (t: TopicName) => topicName(t, prefix);

  for (let cycle = 1; cycle <= cycles; cycle++) {
    if (cycle > 1) await advance();
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
    const deadline = deadlineOf();
    const benchOurs0 = process.cpuUsage();

    // Ours: both extractions at once, then every stage to the end of its input.
    const t0 = performance.now();
    const [inv, ven] = await Promise.all([
      runExtract('extract-inventario', ['extract', 'inventario', '--todas', '--concurrency', String(concurrency)], env, nodeArgs('extract-inventario'), cycleDir),
      klkStores.length ? runExtract('extract-ventas', ['extract', 'ventas', '--todas', '--fecha', fecha, '--concurrency', String(concurrency)], env, nodeArgs('extract-ventas'), cycleDir) : Promise.resolve(null),
    ]);
    const tExtracted = performance.now();
    for (const x of [inv, ven]) if (x && x.code !== 0) throw new Error(`cycle ${cycle}: ${x.log} exited ${x.code}${x.failed.length ? `: failed stores ${x.failed.join(', ')}` : ''}`);
    const ends = (t: TopicName) => tracker.ends(topic(t));
    const snapshotsEnd = ends('pos.inventario.snapshots');
    const ventasRawEnd = ends('pos.ventas.raw');
    const etlEnd = ends('ops.etl-runs');
    const differDone = snapshotsEnd.then((e) => groupReached(admin, groups.differ, topic('pos.inventario.snapshots'), e, procs.differ, deadline));
    const dedupeDone = ventasRawEnd.then((e) => groupReached(admin, groups.dedupe, topic('pos.ventas.raw'), e, procs.dedupe, deadline));
    const changesEnd = differDone.then(() => ends('pos.inventario.changes'));
    const ventasEnd = dedupeDone.then(() => ends('pos.ventas'));
    const phantomDone = Promise.all([
      changesEnd.then((e) => groupReached(admin, groups.phantom, topic('pos.inventario.changes'), e, procs.phantom, deadline)),
      ventasEnd.then((e) => groupReached(admin, groups.phantom, topic('pos.ventas'), e, procs.phantom, deadline)),
    ]).then((ts) => Math.max(...ts));
    const alertsEnd = phantomDone.then(() => ends('alerts.phantom-zeros'));
    const sinkAt = (t: TopicName, e: Promise<Map<number, bigint>>) => e.then((x) => sinkReached(db, groups.sink, topic(t), x, procs.sink, deadline));
    const sinkDone = Promise.all([sinkAt('pos.inventario.changes', changesEnd), sinkAt('pos.ventas', ventasEnd), sinkAt('ops.etl-runs', etlEnd), sinkAt('alerts.phantom-zeros', alertsEnd)]).then((ts) => Math.max(...ts));
    const [tDiffer, tDedupe, tPhantom, tSink] = await Promise.all([differDone, dedupeDone, phantomDone, sinkDone]);
    const tEnd = Math.max(tSink, tPhantom);

    // After: CPU first (the cycle is over), then the counters PostgreSQL flushes within a second.
    const cpu1 = Object.fromEntries(Object.entries(watched).map(([k, pid]) => [k, procCpuSeconds(pid)]));
    const benchOurs = process.cpuUsage(benchOurs0);
    cpu1.bench = (benchOurs.user + benchOurs.system) / 1e6;
    cpu0.bench = 0;
    const pgCpu = pgSampler.pids().reduce((s, p) => s + procCpuSeconds(p) - (pgCpu0.get(p) ?? 0), 0);
    const pgMem = pgSampler.stop();
    const peaks: Record<string, number> = Object.fromEntries(Object.entries(watched).map(([k, pid]) => [k, Math.round(procStatusKb(pid, 'VmHWM') / 1024)]));
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
      const r = await db.query<{ t: Date | null }>('SELECT max(actualizado_en) AS t FROM inventario_actual WHERE ubicacion_id = $1 AND snapshot_id = $2', [s.ubicacion, s.snapshotId]);
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
    const reads = values['no-legacy'] ? [] : await legacyRead(stores, fecha, env, concurrency);
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
      rows, done_seconds: round((done - t0) / 1000), rows_per_second: Math.round(rows / Math.max(0.001, (done - t0) / 1000)), tail_seconds: round((done - upstream) / 1000),
      cpu_seconds: cpu === null ? null : round(cpu), peak_rss_mb: rss,
    });
    const stages = {
      extract: { ...stage(extractRows, tExtracted, t0, (inv.cpuSeconds ?? 0) + (ven?.cpuSeconds ?? 0), Math.round(Math.max(inv.peakRssMb ?? 0, ven?.peakRssMb ?? 0))), inventario_rows: inv.rows, ventas_lines: ven?.rows ?? 0, inventario_seconds: round(inv.wallSeconds), ventas_seconds: round(ven?.wallSeconds ?? 0), inventario_startup_seconds: inv.startupSeconds, ventas_startup_seconds: ven?.startupSeconds ?? null, inventario_cpu_seconds: inv.cpuSeconds === null ? null : round(inv.cpuSeconds), ventas_cpu_seconds: ven?.cpuSeconds == null ? null : round(ven.cpuSeconds), inventario_peak_rss_mb: inv.peakRssMb === null ? null : Math.round(inv.peakRssMb), ventas_peak_rss_mb: ven?.peakRssMb == null ? null : Math.round(ven.peakRssMb) },
      differ: { ...stage(inv.rows, tDiffer, tExtracted, cpu1.differ! - cpu0.differ!, peaks.differ!), changes_out: m.differ_changes ?? 0, chunks_in: m.differ_in ?? 0 },
      dedupe: { ...stage(m.dedupe_in ?? 0, tDedupe, tExtracted, cpu1.dedupe! - cpu0.dedupe!, peaks.dedupe!), lines_out: m.dedupe_out ?? 0 },
      phantom: { ...stage(m.phantom_in ?? 0, tPhantom, Math.max(tDiffer, tDedupe), cpu1.phantom! - cpu0.phantom!, peaks.phantom!), alerts_out: m.phantom_out ?? 0 },
      sink: { ...stage(m.sink_records ?? 0, tSink, Math.max(tDiffer, tDedupe, tPhantom), cpu1.sink! - cpu0.sink!, peaks.sink!), rows_by_sink_metric: m.sink_rows ?? 0 },
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
        write_amplification: stages.differ.changes_out ? round(((rowsWritten.inventario_actual ?? 0) + (rowsWritten.productos ?? 0)) / stages.differ.changes_out, 3) : null,
        kafka_bytes: kafkaDelta ? Object.values(kafkaDelta).reduce((s, n) => s + n, 0) : null,
        kafka_bytes_by_topic: kafkaDelta,
        freshness_seconds: { stores: freshness.length, stores_without_changed_rows: unchangedStores, p50: round(percentile(freshness, 50)), p95: round(percentile(freshness, 95)), max: freshness.length ? round(Math.max(...freshness)) : null, values: freshness.map((f) => round(f, 3)) },
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
      copy: { seconds: round(copy.seconds, 3), rows: copy.rows_written, rows_per_second: Math.round(copy.rows_written / copy.seconds), pg_cpu_seconds: copy.pg_cpu_seconds },
      ratios: {
        ours_to_legacy_wall: round(wall / legacyTotal),
        ours_to_copy_wall: round(wall / copy.seconds),
        legacy_to_ours_rows_written: round(write.rows_written / Math.max(1, ourRowsWritten)),
      },
      cpu_seconds: Object.fromEntries(Object.entries(cpu1).map(([k, v]) => [k, round(v - cpu0[k]!)])),
      postgres: { cpu_seconds: round(pgCpu), peak_rss_sum_mb: pgMem.rss_sum_mb, peak_anon_plus_shared_mb: pgMem.anon_plus_shared_mb },
      peak_rss_mb: { ...peaks, 'extract-inventario': stages.extract.inventario_peak_rss_mb, 'extract-ventas': stages.extract.ventas_peak_rss_mb },
      peak_rss_split_mb: split,
    };
    results.push(result);
    // A run stopped later (a national cycle can take an hour) still leaves its finished cycles.
    writeFileSync(join(logDir, 'cycles.partial.json'), `${JSON.stringify({ scenario, run: runId, scaled, cycles: results }, null, 2)}\n`);
    printCycle(result);
  }

  // --kill-differ: a differ killed with SIGKILL and started again on the same state stores;
  // timed to its state loaded (the stores read from their checkpoints) and to its group stable
  // (which also waits for Kafka to evict the killed member: FLUXION_SESSION_TIMEOUT_MS). A
  // processor loads its state at the first batch after an assignment, so one store is
  // extracted again once the new differ owns its partitions.
  let restart: { state_records_loaded: number; restart_to_loaded_seconds: number; assigned_to_loaded_seconds: number; load_ms: number; kill_to_loaded_seconds: number; kill_to_stable_seconds: number; rss_after_load_mb: { anon: number; file: number } } | null = null;
  if (values['kill-differ']) {
    const tKill = performance.now();
    process.kill(procs.differ.pid, 'SIGKILL');
    await procs.differ.exited;
    const tStart = performance.now();
    const again = startChild('differ', [...nodeArgs('differ-restarted'), fluxion, 'process', 'differ', '--metrics-port', String(ports.differ)], env, logDir);
    longLived.push(again);
    procs.differ = again;
    const assigned = await again.waitLog('partitions assigned');
    const one = stores[0]!;
    const poke = await runExtract('extract-after-restart', ['extract', 'inventario', '--tienda', one.id], env, nodeArgs('extract-after-restart'), logDir);
    if (poke.code !== 0) throw new Error(`the extraction after the differ's restart exited ${poke.code}: ${poke.log}`);
    const loaded = [await again.waitLog('state loaded', 1), await again.waitLog('state loaded', 2)];
    const tLoaded = performance.now();
    const deadline = Date.now() + 300_000;
    for (;;) {
      const [g] = await admin.describeGroups([groups.differ]);
      if (g?.state === 'Stable' && g.members === 1) break;
      if (Date.now() > deadline) throw new Error(`the restarted differ's group did not become stable within 5 minutes: ${JSON.stringify(g)}`);
      await sleep(250);
    }
    restart = {
      state_records_loaded: loaded.reduce((sum, l) => sum + Number((l.line as { records?: number }).records ?? 0), 0),
      restart_to_loaded_seconds: round((tLoaded - tStart) / 1000),
      // When the bench read those lines: the state's own cost, without the wait for the group.
      assigned_to_loaded_seconds: round((loaded[1]!.at - assigned.at) / 1000),
      // What the load took by the differ's own account (its last 'state loaded' line counts from the start of the load).
      load_ms: Number((loaded[1]!.line as { ms?: number }).ms ?? 0),
      kill_to_loaded_seconds: round((tLoaded - tKill) / 1000),
      kill_to_stable_seconds: round((performance.now() - tKill) / 1000),
      rss_after_load_mb: { anon: Math.round(procStatusKb(again.pid, 'RssAnon') / 1024), file: Math.round(procStatusKb(again.pid, 'RssFile') / 1024) },
    };
    out(`differ restart after kill -9: state loaded ${restart.kill_to_loaded_seconds} s after the kill, ${restart.assigned_to_loaded_seconds} s after its assignment (${fmt(restart.state_records_loaded)} state records), group stable ${restart.kill_to_stable_seconds} s after the kill`);
  }

  // Summary, goals, file.
  const steady = results.filter((r) => r.steady);
  const basis = steady.length ? steady : results;
  const get = (r: Record<string, unknown>, path: string) => path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], r) as number;
  const med = (path: string) => round(median(basis.map((r) => get(r, path))));
  const medians = {
    cycles: basis.map((r) => r.cycle),
    ours_wall_seconds: med('ours.wall_seconds'),
    legacy_total_seconds: med('legacy.total_seconds'),
    legacy_read_seconds: med('legacy.read_seconds'),
    legacy_write_seconds: med('legacy.write_seconds'),
    copy_seconds: med('copy.seconds'),
    ours_to_legacy_wall: med('ratios.ours_to_legacy_wall'),
    ours_to_copy_wall: med('ratios.ours_to_copy_wall'),
    ours_rows_written: med('ours.rows_written'),
    legacy_rows_written: med('legacy.rows_written'),
    legacy_to_ours_rows_written: med('ratios.legacy_to_ours_rows_written'),
    kafka_bytes: med('ours.kafka_bytes'),
    stages: Object.fromEntries(['extract', 'differ', 'dedupe', 'phantom', 'sink'].map((s) => [s, { done_seconds: med(`ours.stages.${s}.done_seconds`), tail_seconds: med(`ours.stages.${s}.tail_seconds`), rows_per_second: med(`ours.stages.${s}.rows_per_second`), cpu_seconds: med(`ours.stages.${s}.cpu_seconds`) }])),
  };
  const steadyFreshness = basis.flatMap((r) => (r.ours as { freshness_seconds: { values: number[] } }).freshness_seconds.values);
  const fluxionPeaks = results.flatMap((r) => Object.entries(r.peak_rss_mb as Record<string, number | null>).filter(([k]) => ['differ', 'dedupe', 'phantom', 'sink', 'extract-inventario', 'extract-ventas'].includes(k)).map(([k, v]) => ({ process: k, cycle: r.cycle as number, mb: v ?? 0 })));
  const worst = fluxionPeaks.reduce((a, b) => (b.mb > a.mb ? b : a), { process: '-', cycle: 0, mb: 0 });
  const maxWall = Math.max(...results.map((r) => get(r, 'ours.wall_seconds')));
  const maxSteadyWall = Math.max(...basis.map((r) => get(r, 'ours.wall_seconds')));
  const freshP95 = round(percentile(steadyFreshness, 95));
  const applies = (s: string) => s === scenario;
  const cycle1 = results.find((r) => r.cycle === 1);
  const cycle1Ratio = cycle1 ? get(cycle1, 'ratios.ours_to_legacy_wall') : null;
  const amplification = round(median(basis.map((r) => get(r, 'ours.write_amplification')).filter((x) => typeof x === 'number')), 3);
  const splits = results.flatMap((r) => Object.entries(r.peak_rss_split_mb as Record<string, { anon: number; file: number }>).map(([process, v]) => ({ process, cycle: r.cycle as number, ...v })));
  const worstAnon = splits.reduce((a, b) => (b.anon > a.anon ? b : a), { process: '-', cycle: 0, anon: 0, file: 0 });
  // Extractors are short-lived: their peak is VmHWM at exit (anon and file together), an upper bound of their RssAnon.
  const extractPeak = Math.max(0, ...fluxionPeaks.filter((p) => p.process.startsWith('extract-')).map((p) => p.mb));
  const was = before();
  const kafkaNow = medians.kafka_bytes;
  const cpuNow = round(median(basis.map(pipelineCpu)));
  const goals = {
    chain_cycle_ratio_to_legacy: { goal: `ours/legacy wall <= ${GOALS.max_ratio_to_legacy} (chain, median of the steady cycles)`, applies: applies('chain'), met: medians.ours_to_legacy_wall <= GOALS.max_ratio_to_legacy, ours_seconds: medians.ours_wall_seconds, legacy_seconds: medians.legacy_total_seconds, ratio: medians.ours_to_legacy_wall },
    cycle1_ratio_to_legacy: { goal: `cycle 1 (every row new) <= ${GOALS.max_cycle1_ratio_to_legacy}x legacy (chain)`, applies: applies('chain'), met: cycle1Ratio !== null && cycle1Ratio <= GOALS.max_cycle1_ratio_to_legacy, ratio: cycle1Ratio, ours_seconds: cycle1 ? get(cycle1, 'ours.wall_seconds') : null, legacy_seconds: cycle1 ? get(cycle1, 'legacy.total_seconds') : null },
    rows_written_fewer: { goal: `legacy rows written / ours >= ${GOALS.min_fewer_rows_factor}`, applies: true, met: medians.legacy_to_ours_rows_written >= GOALS.min_fewer_rows_factor, ours: medians.ours_rows_written, legacy: medians.legacy_rows_written, factor: medians.legacy_to_ours_rows_written },
    write_amplification: { goal: `rows written to inventario_actual + productos per changed row <= ${GOALS.max_write_amplification} (median of the steady cycles)`, applies: true, met: amplification <= GOALS.max_write_amplification, median: amplification },
    freshness_p95: { goal: `freshness p95 <= ${GOALS.max_freshness_p95_seconds} s (steady cycles, every store pooled)`, applies: true, met: freshP95 <= GOALS.max_freshness_p95_seconds, p50: round(percentile(steadyFreshness, 50)), p95: freshP95, max: steadyFreshness.length ? round(Math.max(...steadyFreshness)) : null, stores: steadyFreshness.length },
    fluxion_rss: { goal: `no Fluxion process above ${GOALS.max_fluxion_rss_mb} MB peak RSS (chain; every cycle)`, applies: applies('chain'), met: worst.mb <= GOALS.max_fluxion_rss_mb, worst, heap_limit_mb: heapMb },
    fluxion_anon: { goal: `no Fluxion process above ${GOALS.max_fluxion_rss_mb} MB of RssAnon (national; state store pages, RssFile, apart)`, applies: applies('national'), met: worstAnon.anon <= GOALS.max_fluxion_rss_mb && extractPeak <= GOALS.max_fluxion_rss_mb, worst_long_lived: worstAnon, extractors_peak_rss_mb: extractPeak },
    national_cycle: { goal: `${cycles} national cycles complete, a steady one under ${GOALS.max_national_cycle_seconds} s`, applies: applies('national'), met: maxSteadyWall < GOALS.max_national_cycle_seconds && results.length === cycles, max_steady_seconds: maxSteadyWall, max_any_cycle_seconds: maxWall, scaled: scaled !== null },
    kafka_bytes: {
      goal: `a steady cycle's bytes on the log <= ${GOALS.max_kafka_bytes_share} of before issue 16, for <= 10% more pipeline CPU (chain)`,
      applies: applies('chain') && was !== null,
      met: was !== null && kafkaNow <= GOALS.max_kafka_bytes_share * was.kafka_bytes && cpuNow <= 1.1 * was.pipeline_cpu_seconds,
      bytes: kafkaNow, bytes_before: was?.kafka_bytes ?? null, share: was ? round(kafkaNow / was.kafka_bytes, 3) : null,
      pipeline_cpu_seconds: cpuNow, pipeline_cpu_seconds_before: was?.pipeline_cpu_seconds ?? null, before_file: was?.file ?? null,
      note: 'CPU compared across two runs (the before file is another day on the same machine): noisy; bench/compression.ts measures the codec alone',
    },
    differ_restart: { goal: `after kill -9, a differ is working again within ${GOALS.max_restart_seconds} s (--kill-differ)`, applies: restart !== null, met: restart !== null && restart.kill_to_loaded_seconds <= GOALS.max_restart_seconds, ...(restart ?? {}) },
  };
  const pgVersion = (await db.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v;
  const kafkaJar = svc.kafkaDataDir ? readdirSync(join(svc.kafkaDataDir, '..', 'libs')).find((f) => /^kafka_[\d.]+-[\d.]+\.jar$/.test(f)) : undefined;
  const report = {
    bench: 'e2e',
    scenario,
    date: new Date().toISOString(),
    run: runId,
    machine: {
      cpus: cpus().length, cpu_model: cpus()[0]?.model, memory_gb: round(totalmem() / 2 ** 30, 1), kernel: release(), node: process.version,
      services: { postgresql: pgVersion, kafka: kafkaJar?.replace(/^kafka_[\d.]+-/, '').replace(/\.jar$/, '') ?? null, registry: 'Apicurio 2.4.2 (scripts/services)' },
    },
    parameters: {
      cycles, klk_stores: klkStores.length, klk_products: klkProducts, stellar_locations: stellarStores.length, stellar_depositos: expected.stellar_depositos, stellar_products_per_deposito: stellarProducts,
      change_share: changeShare, sales_lines_per_store_hour: 2_000, simulated_minutes_per_cycle: 30, extract_concurrency: concurrency, partitions, legacy: values['no-legacy'] ? 'skipped (--no-legacy)' : `${legacyStyle} x ${legacyBatch}`, node_options: NODE_OPTIONS, heap_mb: heapMb, node_args: values['node-args'] || null, cpu_prof: profDir,
    },
    scaled,
    differ_restart: restart,
    cycles: results,
    steady_medians: medians,
    goals,
    notes: [
      'ours.wall_seconds: from the start of both extractor processes to the instant every processor group and the sink (sink_offsets) reached the last record of every topic they read (polled every 100 ms).',
      'stages: done_seconds from the cycle start; rows_per_second = rows / done_seconds; tail_seconds = done minus the upstream stage done; CPU from /proc/<pid>/stat (extractors: getrusage at exit).',
      'freshness: from the extractor\'s "store extracted" log line (after its Kafka transaction committed) to max(actualizado_en) of the snapshot\'s rows in inventario_actual (the sink\'s transaction start, now()): slightly optimistic by the duration of that transaction.',
      'rows_written: pg_stat_user_tables n_tup_ins + n_tup_upd + n_tup_del deltas over the cycle, every table of ours (sink_offsets, etl_runs and productos included); legacy: the upserts\' row counts.',
      'postgres peak_rss_sum_mb sums VmRSS of the postmaster and every backend (shared buffers counted once per process that touched them); peak_anon_plus_shared_mb = sum of RssAnon + the largest RssShmem.',
      'legacy reads in the bench process (the extractors\' reading code: extractors/klk-api.ts, extractors/stellar-inventario.ts), then writes with one connection, one transaction per store; both phases timed apart.',
      'the sink runs with --no-abc: the ABC recalculation is a daily job in both systems, outside the cycle.',
    ],
  };
  printSummary(report);
  const file = resolve(values.out ?? join(PROJECT_ROOT, 'bench', 'results', `${report.date.slice(0, 10)}-${scenario}.json`));
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  out(`written ${file}`);
}

// ---------------------------------------------------------------------------------------
// Printing.
// ---------------------------------------------------------------------------------------

function printCycle(r: Record<string, unknown>): void {
  const ours = r.ours as { wall_seconds: number; rows_written: number; kafka_bytes: number | null; stages: Record<string, StageFigures & Record<string, unknown>>; freshness_seconds: { p50: number; p95: number; max: number; stores: number } };
  const legacy = r.legacy as { read_seconds: number; write_seconds: number; total_seconds: number; rows_written: number };
  const copy = r.copy as { seconds: number; rows: number };
  const ratios = r.ratios as Record<string, number>;
  const pgm = r.postgres as { cpu_seconds: number; peak_rss_sum_mb: number; peak_anon_plus_shared_mb: number };
  const cpu = r.cpu_seconds as Record<string, number>;
  const peaks = r.peak_rss_mb as Record<string, number | null>;
  out('');
  out(`cycle ${r.cycle}${r.steady ? '' : ' (loads everything)'}: ours ${ours.wall_seconds} s | legacy ${legacy.total_seconds} s (read ${legacy.read_seconds} + write ${legacy.write_seconds}) | COPY ${copy.seconds} s (${fmt(copy.rows)} rows)`);
  out(`  ratios: ours/legacy ${ratios.ours_to_legacy_wall}, ours/COPY ${ratios.ours_to_copy_wall}; rows written: ours ${fmt(ours.rows_written)}, legacy ${fmt(legacy.rows_written)} (${ratios.legacy_to_ours_rows_written}x fewer)`);
  out(`  freshness (${ours.freshness_seconds.stores} stores): p50 ${ours.freshness_seconds.p50} s, p95 ${ours.freshness_seconds.p95} s, max ${ours.freshness_seconds.max} s; Kafka ${ours.kafka_bytes === null ? 'n/a' : `${(ours.kafka_bytes / 2 ** 20).toFixed(1)} MB`}`);
  out(`  ${'stage'.padEnd(8)} ${'rows'.padStart(10)} ${'done s'.padStart(7)} ${'tail s'.padStart(7)} ${'rows/s'.padStart(9)} ${'CPU s'.padStart(7)} ${'peak MB'.padStart(8)}`);
  for (const [name, s] of Object.entries(ours.stages)) {
    out(`  ${name.padEnd(8)} ${fmt(s.rows).padStart(10)} ${String(s.done_seconds).padStart(7)} ${String(s.tail_seconds).padStart(7)} ${fmt(s.rows_per_second).padStart(9)} ${String(s.cpu_seconds ?? '-').padStart(7)} ${String(s.peak_rss_mb ?? '-').padStart(8)}`);
  }
  const x = ours.stages.extract as Record<string, unknown>;
  out(`  extractors: inventario ${x.inventario_seconds} s (node start-up to first read ${x.inventario_startup_seconds} s), ventas ${x.ventas_seconds} s (start-up ${x.ventas_startup_seconds} s); bench process ${cpu.bench} s CPU (end tracker, polling)`);
  const svc = ['simulate-klk', 'simulate-stellar', 'kafka', 'registry'].filter((k) => k in cpu).map((k) => `${k} ${cpu[k]} s / ${peaks[k]} MB`);
  out(`  others (CPU s / peak RSS): ${[...svc, `postgresql ${pgm.cpu_seconds} s / ${pgm.peak_rss_sum_mb} MB summed (${pgm.peak_anon_plus_shared_mb} MB private+shared)`].join(', ')}`);
}

function printSummary(report: { steady_medians: Record<string, unknown>; goals: Record<string, { goal: string; applies: boolean; met: boolean } & Record<string, unknown>> }): void {
  const m = report.steady_medians as Record<string, number>;
  out('');
  out(`medians over cycles ${JSON.stringify(m.cycles)}: ours ${m.ours_wall_seconds} s, legacy ${m.legacy_total_seconds} s (read ${m.legacy_read_seconds} + write ${m.legacy_write_seconds}), COPY ${m.copy_seconds} s`);
  out(`  ours/legacy ${m.ours_to_legacy_wall}, ours/COPY ${m.ours_to_copy_wall}, rows written ours ${fmt(m.ours_rows_written ?? 0)} vs legacy ${fmt(m.legacy_rows_written ?? 0)} (${m.legacy_to_ours_rows_written}x fewer)`);
  out('goals:');
  for (const [name, g] of Object.entries(report.goals)) {
    const { goal, applies, met, ...figures } = g;
    out(`  ${applies ? (met ? 'MET   ' : 'MISSED') : 'n/a   '} ${name}: ${goal}: ${JSON.stringify(figures)}`);
  }
}

try {
  await main();
} catch (err) {
  if (err instanceof UsageFailure) {
    process.stderr.write(`bench/e2e: ${err.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`bench/e2e failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
} finally {
  await cleanup();
  // kafkajs and pg keep timers alive for a while: the work is done.
  process.exit();
}
