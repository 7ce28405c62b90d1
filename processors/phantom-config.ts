/**
 * The phantom-zero detector's settings: which rules exist, their thresholds and the POS
 * judged (PhantomConfig), the calibrated defaults (bench/README.md, bench/phantom) and the
 * checks a config must pass before any I/O. What each threshold does is the rules'
 * business (phantom-rules.ts); the environment declares its own copy of these settings
 * (core/config/environment.ts: core imports no component).
 */
export type PhantomRule = 'SELLING_AT_ZERO' | 'FLIP_FLOP' | 'UNEXPLAINED_DROP';

export interface PhantomConfig {
  /** FLIP_FLOP: the recovered quantity must reach this share of the pre-zero quantity. */
  flipFlopRecovery: number;
  /** FLIP_FLOP: the recovery must come within this many changes of the product after the zero. */
  flipFlopWindowSnapshots: number;
  /** UNEXPLAINED_DROP: only drops from at least this quantity (exact decimal string). */
  dropThreshold: string;
  /** UNEXPLAINED_DROP and FLIP_FLOP: sales below this share of q do not explain the movement. */
  dropSalesShare: number;
  /**
   * UNEXPLAINED_DROP: q must also exceed this many times the stock's fall between the last two
   * positive snapshots (0: off). A best-seller that fell 19 units in the last half hour and
   * reads 0 from 28 sold out; its sales come with the next hourly ventas read.
   */
  dropRecentFallFactor: number;
  /** SELLING_AT_ZERO: net units sold after the zero snapshot needed to fire (exact decimal string). */
  sellingAtZeroMinSales: string;
  /**
   * SELLING_AT_ZERO: the last of those sales must come at least this many minutes after the
   * zero snapshot. A receipt between two snapshots lets a product sell before the next
   * snapshot shows its stock back; sales still coming a snapshot interval after the zero are
   * what a receipt does not explain.
   */
  sellingAtZeroMinMinutes: number;
  /** The rules that may open an alert; an alert already open still resolves by its rule. */
  rules: readonly PhantomRule[];
  /**
   * The POS whose stock is judged (read by the detector, not by the rules). Every rule weighs
   * stock against sales lines, and only KLK stores have them: a CEDI's stock leaves by
   * dispatch, which no topic carries, so each of its dispatches would look like a phantom.
   */
  sources: readonly PhantomSource[];
}

export type PhantomSource = 'KLK' | 'STELLAR';

/** Every rule, in the order `decide` (phantom-rules.ts) tries them (all of them may open alerts by default). */
export const PHANTOM_RULES: readonly PhantomRule[] = Object.freeze(['FLIP_FLOP', 'SELLING_AT_ZERO', 'UNEXPLAINED_DROP']);

export const DEFAULT_PHANTOM_CONFIG: PhantomConfig = Object.freeze({
  flipFlopRecovery: 0.8,
  flipFlopWindowSnapshots: 3,
  dropThreshold: '20.000',
  dropSalesShare: 0.2,
  dropRecentFallFactor: 2,
  sellingAtZeroMinSales: '1.000',
  sellingAtZeroMinMinutes: 0,
  rules: PHANTOM_RULES,
  sources: Object.freeze(['KLK'] as PhantomSource[]),
});

/** Problems of a PhantomConfig (the environment validates it; tests and the bench build their own). */
export function phantomConfigProblems(c: PhantomConfig): string[] {
  const problems: string[] = [];
  const share = (name: string, v: number) => {
    if (!(v > 0 && v <= 1)) problems.push(`phantom.${name} must be a share in (0, 1], got ${v}`);
  };
  share('flipFlopRecovery', c.flipFlopRecovery);
  share('dropSalesShare', c.dropSalesShare);
  if (!Number.isInteger(c.flipFlopWindowSnapshots) || c.flipFlopWindowSnapshots < 1) problems.push(`phantom.flipFlopWindowSnapshots must be an integer >= 1, got ${c.flipFlopWindowSnapshots}`);
  for (const name of ['dropThreshold', 'sellingAtZeroMinSales'] as const) {
    if (!/^\d{1,15}\.\d{3}$/.test(c[name])) problems.push(`phantom.${name} must be a non-negative decimal with 3 decimals, got "${c[name]}"`);
  }
  if (!(c.dropRecentFallFactor >= 0)) problems.push(`phantom.dropRecentFallFactor must be a factor >= 0 (0: off), got ${c.dropRecentFallFactor}`);
  if (!(c.sellingAtZeroMinMinutes >= 0)) problems.push(`phantom.sellingAtZeroMinMinutes must be a number of minutes >= 0, got ${c.sellingAtZeroMinMinutes}`);
  const unknown = c.rules.filter((r) => !PHANTOM_RULES.includes(r));
  if (unknown.length > 0) problems.push(`phantom.rules must name rules among ${PHANTOM_RULES.join(', ')}, got ${unknown.join(', ')}`);
  const badSources = c.sources.filter((x) => x !== 'KLK' && x !== 'STELLAR');
  if (badSources.length > 0) problems.push(`phantom.sources must be KLK or STELLAR, got ${badSources.join(', ')}`);
  return problems;
}
