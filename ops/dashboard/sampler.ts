/**
 * What the dashboard shows, read every `intervalMs` from Kafka and PostgreSQL into one
 * immutable sample (the page, /api/*, and /metrics all answer from the latest), plus a ring
 * buffer of per-group lag for the history chart.
 *
 * Per sample: end offsets of every topic the pipeline's groups read, each group's committed
 * offsets (the sink's from `sink_offsets`), group membership, the timestamp of the oldest
 * unconsumed record of each lagging partition (read once per position and cached: a record's
 * timestamp never changes), then the stores' freshness from `etl_runs`,
 * `inventario_historico`, `alertas`, the quarantine topic and the DLQ topics (both read only
 * when their end offsets moved). A failing source keeps the previous figures and is named in
 * the sample's `errors`; the next sample tries again.
 */
import type pg from 'pg';
import type { KafkaClient, FluxionAdmin } from '../../core/kafka/types.ts';
import type { Ubicacion } from '../../core/config/ubicaciones.ts';
import { errorMessage } from '../../core/errors.ts';
import { DEFAULT_LOCALE, type Locale } from '../../core/i18n.ts';
import { scrubSecrets, type Logger } from '../../core/logger.ts';
import type { Pool } from '../../core/postgres.ts';
import type { FluxionRegistry } from '../../core/registry.ts';
import { CONSUMED_TOPICS, dlqTopic, type TopicName } from '../../core/topics.ts';
import { listQuarantine } from '../quarantine.ts';
import type { ScheduledJob } from '../schedule-config.ts';
import { DEFAULT_FRESHNESS_RULES, storeFreshness, type FreshnessRules, type PolledJob, type RunInfo, type StoreFreshness, type StoreInputs } from './freshness.ts';
import { DEFAULT_LAG_RULES, judgePartition, PIPELINE_GROUPS, summarizeGroup, topicIntervals, type GroupLag, type LagRules, type LagStatus, type PartitionObservation } from './lag.ts';

/** The differ's record of a snapshot older than the store's last applied one: counted apart, waits for nobody. */
export const STALE_STATUS = 'STALE';

export interface QuarantineCount {
  ubicacion: string;
  /** The entry's last status, as a string: STALE is newer than some schemas this may read. */
  status: string;
  count: number;
  /** Waits for a decision (QUARANTINED, RELEASE_REQUESTED). */
  open: boolean;
}

/** Counts the quarantine topic's entries by store and last status. */
export function countQuarantine(entries: ReadonlyArray<{ ubicacion_id: string; status: string }>): QuarantineCount[] {
  const counts = new Map<string, QuarantineCount>();
  for (const e of entries) {
    const k = `${e.ubicacion_id}|${e.status}`;
    const c = counts.get(k) ?? { ubicacion: e.ubicacion_id, status: e.status, count: 0, open: e.status === 'QUARANTINED' || e.status === 'RELEASE_REQUESTED' };
    c.count++;
    counts.set(k, c);
  }
  return [...counts.values()];
}

/** How many of a store's entries are stale snapshots, and how many wait for a decision. */
export function storeQuarantine(counts: readonly QuarantineCount[], ubicacion: string): { quarantined: number; stale: number } {
  const mine = counts.filter((q) => q.ubicacion === ubicacion);
  return { quarantined: mine.filter((q) => q.open).reduce((s, q) => s + q.count, 0), stale: mine.filter((q) => q.status === STALE_STATUS).reduce((s, q) => s + q.count, 0) };
}

export interface DashboardSample {
  sampledAt: string;
  /** FLUXION_TOPIC_PREFIX of every topic and group shown. */
  topicPrefix: string;
  /** How long the sample took. */
  durationMs: number;
  /** Sources that failed in this sample (their figures are the previous sample's). */
  errors: Array<{ source: string; message: string }>;
  groups: GroupLag[];
  /** Expected interval per topic (ms), from the schedule. */
  intervals: Record<string, number>;
  stores: StoreFreshness[];
  lookbackHours: number;
  /** Records in each DLQ topic (without prefix). */
  dlq: Record<string, number>;
  /** Snapshots on the quarantine topic by store and last status (STALE ones too: see freshness.ts). */
  quarantine: Array<{ ubicacion: string; status: string; count: number }>;
  /** Rows extracted by OK runs, per store and job (all of etl_runs). */
  rowsExtracted: Array<{ ubicacion: string; job: string; rows: number }>;
  /** Inventory changes applied per store in the last 24 h (rows of inventario_historico). */
  changes24h: Record<string, number>;
  /** Rows written per table and operation (PostgreSQL's statistics, since its last reset). */
  rowsWritten: Array<{ table: string; operation: 'insert' | 'update' | 'delete'; rows: number }>;
  /** End offset per topic (without prefix) and partition. */
  topicEnds: Array<{ topic: string; partition: number; end: string }>;
}

export interface HistoryPoint {
  at: number;
  groups: Record<string, { lagMessages: number; lagSeconds: number | null; status: LagStatus }>;
}

export interface SamplerDeps {
  kafka: KafkaClient;
  pool: Pool;
  registry: FluxionRegistry;
  logger: Logger;
  topicPrefix: string;
  stores: Ubicacion[];
  schedule: ScheduledJob[];
  now?: () => Date;
}

export interface SamplerOptions {
  intervalMs: number;
  historyMs: number;
  /** Longest wait for reading record timestamps, the quarantine or a DLQ in one sample. */
  readTimeoutMs?: number;
  lagRules?: LagRules;
  /** Language of the reasons shown to operators (FLUXION_LOCALE). */
  locale?: Locale;
  freshnessRules?: FreshnessRules;
}

export interface DashboardSampler {
  start(): void;
  stop(): Promise<void>;
  /** Takes a sample now (concurrent calls share one). */
  sampleNow(): Promise<DashboardSample>;
  latest(): DashboardSample | null;
  history(): HistoryPoint[];
  intervalMs: number;
}

/** The DLQ topics whose records are counted (a DLQ per consumed topic). */
const DLQ_TOPICS = CONSUMED_TOPICS.map((t) => dlqTopic(t));

/** Fixed-size history: the oldest point goes when a new one comes. */
export class RingBuffer<T> {
  readonly capacity: number;
  private readonly items: T[] = [];
  private next = 0;
  constructor(capacity: number) {
    this.capacity = Math.max(1, Math.floor(capacity));
  }
  push(item: T): void {
    if (this.items.length < this.capacity) this.items.push(item);
    else this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
  }
  toArray(): T[] {
    return this.items.length < this.capacity ? [...this.items] : [...this.items.slice(this.next), ...this.items.slice(0, this.next)];
  }
}

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** The first committed record at or after a position, as far as it was scanned. */
interface FirstRecordScan {
  scannedTo: bigint;
  first: { offset: string; timestampMs: number } | null;
  usedAt: number;
}

/** Counted records of a DLQ partition: their offsets, to forget those retention deleted. */
interface DlqScan {
  scannedTo: bigint;
  offsets: bigint[];
}

/** Offsets scanned per partition per read when looking for the first unconsumed record. */
const FIRST_RECORD_SCAN = 1_000n;

export function createSampler(deps: SamplerDeps, options: SamplerOptions): DashboardSampler {
  const now = deps.now ?? (() => new Date());
  const log = deps.logger.child({ component: 'dashboard-sampler' });
  const lagRules = options.lagRules ?? DEFAULT_LAG_RULES;
  const freshnessRules = options.freshnessRules ?? DEFAULT_FRESHNESS_RULES;
  const locale = options.locale ?? DEFAULT_LOCALE;
  const readTimeoutMs = options.readTimeoutMs ?? 20_000;
  const prefix = deps.topicPrefix;
  const intervals = topicIntervals(deps.schedule, lagRules);
  const history = new RingBuffer<HistoryPoint>(options.historyMs / options.intervalMs);

  let admin: FluxionAdmin | undefined;
  let latest: DashboardSample | null = null;
  let inFlight: Promise<DashboardSample> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const firstRecords = new Map<string, FirstRecordScan>();
  const positions = new Map<string, { position: string; sinceMs: number }>();
  const dlqScans = new Map<string, DlqScan>();
  let quarantineKey = '';
  /** The sources that failed in the last sample, one per line ('' when none did). */
  let failingSources = '';
  let quarantineCounts: QuarantineCount[] = [];
  /** Reads started and not yet settled (a timed-out read goes on in the background). */
  const pendingReads = new Set<Promise<unknown>>();
  const busyTopics = new Set<string>();

  async function getAdmin(): Promise<FluxionAdmin> {
    admin ??= await deps.kafka.admin();
    return admin;
  }

  function track<T>(p: Promise<T>): Promise<T> {
    pendingReads.add(p);
    void p.then(
      () => pendingReads.delete(p),
      () => pendingReads.delete(p),
    );
    return p;
  }

  /** Fills `firstRecords` for the given positions of one topic (several reads when partitions repeat). */
  async function scanFirstRecords(topic: string, wanted: Array<{ partition: number; from: bigint; to: bigint; key: string }>): Promise<void> {
    if (busyTopics.has(topic)) return;
    const rounds: Array<typeof wanted> = [];
    for (const w of wanted) {
      const round = rounds.find((r) => !r.some((x) => x.partition === w.partition));
      if (round) round.push(w);
      else rounds.push([w]);
    }
    busyTopics.add(topic);
    const work = (async () => {
      for (const round of rounds) {
        const found = new Map<number, { offset: string; timestampMs: number }>();
        const fromOffsets: Record<number, string> = {};
        const toOffsets: Record<number, string> = {};
        for (const w of round) {
          fromOffsets[w.partition] = w.from.toString();
          toOffsets[w.partition] = w.to.toString();
        }
        await deps.kafka.readToEnd(
          topic,
          round.map((w) => w.partition),
          (r) => {
            if (!found.has(r.partition) && BigInt(r.offset) >= BigInt(fromOffsets[r.partition] ?? '0')) found.set(r.partition, { offset: r.offset, timestampMs: Number(r.timestamp) });
            if (found.size === round.length) return 'stop';
          },
          { fromOffsets, toOffsets },
        );
        for (const w of round) {
          const scan = firstRecords.get(w.key);
          if (!scan) continue;
          scan.first = found.get(w.partition) ?? null;
          scan.scannedTo = w.to;
        }
      }
    })();
    void work.finally(() => busyTopics.delete(topic)).catch(() => undefined);
    await track(work);
  }

  async function sampleLag(errors: DashboardSample['errors'], nowMs: number, existing: Set<string>): Promise<{ groups: GroupLag[]; topicEnds: DashboardSample['topicEnds'] }> {
    const a = await getAdmin();
    const topics = [...new Set(PIPELINE_GROUPS.flatMap((g) => g.topics))];
    const ends = new Map<string, Array<{ partition: number; low: string; high: string }>>();
    for (const t of topics) {
      // kafkajs retries a missing topic for a long while: ask only for those that exist.
      if (!existing.has(prefix + t)) {
        errors.push({ source: `kafka topic ${prefix + t}`, message: 'does not exist: run `fluxion topics ensure`' });
        continue;
      }
      try {
        ends.set(t, (await a.topicOffsets(prefix + t)).sort((x, y) => x.partition - y.partition));
      } catch (err) {
        errors.push({ source: `kafka topic ${prefix + t}`, message: `${errorMessage(err)} (run \`fluxion topics ensure\`?)` });
      }
    }
    const groupNames = PIPELINE_GROUPS.map((g) => prefix + g.group);
    const described = new Map((await a.describeGroups(groupNames)).map((g) => [g.groupId, g]));

    let sinkOffsets: Map<string, string> | undefined;
    const sinkGroup = PIPELINE_GROUPS.find((g) => g.position === 'postgres');
    if (sinkGroup) {
      try {
        const r = await deps.pool.query<{ topic: string; partition: number; next_offset: string }>('SELECT topic, partition, next_offset FROM sink_offsets WHERE consumer_group = $1', [prefix + sinkGroup.group]);
        sinkOffsets = new Map(r.rows.map((x) => [`${x.topic}/${x.partition}`, String(x.next_offset)]));
      } catch (err) {
        errors.push({ source: 'postgres sink_offsets', message: `${scrubSecrets(errorMessage(err))}: the sink's lag is Kafka's copy of its offsets` });
      }
    }

    const observations: Array<PartitionObservation & { key: string; members: number }> = [];
    for (const g of PIPELINE_GROUPS) {
      const group = prefix + g.group;
      const members = described.get(group)?.members ?? 0;
      for (const t of g.topics) {
        const partitions = ends.get(t);
        if (!partitions) continue;
        const topic = prefix + t;
        let committed = new Map<number, string>();
        if (g.position === 'postgres' && sinkOffsets) {
          for (const p of partitions) {
            const o = sinkOffsets.get(`${topic}/${p.partition}`);
            if (o !== undefined) committed.set(p.partition, o);
          }
        } else {
          committed = new Map((await a.groupOffsets(group, topic)).map((o) => [o.partition, o.offset]));
        }
        for (const p of partitions) {
          const c = committed.get(p.partition);
          const key = `${group}|${topic}|${p.partition}`;
          observations.push({
            key,
            members,
            group,
            topic,
            partition: p.partition,
            committed: c === undefined || BigInt(c) < 0n ? null : c,
            low: p.low,
            end: p.high,
            firstUnconsumed: undefined,
          });
        }
      }
    }

    // The oldest unconsumed record of each lagging partition, by position (shared by groups at the same offset).
    const toScan = new Map<string, Array<{ partition: number; from: bigint; to: bigint; key: string }>>();
    for (const o of observations) {
      const position = o.committed === null || BigInt(o.committed) < BigInt(o.low) ? BigInt(o.low) : BigInt(o.committed);
      const end = BigInt(o.end);
      if (end <= position) continue;
      const key = `${o.topic}|${o.partition}|${position}`;
      let scan = firstRecords.get(key);
      if (!scan) {
        scan = { scannedTo: position, first: null, usedAt: nowMs };
        firstRecords.set(key, scan);
      }
      scan.usedAt = nowMs;
      if (scan.first || scan.scannedTo >= end) continue;
      const list = toScan.get(o.topic) ?? [];
      if (!list.some((w) => w.key === key)) {
        const to = scan.scannedTo + FIRST_RECORD_SCAN < end ? scan.scannedTo + FIRST_RECORD_SCAN : end;
        list.push({ partition: o.partition, from: scan.scannedTo, to, key });
      }
      toScan.set(o.topic, list);
    }
    if (toScan.size > 0) {
      try {
        await withTimeout(Promise.all([...toScan].map(([topic, wanted]) => scanFirstRecords(topic, wanted))), readTimeoutMs, 'reading the oldest unconsumed records');
      } catch (err) {
        errors.push({ source: 'kafka record timestamps', message: errorMessage(err) });
      }
    }
    for (const o of observations) {
      const position = o.committed === null || BigInt(o.committed) < BigInt(o.low) ? BigInt(o.low) : BigInt(o.committed);
      if (BigInt(o.end) <= position) continue;
      const scan = firstRecords.get(`${o.topic}|${o.partition}|${position}`);
      if (scan?.first) o.firstUnconsumed = scan.first;
      else if (scan && scan.scannedTo >= BigInt(o.end)) o.firstUnconsumed = null;
    }
    for (const [k, scan] of firstRecords) if (scan.usedAt !== nowMs) firstRecords.delete(k);

    const groups: GroupLag[] = [];
    for (const g of PIPELINE_GROUPS) {
      const group = prefix + g.group;
      const d = described.get(group);
      const partitions = observations
        .filter((o) => o.group === group)
        .map((o) => {
          const position = o.committed ?? `low:${o.low}`;
          const seen = positions.get(o.key);
          if (!seen || seen.position !== position) positions.set(o.key, { position, sinceMs: nowMs });
          const since = positions.get(o.key)!.sinceMs;
          const topicName = o.topic.slice(prefix.length) as TopicName;
          return judgePartition(o, { nowMs, members: o.members, intervalMs: intervals.get(topicName) ?? lagRules.fallbackIntervalMs, unchangedForMs: nowMs - since }, lagRules, locale);
        });
      groups.push(summarizeGroup({ group, process: g.process, position: g.position, state: d?.state ?? 'Unknown', members: d?.members ?? 0, partitions }));
    }
    const topicEnds = [...ends].flatMap(([topic, ps]) => ps.map((p) => ({ topic, partition: p.partition, end: p.high })));
    return { groups, topicEnds };
  }

  async function sampleDlq(errors: DashboardSample['errors'], existing: Set<string>): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    const a = await getAdmin();
    for (const t of DLQ_TOPICS) {
      const topic = prefix + t;
      if (!existing.has(topic)) continue;
      try {
        const offsets = await a.topicOffsets(topic);
        const wanted: Array<{ partition: number; from: bigint; to: bigint }> = [];
        for (const p of offsets) {
          const key = `${topic}|${p.partition}`;
          const scan = dlqScans.get(key) ?? { scannedTo: BigInt(p.low), offsets: [] };
          dlqScans.set(key, scan);
          if (scan.scannedTo < BigInt(p.low)) scan.scannedTo = BigInt(p.low);
          scan.offsets = scan.offsets.filter((o) => o >= BigInt(p.low));
          if (BigInt(p.high) > scan.scannedTo) wanted.push({ partition: p.partition, from: scan.scannedTo, to: BigInt(p.high) });
        }
        if (wanted.length > 0 && !busyTopics.has(topic)) {
          busyTopics.add(topic);
          const seen = new Map<number, bigint[]>();
          const read = deps.kafka.readToEnd(
            topic,
            wanted.map((w) => w.partition),
            (r) => {
              const w = wanted.find((x) => x.partition === r.partition);
              const o = BigInt(r.offset);
              if (w && o >= w.from && o < w.to) seen.set(r.partition, [...(seen.get(r.partition) ?? []), o]);
            },
            { fromOffsets: Object.fromEntries(wanted.map((w) => [w.partition, w.from.toString()])), toOffsets: Object.fromEntries(wanted.map((w) => [w.partition, w.to.toString()])) },
          );
          void read.finally(() => busyTopics.delete(topic)).catch(() => undefined);
          await withTimeout(track(read), readTimeoutMs, `counting ${topic}`);
          for (const w of wanted) {
            const scan = dlqScans.get(`${topic}|${w.partition}`)!;
            scan.offsets.push(...(seen.get(w.partition) ?? []));
            scan.scannedTo = w.to;
          }
        }
        out[t] = offsets.reduce((sum, p) => sum + (dlqScans.get(`${topic}|${p.partition}`)?.offsets.length ?? 0), 0);
      } catch (err) {
        errors.push({ source: `kafka ${topic}`, message: errorMessage(err) });
        const previous = latest?.dlq[t];
        if (previous !== undefined) out[t] = previous;
      }
    }
    return out;
  }

  async function sampleQuarantine(errors: DashboardSample['errors'], existing: Set<string>): Promise<void> {
    const topic = `${prefix}pos.inventario.quarantine`;
    if (!existing.has(topic)) return;
    try {
      const offsets = await (await getAdmin()).topicOffsets(topic);
      const key = offsets.map((o) => `${o.partition}:${o.low}-${o.high}`).join(',');
      if (key === quarantineKey) return;
      const entries = await withTimeout(track(listQuarantine({ kafka: deps.kafka, registry: deps.registry, logger: deps.logger, topicPrefix: prefix })), readTimeoutMs, 'reading the quarantine');
      quarantineCounts = countQuarantine(entries);
      quarantineKey = key;
    } catch (err) {
      errors.push({ source: 'kafka quarantine', message: errorMessage(err) });
    }
  }

  interface StoreQueries {
    lastRuns: Array<{ ubicacion_id: string; job: string; status: string; run_id: string; started_at: Date; finished_at: Date; rows: string; snapshot_id: string | null; error_class: string | null; error_message: string | null }>;
    okStarts: Array<{ ubicacion_id: string; job: string; started_at: Date }>;
    firstRuns: Array<{ job: string; first: Date }>;
    applied: Array<{ ubicacion_id: string; snapshot_id: string; valid_from: Date }>;
    alerts: Array<{ ubicacion_id: string; open: string }>;
    extracted: Array<{ ubicacion_id: string; job: string; rows: string }>;
    changes: Array<{ ubicacion_id: string; changes: string }>;
    written: Array<{ relname: string; ins: string; upd: string; del: string }>;
  }

  async function queryStores(nowDate: Date): Promise<StoreQueries> {
    const ids = deps.stores.map((u) => u.id);
    const since = new Date(nowDate.getTime() - freshnessRules.lookbackMs);
    const day = new Date(nowDate.getTime() - 86_400_000);
    const q = async <T extends object>(text: string, values: unknown[] = []) => (await deps.pool.query<T & pg.QueryResultRow>(text, values)).rows as T[];
    return {
      lastRuns: await q(
        `SELECT DISTINCT ON (ubicacion_id, job, status) ubicacion_id, job, status, run_id, started_at, finished_at, rows, snapshot_id, error_class, error_message
           FROM etl_runs WHERE ubicacion_id = ANY($1) AND job IN ('INVENTARIO', 'VENTAS')
          ORDER BY ubicacion_id, job, status, finished_at DESC`,
        [ids],
      ),
      okStarts: await q(`SELECT ubicacion_id, job, started_at FROM etl_runs WHERE status = 'OK' AND started_at >= $1 AND job IN ('INVENTARIO', 'VENTAS')`, [since]),
      firstRuns: await q(`SELECT job, min(started_at) AS first FROM etl_runs WHERE job IN ('INVENTARIO', 'VENTAS') GROUP BY job`),
      applied: await q(
        `SELECT u.id AS ubicacion_id, h.snapshot_id, h.valid_from
           FROM unnest($1::text[]) AS u(id)
           CROSS JOIN LATERAL (SELECT snapshot_id, valid_from FROM inventario_historico WHERE ubicacion_id = u.id ORDER BY valid_from DESC LIMIT 1) h`,
        [ids],
      ),
      alerts: await q(`SELECT ubicacion_id, count(*) AS open FROM alertas WHERE estado = 'OPEN' GROUP BY ubicacion_id`),
      extracted: await q(`SELECT ubicacion_id, job, sum(rows) AS rows FROM etl_runs WHERE status = 'OK' GROUP BY ubicacion_id, job`),
      changes: await q(`SELECT ubicacion_id, count(*) AS changes FROM inventario_historico WHERE valid_from >= $1 GROUP BY ubicacion_id`, [day]),
      written: await q(
        `SELECT relname, n_tup_ins AS ins, n_tup_upd AS upd, n_tup_del AS del FROM pg_stat_user_tables
          WHERE relname IN ('inventario_actual', 'ventas', 'alertas', 'etl_runs', 'productos') OR relname LIKE 'inventario\\_historico%'`,
      ),
    };
  }

  function toRun(r: StoreQueries['lastRuns'][number]): RunInfo {
    return { runId: r.run_id, startedAt: r.started_at, finishedAt: r.finished_at, rows: Number(r.rows), snapshotId: r.snapshot_id, errorClass: r.error_class, errorMessage: r.error_message };
  }

  async function sampleStores(errors: DashboardSample['errors'], nowDate: Date): Promise<Pick<DashboardSample, 'stores' | 'rowsExtracted' | 'changes24h' | 'rowsWritten'>> {
    let data: StoreQueries;
    try {
      data = await queryStores(nowDate);
    } catch (err) {
      errors.push({ source: 'postgres', message: `${scrubSecrets(errorMessage(err))} (run \`fluxion migrate\`?)` });
      return { stores: latest?.stores ?? [], rowsExtracted: latest?.rowsExtracted ?? [], changes24h: latest?.changes24h ?? {}, rowsWritten: latest?.rowsWritten ?? [] };
    }
    const stores = deps.stores.filter((u) => u.activa).map((u) => {
      const monitoredSince: StoreInputs['monitoredSince'] = {};
      for (const job of ['INVENTARIO', 'VENTAS'] as const) monitoredSince[job] = data.firstRuns.find((r) => r.job === job)?.first ?? null;
      const input: StoreInputs = { id: u.id, nombre: u.nombre, pos: u.pos, lastOk: {}, lastFailed: {}, okStarts: {}, monitoredSince, lastApplied: null, quarantined: 0, openAlerts: 0 };
      for (const r of data.lastRuns.filter((x) => x.ubicacion_id === u.id)) {
        (r.status === 'OK' ? input.lastOk : input.lastFailed)[r.job as PolledJob] = toRun(r);
      }
      for (const r of data.okStarts.filter((x) => x.ubicacion_id === u.id)) (input.okStarts[r.job as PolledJob] ??= []).push(r.started_at);
      const applied = data.applied.find((x) => x.ubicacion_id === u.id);
      if (applied) input.lastApplied = { snapshotId: applied.snapshot_id, takenAt: applied.valid_from };
      ({ quarantined: input.quarantined, stale: input.stale } = storeQuarantine(quarantineCounts, u.id));
      input.openAlerts = Number(data.alerts.find((x) => x.ubicacion_id === u.id)?.open ?? 0);
      return storeFreshness(input, deps.schedule, nowDate, freshnessRules, locale);
    });
    const written = new Map<string, { insert: number; update: number; delete: number }>();
    for (const r of data.written) {
      const table = r.relname.startsWith('inventario_historico') ? 'inventario_historico' : r.relname;
      const w = written.get(table) ?? { insert: 0, update: 0, delete: 0 };
      w.insert += Number(r.ins);
      w.update += Number(r.upd);
      w.delete += Number(r.del);
      written.set(table, w);
    }
    return {
      stores,
      rowsExtracted: data.extracted.map((r) => ({ ubicacion: r.ubicacion_id, job: r.job, rows: Number(r.rows) })),
      changes24h: Object.fromEntries(data.changes.map((r) => [r.ubicacion_id, Number(r.changes)])),
      rowsWritten: [...written].flatMap(([table, w]) => (['insert', 'update', 'delete'] as const).map((operation) => ({ table, operation, rows: w[operation] }))),
    };
  }

  async function takeSample(): Promise<DashboardSample> {
    const started = Date.now();
    const nowDate = now();
    const nowMs = nowDate.getTime();
    const errors: DashboardSample['errors'] = [];
    let groups = latest?.groups ?? [];
    let topicEnds = latest?.topicEnds ?? [];
    let dlq = latest?.dlq ?? {};
    try {
      const existing = new Set(await (await getAdmin()).listTopics());
      ({ groups, topicEnds } = await sampleLag(errors, nowMs, existing));
      dlq = await sampleDlq(errors, existing);
      await sampleQuarantine(errors, existing);
    } catch (err) {
      errors.push({ source: 'kafka', message: errorMessage(err) });
      await admin?.disconnect().catch(() => undefined);
      admin = undefined;
    }
    const stores = await sampleStores(errors, nowDate);
    const sample: DashboardSample = {
      sampledAt: nowDate.toISOString(),
      topicPrefix: prefix,
      durationMs: Date.now() - started,
      errors,
      groups,
      intervals: Object.fromEntries(intervals),
      lookbackHours: freshnessRules.lookbackMs / 3_600_000,
      dlq,
      quarantine: quarantineCounts.map(({ ubicacion, status, count }) => ({ ubicacion, status, count })),
      topicEnds,
      ...stores,
    };
    history.push({ at: nowMs, groups: Object.fromEntries(groups.map((g) => [g.group, { lagMessages: g.lagMessages, lagSeconds: g.lagSeconds, status: g.status }])) });
    latest = sample;
    // One line per episode, not per sample: a broker restarting fails every sample until it
    // is back (core/kafka/faults.ts logs Kafka's own episode once too).
    const failing = errors.map((e) => e.source).sort().join('\n');
    if (failing !== failingSources) {
      if (errors.length) log.warn({ errors }, 'dashboard sample incomplete: these sources keep their last figures until they answer');
      else log.info({ sources: failingSources.split('\n') }, 'dashboard sources answer again');
      failingSources = failing;
    } else if (errors.length) log.debug({ errors }, 'dashboard sample incomplete');
    else log.debug({ ms: sample.durationMs }, 'dashboard sample');
    return sample;
  }

  const sampler: DashboardSampler = {
    intervalMs: options.intervalMs,
    sampleNow() {
      inFlight ??= takeSample().finally(() => {
        inFlight = undefined;
      });
      return inFlight;
    },
    start() {
      const loop = async () => {
        if (stopped) return;
        await sampler.sampleNow().catch((err: unknown) => log.error({ err }, 'dashboard sample failed'));
        if (!stopped) timer = setTimeout(() => void loop(), options.intervalMs);
      };
      void loop();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await inFlight?.catch(() => undefined);
      // A read still waiting on Kafka (a timed-out one) gets at most readTimeoutMs more.
      await withTimeout(Promise.allSettled([...pendingReads]), readTimeoutMs, 'pending reads').catch(() => undefined);
      await admin?.disconnect().catch(() => undefined);
      admin = undefined;
    },
    latest: () => latest,
    history: () => history.toArray(),
  };
  return sampler;
}

