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
