/**
 * "Has everything published so far reached PostgreSQL?": waits until each consumer group of
 * the pipeline is past the last committed record of each of its input topics, stage after
 * stage (the differ and the dedupe, then the phantom detector, then the sink), so a record a
 * processor writes while its upstream catches up is still waited for.
 *
 * Used by the demo, the chaos tests and bench/e2e after a cycle. The groups' positions live
 * where each says (PIPELINE_GROUPS): Kafka's committed offsets, or the sink's sink_offsets.
 * Ends are measured after the last record, not at the high watermark, which also counts
 * transaction markers no consumer ever sees (core/kafka/read-to-end.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { FluxionError } from '../core/errors.ts';
import type { FluxionAdmin, KafkaClient } from '../core/kafka/types.ts';
import { offsetsAfterLastRecord } from '../core/kafka/read-to-end.ts';
import type { Pool } from '../core/postgres.ts';
import { topicName } from '../core/topics.ts';
import { PIPELINE_GROUPS, type PipelineGroup } from './dashboard/lag.ts';

export interface SettleOptions {
  /** FLUXION_TOPIC_PREFIX of the pipeline (group names carry it too). */
  prefix: string;
  partitions: number;
  timeoutMs: number;
  /** Default: every group but the notifier's (its effects are emails, not rows). */
  groups?: PipelineGroup[];
  pollMs?: number;
  /** Called while waiting, at most every 10 s, with what is still behind. */
  onWait?: (behind: string) => void;
  /** Stops waiting (rejects with the signal's reason), e.g. when a process of the pipeline died. */
  signal?: AbortSignal;
}

/** A group did not reach the end of its input in time; `context` names which. */
export class PipelineNotSettledError extends FluxionError {
  constructor(group: string, topic: string, timeoutMs: number) {
    super(`${group} did not reach the end of ${topic} within ${Math.round(timeoutMs / 1000)} s: is its process running? (see its log)`, {
      code: 'PIPELINE_NOT_SETTLED',
      context: { group, topic },
    });
  }
}

/** Resolves with the number of committed records per topic of the last stage checked. */
export async function waitForPipelineSettled(kafka: KafkaClient, pool: Pool, o: SettleOptions): Promise<Map<string, number>> {
  const deadline = Date.now() + o.timeoutMs;
  const partitions = [...Array(o.partitions).keys()];
  const groups = o.groups ?? PIPELINE_GROUPS.filter((g) => g.group !== 'fluxion-notify');
  const records = new Map<string, number>();
  let lastNotice = Date.now();
  const admin = await kafka.admin();
  try {
    for (const g of groups) {
      const group = `${o.prefix}${g.group}`;
      for (const t of g.topics) {
        const topic = topicName(t, o.prefix);
        const { ends, records: n } = await offsetsAfterLastRecord(kafka, topic, partitions);
        records.set(t, n);
        for (;;) {
          const position = await groupPosition(admin, pool, g, group, topic).catch(() => new Map<number, bigint>());
          if ([...ends].every(([p, end]) => (position.get(p) ?? -1n) >= end)) break;
          o.signal?.throwIfAborted();
          if (Date.now() > deadline) throw new PipelineNotSettledError(group, topic, o.timeoutMs);
          if (o.onWait && Date.now() - lastNotice > 10_000) {
            lastNotice = Date.now();
            o.onWait(`${group} on ${topic}: at ${describeOffsets(position)}, records end at ${describeOffsets(ends)}`);
          }
          await sleep(o.pollMs ?? 500, undefined, o.signal ? { signal: o.signal } : undefined);
        }
      }
    }
    return records;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** Next offset to read per partition: Kafka's committed offsets, or the sink's own table. */
async function groupPosition(
  admin: FluxionAdmin,
  pool: Pool,
  g: PipelineGroup,
  group: string,
  topic: string,
): Promise<Map<number, bigint>> {
  if (g.position === 'postgres') {
    const stored = await pool.query<{ partition: number; next_offset: string }>(
      'SELECT partition, next_offset FROM sink_offsets WHERE consumer_group = $1 AND topic = $2',
      [group, topic],
    );
    return new Map(stored.rows.map((r) => [r.partition, BigInt(r.next_offset)]));
  }
  return new Map((await admin.groupOffsets(group, topic)).map((o) => [o.partition, BigInt(o.offset)]));
}

/**
 * "p0 12, p1 40" (partition, offset), or "nothing committed". Offsets are bigints, which
 * JSON.stringify refuses to serialise: this once killed the demo mid-wait.
 */
export function describeOffsets(offsets: Map<number, bigint>): string {
  if (offsets.size === 0) return 'nothing committed';
  return [...offsets]
    .sort((a, b) => a[0] - b[0])
    .map(([p, o]) => `p${p} ${o}`)
    .join(', ');
}
