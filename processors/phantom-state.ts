/**
 * What the phantom-zero rules fold per product (ProductPhantomState) and the events and
 * decisions of one step. Only strings, numbers and null, so the state round-trips through
 * JSON exactly (it lives in a compacted topic); the steps are phantom-rules.ts.
 */
import type { PhantomRule } from './phantom-config.ts';

/** One change of the product's row (pos.inventario.changes), reduced to what the rules need. */
export interface InventoryEvent {
  op: 'c' | 'u' | 'd';
  /** before.cantidad; null for c. */
  before: string | null;
  /** after.cantidad; null for d. */
  after: string | null;
  snapshot_id: string;
  taken_at: Date;
}

/** One deduplicated sales line of the product (pos.ventas). */
export interface SaleEvent {
  op: 'c' | 'u';
  /** Units of this version; negative for a return. */
  cantidad: string;
  anulada: boolean;
  fecha_hora: Date;
  /** For op u, the previous version of the line (so a correction or void adjusts totals). */
  previous: { cantidad: string; anulada: boolean } | null;
}

export interface AlertDecision {
  action: 'OPEN' | 'RESOLVE';
  rule: PhantomRule;
  confidence: number;
  summary: string;
  /** Exact decimal strings, snapshot ids, counts, ISO instants. */
  evidence: Record<string, string>;
}

/** A snapshot reference: quantity as an exact decimal string, instant in epoch ms. */
export interface SnapshotRef {
  quantity: string;
  snapshotId: string | null;
  takenAtMs: number | null;
  /** Value of `changes` when this snapshot was applied. */
  changeIndex: number;
}

/** Stock <= 0 since `zero`, coming from `from` (the last positive snapshot, when known). */
export interface ZeroEpisode {
  zero: SnapshotRef;
  from: SnapshotRef | null;
  /** Net units sold after `from` and up to `zero` (what could explain the drop). */
  salesBefore: string;
  /** Net units sold after `zero` (sold while the POS said there was nothing). */
  salesAfter: string;
  saleEventsAfter: number;
  lastSaleAfterMs: number | null;
  /** The state's `lastDecrease` when the episode began: how fast the product was going. */
  recentFall?: string | null;
  /**
   * An alert opened during this episode (absent in states written before it existed: false).
   * Its recovery then opens no FLIP_FLOP: the episode was told once, and the count that
   * brought the stock back is the answer to that alert, not news.
   */
  alerted?: boolean;
}

export interface OpenAlert {
  rule: PhantomRule;
  openedAtMs: number;
  confidence: number;
  snapshotId: string | null;
}

export interface ProductPhantomState {
  v: 1;
  /** Last known stock; null before the first change and after op d. */
  quantity: string | null;
  snapshotId: string | null;
  takenAtMs: number | null;
  /** Inventory changes applied so far (the clock of the FLIP_FLOP window). */
  changes: number;
  /** Latest snapshot with stock > 0, while stock is positive. */
  lastPositive: SnapshotRef | null;
  /**
   * How much the stock fell between the last two positive snapshots (absent or null: it did
   * not fall, or states written before it existed). A product selling that fast can sell out
   * before the ventas read that would explain it.
   */
  lastDecrease?: string | null;
  /** Net units sold after `lastPositive` while stock is positive. */
  salesSincePositive: string;
  zero: ZeroEpisode | null;
  open: OpenAlert | null;
}

export interface PhantomStep {
  state: ProductPhantomState;
  decisions: AlertDecision[];
}

const ZERO = '0.000';

export function initialPhantomState(): ProductPhantomState {
  return {
    v: 1,
    quantity: null,
    snapshotId: null,
    takenAtMs: null,
    changes: 0,
    lastPositive: null,
    salesSincePositive: ZERO,
    zero: null,
    open: null,
  };
}
