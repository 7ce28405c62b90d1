/**
 * The oldest unconsumed record of a lagging partition, for the dashboard's lag in seconds
 * (ops/dashboard/sampler.ts): read once per position and cached, since a record's timestamp
 * never changes; a long backlog is scanned FIRST_RECORD_SCAN offsets per sample.
 */
import type { KafkaClient } from '../../core/kafka/client.ts';

/** The first committed record at or after a position, as far as it was scanned. */
export interface FirstRecordScan {
  scannedTo: bigint;
  first: { offset: string; timestampMs: number } | null;
  usedAt: number;
}

/** Offsets scanned per partition per read when looking for the first unconsumed record. */
export const FIRST_RECORD_SCAN = 1_000n;

/** One position of one partition to scan, from..to, cached under `key`. */
export interface ScanWanted {
  partition: number;
  from: bigint;
  to: bigint;
  key: string;
}

/** The sampler's state the scan reads and fills. */
export interface FirstRecordScanner {
  kafka: KafkaClient;
  firstRecords: Map<string, FirstRecordScan>;
  /** Topics with a scan still running (a timed-out one goes on in the background). */
  busyTopics: Set<string>;
  track: <T>(p: Promise<T>) => Promise<T>;
}

/** Fills `firstRecords` for the given positions of one topic (several reads when partitions repeat). */
export async function scanFirstRecords(c: FirstRecordScanner, topic: string, wanted: ScanWanted[]): Promise<void> {
  const { kafka, firstRecords, busyTopics, track } = c;
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
      await kafka.readToEnd(
        topic,
        round.map((w) => w.partition),
        (r) => {
          if (!found.has(r.partition) && BigInt(r.offset) >= BigInt(fromOffsets[r.partition] ?? '0'))
            found.set(r.partition, { offset: r.offset, timestampMs: Number(r.timestamp) });
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
