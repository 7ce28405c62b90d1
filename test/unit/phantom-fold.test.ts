/**
 * The phantom detector's fold (processors/phantom-fold.ts), its records
 * (processors/phantom-records.ts) and settings (processors/phantom-config.ts), pure: no
 * Kafka, no store. The processor around them is test/unit/phantom-detector.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../core/errors.ts';
import { phantomSettingsProblems } from '../../processors/config.ts';
import {
  alertId,
  followsChange,
  inventoryEvent,
  MAX_REMEMBERED_LINES,
  newEntry,
  saleEvent,
  stepChange,
  stepSale,
  type DetectorEntry,
} from '../../processors/phantom-fold.ts';
import { checkChange, entryFromState, packEntry, stateJson, unpackEntry } from '../../processors/phantom-records.ts';
import { DEFAULT_PHANTOM_CONFIG, initialPhantomState, type PhantomRule, type PhantomSource } from '../../processors/phantom-rules.ts';
import type { PhantomAlert } from '../../core/records.ts';
import { at, c, change, fold, KEY, REF, row, T0, UUID, v, venta, type Ev } from '../helpers/phantom-events.ts';

describe('alert ids', () => {
  it('are version-5 shaped UUIDs, the same for the same alert and different for anything else', () => {
    const open = { rule: 'SELLING_AT_ZERO' as const, openedAtMs: T0, snapshotId: 's1' };
    const id = alertId(KEY, open, 0);
    expect(id).toMatch(UUID);
    expect(alertId(KEY, { ...open }, 0)).toBe(id);
    const others = [
      alertId(KEY, open, 1),
      alertId(KEY, { ...open, rule: 'FLIP_FLOP' }, 0),
      alertId(KEY, { ...open, openedAtMs: T0 + 1 }, 0),
      alertId(KEY, { ...open, snapshotId: 's2' }, 0),
      alertId('tienda_01/01/000124', open, 0),
    ];
    expect(new Set([id, ...others]).size).toBe(6);
  });
});

describe('alerts of one product', () => {
  it('SELLING_AT_ZERO opens with the store, deposito and producto, evidence and the event time; stock back resolves the same id', () => {
    const { all } = fold([
      c(change(null, '5.000', 0)),
      c(change('5.000', '0.000', 30, 'z1')),
      v(venta('F-1', '2.000', 40)),
      c(change('0.000', '7.000', 60, 'back')),
    ]);
    expect(all.map((a) => [a.rule, a.status])).toEqual([
      ['SELLING_AT_ZERO', 'OPEN'],
      ['SELLING_AT_ZERO', 'RESOLVED'],
    ]);
    const [open, resolved] = all as [PhantomAlert, PhantomAlert];
    expect(open).toMatchObject({ ...REF, opened_at: at(40), updated_at: at(40) });
    expect(open.alert_id).toMatch(UUID);
    expect(open.evidence).toMatchObject({ zero_snapshot_id: 'z1', units_sold_since_zero: '2.000', trigger: 'venta F-1/1 (op c)' });
    expect(open.summary).toBe('tienda_01 deposito 01 producto 000123: 2.000 units sold since snapshot z1 recorded stock 0.000');
    expect(resolved.alert_id).toBe(open.alert_id);
    expect(resolved).toMatchObject({ opened_at: at(40), updated_at: at(60), confidence: open.confidence });
    expect(resolved.evidence).toMatchObject({ reason: 'stock_back', quantity: '7.000', trigger: 'inventario snapshot back (op u)' });
  });

  it('a void (op u) takes back the units the line counted, resolving the alert it opened', () => {
    const events = [
      c(change(null, '5.000', 0)),
      c(change('5.000', '0.000', 30)),
      v(venta('F-1', '2.000', 40)),
      v(venta('F-1', '2.000', 40, { op: 'u', anulada: true })),
    ];
    const { alerts, entry } = fold(events);
    expect(alerts[2]!.map((a) => a.status)).toEqual(['OPEN']);
    expect(alerts[3]!.map((a) => [a.status, a.evidence.reason])).toEqual([['RESOLVED', 'rule_no_longer_holds']]);
    expect(alerts[3]![0]!.alert_id).toBe(alerts[2]![0]!.alert_id);
    expect(entry!.state.zero!.salesAfter).toBe('0.000');
    expect(entry!.ventas).toEqual({ 'F-1/1': ['0.000', at(40).getTime()] });
  });

  it('a corrected line counts its difference, and the same line read twice counts once', () => {
    const { entry } = fold([
      c(change(null, '5.000', 0)),
      c(change('5.000', '0.000', 30)),
      v(venta('F-1', '2.000', 40)),
      v(venta('F-1', '2.000', 40)),
      v(venta('F-1', '3.000', 40, { op: 'u' })),
      v(venta('F-2', '-1.000', 41)),
    ]);
    expect(entry!.state.zero!.salesAfter).toBe('2.000');
    expect(entry!.state.zero!.saleEventsAfter).toBe(2);
  });

  it('forgets counted lines when the rules restart their totals, so a later void of one takes nothing back', () => {
    const { entry } = fold([
      c(change(null, '50.000', 0)),
      v(venta('F-1', '4.000', 10)),
      c(change('50.000', '46.000', 30)),
      v(venta('F-1', '4.000', 10, { op: 'u', anulada: true })),
      v(venta('F-2', '1.000', 35)),
    ]);
    // F-1 is timed before the last positive snapshot: the rules ignore it, and it was forgotten.
    expect(entry!.ventas).toEqual({ 'F-2/1': ['1.000', at(35).getTime()] });
    expect(entry!.state.salesSincePositive).toBe('1.000');
  });

  it('a reopening of the same rule gets a new id', () => {
    const { all } = fold([
      c(change(null, '5.000', 0)),
      c(change('5.000', '0.000', 30)),
      v(venta('F-1', '2.000', 40)),
      v(venta('F-2', '-2.000', 40)), // a return in the same second: no longer selling at zero
      v(venta('F-3', '2.000', 40)),
    ]);
    expect(all.map((a) => a.status)).toEqual(['OPEN', 'RESOLVED', 'OPEN']);
    expect(all[1]!.alert_id).toBe(all[0]!.alert_id);
    expect(all[2]!.alert_id).not.toBe(all[0]!.alert_id);
    expect(all[2]!.opened_at).toEqual(all[0]!.opened_at);
  });

  it('RESOLVED is never timed before it opened, even when the void that resolves it is', () => {
    const never = fold([
      c(change(null, '5.000', 0)),
      c(change('5.000', '0.000', 30)),
      v(venta('F-1', '1.000', 50)),
      v(venta('F-0', '1.000', 40, { op: 'u', anulada: true })),
    ]);
    // F-0 was never counted: its void takes nothing back.
    expect(never.all.map((a) => a.status)).toEqual(['OPEN']);
    const late = fold([
      c(change(null, '5.000', 0)),
      c(change('5.000', '0.000', 30)),
      v(venta('F-0', '0.500', 40)),
      v(venta('F-1', '0.500', 50)),
      v(venta('F-0', '0.500', 40, { op: 'u', anulada: true })),
    ]);
    const [open, resolved] = late.all;
    expect(open).toMatchObject({ status: 'OPEN', opened_at: at(50) });
    expect(resolved).toMatchObject({ status: 'RESOLVED', opened_at: at(50), updated_at: at(50) });
    expect(resolved!.evidence.resolved_at).toBe(at(40).toISOString());
  });
});

describe('state records', () => {
  it('a vanished product is a tombstone; one never seen writes nothing; a redelivered snapshot writes nothing', () => {
    const gone = fold([c(change(null, '5.000', 0)), c(change('5.000', null, 30))]);
    expect(gone.writes.at(-1)).toBeNull();
    expect(gone.entry).toBeUndefined();
    const unknown = stepChange(REF, undefined, change('5.000', null, 30), DEFAULT_PHANTOM_CONFIG);
    expect(unknown).toEqual({ entry: null, alerts: [], write: false });
    const first = change(null, '5.000', 0, 'same');
    const entry = stepChange(REF, undefined, first, DEFAULT_PHANTOM_CONFIG).entry!;
    expect(stepChange(REF, entry, { ...first, op: 'u', before: row('5.000') }, DEFAULT_PHANTOM_CONFIG)).toEqual({
      entry,
      alerts: [],
      write: false,
    });
  });

  it('a vanished product with an open alert resolves it and is then forgotten', () => {
    const { all, writes } = fold([c(change(null, '50.000', 0)), c(change('50.000', '0.000', 30)), c(change('0.000', null, 60))]);
    expect(all.map((a) => [a.rule, a.status, a.evidence.reason])).toEqual([
      ['UNEXPLAINED_DROP', 'OPEN', undefined],
      ['UNEXPLAINED_DROP', 'RESOLVED', 'product_vanished'],
    ]);
    expect(writes.at(-1)).toBeNull();
  });

  it('round-trips through state_json with the open alert id, and refuses what it did not write', () => {
    const { entry } = fold([c(change(null, '5.000', 0)), c(change('5.000', '0.000', 30)), v(venta('F-1', '2.000', 40))]);
    const back = entryFromState({ ubicacion_id: REF.ubicacion_id, state_json: stateJson(entry!), open_alert_id: entry!.openAlertId });
    expect(back).toEqual(entry);
    expect(unpackEntry(packEntry(entry!))).toEqual(entry);
    expect(JSON.parse(stateJson(entry!))).toMatchObject({
      v: 1,
      quantity: '0.000',
      detector: { deposito: '01', producto_id: '000123', opened: 1 },
    });
    for (const state_json of ['{', '{"stock":"0.000"}', '{"v":1,"changes":1}', 'null']) {
      expect(() => entryFromState({ ubicacion_id: 'tienda_01', state_json, open_alert_id: null })).toThrow(ValidationError);
    }
  });
});

describe('input checks', () => {
  it('refuses changes the rules cannot read', () => {
    const ok = change('5.000', '4.000', 0);
    expect(() => checkChange(ok)).not.toThrow();
    expect(() => checkChange({ ...ok, after: null })).toThrow(/op u without after/);
    expect(() => checkChange({ ...ok, op: 'd' })).toThrow(/op d with an after row/);
    expect(() => checkChange({ ...ok, after: { ...row('4.000'), producto_id: '999' } })).toThrow(/after is the row of 01\/999/);
    expect(() => checkChange({ ...ok, deposito: '' })).toThrow(ValidationError);
  });

  it('names every bad threshold, and the defaults have none', () => {
    expect(phantomSettingsProblems(DEFAULT_PHANTOM_CONFIG)).toEqual([]);
    const problems = phantomSettingsProblems({
      flipFlopRecovery: 1.5,
      flipFlopWindowSnapshots: 0,
      dropThreshold: '10',
      dropSalesShare: 0,
      dropRecentFallFactor: 0,
      sellingAtZeroMinSales: '-1.000',
      sellingAtZeroMinMinutes: -5,
      rules: ['SELLING_AT_ZERO', 'GHOST' as PhantomRule],
      sources: ['KLK', 'SAP' as PhantomSource],
    });
    expect(problems).toHaveLength(8);
    expect(problems.join('\n')).toMatch(
      new RegExp(
        /flipFlopRecovery.*1\.5[\s\S]*dropSalesShare[\s\S]*flipFlopWindowSnapshots[\s\S]*dropThreshold[\s\S]*/.source +
          /sellingAtZeroMinSales[\s\S]*sellingAtZeroMinMinutes.*-5[\s\S]*rules.*GHOST[\s\S]*sources.*SAP/.source,
      ),
    );
  });
});

describe('properties', () => {
  const qty = fc.oneof(
    fc.constantFrom('0.000', '-1.000', '5.000', '10.000', '50.000', '8.000'),
    fc.integer({ min: -5_000, max: 60_000 }).map((n) => (n / 1000).toFixed(3)),
  );
  const saleQty = fc.oneof(
    fc.constantFrom('1.000', '0.500', '-1.000', '5.000'),
    fc.integer({ min: -3_000, max: 20_000 }).map((n) => (n / 1000).toFixed(3)),
  );
  type Raw =
    | { kind: 'inv'; after: string | null; m: number }
    | { kind: 'sale'; line: number; cantidad: string; m: number; anulada: boolean };
  const rawArb: fc.Arbitrary<Raw> = fc.oneof(
    fc.record({ kind: fc.constant('inv' as const), after: fc.option(qty, { freq: 8 }), m: fc.integer({ min: 0, max: 600 }) }),
    fc.record({
      kind: fc.constant('sale' as const),
      line: fc.integer({ min: 1, max: 6 }),
      cantidad: saleQty,
      m: fc.integer({ min: -60, max: 600 }),
      anulada: fc.boolean(),
    }),
  );
  /** Real-looking streams: befores chained, a line keeps its time, later versions of a line are op u. */
  function events(raw: Raw[]): Ev[] {
    let last: string | null = null;
    const lines = new Map<number, number>();
    return raw.map((r, i) => {
      if (r.kind === 'inv') {
        const ev = change(last, r.after, r.m, `s${i}`);
        last = r.after;
        return c(ev);
      }
      const m = lines.get(r.line) ?? r.m;
      const op = lines.has(r.line) ? 'u' : 'c';
      lines.set(r.line, m);
      return v(venta(`F-${r.line}`, r.cantidad, m, { op, anulada: r.anulada }));
    });
  }
  const sum = (xs: string[]) => xs.reduce((a, x) => a + BigInt(x.replace('.', '')), 0n).toString();
  const units = (x: string) => BigInt(x.replace('.', '')).toString();

  it('the remembered lines always add up to the sales the rules counted', () => {
    fc.assert(
      fc.property(fc.array(rawArb, { maxLength: 50 }), (raw) => {
        let entry: DetectorEntry | undefined;
        for (const ev of events(raw)) {
          const step =
            ev.kind === 'change'
              ? stepChange(REF, entry, ev.c, DEFAULT_PHANTOM_CONFIG)
              : entry
                ? stepSale(entry, ev.v, DEFAULT_PHANTOM_CONFIG)
                : null;
          if (step) entry = step.entry ?? undefined;
          if (!entry) continue;
          const s = entry.state;
          const counted = s.zero
            ? (BigInt(units(s.zero.salesBefore)) + BigInt(units(s.zero.salesAfter))).toString()
            : units(s.salesSincePositive);
          expect(sum(Object.values(entry.ventas).map(([u]) => u))).toBe(counted);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('alerts alternate OPEN then RESOLVED of the same id, ids never repeat, and a state round trip changes nothing', () => {
    fc.assert(
      fc.property(fc.array(rawArb, { maxLength: 50 }), (raw) => {
        const evs = events(raw);
        const { all } = fold(evs);
        let open: PhantomAlert | null = null;
        const opened = new Set<string>();
        for (const a of all) {
          expect(a.alert_id).toMatch(UUID);
          if (a.status === 'OPEN') {
            expect(open).toBeNull();
            expect(opened.has(a.alert_id)).toBe(false);
            opened.add(a.alert_id);
            open = a;
          } else {
            expect(a.alert_id).toBe(open?.alert_id);
            expect(a.rule).toBe(open?.rule);
            expect(a.opened_at).toEqual(open?.opened_at);
            expect(a.updated_at.getTime()).toBeGreaterThanOrEqual(a.opened_at.getTime());
            open = null;
          }
        }
        expect(fold(events(raw), DEFAULT_PHANTOM_CONFIG, true).all).toEqual(all);
      }),
      { numRuns: 300 },
    );
  });

  it(`remembers at most ${MAX_REMEMBERED_LINES} lines, forgetting the oldest`, () => {
    let entry = fold([c(change(null, '5.000', 0)), c(change('5.000', '0.000', 1))]).entry!;
    for (let i = 0; i <= MAX_REMEMBERED_LINES; i++)
      entry = stepSale(entry, venta(`F-${i}`, '1.000', 2 + i / 1000), DEFAULT_PHANTOM_CONFIG).entry!;
    expect(Object.keys(entry.ventas)).toHaveLength(MAX_REMEMBERED_LINES);
    expect(entry.ventas['F-0/1']).toBeUndefined();
    expect(entry.ventas[`F-${MAX_REMEMBERED_LINES}/1`]).toBeDefined();
  });
});

describe('what the fold hands the rules', () => {
  it('a change becomes its quantities, snapshot and instant; a line the product counted becomes op u with what it counted', () => {
    expect(inventoryEvent(change('5.000', '0.000', 30, 'z1'))).toEqual({
      op: 'u',
      before: '5.000',
      after: '0.000',
      snapshot_id: 'z1',
      taken_at: at(30),
    });
    expect(inventoryEvent(change('5.000', null, 30, 'gone'))).toMatchObject({ op: 'd', before: '5.000', after: null });
    const line = venta('F-1', '2.000', 40).linea;
    expect(saleEvent(line, undefined)).toEqual({ op: 'c', cantidad: '2.000', anulada: false, fecha_hora: at(40), previous: null });
    // Whatever the pos.ventas op says: only what this product counted makes it a correction.
    expect(saleEvent({ ...line, anulada: true }, ['2.000', at(40).getTime()])).toEqual({
      op: 'u',
      cantidad: '2.000',
      anulada: true,
      fecha_hora: at(40),
      previous: { cantidad: '2.000', anulada: false },
    });
  });

  it('follows a product of a POS it judges, and one it already holds whatever its POS, so an open alert still resolves', () => {
    const stellar = { ...change(null, '50.000', 0), source: 'STELLAR' as const };
    expect(followsChange(undefined, stellar, DEFAULT_PHANTOM_CONFIG)).toBe(false);
    expect(followsChange(undefined, change(null, '50.000', 0), DEFAULT_PHANTOM_CONFIG)).toBe(true);
    const judged = { ...DEFAULT_PHANTOM_CONFIG, sources: ['KLK', 'STELLAR'] as const };
    const opened = fold([c(stellar), c({ ...change('50.000', '0.000', 30), source: 'STELLAR' })], judged);
    expect(opened.all.map((a) => [a.rule, a.status])).toEqual([['UNEXPLAINED_DROP', 'OPEN']]);
    // Stellar no longer judged: the product is held, so it is followed and its alert resolves.
    const back = { ...change('0.000', '40.000', 60), source: 'STELLAR' as const };
    expect(followsChange(opened.entry, back, DEFAULT_PHANTOM_CONFIG)).toBe(true);
    const step = stepChange(REF, opened.entry, back, DEFAULT_PHANTOM_CONFIG);
    expect(step.alerts.map((a) => [a.status, a.alert_id])).toEqual([['RESOLVED', opened.all[0]!.alert_id]]);
    expect(step).toMatchObject({ write: true, entry: { openAlertId: null, opened: 1 } });
  });

  it('a new product starts with nothing opened and nothing remembered', () => {
    expect(newEntry(REF)).toEqual({ ref: REF, state: initialPhantomState(), openAlertId: null, opened: 0, ventas: {} });
  });
});
