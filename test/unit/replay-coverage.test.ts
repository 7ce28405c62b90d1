import { describe, expect, it } from 'vitest';
import { checkCoverage, describeProblem, positionsOnTopic, type CoverageInput, type LogPartition } from '../../sinks/replay-coverage.ts';

const TOPIC = 'pos.inventario.changes';
const log = (...parts: Array<[number, number, number]>): LogPartition[] =>
  parts.map(([partition, low, high]) => ({ partition, low: BigInt(low), high: BigInt(high) }));
const offsets = (o: Record<number, number>) => new Map(Object.entries(o).map(([p, n]) => [Number(p), BigInt(n)]));

function input(over: Partial<CoverageInput> & Pick<CoverageInput, 'log'>): CoverageInput {
  return {
    readFrom: new Map(over.log.map((p) => [p.partition, p.low])),
    keepsOlder: false,
    sinkPositions: new Map(),
    liveRows: 0,
    ...over,
  };
}

describe('checkCoverage', () => {
  it('passes a log held from offset 0 up to the sink position on every partition', () => {
    expect(
      checkCoverage(
        input({
          log: log([0, 0, 2558], [1, 0, 2600], [2, 0, 2558]),
          sinkPositions: offsets({ 0: 2558, 1: 2558, 2: 2558 }),
          liveRows: 7665,
        }),
      ),
    ).toEqual([]);
  });

  it('refuses the reported case: an empty, recreated topic while sink_offsets says 2,558 on three partitions', () => {
    const problems = checkCoverage(
      input({ log: log([0, 0, 0], [1, 0, 0], [2, 0, 0]), sinkPositions: offsets({ 0: 2558, 1: 2558, 2: 2558 }), liveRows: 7665 }),
    );
    expect(problems).toEqual(
      [0, 1, 2].map((partition) => ({
        kind: 'gap',
        reason: 'log-ends-early',
        partition,
        from: 0n,
        to: 2558n,
        low: 0n,
        high: 0n,
        sinkPosition: 2558n,
      })),
    );
    expect(describeProblem(TOPIC, problems[1]!, 'g')).toBe(
      'pos.inventario.changes partition 1: offsets 0 to 2557 (2558 events) are not in the log, which ends at offset 0 while ' +
        'sink_offsets says the sink wrote up to 2558 (a new cluster or a recreated topic?)',
    );
  });

  it('refuses a log that ends before the sink position on one partition only, naming just the missing tail', () => {
    const problems = checkCoverage(
      input({ log: log([0, 0, 2558], [1, 0, 1000]), sinkPositions: offsets({ 0: 2558, 1: 2558 }), liveRows: 10 }),
    );
    expect(problems).toMatchObject([{ reason: 'log-ends-early', partition: 1, from: 1000n, to: 2558n }]);
  });

  it('refuses a topic trimmed by retention or deleteRecords: the events before its first offset are gone', () => {
    const problems = checkCoverage(
      input({ log: log([0, 0, 300], [1, 120, 300]), sinkPositions: offsets({ 0: 300, 1: 300 }), liveRows: 10 }),
    );
    expect(problems).toMatchObject([{ kind: 'gap', reason: 'trimmed', partition: 1, from: 0n, to: 120n }]);
    expect(describeProblem(TOPIC, problems[0]!, 'g')).toBe(
      'pos.inventario.changes partition 1: offsets 0 to 119 (120 events) are no longer in the log, which now starts at offset 120 ' +
        '(retention, deleted records or a partial migration)',
    );
  });

  it('with --from keeps the older rows where the log proves its start precedes the read, and refuses where it does not', () => {
    // Partition 0 still holds records older than --from's offset; partition 1's offset for
    // --from is its first one: deleted events may have been taken after --from.
    const base = { log: log([0, 50, 300], [1, 120, 300]), sinkPositions: offsets({ 0: 300, 1: 300 }), liveRows: 10, keepsOlder: true };
    expect(checkCoverage(input({ ...base, readFrom: offsets({ 0: 200, 1: 121 }) }))).toEqual([]);
    expect(checkCoverage(input({ ...base, readFrom: offsets({ 0: 200, 1: 120 }) }))).toMatchObject([
      { reason: 'trimmed', partition: 1, from: 0n, to: 120n },
    ]);
    // Without --from the same read start is a trim: the replay rebuilds from offset 0.
    expect(checkCoverage(input({ ...base, keepsOlder: false, readFrom: offsets({ 0: 200, 1: 121 }) }))).toMatchObject([
      { reason: 'trimmed', partition: 0, to: 50n },
      { reason: 'trimmed', partition: 1, to: 120n },
    ]);
  });

  it('counts a trim only up to the sink position (the live table holds nothing from past it)', () => {
    expect(checkCoverage(input({ log: log([0, 500, 900]), sinkPositions: offsets({ 0: 300 }), liveRows: 1 }))).toMatchObject([
      { reason: 'trimmed', from: 0n, to: 300n },
    ]);
    expect(checkCoverage(input({ log: log([0, 500, 900]), sinkPositions: offsets({ 0: 0 }), liveRows: 1 }))).toEqual([]);
  });

  it('refuses a partition sink_offsets knows and the topic lacks', () => {
    const problems = checkCoverage(
      input({ log: log([0, 0, 10], [1, 0, 10]), sinkPositions: offsets({ 0: 10, 1: 10, 2: 40 }), liveRows: 5 }),
    );
    expect(problems).toMatchObject([{ reason: 'partition-missing', partition: 2, from: 0n, to: 40n }]);
    expect(describeProblem(TOPIC, problems[0]!, 'g')).toMatch(
      /partition 2: offsets 0 to 39 \(40 events\) are missing: the topic has no partition 2/,
    );
  });

  it('refuses a table with rows and no sink position on the topic, naming the groups that have one', () => {
    const problems = checkCoverage(input({ log: log([0, 0, 0]), liveRows: 7665, groupsOnTopic: ['fluxion-sink-postgres'] }));
    expect(problems).toEqual([{ kind: 'no-sink-position', liveRows: 7665, groupsOnTopic: ['fluxion-sink-postgres'] }]);
    expect(describeProblem(TOPIC, problems[0]!, 'prod.fluxion-sink-postgres')).toBe(
      'sink_offsets holds no position of group prod.fluxion-sink-postgres on pos.inventario.changes, yet inventario_historico holds ' +
        "7665 rows: nothing says which events built them; groups with positions on it: fluxion-sink-postgres (pass the live sink's with " +
        '--group)',
    );
    // An empty table and no sink yet: a first replay of what the log holds loses nothing.
    expect(checkCoverage(input({ log: log([0, 0, 20]) }))).toEqual([]);
  });

  it('after the read: a start overtaken by deletion is a gap only if the read skipped records', () => {
    const base = input({ log: log([0, 0, 100]), sinkPositions: offsets({ 0: 100 }), liveRows: 3 });
    // Read from 0 before the deletion moved the start to 60: nothing missed.
    expect(checkCoverage({ ...base, afterRead: { low: offsets({ 0: 60 }), firstRead: offsets({ 0: 0 }) } })).toEqual([]);
    // A first record past the start with the start unmoved: a transaction marker, not a gap.
    expect(checkCoverage({ ...base, afterRead: { low: offsets({ 0: 0 }), firstRead: offsets({ 0: 1 }) } })).toEqual([]);
    // The reader was reset past deleted records.
    expect(checkCoverage({ ...base, afterRead: { low: offsets({ 0: 60 }), firstRead: offsets({ 0: 60 }) } })).toMatchObject([
      { reason: 'trimmed-during-read', from: 0n, to: 60n },
    ]);
    expect(checkCoverage({ ...base, afterRead: { low: offsets({ 0: 100 }), firstRead: new Map() } })).toMatchObject([
      { reason: 'trimmed-during-read', from: 0n, to: 100n },
    ]);
  });
});

describe('positionsOnTopic', () => {
  it("keeps only this topic's partitions: not the sink's other topics, not another prefix's", () => {
    const stored = new Map([
      ['prod.pos.inventario.changes\u00000', 2558n],
      ['prod.pos.inventario.changes\u00002', 17n],
      ['staging.prod.pos.inventario.changes\u00001', 9_999n],
      ['pos.inventario.changes\u00001', 9_999n],
      ['prod.pos.ventas\u00001', 9_999n],
    ]);
    expect(positionsOnTopic(stored, 'prod.pos.inventario.changes')).toEqual(
      new Map([
        [0, 2558n],
        [2, 17n],
      ]),
    );
    // Without this topic's positions, another prefix's never stand in for them.
    expect(
      checkCoverage(input({ log: log([0, 0, 0]), sinkPositions: positionsOnTopic(stored, 'qa.pos.inventario.changes'), liveRows: 0 })),
    ).toEqual([]);
  });
});
