/**
 * The demo's summary figures and its verdict, pure. The demo injects faults (a failing
 * store, a mass-zero snapshot) and must show what the pipeline made of them; a summary
 * without them means the pipeline did not do what the demo claims, so the run fails.
 */

/** The p-th percentile (nearest rank), or null for no values. */
export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Freshness figures in ms: "p50 1.8 s, p95 2.7 s, max 2.7 s over 15 stores", never NaN. */
export function describeFreshness(valuesMs: number[]): string {
  const finite = valuesMs.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return "n/a: no store's last extracted snapshot reached PostgreSQL";
  const stores = `${finite.length} store${finite.length === 1 ? '' : 's'}`;
  const max = seconds(Math.max(...finite));
  return `p50 ${seconds(percentile(finite, 50)!)}, p95 ${seconds(percentile(finite, 95)!)}, max ${max} over ${stores}`;
}

export interface DemoFacts {
  /** The store the demo made fail (absent when the store list has none such). */
  injectedFailing?: string;
  /** Stores with a FAILED run in etl_runs. */
  failedStores: string[];
  /** The store the demo made report mass zeros. */
  injectedMassZero?: string;
  /** Stores with a QUARANTINED snapshot. */
  quarantinedStores: string[];
  /** STALE quarantine records of the run: snapshots older than one already applied. */
  stale: number;
  freshnessMs: number[];
  /** Stores (and what) without data in PostgreSQL. */
  missing: string[];
}

/** What the summary lacks or shows wrong; empty when the run told the truth it set out to. */
export function demoProblems(f: DemoFacts): string[] {
  const problems: string[] = [];
  if (f.injectedFailing && !f.failedStores.includes(f.injectedFailing))
    problems.push(`${f.injectedFailing} was made to fail, but etl_runs has no FAILED run of it`);
  if (f.injectedMassZero && !f.quarantinedStores.includes(f.injectedMassZero))
    problems.push(`${f.injectedMassZero} reported mass zeros, but no snapshot of it is quarantined`);
  if (f.stale > 0) problems.push(`${f.stale} stale snapshot(s): the simulated clock went behind what the pipeline had applied`);
  if (!f.freshnessMs.some((v) => Number.isFinite(v))) problems.push("no freshness figures: no store's last snapshot reached PostgreSQL");
  if (f.missing.length) problems.push(`no data in PostgreSQL for ${f.missing.join(', ')}`);
  return problems;
}

/** What `describePhantomScore` reads of simulators/data/anomaly-score.ts PhantomScore. */
export interface PhantomScoreFigures {
  precision: number | null;
  recall: number | null;
  alerts: number;
  true_positives: number;
  labels: { considered: number; detected: number };
  by_kind: Record<string, { false_positives: number }>;
}

const ratio = (x: number | null) => (x === null ? 'n/a' : x.toFixed(2));

/**
 * "precision 0.83 (5 of 6 alerts on a real phantom zero; 1 on a REAL_STOCKOUT), recall 1.00
 * (5 of 5 phantom zeros the snapshots saw got an alert)".
 */
export function describePhantomScore(s: PhantomScoreFigures): string {
  const wrong = Object.entries(s.by_kind)
    .filter(([, k]) => k.false_positives > 0)
    .map(([kind, k]) => `${k.false_positives} on ${kind === 'UNLABELLED' ? 'no anomaly' : `a ${kind}`}`);
  return (
    `precision ${ratio(s.precision)} (${s.true_positives} of ${s.alerts} alerts on a real phantom ` +
    `zero${wrong.length ? `; ${wrong.join(', ')}` : ''}), ` +
    `recall ${ratio(s.recall)} (${s.labels.detected} of ${s.labels.considered} phantom zeros the snapshots saw got an alert)`
  );
}
