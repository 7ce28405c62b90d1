/**
 * Whether the part of pos.inventario.changes a replay reads covers what the live
 * inventario_historico was built from (sinks/historico-replay.ts). Pure: the caller brings the
 * watermarks, the sink's positions and what the read saw.
 *
 * The live table holds what the sink wrote from offsets [0, its sink_offsets position) of
 * every partition. A replay rebuilds it from what the log still holds; it must not swap in
 * a table missing rows because the log lost their events. A partition has a gap when:
 * - `trimmed`: its first offset (low watermark) is above 0 (retention, deleteRecords, a
 *   migration that copied only the tail) and the replay needs the events before it. With
 *   --from, the rows taken before --from are kept from the live table, so the events before
 *   the read's start are not needed - provided the log still holds older records than that
 *   start: when the offset of --from's produce time is the low watermark itself, deleted
 *   events might have been taken after --from.
 * - `log-ends-early`: the sink's position is past the log's end (a new cluster, a recreated
 *   topic): the live table holds rows the log never had.
 * - `partition-missing`: sink_offsets holds a position for a partition the topic lacks.
 * - `trimmed-during-read`: the log's start moved past where the read began while it ran and
 *   the read's first record shows events were skipped.
 * And the whole replay is in doubt (`no-sink-position`) when the live table holds rows but
 * sink_offsets has no position on this topic for the given group: nothing says what those
 * rows were built from (a wrong --group, or a history loaded from elsewhere).
 *
 * sink_offsets is keyed by group and topic: callers pass only this topic's positions, so
 * positions on another prefix's topic or on the sink's other topics never count.
 */

export interface LogPartition {
  partition: number;
  /** First offset the log still holds (low watermark). */
  low: bigint;
  /** The log's end (high watermark). */
  high: bigint;
}

export interface CoverageInput {
  /** Watermarks when the read was planned. */
  log: LogPartition[];
  /** Where the replay starts reading each partition of `log`. */
  readFrom: Map<number, bigint>;
  /** --from was given: live rows taken before it are kept, so only events from it on are needed. */
  keepsOlder: boolean;
  /** The sink's next offset per partition of this topic (sink_offsets), this topic only. */
  sinkPositions: Map<number, bigint>;
  /** Rows inventario_historico holds now. */
  liveRows: number;
  /** Groups holding positions on this topic in sink_offsets, named when `sinkPositions` is empty. */
  groupsOnTopic?: string[];
  /** After the read: the low watermarks then, and the first offset the read delivered per partition. */
  afterRead?: { low: Map<number, bigint>; firstRead: Map<number, bigint> };
}

export type GapReason = 'trimmed' | 'log-ends-early' | 'partition-missing' | 'trimmed-during-read';

export interface CoverageGap {
  kind: 'gap';
  reason: GapReason;
  partition: number;
  /** Missing offsets [from, to). */
  from: bigint;
  to: bigint;
  /** The watermarks and sink position that show it (for the message). */
  low?: bigint;
  high?: bigint;
  sinkPosition?: bigint;
}

export interface NoSinkPosition {
  kind: 'no-sink-position';
  liveRows: number;
  groupsOnTopic: string[];
}

export type CoverageProblem = CoverageGap | NoSinkPosition;

/**
 * This topic's positions out of a group's sink_offsets (keyed `topic\u0000partition`, as
 * sinks/postgres-writer.ts reads them): the sink's other topics and other prefixes' topics
 * (a staging prefix sharing the database) are not this log.
 */
export function positionsOnTopic(stored: Map<string, bigint>, topic: string): Map<number, bigint> {
  const out = new Map<number, bigint>();
  for (const [key, offset] of stored) {
    const sep = key.lastIndexOf('\u0000');
    if (key.slice(0, sep) === topic) out.set(Number(key.slice(sep + 1)), offset);
  }
  return out;
}

export function checkCoverage(input: CoverageInput): CoverageProblem[] {
  const problems: CoverageProblem[] = [];
  if (input.sinkPositions.size === 0 && input.liveRows > 0) {
    problems.push({ kind: 'no-sink-position', liveRows: input.liveRows, groupsOnTopic: input.groupsOnTopic ?? [] });
  }
  const inLog = new Set(input.log.map((p) => p.partition));
  for (const p of input.log) {
    const sink = input.sinkPositions.get(p.partition);
    // What the live table was built from: up to the sink's position, or (no sink yet) the end.
    const end = sink ?? p.high;
    const readFrom = input.readFrom.get(p.partition) ?? p.low;
    const needFrom = input.keepsOlder && readFrom > p.low ? readFrom : 0n;
    // biome-ignore lint/complexity/useMathMinMax: bigint offsets; Math.min takes numbers only
    const lost = p.low < end ? p.low : end;
    if (needFrom < lost) {
      problems.push({
        kind: 'gap',
        reason: 'trimmed',
        partition: p.partition,
        from: needFrom,
        to: lost,
        low: p.low,
        high: p.high,
        sinkPosition: sink,
      });
    }
    if (sink !== undefined && sink > p.high) {
      const from = p.high > needFrom ? p.high : needFrom;
      problems.push({
        kind: 'gap',
        reason: 'log-ends-early',
        partition: p.partition,
        from,
        to: sink,
        low: p.low,
        high: p.high,
        sinkPosition: sink,
      });
    }
    const after = input.afterRead;
    // biome-ignore lint/complexity/useMathMinMax: bigint offsets; Math.min takes numbers only
    if (after && readFrom < (end < p.high ? end : p.high)) {
      const lowNow = after.low.get(p.partition) ?? p.low;
      const first = after.firstRead.get(p.partition);
      // A first record past the start is normal (a transaction marker there): it shows a
      // skip only when the log's start passed the read's meanwhile.
      if (lowNow > readFrom && (first === undefined || first > readFrom)) {
        const to = first ?? lowNow;
        problems.push({
          kind: 'gap',
          reason: 'trimmed-during-read',
          partition: p.partition,
          from: readFrom,
          to,
          low: lowNow,
          high: p.high,
          sinkPosition: sink,
        });
      }
    }
  }
  for (const [partition, position] of input.sinkPositions) {
    if (!inLog.has(partition) && position > 0n) {
      problems.push({ kind: 'gap', reason: 'partition-missing', partition, from: 0n, to: position, sinkPosition: position });
    }
  }
  return problems.sort((a, b) => rank(a) - rank(b));
}

const rank = (p: CoverageProblem) => (p.kind === 'gap' ? p.partition : -1);

/** One line per problem, for the operator: topic, partition, the offsets missing and why. */
export function describeProblem(topic: string, p: CoverageProblem, group: string): string {
  if (p.kind === 'no-sink-position') {
    const hint =
      p.groupsOnTopic.length > 0 ? `; groups with positions on it: ${p.groupsOnTopic.join(', ')} (pass the live sink's with --group)` : '';
    return (
      `sink_offsets holds no position of group ${group} on ${topic}, yet inventario_historico holds ${p.liveRows} rows: ` +
      `nothing says which events built them${hint}`
    );
  }
  const range = `offsets ${p.from} to ${p.to - 1n} (${p.to - p.from} events)`;
  const where = `${topic} partition ${p.partition}`;
  switch (p.reason) {
    case 'trimmed':
      return (
        `${where}: ${range} are no longer in the log, which now starts at offset ${p.low} ` +
        '(retention, deleted records or a partial migration)'
      );
    case 'log-ends-early':
      return (
        `${where}: ${range} are not in the log, which ends at offset ${p.high} while sink_offsets says the sink wrote up to ` +
        `${p.sinkPosition} (a new cluster or a recreated topic?)`
      );
    case 'partition-missing':
      return (
        `${where}: ${range} are missing: the topic has no partition ${p.partition}, ` +
        `while sink_offsets says the sink wrote up to ${p.sinkPosition} there`
      );
    case 'trimmed-during-read':
      return `${where}: ${range} were deleted from the log while the replay read it (it now starts at offset ${p.low})`;
  }
}
