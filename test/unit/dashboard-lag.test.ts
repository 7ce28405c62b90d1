import { describe, expect, it } from 'vitest';
import { loadScheduleFile, type ScheduledJob } from '../../ops/schedule-config.ts';
import {
  DEFAULT_LAG_RULES,
  jobIntervalMs,
  judgePartition,
  lagMessages,
  lagSeconds,
  PIPELINE_GROUPS,
  positionOf,
  summarizeGroup,
  topicIntervals,
  worstStatus,
  type PartitionObservation,
} from '../../ops/dashboard/lag.ts';

const MIN = 60_000;
const NOW = Date.parse('2026-11-27T15:00:00Z');

function obs(extra: Partial<PartitionObservation> = {}): PartitionObservation {
  return {
    group: 'fluxion-sink-postgres',
    topic: 'pos.inventario.changes',
    partition: 0,
    committed: '100',
    low: '0',
    end: '150',
    firstUnconsumed: { offset: '100', timestampMs: NOW - 2 * MIN },
    ...extra,
  };
}

const ctx = (extra: Partial<Parameters<typeof judgePartition>[1]> = {}) => ({
  nowMs: NOW,
  members: 1,
  intervalMs: 30 * MIN,
  unchangedForMs: 0,
  ...extra,
});

function job(name: ScheduledJob['name'], cron: string, window: ScheduledJob['window'], enabled = true): ScheduledJob {
  return {
    name,
    cron,
    timezone: 'America/Caracas',
    window,
    enabled,
    monitor: { slug: name, schedule: cron, timezone: 'America/Caracas', checkinMarginMinutes: 5, maxRuntimeMinutes: 25 },
  };
}

describe('lag in messages and seconds', () => {
  it('is end minus the committed offset, from the first unconsumed record', () => {
    expect(lagMessages(obs())).toBe(50);
    // Offsets 100-101 were transaction markers: the first record is at 102.
    expect(lagMessages(obs({ firstUnconsumed: { offset: '102', timestampMs: NOW } }))).toBe(48);
    // Unknown first record: counted from the position.
    expect(lagMessages(obs({ firstUnconsumed: undefined }))).toBe(50);
  });

  it('is 0 when only transaction markers or aborted records are left after the position', () => {
    expect(lagMessages(obs({ committed: '149', end: '150', firstUnconsumed: null }))).toBe(0);
    expect(lagMessages(obs({ committed: '150', end: '150' }))).toBe(0);
  });

  it('counts a group that never committed from the low watermark, and one behind retention from it too', () => {
    expect(positionOf(null, '20')).toBe(20n);
    expect(positionOf('-1', '20')).toBe(20n);
    expect(positionOf('5', '20')).toBe(20n);
    expect(lagMessages(obs({ committed: null, low: '20', firstUnconsumed: { offset: '20', timestampMs: NOW } }))).toBe(130);
  });

  it('is in seconds the age of the oldest unconsumed record: 0 when caught up, null when unknown, never negative', () => {
    expect(lagSeconds(NOW, 50, NOW - 90_000)).toBe(90);
    expect(lagSeconds(NOW, 0, NOW - 90_000)).toBe(0);
    expect(lagSeconds(NOW, 50, undefined)).toBeNull();
    expect(lagSeconds(NOW, 50, NOW + 5_000)).toBe(0);
  });
});

describe('status rules (judged against the schedule, not a steady rate)', () => {
  it('OK when caught up with members, however long the position has not moved', () => {
    expect(judgePartition(obs({ committed: '150' }), ctx({ members: 1, unchangedForMs: 3_600_000 })).status).toBe('OK');
  });

  it('DOWN when the group has no member, even with nothing waiting (a stopped process never looks healthy)', () => {
    const idle = judgePartition(obs({ committed: '150' }), ctx({ members: 0 }), DEFAULT_LAG_RULES, 'en');
    expect(idle).toMatchObject({ status: 'DOWN', lagMessages: 0, lagSeconds: 0 });
    expect(idle.reason).toMatch(/nothing waiting, but the group has no member/);
    const g = summarizeGroup({
      group: 'fluxion-notify',
      process: 'fluxion notify',
      position: 'kafka',
      state: 'Empty',
      members: 0,
      partitions: [idle],
    });
    expect(g).toMatchObject({ status: 'DOWN', lagMessages: 0, lagSeconds: 0 });
    // No partition could be listed (topics missing): still DOWN, not an empty OK.
    expect(
      summarizeGroup({ group: 'fluxion-differ', process: 'p', position: 'kafka', state: 'Dead', members: 0, partitions: [] }).status,
    ).toBe('DOWN');
    expect(judgePartition(obs({ committed: '150' }), ctx({ members: 0 })).reason).toMatch(/no tiene miembros/);
  });

  it('OK while a burst younger than one interval is worked through', () => {
    const p = judgePartition(obs(), ctx());
    expect(p).toMatchObject({
      status: 'OK',
      lagMessages: 50,
      lagSeconds: 120,
      oldestUnconsumedMs: NOW - 2 * MIN,
      position: '100',
      committed: '100',
      end: '150',
    });
  });

  it('DOWN when records wait and the group has no member, even young ones; the reason in Spanish by default, English by setting', () => {
    const p = judgePartition(obs({ firstUnconsumed: { offset: '100', timestampMs: NOW - 1000 } }), ctx({ members: 0 }));
    expect(p.status).toBe('DOWN');
    expect(p.reason).toBe('50 registros en espera y el grupo no tiene miembros: ¿está corriendo `fluxion-sink-postgres`?');
    const en = judgePartition(
      obs({ firstUnconsumed: { offset: '100', timestampMs: NOW - 1000 } }),
      ctx({ members: 0 }),
      DEFAULT_LAG_RULES,
      'en',
    );
    expect(en.reason).toBe('50 records waiting and the group has no member: is `fluxion-sink-postgres` running?');
  });

  it('STALL when members are there but the position has not moved for 5 minutes with records that old waiting', () => {
    expect(
      judgePartition(obs({ firstUnconsumed: { offset: '100', timestampMs: NOW - 6 * MIN } }), ctx({ unchangedForMs: 6 * MIN })).status,
    ).toBe('STALL');
    // Not moved for long, but the waiting record just arrived: the consumer has had no chance yet.
    expect(
      judgePartition(obs({ firstUnconsumed: { offset: '100', timestampMs: NOW - 10_000 } }), ctx({ unchangedForMs: 60 * MIN })).status,
    ).toBe('OK');
    // Moving: not stalled, however old the backlog.
    expect(
      judgePartition(obs({ firstUnconsumed: { offset: '100', timestampMs: NOW - 6 * MIN } }), ctx({ unchangedForMs: 30_000 })).status,
    ).toBe('OK');
    // Unknown history (the dashboard just started): never STALL.
    expect(
      judgePartition(obs({ firstUnconsumed: { offset: '100', timestampMs: NOW - 6 * MIN } }), ctx({ unchangedForMs: null })).status,
    ).toBe('OK');
  });

  it('WARN past one expected interval, ERR past two', () => {
    const at = (minutesOld: number, intervalMin = 30) =>
      judgePartition(
        obs({ firstUnconsumed: { offset: '100', timestampMs: NOW - minutesOld * MIN } }),
        ctx({ intervalMs: intervalMin * MIN, unchangedForMs: 0 }),
      ).status;
    expect(at(29)).toBe('OK');
    expect(at(31)).toBe('WARN');
    expect(at(59)).toBe('WARN');
    expect(at(61)).toBe('ERR');
    // ventas topics are polled hourly: 45 minutes is fine there.
    expect(at(45, 60)).toBe('OK');
  });

  it('judges only DOWN and STALL when the age is unknown', () => {
    expect(judgePartition(obs({ firstUnconsumed: undefined }), ctx()).status).toBe('OK');
    expect(judgePartition(obs({ firstUnconsumed: undefined }), ctx({ unchangedForMs: DEFAULT_LAG_RULES.stallAfterMs })).status).toBe(
      'STALL',
    );
    expect(judgePartition(obs({ firstUnconsumed: undefined }), ctx({ members: 0 })).status).toBe('DOWN');
  });

  it('a group takes its worst partition, messages add up and seconds take the oldest', () => {
    expect(worstStatus([])).toBe('OK');
    expect(worstStatus(['OK', 'WARN', 'ERR'])).toBe('ERR');
    expect(worstStatus(['STALL', 'ERR'])).toBe('STALL');
    expect(worstStatus(['STALL', 'DOWN', 'OK'])).toBe('DOWN');
    const a = judgePartition(obs(), ctx());
    const b = judgePartition(
      obs({ partition: 1, committed: '10', end: '50', firstUnconsumed: { offset: '10', timestampMs: NOW - 40 * MIN } }),
      ctx(),
    );
    const c = judgePartition(obs({ partition: 2, committed: '7', end: '7' }), ctx());
    const g = summarizeGroup({ group: 'g', process: 'p', position: 'kafka', state: 'Stable', members: 1, partitions: [a, b, c] });
    expect(g).toMatchObject({ status: 'WARN', lagMessages: 90, lagSeconds: 40 * 60 });
    const unknown = judgePartition(obs({ firstUnconsumed: undefined }), ctx());
    expect(
      summarizeGroup({ group: 'g', process: 'p', position: 'kafka', state: 'Stable', members: 1, partitions: [unknown, c] }).lagSeconds,
    ).toBeNull();
    expect(summarizeGroup({ group: 'g', process: 'p', position: 'kafka', state: 'Stable', members: 1, partitions: [c] }).lagSeconds).toBe(
      0,
    );
  });
});

describe('expected intervals from the schedule', () => {
  const schedule = loadScheduleFile().jobs;

  it('inventario every 30 min and ventas every 60, from the checked-in cron; disabled jobs none', () => {
    expect(jobIntervalMs(schedule.find((j) => j.name === 'inventario')!)).toBe(30 * MIN);
    expect(jobIntervalMs(schedule.find((j) => j.name === 'ventas')!)).toBe(60 * MIN);
    expect(jobIntervalMs(schedule.find((j) => j.name === 'ventas-recovery')!)).toBe(24 * 60 * MIN);
    expect(jobIntervalMs(job('productos-refresh', '0 */6 * * *', null, false))).toBeNull();
  });

  it('ignores the overnight gap outside the window', () => {
    expect(jobIntervalMs(job('inventario', '0 6-21 * * *', { start: '06:00', end: '22:00' }))).toBe(60 * MIN);
  });

  it('gives each consumed topic the shortest interval of the jobs feeding it', () => {
    const intervals = topicIntervals(schedule);
    expect(intervals.get('pos.inventario.snapshots')).toBe(30 * MIN);
    expect(intervals.get('pos.ventas.raw')).toBe(60 * MIN);
    expect(intervals.get('ops.etl-runs')).toBe(30 * MIN);
    for (const g of PIPELINE_GROUPS) for (const t of g.topics) expect(intervals.get(t), `${g.group} reads ${t}`).toBeGreaterThan(0);
  });

  it('falls back to 30 min for a topic whose jobs are all disabled', () => {
    const off = schedule.map((j) => ({ ...j, enabled: j.name === 'inventario' }));
    expect(topicIntervals(off).get('pos.ventas.raw')).toBe(DEFAULT_LAG_RULES.fallbackIntervalMs);
  });
});
