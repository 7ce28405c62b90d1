/**
 * The phantom-zero rules over episodes: FLIP_FLOP, one open alert per product, and properties
 * of any event sequence (SELLING_AT_ZERO and UNEXPLAINED_DROP: phantom-rules.test.ts).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_PHANTOM_CONFIG,
  initialPhantomState,
  onInventoryChange,
  type PhantomRule,
  type PhantomSource,
  type ProductPhantomState,
} from '../../processors/phantom-rules.ts';
import { at, inv, run, sale, step, type Ev } from '../helpers/phantom-rules-run.ts';

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
