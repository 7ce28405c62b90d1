/**
 * The dashboard's DLQ counts (ops/dashboard/sampler.ts): records in each dead-letter topic,
 * counted by reading only the offsets not counted before, and forgetting those retention
 * deleted.
 */
import { errorMessage } from '../../core/errors.ts';
import type { FluxionAdmin, KafkaClient } from '../../core/kafka/client.ts';
import { CONSUMED_TOPICS, dlqTopic } from '../../core/topics.ts';
import type { DashboardSample } from './sample.ts';

const DLQ_TOPICS = CONSUMED_TOPICS.map((t) => dlqTopic(t));

export function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** Counted records of a DLQ partition: their offsets, to forget those retention deleted. */
export interface DlqScan {
  scannedTo: bigint;
  offsets: bigint[];
}

/** What counting needs of the sampler: its clients, its memory of scans, and its read bookkeeping. */
export interface DlqCountContext {
  admin: FluxionAdmin;
  kafka: KafkaClient;
  prefix: string;
  dlqScans: Map<string, DlqScan>;
  /** Topics a read is running on: a slow read is not started twice. */
  busyTopics: Set<string>;
  track: <T>(p: Promise<T>) => Promise<T>;
  readTimeoutMs: number;
  /** The last sample's counts, kept for a topic that cannot be read now. */
  previous: Record<string, number> | undefined;
}

/** Records per DLQ topic (by unprefixed name); a topic that cannot be read adds to `errors`. */
export async function countDlq(
  ctx: DlqCountContext,
  errors: DashboardSample['errors'],
  existing: Set<string>,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of DLQ_TOPICS) {
    const topic = ctx.prefix + t;
    if (!existing.has(topic)) continue;
    try {
      const offsets = await ctx.admin.topicOffsets(topic);
      const wanted: Array<{ partition: number; from: bigint; to: bigint }> = [];
      for (const p of offsets) {
        const key = `${topic}|${p.partition}`;
        const scan = ctx.dlqScans.get(key) ?? { scannedTo: BigInt(p.low), offsets: [] };
        ctx.dlqScans.set(key, scan);
        if (scan.scannedTo < BigInt(p.low)) scan.scannedTo = BigInt(p.low);
        scan.offsets = scan.offsets.filter((o) => o >= BigInt(p.low));
        if (BigInt(p.high) > scan.scannedTo) wanted.push({ partition: p.partition, from: scan.scannedTo, to: BigInt(p.high) });
      }
      if (wanted.length > 0 && !ctx.busyTopics.has(topic)) {
        ctx.busyTopics.add(topic);
        const seen = new Map<number, bigint[]>();
        const read = ctx.kafka.readToEnd(
          topic,
          wanted.map((w) => w.partition),
          (r) => {
            const w = wanted.find((x) => x.partition === r.partition);
            const o = BigInt(r.offset);
            if (w && o >= w.from && o < w.to) seen.set(r.partition, [...(seen.get(r.partition) ?? []), o]);
          },
          {
            fromOffsets: Object.fromEntries(wanted.map((w) => [w.partition, w.from.toString()])),
            toOffsets: Object.fromEntries(wanted.map((w) => [w.partition, w.to.toString()])),
          },
        );
        void read.finally(() => ctx.busyTopics.delete(topic)).catch(() => undefined);
        await withTimeout(ctx.track(read), ctx.readTimeoutMs, `counting ${topic}`);
        for (const w of wanted) {
          const scan = ctx.dlqScans.get(`${topic}|${w.partition}`)!;
          scan.offsets.push(...(seen.get(w.partition) ?? []));
          scan.scannedTo = w.to;
        }
      }
      out[t] = offsets.reduce((sum, p) => sum + (ctx.dlqScans.get(`${topic}|${p.partition}`)?.offsets.length ?? 0), 0);
    } catch (err) {
      errors.push({ source: `kafka ${topic}`, message: errorMessage(err) });
      const previous = ctx.previous?.[t];
      if (previous !== undefined) out[t] = previous;
    }
  }
  return out;
}
