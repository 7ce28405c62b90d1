import { describe, expect, it } from 'vitest';
import { databaseOf, databaseUrl, newScope } from '../../cli/demo-scope.ts';
import { demoProblems, describeFreshness, describePhantomScore, percentile, type DemoFacts } from '../../cli/demo-summary.ts';
import { scorePhantomAlerts } from '../../simulators/data/anomaly-score.ts';
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

  const ok: DemoFacts = {
    injectedFailing: 'tienda_05',
    failedStores: ['tienda_05'],
    injectedMassZero: 'tienda_07',
    quarantinedStores: ['tienda_07'],
    stale: 0,
    freshnessMs: [1_000],
    missing: [],
  };

  it('finds nothing wrong when every injected fault shows', () => {
    expect(demoProblems(ok)).toEqual([]);
    expect(
      demoProblems({ ...ok, injectedFailing: undefined, failedStores: [], injectedMassZero: undefined, quarantinedStores: [] }),
    ).toEqual([]);
  });

  it('names what a summary lacks: the failed store, the quarantine, freshness, data, and a stale snapshot', () => {
    expect(
      demoProblems({ ...ok, failedStores: [], quarantinedStores: [], stale: 2, freshnessMs: [], missing: ['tienda_01 (inventario)'] }),
    ).toEqual([
      'tienda_05 was made to fail, but etl_runs has no FAILED run of it',
      'tienda_07 reported mass zeros, but no snapshot of it is quarantined',
      '2 stale snapshot(s): the simulated clock went behind what the pipeline had applied',
      "no freshness figures: no store's last snapshot reached PostgreSQL",
      'no data in PostgreSQL for tienda_01 (inventario)',
    ]);
  });
});

describe('the demo summary of phantom-zero alerts', () => {
  const t = (m: number) => new Date(Date.UTC(2026, 11, 3, 14, m));
  const label = (id: string, kind: string, producto_id: string, shouldAlert: boolean) => ({
    id,
    kind,
    ubicacion_id: 'tienda_03',
    deposito: '01',
    producto_id,
    departamento_codigo: null,
    start: t(0),
    end: null,
    shouldAlert,
  });
  const alert = (alert_id: string, producto_id: string) => ({
    alert_id,
    ubicacion_id: 'tienda_03',
    deposito: '01',
    producto_id,
    rule: 'UNEXPLAINED_DROP',
    confidence: 1,
    opened_at: t(30),
  });

  it('says how many alerts were right, what the wrong ones were, and how many phantom zeros were caught', () => {
    const labels = [
      label('p1', 'PHANTOM_ZERO', 'A', true),
      label('p2', 'PHANTOM_ZERO', 'B', true),
      label('s1', 'REAL_STOCKOUT', 'C', false),
    ];
    const score = scorePhantomAlerts(labels, [alert('1', 'A'), alert('2', 'C'), alert('3', 'D')], { graceMs: 30 * 60_000 });
    expect(describePhantomScore(score)).toBe(
      'precision 0.33 (1 of 3 alerts on a real phantom zero; 1 on a REAL_STOCKOUT, 1 on no anomaly), recall 0.50 (1 of 2 phantom ' +
        'zeros the snapshots saw got an alert)',
    );
  });

  it('says n/a rather than dividing by zero', () => {
    expect(describePhantomScore(scorePhantomAlerts([], [], { graceMs: 1 }))).toBe(
      'precision n/a (0 of 0 alerts on a real phantom zero), recall n/a (0 of 0 phantom zeros the snapshots saw got an alert)',
    );
  });
});

describe('the demo scope', () => {
  it("names a run's topic prefix and database after its start, under the configured ones", () => {
    const s = newScope('', 'fluxion', new Date('2026-12-03T09:37:36.123Z'), 42, 'e30e');
    expect(s).toEqual({
      runId: '20261203t093736e30e',
      prefix: 'demo-20261203t093736e30e.',
      database: 'fluxion_demo_20261203t093736e30e',
      startedAt: '2026-12-03T09:37:36.123Z',
      pid: 42,
    });
    expect(newScope('ci.', 'Fluxion', new Date('2026-12-03T09:37:36Z'), 1, 'ab').prefix).toBe('ci.demo-20261203t093736ab.');
  });

  it('refuses a database name PostgreSQL would not take as a plain identifier', () => {
    expect(() => newScope('', 'my-db', new Date(), 1)).toThrow(/not a plain PostgreSQL identifier/);
    expect(() => newScope('', 'x'.repeat(50), new Date(), 1)).toThrow(/at most 63 characters/);
  });

  it('points DATABASE_URL at another database of the same server, keeping the rest', () => {
    expect(databaseUrl('postgres://u:p@127.0.0.1:15432/fluxion?sslmode=disable', 'fluxion_demo_x')).toBe(
      'postgres://u:p@127.0.0.1:15432/fluxion_demo_x?sslmode=disable',
    );
    expect(databaseOf('postgres://u:p@127.0.0.1:15432/fluxion')).toBe('fluxion');
  });
});

describe('describeOffsets (pipeline-settled)', () => {
  it('prints bigint offsets, which JSON.stringify refuses', () => {
    expect(() => JSON.stringify(Object.fromEntries(new Map([[0, 1n]])))).toThrow(/BigInt/);
    expect(
      describeOffsets(
        new Map([
          [1, 40n],
          [0, 12n],
        ]),
      ),
    ).toBe('p0 12, p1 40');
    expect(describeOffsets(new Map())).toBe('nothing committed');
  });
});
