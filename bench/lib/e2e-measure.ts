/**
 * bench/e2e.ts's measuring: where each stage is (Kafka ends, group offsets, sink_offsets),
 * the services' processes (pids, CPU, RSS), Kafka's bytes on disk and PostgreSQL's row counters.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { FluxionAdmin } from '../../core/kafka/client.ts';
import { PROJECT_ROOT } from '../../core/paths.ts';
import type { Child } from './child.ts';
import { childPids, procStatusKb } from './proc.ts';
import { POLL_MS } from './e2e-processes.ts';

// ---------------------------------------------------------------------------------------
// Where a stage is: Kafka ends, group offsets, sink_offsets.
// ---------------------------------------------------------------------------------------

export const reached = (ends: Map<number, bigint>, at: (p: number) => bigint) => [...ends].every(([p, end]) => at(p) >= end);

export interface Deadline {
  at: number;
  minutes: number;
}

/** The instant the group's committed offsets reached `ends` (polled every 100 ms). */
export async function groupReached(
  admin: FluxionAdmin,
  group: string,
  topic: string,
  ends: Map<number, bigint>,
  child: Child,
  deadline: Deadline,
): Promise<number> {
  let exit: number | undefined;
  void child.exited.then((c) => (exit = c));
  for (;;) {
    const committed = await admin.groupOffsets(group, topic);
    const now = performance.now();
    if (reached(ends, (p) => BigInt(committed.find((o) => o.partition === p)?.offset ?? '-1'))) return now;
    if (exit !== undefined) throw new Error(`${child.name} exited (${exit}) before reaching the end of ${topic}:\n${child.tail()}`);
    if (now > deadline.at)
      throw new Error(`${child.name} did not reach the end of ${topic} within ${deadline.minutes} minutes (see its log)`);
    await sleep(POLL_MS);
  }
}

/** The instant the sink's sink_offsets reached `ends`. */
export async function sinkReached(
  db: pg.Pool,
  group: string,
  topic: string,
  ends: Map<number, bigint>,
  child: Child,
  deadline: Deadline,
): Promise<number> {
  let exit: number | undefined;
  void child.exited.then((c) => (exit = c));
  for (;;) {
    const stored = await db.query<{ partition: number; next_offset: string }>(
      'SELECT partition, next_offset FROM sink_offsets WHERE consumer_group = $1 AND topic = $2',
      [group, topic],
    );
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

export interface ServiceProcs {
  kafka: number | null;
  registry: number | null;
  postmaster: number | null;
  kafkaDataDir: string | null;
}

export function pidFile(file: string): number | null {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return pid > 0 && existsSync(`/proc/${pid}`) ? pid : null;
  } catch {
    return null;
  }
}

export async function serviceProcs(db: pg.Pool): Promise<ServiceProcs> {
  const dir = resolve(PROJECT_ROOT, process.env.FLUXION_SERVICES_DIR ?? join('.cache', 'services'));
  // The postmaster is the parent of our own backend (a cluster on this machine only).
  const me = (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  let postmaster: number | null = null;
  if (existsSync(`/proc/${me}/stat`)) {
    const stat = readFileSync(`/proc/${me}/stat`, 'utf8');
    postmaster = Number(stat.slice(stat.lastIndexOf(') ') + 2).split(' ')[1]);
  }
  const data = join(dir, 'kafka', 'data');
  return {
    kafka: pidFile(join(dir, 'kafka', 'kafka.pid')),
    registry: pidFile(join(dir, 'registry', 'registry.pid')),
    postmaster,
    kafkaDataDir: existsSync(data) ? data : null,
  };
}

export const pgPids = (postmaster: number | null) => (postmaster ? [postmaster, ...childPids(postmaster)] : []);

/** Peak memory of PostgreSQL's processes over a cycle, sampled every 250 ms. */
export function pgMemorySampler(postmaster: number | null) {
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
export function kafkaBytes(dataDir: string | null, prefix: string): Record<string, number> | null {
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
export async function rowCounters(db: pg.Pool): Promise<Record<string, number>> {
  const r = await db.query<{ relname: string; n: string }>(
    "SELECT relname, (n_tup_ins + n_tup_upd + n_tup_del)::text AS n FROM pg_stat_user_tables WHERE relname NOT LIKE 'bench\\_%'",
  );
  return Object.fromEntries(r.rows.map((x) => [x.relname, Number(x.n)]));
}

/**
 * The counters once every backend has reported: a busy backend flushes its statistics at most
 * once a second, an idle one up to 10 s later (PGSTAT_IDLE_INTERVAL), so counters read at
 * once lose the last writes of a cycle to the next one. Read until two reads 1.5 s apart agree.
 */
export async function settledRowCounters(db: pg.Pool): Promise<Record<string, number>> {
  let last = await rowCounters(db);
  for (let i = 0; i < 10; i++) {
    await sleep(1_500);
    const now = await rowCounters(db);
    if (Object.keys(now).length === Object.keys(last).length && Object.entries(now).every(([k, v]) => last[k] === v)) return now;
    last = now;
  }
  return last;
}

export const deltaOf = (after: Record<string, number>, before: Record<string, number>) =>
  Object.fromEntries(
    Object.entries(after)
      .map(([k, v]) => [k, v - (before[k] ?? 0)])
      .filter(([, v]) => (v as number) !== 0),
  ) as Record<string, number>;
