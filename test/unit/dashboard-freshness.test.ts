import { describe, expect, it } from 'vitest';
import { countMissedPolls, scheduledTicks, storeFreshness, type RunInfo, type StoreInputs } from '../../ops/dashboard/freshness.ts';
import { loadScheduleFile } from '../../ops/schedule-config.ts';

const schedule = loadScheduleFile().jobs;
const inventario = schedule.find((j) => j.name === 'inventario')!;
const ventas = schedule.find((j) => j.name === 'ventas')!;
const MIN = 60_000;
/** Caracas is UTC-4 all year. */
const vet = (hhmm: string, day = '2026-11-27') => new Date(`${day}T${hhmm}:00-04:00`);

/** OK run starts at every tick between two local times, with an offset in minutes. */
function runsEvery(fromHhmm: string, toHhmm: string, stepMin: number, offsetMin = 1, day = '2026-11-27'): Date[] {
  const out: Date[] = [];
  for (let t = vet(fromHhmm, day).getTime(); t < vet(toHhmm, day).getTime(); t += stepMin * MIN) out.push(new Date(t + offsetMin * MIN));
  return out;
}

/** Judges only the polls of 2026-11-27 (the default lookback is 24 h). */
const today = (now: Date) => ({ lookbackMs: now.getTime() - vet('00:00').getTime(), earlyMs: 60_000 });

function run(startedAt: Date, snapshotId: string | null = null): RunInfo {
  return {
    runId: 'r',
    startedAt,
    finishedAt: new Date(startedAt.getTime() + 30_000),
    rows: 10,
    snapshotId,
    errorClass: null,
    errorMessage: null,
  };
}

function store(extra: Partial<StoreInputs> = {}): StoreInputs {
  return {
    id: 'tienda_01',
    nombre: 'La Granja El Bosque',
    pos: 'klk',
    lastOk: {},
    lastFailed: {},
    okStarts: {},
    monitoredSince: {},
    lastApplied: null,
    quarantined: 0,
    openAlerts: 0,
    ...extra,
  };
}

describe('scheduled ticks', () => {
  it('are the cron ticks inside the window: 32 inventario polls and 16 ventas polls a day', () => {
    const from = vet('00:00');
    const to = vet('00:00', '2026-11-28');
    const ticks = scheduledTicks(inventario, from, to);
    expect(ticks).toHaveLength(32);
    expect(ticks[0]).toEqual(vet('06:00'));
    expect(ticks.at(-1)).toEqual(vet('21:30'));
    expect(scheduledTicks(ventas, from, to)).toHaveLength(16);
  });

  it('include a tick exactly at the start and none of a disabled job', () => {
    expect(scheduledTicks(inventario, vet('06:00'), vet('06:31'))).toEqual([vet('06:00'), vet('06:30')]);
    expect(scheduledTicks({ ...inventario, enabled: false }, vet('06:00'), vet('08:00'))).toEqual([]);
  });
});

describe('missed polls during opening hours', () => {
  it('none when every tick was answered, and overnight gaps are not polls', () => {
    const now = vet('08:00', '2026-11-28');
    const starts = [...runsEvery('06:00', '22:00', 30), ...runsEvery('06:00', '08:00', 30, 1, '2026-11-28')];
    const c = countMissedPolls(inventario, starts, now);
    // Ticks from 08:00 the day before (06:00-07:30 of that day are outside the 24 h), the last
    // judged is 07:30 today (slot ended at 08:00).
    expect(c).toMatchObject({ missed: 0, missedInARow: 0, lastMissedAt: null });
    expect(c.expected).toBe(28 + 4);
  });

  it('counts the ticks no run answered, and the streak up to now', () => {
    const now = vet('12:00');
    // Runs at 06:01 ... 10:31 except 08:00 and 08:30; none since 11:00.
    const starts = runsEvery('06:00', '11:00', 30).filter(
      (d) => d.getTime() !== vet('08:01').getTime() && d.getTime() !== vet('08:31').getTime(),
    );
    const c = countMissedPolls(inventario, starts, now, today(now));
    expect(c.expected).toBe(12); // 06:00 ... 11:30 (11:30's slot ended at 12:00)
    expect(c.missed).toBe(4); // 08:00, 08:30, 11:00, 11:30
    expect(c.missedInARow).toBe(2);
    expect(c.lastMissedAt).toEqual(vet('11:30'));
  });

  it('accepts a run started up to a minute early or any time before the next tick, not later', () => {
    const now = vet('07:00');
    expect(countMissedPolls(inventario, [vet('05:59'), vet('06:45')], now, today(now)).missed).toBe(0);
    expect(countMissedPolls(inventario, [vet('06:31')], now, today(now)).missed).toBe(1);
    expect(countMissedPolls(inventario, [vet('05:58')], now, today(now)).missed).toBe(2);
  });

  it("does not judge ticks before the pipeline's first run, nor any when it never ran", () => {
    const now = vet('12:00');
    // The pipeline started at 10:10: 10:00 and before were not missed; 10:30, 11:00, 11:30 were judged.
    expect(countMissedPolls(inventario, [vet('10:31')], now, undefined, vet('10:10'))).toMatchObject({ expected: 3, missed: 2 });
    expect(countMissedPolls(inventario, [], now, undefined, null)).toMatchObject({ expected: 0, missed: 0 });
    const f = storeFreshness(store({ monitoredSince: { INVENTARIO: null, VENTAS: null } }), schedule, now);
    expect(f.status).toBe('OK');
    // Another store's runs started the monitoring: this one missed every poll since.
    const dark = storeFreshness(store({ monitoredSince: { INVENTARIO: vet('10:10'), VENTAS: null } }), schedule, now);
    expect(dark).toMatchObject({ status: 'ERR', polls: { INVENTARIO: { expected: 3, missed: 3 } } });
  });

  it('does not judge a tick whose slot is still open', () => {
    expect(countMissedPolls(inventario, [], vet('06:29'), today(vet('06:29')))).toMatchObject({ expected: 0, missed: 0 });
    expect(countMissedPolls(inventario, [], vet('06:30'), today(vet('06:30')))).toMatchObject({ expected: 1, missed: 1 });
  });
});

describe('store freshness', () => {
  it('OK when every poll was answered; shows whether the last extraction is applied', () => {
    const now = vet('12:00');
    const starts = runsEvery('06:00', '12:00', 30);
    const f = storeFreshness(
      store({
        okStarts: { INVENTARIO: starts, VENTAS: runsEvery('06:00', '12:00', 60) },
        lastOk: { INVENTARIO: run(starts.at(-1)!, 'snap-12') },
        lastApplied: { snapshotId: 'snap-12', takenAt: starts.at(-1)! },
      }),
      schedule,
      now,
      today(now),
    );
    expect(f.status).toBe('OK');
    expect(f.reasons).toEqual([]);
    expect(f.polls.INVENTARIO).toMatchObject({ missed: 0 });
    expect(f.polls.VENTAS).toMatchObject({ missed: 0 });
    expect(f.lastExtractionApplied).toBe(true);
  });

  it('WARN after one missed poll or with a snapshot in quarantine; ERR after two in a row', () => {
    const now = vet('12:00');
    const all = runsEvery('06:00', '12:00', 30);
    const ventasOk = runsEvery('06:00', '12:00', 60);
    const oneMissed = storeFreshness(
      store({ okStarts: { INVENTARIO: all.filter((_, i) => i !== 2), VENTAS: ventasOk } }),
      schedule,
      now,
      today(now),
      'en',
    );
    expect(oneMissed.status).toBe('WARN');
    expect(oneMissed.reasons[0]).toMatch(/inventario: 1 of 12 polls missed/);

    const quarantined = storeFreshness(
      store({ okStarts: { INVENTARIO: all, VENTAS: ventasOk }, quarantined: 1 }),
      schedule,
      now,
      today(now),
      'en',
    );
    expect(quarantined.status).toBe('WARN');
    expect(quarantined.reasons[0]).toMatch(/quarantine/);

    const dark = storeFreshness(store({ okStarts: { INVENTARIO: all.slice(0, -2), VENTAS: ventasOk } }), schedule, now, today(now), 'en');
    expect(dark.status).toBe('ERR');
    expect(dark.reasons[0]).toMatch(/last 2 polls were missed/);
  });

  it('reasons are Spanish by default', () => {
    const now = vet('12:00');
    const all = runsEvery('06:00', '12:00', 30);
    const f = storeFreshness(
      store({ okStarts: { INVENTARIO: all.filter((_, i) => i !== 2), VENTAS: runsEvery('06:00', '12:00', 60) }, quarantined: 1 }),
      schedule,
      now,
      today(now),
    );
    expect(f.reasons).toEqual([
      'inventario: 1 de 12 sondeos perdidos en las últimas 12 h',
      '1 snapshot(s) en cuarentena: ver `fluxion quarantine list`',
    ]);
  });

  it('counts stale snapshots apart from the quarantine: WARN, not waiting for a decision', () => {
    const now = vet('12:00');
    const ok = { okStarts: { INVENTARIO: runsEvery('06:00', '12:00', 30), VENTAS: runsEvery('06:00', '12:00', 60) } };
    const f = storeFreshness(store({ ...ok, stale: 2 }), schedule, now, today(now), 'en');
    expect(f).toMatchObject({ status: 'WARN', stale: 2, quarantined: 0 });
    expect(f.reasons).toEqual([expect.stringMatching(/^2 stale snapshot\(s\): older than the last applied one/)]);
    expect(storeFreshness(store({ ...ok, stale: 1 }), schedule, now, today(now)).reasons[0]).toMatch(/^1 snapshot\(s\) atrasado\(s\)/);
    expect(storeFreshness(store(ok), schedule, now, today(now))).toMatchObject({ status: 'OK', stale: 0 });
  });

  it('expects no ventas from a Stellar store', () => {
    const now = vet('12:00');
    const f = storeFreshness(
      store({ id: 'cedi_frio', pos: 'stellar', okStarts: { INVENTARIO: runsEvery('06:00', '12:00', 30) } }),
      schedule,
      now,
      today(now),
    );
    expect(f.status).toBe('OK');
    expect(Object.keys(f.polls)).toEqual(['INVENTARIO']);
  });

  it('flags an extraction newer than the applied snapshot', () => {
    const f = storeFreshness(
      store({ lastOk: { INVENTARIO: run(vet('11:30'), 'new') }, lastApplied: { snapshotId: 'old', takenAt: vet('11:00') } }),
      schedule,
      vet('11:40'),
    );
    expect(f.lastExtractionApplied).toBe(false);
  });
});
