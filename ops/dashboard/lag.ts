/**
 * Consumer lag and its status: Burrow-style, but judged against the schedule. Pure: the
 * sampler (ops/dashboard/sampler.ts) reads offsets and record timestamps; this module says
 * what they mean.
 *
 * Lag in messages = end offset − committed offset. The end offset is the last stable offset
 * (offsets are listed read_committed), so an extraction's still-open transaction is not lag
 * yet. Transaction markers take offsets too: a partition whose unconsumed offsets hold only
 * markers or aborted records has lag 0, and otherwise the lag counts from the first committed
 * record (markers after it are still counted: the figure is an upper bound, off by at most one
 * per transaction). A group that never committed on a partition reads it from the beginning
 * (every Fluxion consumer subscribes fromBeginning), so its lag counts from the low watermark.
 * The sink's committed offsets are its rows in PostgreSQL `sink_offsets` (Kafka's are a copy).
 *
 * Lag in seconds = now − timestamp of the oldest unconsumed record (the first committed record
 * at or after the committed offset), read from Kafka. Not an interpolation of the topic's rate:
 * our topics are bursty (a snapshot per store every 30 minutes, ventas every hour), so the rate
 * of an idle topic says nothing about how late its consumer is. 0 when the lag is 0.
 *
 * Status of a partition: the first rule that matches.
 *
 *   DOWN   the group has no member: nothing consumes it (the process is down), whether or not
 *          records wait. At 3 a.m. nothing waits, and a stopped pipeline would otherwise look
 *          healthy until the 6 a.m. snapshots pile up unread.
 *   OK     lag 0.
 *   STALL  lag > 0, the group has members, its committed offset has not moved for `stallAfterMs`
 *          (5 min) and the oldest unconsumed record is at least that old: a consumer is there
 *          but makes no progress (a stuck transaction, a crash loop, PostgreSQL down for the sink).
 *   ERR    the oldest unconsumed record is older than 2 × the topic's expected interval: the
 *          records of two polls ago are still not processed.
 *   WARN   it is older than 1 × the interval: the previous poll is not processed when the next
 *          one is due.
 *   OK     otherwise: a burst being worked through.
 *
 * The expected interval of a topic is the shortest interval between two ticks of the enabled
 * scheduled jobs that feed it (config/schedule.yaml): 30 minutes for the inventory topics,
 * 60 for ventas. So "behind" means behind the schedule, not slower than an average rate; a
 * quiet night is not lag, and a burst drained within its interval is OK. When the record
 * timestamp could not be read, only DOWN and STALL are judged.
 *
 * A group's status is its worst partition's, in the order OK < WARN < ERR < STALL < DOWN; a
 * group without members is DOWN even when none of its topics' partitions could be listed.
 * Reasons are in the operators' language (ops/dashboard/messages.ts); statuses are codes.
 */
import { Cron } from 'croner';
import { DEFAULT_LOCALE, type Locale } from '../../core/i18n.ts';
import type { TopicName } from '../../core/topics.ts';
import { isInWindow, type ScheduledJob, type ScheduledJobName } from '../schedule-config.ts';
import { dashboardMessages } from './messages.ts';

export const LAG_STATUSES = ['OK', 'WARN', 'ERR', 'STALL', 'DOWN'] as const;
export type LagStatus = (typeof LAG_STATUSES)[number];

/** A consumer group of the pipeline (name without the topic prefix) and what it reads. */
export interface PipelineGroup {
  group: string;
  /** Who runs it, for the page. */
  process: string;
  topics: TopicName[];
  /** Where its true position lives. */
  position: 'kafka' | 'postgres';
}

/**
 * The pipeline's consumer groups. Must match processors/*.ts (inputTopics), sinks/postgres-sink.ts
 * (SINK_TOPICS) and sinks/notifier.ts (NOTIFY_TOPICS): ops does not import other components.
 */
export const PIPELINE_GROUPS: PipelineGroup[] = [
  { group: 'fluxion-differ', process: 'fluxion process differ', topics: ['pos.inventario.snapshots'], position: 'kafka' },
  { group: 'fluxion-dedupe', process: 'fluxion process dedupe', topics: ['pos.ventas.raw'], position: 'kafka' },
  { group: 'fluxion-phantom', process: 'fluxion process phantom', topics: ['pos.inventario.changes', 'pos.ventas'], position: 'kafka' },
  {
    group: 'fluxion-sink-postgres',
    process: 'fluxion sink postgres',
    topics: ['pos.inventario.changes', 'pos.ventas', 'alerts.phantom-zeros', 'ops.etl-runs'],
    position: 'postgres',
  },
  {
    group: 'fluxion-notify',
    process: 'fluxion notify',
    topics: ['ops.etl-runs', 'pos.inventario.quarantine', 'alerts.phantom-zeros'],
    position: 'kafka',
  },
];

/** The scheduled jobs whose runs put records on each topic (directly or through a processor). */
export const TOPIC_FEEDERS: Partial<Record<TopicName, ScheduledJobName[]>> = {
  'pos.inventario.snapshots': ['inventario'],
  'pos.inventario.changes': ['inventario'],
  'pos.inventario.quarantine': ['inventario'],
  'pos.ventas.raw': ['ventas', 'ventas-recovery'],
  'pos.ventas': ['ventas', 'ventas-recovery'],
  'alerts.phantom-zeros': ['inventario', 'ventas'],
  'ops.etl-runs': ['inventario', 'ventas', 'ventas-recovery'],
};

export interface LagRules {
  /** A consumer with members whose position has not moved this long, with records this old waiting, is STALL. */
  stallAfterMs: number;
  /** Interval assumed for a topic no enabled job feeds. */
  fallbackIntervalMs: number;
}

export const DEFAULT_LAG_RULES: LagRules = { stallAfterMs: 5 * 60_000, fallbackIntervalMs: 30 * 60_000 };

/**
 * The regular interval of a job: the shortest gap between two consecutive ticks of its cron
 * that both fall in its window, over a reference week. Null when disabled.
 */
export function jobIntervalMs(job: ScheduledJob): number | null {
  if (!job.enabled) return null;
  const cron = new Cron(job.cron, { timezone: job.timezone, paused: true, mode: '5-part' });
  try {
    const from = new Date('2025-01-06T00:00:00Z');
    const until = from.getTime() + 8 * 86_400_000;
    let best: number | null = null;
    let prev: Date | null = null;
    let at: Date | null = from;
    for (let i = 0; i < 20_000; i++) {
      at = cron.nextRun(at);
      if (!at || at.getTime() > until) break;
      if (!isInWindow(job.window, at, job.timezone)) {
        prev = null;
        continue;
      }
      if (prev) {
        const gap = at.getTime() - prev.getTime();
        if (best === null || gap < best) best = gap;
      }
      prev = at;
    }
    return best;
  } finally {
    cron.stop();
  }
}

/** Expected interval per topic (without prefix): the shortest interval of the enabled jobs feeding it. */
export function topicIntervals(jobs: ScheduledJob[], rules: LagRules = DEFAULT_LAG_RULES): Map<TopicName, number> {
  const byJob = new Map(jobs.map((j) => [j.name, jobIntervalMs(j)]));
  const out = new Map<TopicName, number>();
  for (const [topic, feeders] of Object.entries(TOPIC_FEEDERS) as Array<[TopicName, ScheduledJobName[]]>) {
    const intervals = feeders.map((f) => byJob.get(f)).filter((x): x is number => typeof x === 'number');
    out.set(topic, intervals.length ? Math.min(...intervals) : rules.fallbackIntervalMs);
  }
  return out;
}

/** What the sampler saw of one partition of one group's topic. */
export interface PartitionObservation {
  group: string;
  topic: string;
  partition: number;
  /** Next offset the group will read; null when it never committed on this partition. */
  committed: string | null;
  low: string;
  /** Last stable offset (read_committed end). */
  end: string;
  /**
   * The first committed record at or after the position: null when there is none up to the
   * end (only markers or aborted records), undefined when it could not be read.
   */
  firstUnconsumed: { offset: string; timestampMs: number } | null | undefined;
}

export interface PartitionContext {
  nowMs: number;
  /** Members of the group right now (0: nobody consumes it). */
  members: number;
  /** The topic's expected interval. */
  intervalMs: number;
  /** How long the committed offset has been what it is now, as far as the sampler has seen; null unknown. */
  unchangedForMs: number | null;
}

export interface PartitionLag {
  group: string;
  topic: string;
  partition: number;
  /** The offset the group reads next (the committed offset, or the low watermark when it never committed). */
  position: string;
  committed: string | null;
  end: string;
  lagMessages: number;
  /** Null when the lag is positive and the oldest record's timestamp is unknown. */
  lagSeconds: number | null;
  /** Timestamp (ms) of the oldest unconsumed record, when known. */
  oldestUnconsumedMs: number | null;
  status: LagStatus;
  /** Why, in words, for the page and the logs. */
  reason: string;
}

/** The offset a group reads next on a partition. */
export function positionOf(committed: string | null, low: string): bigint {
  if (committed === null || BigInt(committed) < 0n) return BigInt(low);
  // Retention may have deleted records the group never read: it resumes at the low watermark.
  return BigInt(committed) < BigInt(low) ? BigInt(low) : BigInt(committed);
}

/** Lag in messages: end − position, or end − first unconsumed record; 0 when only markers are left. */
export function lagMessages(obs: Pick<PartitionObservation, 'committed' | 'low' | 'end' | 'firstUnconsumed'>): number {
  const position = positionOf(obs.committed, obs.low);
  const end = BigInt(obs.end);
  if (end <= position || obs.firstUnconsumed === null) return 0;
  const from = obs.firstUnconsumed ? BigInt(obs.firstUnconsumed.offset) : position;
  return Number(end > from ? end - from : 0n);
}

/** Lag in seconds: age of the oldest unconsumed record (never negative: clocks drift). */
export function lagSeconds(nowMs: number, lag: number, oldestUnconsumedMs: number | null | undefined): number | null {
  if (lag === 0) return 0;
  if (oldestUnconsumedMs === null || oldestUnconsumedMs === undefined) return null;
  return Math.max(0, (nowMs - oldestUnconsumedMs) / 1000);
}

/** Judges one partition by the rules in the header; the reason in `locale`. */
export function judgePartition(
  obs: PartitionObservation,
  ctx: PartitionContext,
  rules: LagRules = DEFAULT_LAG_RULES,
  locale: Locale = DEFAULT_LOCALE,
): PartitionLag {
  const m = dashboardMessages(locale);
  const lag = lagMessages(obs);
  const oldest = obs.firstUnconsumed ? obs.firstUnconsumed.timestampMs : null;
  const seconds = lagSeconds(ctx.nowMs, lag, oldest);
  const base = {
    group: obs.group,
    topic: obs.topic,
    partition: obs.partition,
    position: positionOf(obs.committed, obs.low).toString(),
    committed: obs.committed !== null && BigInt(obs.committed) >= 0n ? obs.committed : null,
    end: obs.end,
    lagMessages: lag,
    lagSeconds: seconds,
    oldestUnconsumedMs: lag > 0 ? oldest : null,
  };
  const verdict = (status: LagStatus, reason: string): PartitionLag => ({ ...base, status, reason });
  if (ctx.members === 0) return verdict('DOWN', lag > 0 ? m.lagDownWaiting(lag, obs.group) : m.lagDownIdle(obs.group));
  if (lag === 0) return verdict('OK', m.lagCaughtUp);
  const ageMs = seconds === null ? null : seconds * 1000;
  if (ctx.unchangedForMs !== null && ctx.unchangedForMs >= rules.stallAfterMs && (ageMs === null || ageMs >= rules.stallAfterMs)) {
    return verdict('STALL', m.lagStall(ctx.unchangedForMs, lag));
  }
  if (ageMs === null) return verdict('OK', m.lagAgeUnknown(lag));
  if (ageMs > 2 * ctx.intervalMs) return verdict('ERR', m.lagErr(ageMs, ctx.intervalMs));
  if (ageMs > ctx.intervalMs) return verdict('WARN', m.lagWarn(ageMs, ctx.intervalMs));
  return verdict('OK', m.lagWorking(lag, ageMs));
}

/** The worst of some statuses (OK for none). */
export function worstStatus(statuses: Iterable<LagStatus>): LagStatus {
  let worst = 0;
  for (const s of statuses) worst = Math.max(worst, LAG_STATUSES.indexOf(s));
  return LAG_STATUSES[worst]!;
}

export interface GroupLag {
  /** Full name, with the topic prefix. */
  group: string;
  process: string;
  position: PipelineGroup['position'];
  /** Kafka's group state (Stable, Empty, PreparingRebalance, Dead ...). */
  state: string;
  members: number;
  status: LagStatus;
  lagMessages: number;
  /** The oldest of its partitions' (0 when caught up; null when no lagging partition's age is known). */
  lagSeconds: number | null;
  partitions: PartitionLag[];
}

/** Sums a group's partitions: messages add up, seconds take the oldest; no member is DOWN. */
export function summarizeGroup(g: Omit<GroupLag, 'status' | 'lagMessages' | 'lagSeconds'>): GroupLag {
  const behind = g.partitions.filter((p) => p.lagMessages > 0);
  const known = behind.map((p) => p.lagSeconds).filter((s): s is number => s !== null);
  return {
    ...g,
    status: g.members === 0 ? 'DOWN' : worstStatus(g.partitions.map((p) => p.status)),
    lagMessages: g.partitions.reduce((sum, p) => sum + p.lagMessages, 0),
    lagSeconds: behind.length === 0 ? 0 : known.length ? Math.max(...known) : null,
  };
}
