/**
 * The phantom-zero rules one by one: SELLING_AT_ZERO (its minimum minutes, the enabled rules)
 * and UNEXPLAINED_DROP (FLIP_FLOP, one open alert per product and the properties:
 * phantom-rules-episodes.test.ts).
 */
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_PHANTOM_CONFIG,
  initialPhantomState,
  onInventoryChange,
  type PhantomConfig,
  type PhantomRule,
} from '../../processors/phantom-rules.ts';
import { at, inv, run, sale } from '../helpers/phantom-rules-run.ts';

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
