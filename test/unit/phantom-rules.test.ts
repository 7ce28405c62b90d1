import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_PHANTOM_CONFIG,
  initialPhantomState,
  onInventoryChange,
  onSale,
  type AlertDecision,
  type InventoryEvent,
  type PhantomConfig,
  type PhantomRule,
  type PhantomSource,
  type ProductPhantomState,
  type SaleEvent,
} from '../../processors/phantom-rules.ts';

const T0 = Date.parse('2026-11-02T10:00:00Z');
const MIN = 60_000;
const at = (minutes: number) => new Date(T0 + minutes * MIN);

type Ev = { kind: 'inv'; e: InventoryEvent } | { kind: 'sale'; e: SaleEvent };

let snapshotSeq = 0;
/** A change to `after` at minute `m` (before is filled in by `run`). */
const inv = (after: string | null, m: number, snapshot_id = `snap-${++snapshotSeq}`): Ev => ({
  kind: 'inv',
  e: { op: after === null ? 'd' : 'u', before: null, after, snapshot_id, taken_at: at(m) },
});
const sale = (cantidad: string, m: number, extra: Partial<SaleEvent> = {}): Ev => ({
  kind: 'sale',
  e: { op: 'c', cantidad, anulada: false, fecha_hora: at(m), previous: null, ...extra },
});

function step(state: ProductPhantomState, ev: Ev, config: PhantomConfig) {
  return ev.kind === 'inv' ? onInventoryChange(state, ev.e, config) : onSale(state, ev.e, config);
}

/** Folds events from the initial state; returns every step's decisions and the final state. */
function run(events: Ev[], config: PhantomConfig = DEFAULT_PHANTOM_CONFIG) {
  let state = initialPhantomState();
  const steps: AlertDecision[][] = [];
  let last: string | null = null;
  for (const ev of events) {
    if (ev.kind === 'inv') {
      ev.e.before = last;
      if (ev.e.op === 'u' && last === null) ev.e.op = 'c';
      last = ev.e.after;
    }
    const r = step(state, ev, config);
    state = r.state;
    steps.push(r.decisions);
  }
  return { state, steps, all: steps.flat() };
}

describe('SELLING_AT_ZERO min minutes and the enabled rules', () => {
  const waitAHalfHour: PhantomConfig = { ...DEFAULT_PHANTOM_CONFIG, sellingAtZeroMinMinutes: 30, rules: ['SELLING_AT_ZERO'] };

  it('does not open on sales within the minutes after the zero (a receipt between snapshots), opens once a sale comes after them', () => {
    const { steps } = run(
      [inv('5.000', 0), sale('5.000', 10), inv('0.000', 30, 'z1'), sale('2.000', 40), sale('1.000', 59), sale('1.000', 61)],
      waitAHalfHour,
    );
    expect(steps.slice(0, 5).flat()).toEqual([]);
    expect(steps[5]!.map((d) => `${d.action} ${d.rule}`)).toEqual(['OPEN SELLING_AT_ZERO']);
    expect(steps[5]![0]!.evidence).toMatchObject({ units_sold_since_zero: '4.000', min_minutes: '30' });
  });

  it('a snapshot with stock back before the minutes have passed ends the episode without an alert', () => {
    const { all } = run(
      [inv('5.000', 0), sale('5.000', 10), inv('0.000', 30), sale('2.000', 40), inv('20.000', 60), sale('1.000', 70)],
      waitAHalfHour,
    );
    expect(all).toEqual([]);
  });

  it('a rule left out of `rules` opens nothing; the others still do', () => {
    const events = () => [inv('50.000', 0), inv('0.000', 30), inv('50.000', 60)];
    expect(run(events()).all.map((d) => `${d.action} ${d.rule}`)).toEqual(['OPEN UNEXPLAINED_DROP', 'RESOLVE UNEXPLAINED_DROP']);
    const noFlip = { ...DEFAULT_PHANTOM_CONFIG, rules: ['SELLING_AT_ZERO', 'UNEXPLAINED_DROP'] as PhantomRule[] };
    expect(run(events(), noFlip).all.map((d) => `${d.action} ${d.rule}`)).toEqual(['OPEN UNEXPLAINED_DROP', 'RESOLVE UNEXPLAINED_DROP']);
    expect(run(events(), { ...DEFAULT_PHANTOM_CONFIG, rules: ['FLIP_FLOP'] }).all.map((d) => `${d.action} ${d.rule}`)).toEqual([
      'OPEN FLIP_FLOP',
    ]);
    expect(run(events(), { ...DEFAULT_PHANTOM_CONFIG, rules: [] }).all).toEqual([]);
  });
});

describe('SELLING_AT_ZERO', () => {
  it('opens when a product at 0 keeps selling after the zero snapshot, with exact evidence', () => {
    const { steps } = run([inv('5.000', 0), sale('5.000', 10), inv('0.000', 30, 'z1'), sale('1.500', 40), sale('0.500', 45)]);
    expect(steps[2]).toEqual([]); // 5 sold explain the drop from 5 (and 5 < threshold anyway)
    expect(steps[3]).toHaveLength(1);
    const d = steps[3]![0]!;
    expect(d.action).toBe('OPEN');
    expect(d.rule).toBe('SELLING_AT_ZERO');
    expect(d.evidence).toMatchObject({
      zero_snapshot_id: 'z1',
      quantity_at_zero: '0.000',
      units_sold_since_zero: '1.500',
      sale_events_since_zero: '1',
      zero_taken_at: at(30).toISOString(),
      last_sale_at: at(40).toISOString(),
    });
    expect(d.confidence).toBeCloseTo(1.5 / 2.5, 4);
    expect(steps[4]).toEqual([]); // still one open alert
  });

  it('also fires on negative stock, and its confidence grows with units sold at zero', () => {
    const a = run([inv('-2.000', 0), sale('1.000', 5)]).all[0]!;
    const b = run([inv('-2.000', 0), sale('9.000', 5)]).all[0]!;
    expect(a.rule).toBe('SELLING_AT_ZERO');
    expect(a.confidence).toBe(0.5);
    expect(b.confidence).toBe(0.9);
  });

  it('does not fire just under the minimum, nor for sales timed before the zero snapshot', () => {
    expect(run([inv('0.000', 0), sale('0.999', 5)]).all).toEqual([]);
    expect(run([inv('3.000', 0), inv('0.000', 30), sale('5.000', 20)]).all).toEqual([]);
    expect(run([inv('0.000', 0), sale('1.000', 5)], { ...DEFAULT_PHANTOM_CONFIG, sellingAtZeroMinSales: '2.000' }).all).toEqual([]);
  });

  it('resolves when stock is back above 0', () => {
    const { all } = run([inv('0.000', 0), sale('2.000', 5), inv('1.000', 30, 'back')]);
    expect(all.map((d) => `${d.action} ${d.rule}`)).toEqual(['OPEN SELLING_AT_ZERO', 'RESOLVE SELLING_AT_ZERO']);
    expect(all[1]!.evidence).toMatchObject({
      reason: 'stock_back',
      quantity: '1.000',
      snapshot_id: 'back',
      opened_at: at(5).toISOString(),
    });
  });

  it('a void of the sale that fired it resolves it (the rule no longer holds)', () => {
    const { all, state } = run([
      inv('0.000', 0),
      sale('2.000', 5),
      sale('2.000', 5, { op: 'u', anulada: true, previous: { cantidad: '2.000', anulada: false } }),
    ]);
    expect(all.map((d) => `${d.action} ${d.evidence.reason ?? ''}`)).toEqual(['OPEN ', 'RESOLVE rule_no_longer_holds']);
    expect(state.zero!.salesAfter).toBe('0.000');
  });

  it('a correction adjusts the total by the difference, and returns subtract', () => {
    const corrected = run([
      inv('0.000', 0),
      sale('0.500', 5),
      sale('1.500', 5, { op: 'u', previous: { cantidad: '0.500', anulada: false } }),
    ]);
    expect(corrected.state.zero!.salesAfter).toBe('1.500');
    expect(corrected.all.map((d) => d.action)).toEqual(['OPEN']);
    expect(corrected.steps[1]).toEqual([]);
    const returned = run([inv('0.000', 0), sale('1.000', 5), sale('-1.000', 6)]);
    expect(returned.all.map((d) => d.action)).toEqual(['OPEN', 'RESOLVE']);
    expect(returned.state.zero!.salesAfter).toBe('0.000');
  });
});

describe('UNEXPLAINED_DROP', () => {
  it('opens when q >= threshold goes to 0 with sales in between < 20% of q', () => {
    const { steps } = run([inv('50.000', 0, 'p'), sale('9.999', 10), inv('0.000', 30, 'z')]);
    const d = steps[2]![0]!;
    expect(d).toMatchObject({ action: 'OPEN', rule: 'UNEXPLAINED_DROP' });
    expect(d.evidence).toMatchObject({
      from_quantity: '50.000',
      from_snapshot_id: 'p',
      zero_snapshot_id: 'z',
      quantity_at_zero: '0.000',
      units_sold_between: '9.999',
      drop_threshold: '20.000',
    });
    expect(d.confidence).toBeCloseTo(1 - (0.5 * (9.999 / 50)) / 0.2, 4);
  });

  it('does not fire at the thresholds: q just under 20, or sales of exactly 20% of q', () => {
    expect(run([inv('19.999', 0), inv('0.000', 30)]).all).toEqual([]);
    expect(run([inv('20.000', 0), inv('0.000', 30)]).all.map((d) => d.rule)).toEqual(['UNEXPLAINED_DROP']);
    expect(run([inv('50.000', 0), sale('10.000', 10), inv('0.000', 30)]).all).toEqual([]);
    // sales before the last positive snapshot do not count
    expect(run([inv('50.000', 0), sale('30.000', -10), inv('0.000', 30)]).all.map((d) => d.rule)).toEqual(['UNEXPLAINED_DROP']);
  });

  it('a fast seller that reads 0 at under twice its last fall sold out: no alert; a slow one that does is one', () => {
    // fell 20 in the last interval, then 0 from 30: its sales are still to come
    expect(run([inv('50.000', 0), sale('20.000', 10), inv('30.000', 30), inv('0.000', 60)]).all).toEqual([]);
    // fell 2, then 0 from 48
    expect(run([inv('50.000', 0), sale('2.000', 10), inv('48.000', 30), inv('0.000', 60)]).all.map((d) => d.rule)).toEqual([
      'UNEXPLAINED_DROP',
    ]);
    // off with a factor 0
    expect(
      run([inv('50.000', 0), sale('20.000', 10), inv('30.000', 30), inv('0.000', 60)], {
        ...DEFAULT_PHANTOM_CONFIG,
        dropRecentFallFactor: 0,
      }).all.map((d) => d.rule),
    ).toEqual(['UNEXPLAINED_DROP']);
    // a restock after an episode is not a fall: the next drop is judged on its own
    expect(
      run([inv('50.000', 0), inv('0.000', 30), inv('30.000', 60), inv('0.000', 90)], {
        ...DEFAULT_PHANTOM_CONFIG,
        rules: ['UNEXPLAINED_DROP'],
      }).all.map((d) => `${d.action} ${d.rule}`),
    ).toEqual(['OPEN UNEXPLAINED_DROP', 'RESOLVE UNEXPLAINED_DROP', 'OPEN UNEXPLAINED_DROP']);
  });

  it('resolves when stock is back', () => {
    const { all } = run([inv('50.000', 0), inv('0.000', 30), inv('5.000', 60)]);
    expect(all.map((d) => `${d.action} ${d.rule}`)).toEqual(['OPEN UNEXPLAINED_DROP', 'RESOLVE UNEXPLAINED_DROP']);
  });

  it('resolves when late sales timed between the snapshots explain the drop', () => {
    const { all } = run([inv('50.000', 0), inv('0.000', 30), sale('6.000', 15), sale('4.000', 20)]);
    expect(all.map((d) => `${d.action} ${d.rule} ${d.evidence.reason ?? ''}`)).toEqual([
      'OPEN UNEXPLAINED_DROP ',
      'RESOLVE UNEXPLAINED_DROP rule_no_longer_holds',
    ]);
  });

  it('reopens when a void takes the explanation back', () => {
    const { all } = run([
      inv('50.000', 0),
      sale('10.000', 15),
      inv('0.000', 30),
      sale('10.000', 15, { op: 'u', anulada: true, previous: { cantidad: '10.000', anulada: false } }),
    ]);
    expect(all.map((d) => `${d.action} ${d.rule}`)).toEqual(['OPEN UNEXPLAINED_DROP']);
  });

  it('knows the previous quantity from `before` when the state starts mid-stream', () => {
    const r = onInventoryChange(
      initialPhantomState(),
      { op: 'u', before: '40.000', after: '0.000', snapshot_id: 'z', taken_at: at(0) },
      DEFAULT_PHANTOM_CONFIG,
    );
    expect(r.decisions[0]).toMatchObject({
      action: 'OPEN',
      rule: 'UNEXPLAINED_DROP',
      evidence: { from_quantity: '40.000', from_snapshot_id: 'unknown' },
    });
  });
});

describe('FLIP_FLOP', () => {
  // keep UNEXPLAINED_DROP and SELLING_AT_ZERO out of the way
  const small = { ...DEFAULT_PHANTOM_CONFIG, dropThreshold: '1000.000', sellingAtZeroMinSales: '1000.000' };

  it('opens on the recovery to >= 80% of q without sales, and resolves on the next normal snapshot', () => {
    const { steps } = run([inv('20.000', 0, 'a'), inv('0.000', 30, 'b'), inv('16.000', 60, 'c'), inv('15.000', 90, 'd')], small);
    expect(steps[1]).toEqual([]);
    expect(steps[2]![0]).toMatchObject({
      action: 'OPEN',
      rule: 'FLIP_FLOP',
      evidence: {
        from_quantity: '20.000',
        quantity_at_zero: '0.000',
        recovered_quantity: '16.000',
        recovered_snapshot_id: 'c',
        changes_between: '1',
        units_sold: '0.000',
      },
    });
    expect(steps[2]![0]!.confidence).toBe(0.9);
    expect(steps[3]).toEqual([
      expect.objectContaining({ action: 'RESOLVE', rule: 'FLIP_FLOP', evidence: expect.objectContaining({ reason: 'stock_normal' }) }),
    ]);
  });

  it('does not fire just under 80%, with sales of 20% of q, or outside the window', () => {
    expect(run([inv('20.000', 0), inv('0.000', 30), inv('15.999', 60)], small).all).toEqual([]);
    expect(run([inv('20.000', 0), sale('2.000', 10), inv('0.000', 30), sale('2.000', 40), inv('20.000', 60)], small).all).toEqual([]);
    expect(run([inv('20.000', 0), sale('3.999', 10), inv('0.000', 30), inv('20.000', 60)], small).all.map((d) => d.rule)).toEqual([
      'FLIP_FLOP',
    ]);
    // 0 -> -1 -> 0 -> -1 -> back: four changes after the zero, window is 3
    expect(
      run([inv('20.000', 0), inv('0.000', 30), inv('-1.000', 60), inv('0.000', 90), inv('-1.000', 120), inv('20.000', 150)], small).all,
    ).toEqual([]);
    expect(
      run([inv('20.000', 0), inv('0.000', 30), inv('-1.000', 60), inv('0.000', 90), inv('20.000', 120)], small).all.map((d) => d.rule),
    ).toEqual(['FLIP_FLOP']);
  });

  it('stays one open alert while the product keeps flapping', () => {
    const { all } = run(
      [inv('20.000', 0), inv('0.000', 30), inv('20.000', 60), inv('0.000', 90), inv('20.000', 120), inv('19.000', 150)],
      small,
    );
    expect(all.map((d) => d.action)).toEqual(['OPEN', 'RESOLVE']);
  });

  it('an open UNEXPLAINED_DROP is resolved by the recovery, which opens no FLIP_FLOP: one episode, one alert', () => {
    const { steps } = run([inv('20.000', 0), inv('0.000', 30), inv('20.000', 60)]);
    expect(steps[1]!.map((d) => `${d.action} ${d.rule}`)).toEqual(['OPEN UNEXPLAINED_DROP']);
    expect(steps[2]!.map((d) => `${d.action} ${d.rule}`)).toEqual(['RESOLVE UNEXPLAINED_DROP']);
  });

  it('the next episode of the same product may flip-flop again', () => {
    const { steps } = run(
      [inv('20.000', 0), inv('0.000', 30), inv('20.000', 60), inv('25.000', 90), inv('0.000', 120), inv('25.000', 150)],
      { ...DEFAULT_PHANTOM_CONFIG, rules: ['FLIP_FLOP'] },
    );
    expect(steps.flat().map((d) => `${d.action} ${d.rule}`)).toEqual(['OPEN FLIP_FLOP', 'RESOLVE FLIP_FLOP', 'OPEN FLIP_FLOP']);
  });
});

describe('one open alert per product', () => {
  it('a second rule firing while one is open does not open another; it opens once the first resolves', () => {
    const { steps } = run([
      inv('50.000', 0),
      inv('0.000', 30), // UNEXPLAINED_DROP
      sale('3.000', 40), // selling at zero now holds too: no second alert
      sale('20.000', 20), // late sales explain the drop: resolve it, SELLING_AT_ZERO takes over
    ]);
    expect(steps[1]!.map((d) => `${d.action} ${d.rule}`)).toEqual(['OPEN UNEXPLAINED_DROP']);
    expect(steps[2]).toEqual([]);
    expect(steps[3]!.map((d) => `${d.action} ${d.rule}`)).toEqual(['RESOLVE UNEXPLAINED_DROP', 'OPEN SELLING_AT_ZERO']);
  });

  it('a vanished product resolves its open alert; a redelivered snapshot changes nothing', () => {
    const r = run([inv('0.000', 0), sale('2.000', 5), inv(null, 30)]);
    expect(r.all.map((d) => `${d.action} ${d.evidence.reason ?? ''}`)).toEqual(['OPEN ', 'RESOLVE product_vanished']);
    expect(r.state.open).toBeNull();
    const s1 = onInventoryChange(
      initialPhantomState(),
      { op: 'c', before: null, after: '5.000', snapshot_id: 's', taken_at: at(0) },
      DEFAULT_PHANTOM_CONFIG,
    ).state;
    const again = onInventoryChange(
      s1,
      { op: 'u', before: '5.000', after: '0.000', snapshot_id: 's', taken_at: at(0) },
      DEFAULT_PHANTOM_CONFIG,
    );
    expect(again.state).toBe(s1);
    expect(again.decisions).toEqual([]);
  });
});

describe('properties', () => {
  const qty = fc.oneof(
    fc.constantFrom('0.000', '-1.000', '1.000', '10.000', '20.000', '50.000', '8.000', '16.000'),
    fc.integer({ min: -5_000, max: 60_000 }).map((n) => (n / 1000).toFixed(3)),
  );
  const saleQty = fc.oneof(
    fc.constantFrom('1.000', '0.500', '-1.000', '5.000'),
    fc.integer({ min: -3_000, max: 20_000 }).map((n) => (n / 1000).toFixed(3)),
  );
  const evArb: fc.Arbitrary<Ev> = fc.oneof(
    fc.record({ after: fc.option(qty, { freq: 8 }), m: fc.integer({ min: 0, max: 600 }) }).map(({ after, m }) => inv(after, m)),
    fc
      .record({
        cantidad: saleQty,
        m: fc.integer({ min: -60, max: 600 }),
        u: fc.boolean(),
        anulada: fc.boolean(),
        prev: fc.option(fc.record({ cantidad: saleQty, anulada: fc.boolean() })),
      })
      .map(({ cantidad, m, u, anulada, prev }) => sale(cantidad, m, u ? { op: 'u', anulada, previous: prev } : { anulada })),
  );
  const configArb = fc.oneof(
    fc.constant(DEFAULT_PHANTOM_CONFIG),
    fc.record({
      flipFlopRecovery: fc.constantFrom(0.5, 0.8, 1),
      flipFlopWindowSnapshots: fc.integer({ min: 1, max: 5 }),
      dropThreshold: fc.constantFrom('0.001', '5.000', '10.000'),
      dropSalesShare: fc.constantFrom(0, 0.2, 0.5),
      dropRecentFallFactor: fc.constantFrom(0, 1, 2),
      sellingAtZeroMinSales: fc.constantFrom('0.000', '1.000', '3.000'),
      sellingAtZeroMinMinutes: fc.constantFrom(0, 30, 60),
      rules: fc.subarray(['SELLING_AT_ZERO', 'FLIP_FLOP', 'UNEXPLAINED_DROP'] as PhantomRule[]),
      sources: fc.constant(['KLK'] as PhantomSource[]),
    }),
  );

  it('never more than one OPEN at a time, and every RESOLVE closes the open alert of the same rule', () => {
    fc.assert(
      fc.property(fc.array(evArb, { maxLength: 40 }), configArb, (events, config) => {
        let openRule: string | null = null;
        for (const d of run(events, config).all) {
          if (d.action === 'OPEN') {
            expect(openRule).toBeNull();
            openRule = d.rule;
          } else {
            expect(openRule).toBe(d.rule);
            openRule = null;
          }
          expect(d.confidence).toBeGreaterThanOrEqual(0);
          expect(d.confidence).toBeLessThanOrEqual(1);
          for (const v of Object.values(d.evidence)) expect(typeof v).toBe('string');
        }
      }),
      { numRuns: 500 },
    );
  });

  it('the state survives a JSON round trip at every step with the same decisions afterwards', () => {
    fc.assert(
      fc.property(fc.array(evArb, { maxLength: 40 }), configArb, (events, config) => {
        const { steps: expected } = run(events, config);
        // the same events again, through JSON between every step
        let state = initialPhantomState();
        let last: string | null = null;
        events.forEach((ev, i) => {
          if (ev.kind === 'inv') {
            ev.e.before = last;
            last = ev.e.after;
          }
          const copy = JSON.parse(JSON.stringify(state)) as ProductPhantomState;
          expect(copy).toEqual(state);
          const r = step(copy, ev, config);
          expect(r.decisions).toEqual(expected[i]);
          state = r.state;
        });
      }),
      { numRuns: 300 },
    );
  });

  it('quantities in the state stay exact decimal strings at scale 3', () => {
    fc.assert(
      fc.property(fc.array(evArb, { maxLength: 40 }), (events) => {
        const { state } = run(events);
        const decimals = [
          state.quantity,
          state.salesSincePositive,
          state.zero?.salesAfter,
          state.zero?.salesBefore,
          state.zero?.zero.quantity,
        ].filter((v): v is string => typeof v === 'string');
        for (const v of decimals) expect(v).toMatch(/^-?\d+\.\d{3}$/);
      }),
    );
  });
});
