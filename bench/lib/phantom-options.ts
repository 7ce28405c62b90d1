/** bench/phantom's command line: its options, usage, and the checks that refuse a bad value before an hour of work. */
import { parseArgs } from 'node:util';
import type { PhantomConfig } from '../../processors/phantom-rules.ts';
import { configValue, UsageFailure } from './phantom-week.ts';

export const { values } = parseArgs({
  options: {
    stores: { type: 'string', default: '4' },
    products: { type: 'string', default: '2000' },
    days: { type: 'string', default: '7' },
    seed: { type: 'string', default: 'bench' },
    start: { type: 'string', default: '2026-11-30' },
    'sales-per-hour': { type: 'string' },
    rates: { type: 'string' },
    'opening-hours': { type: 'string' },
    'phantom-config': { type: 'string' },
    sweep: { type: 'string', multiple: true },
    partitions: { type: 'string', default: '3' },
    replay: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

export const USAGE = `usage: node bench/phantom.ts [--stores 4] [--products 2000] [--days 7] [--seed bench] [--start 2026-11-30]
         [--sales-per-hour N] [--rates '{"phantomZeroPerDay":2,...}'] [--opening-hours 7-21]
         [--phantom-config '{"dropThreshold":"20.000",...}'] [--sweep param=v1,v2,...]... [--partitions 3] [--out file]
       node bench/phantom.ts --replay .cache/bench-phantom/<run> [--phantom-config ...] [--sweep ...] [--out file]`;

export function whole(name: string, min = 1): number {
  const raw = values[name as keyof typeof values] as string;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new UsageFailure(`--${name} must be a whole number >= ${min}, got "${raw}"`);
  return n;
}

export function json(name: string): Record<string, unknown> {
  const raw = values[name as keyof typeof values] as string | undefined;
  if (raw === undefined) return {};
  try {
    const v = JSON.parse(raw) as unknown;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new UsageFailure(`--${name} must be a JSON object, got ${raw}`);
}

export function sweepSpecs(): Array<{ param: keyof PhantomConfig; values: unknown[] }> {
  return (values.sweep ?? []).map((s) => {
    const eq = s.indexOf('=');
    if (eq < 1) throw new UsageFailure(`--sweep must be param=v1,v2,..., got "${s}"`);
    const list = s
      .slice(eq + 1)
      .split(',')
      .filter(Boolean);
    if (list.length === 0) throw new UsageFailure(`--sweep ${s}: no values`);
    const pairs = list.map((v) => configValue(s.slice(0, eq), v));
    return { param: pairs[0]![0], values: pairs.map((p) => p[1]) };
  });
}

export function parseHours(raw: string): { open: number; close: number } {
  const m = /^(\d{1,2})-(\d{1,2})$/.exec(raw);
  if (!m || Number(m[1]) >= Number(m[2]) || Number(m[2]) > 24)
    throw new UsageFailure(`--opening-hours must be open-close in Caracas hours (e.g. 7-21), got "${raw}"`);
  return { open: Number(m[1]), close: Number(m[2]) };
}
