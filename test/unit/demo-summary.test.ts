import { describe, expect, it } from 'vitest';
import { databaseOf, databaseUrl, newScope } from '../../cli/demo-scope.ts';
import { demoProblems, describeFreshness, percentile, type DemoFacts } from '../../cli/demo-summary.ts';
import { describeOffsets } from '../../ops/pipeline-settled.ts';

describe('the demo summary', () => {
  it('gives percentiles by nearest rank, and null for no values', () => {
    expect(percentile([3, 1, 2], 50)).toBe(2);
    expect(percentile([5], 95)).toBe(5);
    expect(percentile([], 50)).toBeNull();
  });

  it('never prints NaN or Infinity for freshness: n/a with the reason when no store has figures', () => {
    expect(describeFreshness([])).toBe("n/a: no store's last extracted snapshot reached PostgreSQL");
    expect(describeFreshness([Number.NaN, Number.POSITIVE_INFINITY])).toMatch(/^n\/a/);
    expect(describeFreshness([1_800, 2_700, 900])).toBe('p50 1.8 s, p95 2.7 s, max 2.7 s over 3 stores');
    expect(describeFreshness([1_000])).toBe('p50 1.0 s, p95 1.0 s, max 1.0 s over 1 store');
  });

  const ok: DemoFacts = { injectedFailing: 'tienda_05', failedStores: ['tienda_05'], injectedMassZero: 'tienda_07', quarantinedStores: ['tienda_07'], stale: 0, freshnessMs: [1_000], missing: [] };

  it('finds nothing wrong when every injected fault shows', () => {
    expect(demoProblems(ok)).toEqual([]);
    expect(demoProblems({ ...ok, injectedFailing: undefined, failedStores: [], injectedMassZero: undefined, quarantinedStores: [] })).toEqual([]);
  });

  it('names what a summary lacks: the failed store, the quarantine, freshness, data, and a stale snapshot', () => {
    expect(demoProblems({ ...ok, failedStores: [], quarantinedStores: [], stale: 2, freshnessMs: [], missing: ['tienda_01 (inventario)'] })).toEqual([
      'tienda_05 was made to fail, but etl_runs has no FAILED run of it',
      'tienda_07 reported mass zeros, but no snapshot of it is quarantined',
      '2 stale snapshot(s): the simulated clock went behind what the pipeline had applied',
      "no freshness figures: no store's last snapshot reached PostgreSQL",
      'no data in PostgreSQL for tienda_01 (inventario)',
    ]);
  });
});

describe('the demo scope', () => {
  it("names a run's topic prefix and database after its start, under the configured ones", () => {
    const s = newScope('', 'fluxion', new Date('2026-12-03T09:37:36.123Z'), 42, 'e30e');
    expect(s).toEqual({ runId: '20261203t093736e30e', prefix: 'demo-20261203t093736e30e.', database: 'fluxion_demo_20261203t093736e30e', startedAt: '2026-12-03T09:37:36.123Z', pid: 42 });
    expect(newScope('ci.', 'Fluxion', new Date('2026-12-03T09:37:36Z'), 1, 'ab').prefix).toBe('ci.demo-20261203t093736ab.');
  });

  it('refuses a database name PostgreSQL would not take as a plain identifier', () => {
    expect(() => newScope('', 'my-db', new Date(), 1)).toThrow(/not a plain PostgreSQL identifier/);
    expect(() => newScope('', 'x'.repeat(50), new Date(), 1)).toThrow(/at most 63 characters/);
  });

  it('points DATABASE_URL at another database of the same server, keeping the rest', () => {
    expect(databaseUrl('postgres://u:p@127.0.0.1:15432/fluxion?sslmode=disable', 'fluxion_demo_x')).toBe('postgres://u:p@127.0.0.1:15432/fluxion_demo_x?sslmode=disable');
    expect(databaseOf('postgres://u:p@127.0.0.1:15432/fluxion')).toBe('fluxion');
  });
});

describe('describeOffsets (pipeline-settled)', () => {
  it('prints bigint offsets, which JSON.stringify refuses', () => {
    expect(() => JSON.stringify(Object.fromEntries(new Map([[0, 1n]])))).toThrow(/BigInt/);
    expect(describeOffsets(new Map([[1, 40n], [0, 12n]]))).toBe('p0 12, p1 40');
    expect(describeOffsets(new Map())).toBe('nothing committed');
  });
});
