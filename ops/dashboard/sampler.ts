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
import type { KafkaClient, FluxionAdmin } from '../../core/kafka/client.ts';
import type { Ubicacion } from '../../core/config/ubicaciones.ts';
import { errorMessage } from '../../core/errors.ts';
import { DEFAULT_LOCALE, type Locale } from '../../core/i18n.ts';
import { scrubSecrets, type Logger } from '../../core/logger.ts';
import type { Pool } from '../../core/postgres.ts';
import type { FluxionRegistry } from '../../core/registry.ts';
import type { TopicName } from '../../core/topics.ts';
import { countDlq, type DlqScan, withTimeout } from './dlq-counts.ts';
import { listQuarantine } from '../quarantine.ts';
import type { ScheduledJob } from '../schedule-config.ts';
import { DEFAULT_FRESHNESS_RULES, type FreshnessRules } from './freshness.ts';
import { countQuarantine, RingBuffer, type DashboardSample, type HistoryPoint, type QuarantineCount } from './sample.ts';
import { FIRST_RECORD_SCAN, scanFirstRecords, type FirstRecordScan, type ScanWanted } from './first-records.ts';
import { queryStores, storeFigures, type StoreFigures, type StoreQueries } from './store-figures.ts';
import {
  DEFAULT_LAG_RULES,
  judgePartition,
  PIPELINE_GROUPS,
  summarizeGroup,
  topicIntervals,
  type GroupLag,
  type LagRules,
  type PartitionObservation,
} from './lag.ts';

export { countQuarantine, RingBuffer, STALE_STATUS, storeQuarantine } from './sample.ts';
export type { DashboardSample, HistoryPoint, QuarantineCount } from './sample.ts';

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

  async function sampleLag(
    errors: DashboardSample['errors'],
    nowMs: number,
    existing: Set<string>,
  ): Promise<{ groups: GroupLag[]; topicEnds: DashboardSample['topicEnds'] }> {
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
        ends.set(
          t,
          (await a.topicOffsets(prefix + t)).sort((x, y) => x.partition - y.partition),
        );
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
        const r = await deps.pool.query<{ topic: string; partition: number; next_offset: string }>(
          'SELECT topic, partition, next_offset FROM sink_offsets WHERE consumer_group = $1',
          [prefix + sinkGroup.group],
        );
        sinkOffsets = new Map(r.rows.map((x) => [`${x.topic}/${x.partition}`, String(x.next_offset)]));
      } catch (err) {
        errors.push({
          source: 'postgres sink_offsets',
          message: `${scrubSecrets(errorMessage(err))}: the sink's lag is Kafka's copy of its offsets`,
        });
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
    const toScan = new Map<string, ScanWanted[]>();
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
        await withTimeout(
          Promise.all(
            [...toScan].map(([topic, wanted]) => scanFirstRecords({ kafka: deps.kafka, firstRecords, busyTopics, track }, topic, wanted)),
          ),
          readTimeoutMs,
          'reading the oldest unconsumed records',
        );
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
          return judgePartition(
            o,
            {
              nowMs,
              members: o.members,
              intervalMs: intervals.get(topicName) ?? lagRules.fallbackIntervalMs,
              unchangedForMs: nowMs - since,
            },
            lagRules,
            locale,
          );
        });
      groups.push(
        summarizeGroup({
          group,
          process: g.process,
          position: g.position,
          state: d?.state ?? 'Unknown',
          members: d?.members ?? 0,
          partitions,
        }),
      );
    }
    const topicEnds = [...ends].flatMap(([topic, ps]) => ps.map((p) => ({ topic, partition: p.partition, end: p.high })));
    return { groups, topicEnds };
  }

  async function sampleDlq(errors: DashboardSample['errors'], existing: Set<string>): Promise<Record<string, number>> {
    const ctx = { admin: await getAdmin(), kafka: deps.kafka, prefix, dlqScans, busyTopics, track, readTimeoutMs, previous: latest?.dlq };
    return countDlq(ctx, errors, existing);
  }

  async function sampleQuarantine(errors: DashboardSample['errors'], existing: Set<string>): Promise<void> {
    const topic = `${prefix}pos.inventario.quarantine`;
    if (!existing.has(topic)) return;
    try {
      const offsets = await (await getAdmin()).topicOffsets(topic);
      const key = offsets.map((o) => `${o.partition}:${o.low}-${o.high}`).join(',');
      if (key === quarantineKey) return;
      const entries = await withTimeout(
        track(listQuarantine({ kafka: deps.kafka, registry: deps.registry, logger: deps.logger, topicPrefix: prefix })),
        readTimeoutMs,
        'reading the quarantine',
      );
      quarantineCounts = countQuarantine(entries);
      quarantineKey = key;
    } catch (err) {
      errors.push({ source: 'kafka quarantine', message: errorMessage(err) });
    }
  }

  async function sampleStores(errors: DashboardSample['errors'], nowDate: Date): Promise<StoreFigures> {
    let data: StoreQueries;
    try {
      data = await queryStores(deps.pool, deps.stores, nowDate, freshnessRules.lookbackMs);
    } catch (err) {
      errors.push({ source: 'postgres', message: `${scrubSecrets(errorMessage(err))} (run \`fluxion migrate\`?)` });
      return {
        stores: latest?.stores ?? [],
        rowsExtracted: latest?.rowsExtracted ?? [],
        changes24h: latest?.changes24h ?? {},
        rowsWritten: latest?.rowsWritten ?? [],
      };
    }
    return storeFigures(data, { stores: deps.stores, schedule: deps.schedule, nowDate, freshnessRules, locale, quarantineCounts });
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
    history.push({
      at: nowMs,
      groups: Object.fromEntries(groups.map((g) => [g.group, { lagMessages: g.lagMessages, lagSeconds: g.lagSeconds, status: g.status }])),
    });
    latest = sample;
    // One line per episode, not per sample: a broker restarting fails every sample until it
    // is back (core/kafka/faults.ts logs Kafka's own episode once too).
    const failing = errors
      .map((e) => e.source)
      .sort()
      .join('\n');
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
