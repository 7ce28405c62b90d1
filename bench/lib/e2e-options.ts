/**
 * bench/e2e.ts's command line: its options, usage text, and whole-number option reading that
 * fails with a UsageFailure (exit 2) naming the option.
 */
import { parseArgs } from 'node:util';

export const { values } = parseArgs({
  options: {
    scenario: { type: 'string' },
    cycles: { type: 'string', default: '4' },
    'klk-products': { type: 'string' },
    'stellar-products': { type: 'string' },
    stores: { type: 'string' },
    'change-share': { type: 'string', default: '0.05' },
    concurrency: { type: 'string', default: '4' },
    legacy: { type: 'string', default: 'unnest' },
    'legacy-batch': { type: 'string' },
    'klk-port': { type: 'string', default: '38701' },
    'timeout-minutes': { type: 'string', default: '30' },
    keep: { type: 'boolean', default: false },
    'kill-differ': { type: 'boolean', default: false },
    'no-legacy': { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    'heap-mb': { type: 'string' },
    'node-args': { type: 'string', default: '' },
    out: { type: 'string' },
    'log-dir': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

export const USAGE = `usage: bench/e2e --scenario chain|national [--cycles 4] [--klk-products N] [--stellar-products N] [--stores N]
                 [--change-share 0.05] [--concurrency 4] [--legacy unnest|values] [--legacy-batch N]
                 [--keep] [--kill-differ] [--no-legacy] [--cpu-prof <dir>] [--heap-mb N] [--node-args='<flags>']
                 [--out <file>] [--log-dir <dir>] [--timeout-minutes 30]
  chain:    the store list's active stores (12 KLK x 15,000 products, 4 Stellar x 40,000 a deposito)
  national: --stores KLK stores (default 500) x --klk-products (default 1,000; 20,000 is the target, scaled down)`;

export class UsageFailure extends Error {}

export function intOption(name: string, fallback: number, min = 1): number {
  const raw = values[name as keyof typeof values];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new UsageFailure(`--${name} must be a whole number >= ${min}, got "${String(raw)}"`);
  return n;
}
