/**
 * Phantom-zero rules: the pure domain logic of `fluxion process phantom`.
 *
 * One `ProductPhantomState` per key ubicacion/deposito/producto is folded over that product's
 * events in the order the processor reads them: inventory changes (pos.inventario.changes)
 * and its deduplicated sales lines (pos.ventas). Each step returns the new state and the
 * alert decisions (OPEN / RESOLVE) to write to alerts.phantom-zeros. No I/O here: the
 * processor owns alert ids, opened_at/updated_at and the Kafka transaction.
 *
 * Rules (at most one OPEN alert per product; a rule that fires while another alert is open
 * does not open a second one):
 * - SELLING_AT_ZERO: stock <= 0 since snapshot Z, and the net units sold with fecha_hora
 *   after Z's taken_at reach `sellingAtZeroMinSales`. Resolves when stock is back above 0 or
 *   when voids/corrections/returns bring those units below the minimum.
 * - UNEXPLAINED_DROP: stock went from q >= `dropThreshold` (the last positive quantity) to
 *   <= 0 at snapshot Z, and the net units sold between the two snapshots are
 *   < `dropSalesShare` * q. Resolves when stock is back above 0 or when sales that arrive
 *   late (or corrections) explain the drop after all.
 * - FLIP_FLOP: q > 0, then <= 0, then back to >= `flipFlopRecovery` * q within
 *   `flipFlopWindowSnapshots` changes of this product, while the net units sold from the
 *   last positive snapshot to the recovery are < `dropSalesShare` * q (receipts are not
 *   observable separately, so the rule only asks that sales do not explain the movement:
 *   a real "sold out, then restocked" has sales close to q). Design choice: the alert is
 *   OPENed at the recovery and RESOLVEd at the next inventory change of the product with
 *   stock > 0 (the next normal snapshot) that does not itself flip-flop; while the product
 *   keeps flapping (back to <= 0, back again) the one alert stays open. Sales never resolve it.
 *   A zero episode that already opened an alert (any rule) opens no FLIP_FLOP when it ends:
 *   one episode, one alert (bench/phantom counted the second as noise).
 *
 * An inventory change with op d (product vanished) resolves any open alert and forgets the
 * product: its stock is no longer known, so no rule can hold.
 *
 * Confidence (a score in [0, 1], not a quantity; deterministic, rounded to 4 decimals):
 * - SELLING_AT_ZERO: u / (u + m), u = units sold at zero, m = sellingAtZeroMinSales:
 *   0.5 at the minimum, growing towards 1 with every unit sold at zero.
 * - UNEXPLAINED_DROP: 1 - 0.5 * s / share, s = max(0, sales between) / q: 1 when nothing
 *   was sold, 0.5 just under the share limit.
 * - FLIP_FLOP: 0.5 + 0.5 * (1 - s / share) * min(1, r / q), s as above over the whole
 *   episode, r = recovered quantity.
 * A RESOLVE carries the confidence the alert opened with.
 *
 * Limits, documented rather than hidden:
 * - The window of FLIP_FLOP counts this product's change events: a snapshot in which the
 *   product did not change emits no change, so "within N snapshots" means within N changes
 *   (a product that stays at 0 for hours and comes back is still one change away).
 * - A sale stamped at the very instant of the last positive snapshot (POS clocks have whole
 *   seconds) may or may not be in it: it counts among the sales that explain a drop, the
 *   doubt going to the store (bench/phantom found real stockouts alerted for want of it).
 * - Sales are bucketed by fecha_hora against the snapshots known when they arrive. A sale
 *   read before the snapshot that precedes it in time (ventas ahead of inventario) counts in
 *   the bucket of the latest known snapshot; a positive-to-positive change restarts the
 *   "sales since the last positive snapshot" total. Sales older than the last positive
 *   snapshot, and sales of a product whose stock is not known yet, are ignored.
 * - Sales lines are assumed deduplicated upstream (pos.ventas): the same op c twice counts twice.
 * - A change with the snapshot_id of the last applied change is a redelivery and is ignored.
 * - Times in the state are epoch ms; an alert's opened time is the instant of the event that
 *   opened it (taken_at of a change, fecha_hora of a sale).
 * - A sales update (op u) without its previous version is counted as if the previous
 *   version contributed nothing.
 *
 * Quantities are exact: decimal strings at scale 3 in the state and the evidence, BigInt
 * unscaled integers in arithmetic. The state holds only strings, numbers and null, so
 * JSON.parse(JSON.stringify(state)) is the same state (it lives in a compacted topic).
 */
import { fromUnscaled, toUnscaled } from '../core/avro/logical-types.ts';
import { DEFAULT_PHANTOM_CONFIG, type PhantomConfig, type PhantomRule } from './phantom-config.ts';
import {
  initialPhantomState,
  type AlertDecision,
  type InventoryEvent,
  type OpenAlert,
  type PhantomStep,
  type ProductPhantomState,
  type SaleEvent,
  type SnapshotRef,
  type ZeroEpisode,
} from './phantom-state.ts';

// The rules' whole vocabulary from one module: callers (the detector's fold, bench/phantom,
// tests) name the settings and the state the steps take where they name the steps.
export { DEFAULT_PHANTOM_CONFIG, PHANTOM_RULES, type PhantomConfig, type PhantomRule, type PhantomSource } from './phantom-config.ts';
export * from './phantom-state.ts';

/** Precision and scale of cantidad in schemas/types/InventoryRow.avsc and VentaLinea.avsc. */
const PRECISION = 18;
const SCALE = 3;
/** Shares (0.8, 0.2) become exact integer ratios over this denominator. */
const SHARE_DENOMINATOR = 1_000_000n;

const ZERO = '0.000';

// ---- exact arithmetic ---------------------------------------------------------------------

const units = (value: string): bigint => toUnscaled(value, PRECISION, SCALE);
const text = (unscaled: bigint): string => fromUnscaled(unscaled, SCALE);
const add = (a: string, b: bigint): string => text(units(a) + b);
/** A share such as 0.2 as an exact numerator over SHARE_DENOMINATOR. */
const shareNumerator = (share: number): bigint => BigInt(Math.round(share * Number(SHARE_DENOMINATOR)));
/** a < share * b, exactly. */
const belowShare = (a: bigint, share: number, b: bigint): boolean => a * SHARE_DENOMINATOR < shareNumerator(share) * b;
/** a >= share * b, exactly. */
const atLeastShare = (a: bigint, share: number, b: bigint): boolean => !belowShare(a, share, b);
/** a / b as a score input (never a quantity); b > 0. */
const ratio = (a: bigint, b: bigint): number => Number((a * SHARE_DENOMINATOR) / b) / Number(SHARE_DENOMINATOR);
const score = (x: number): number => Math.round(Math.min(1, Math.max(0, x)) * 10_000) / 10_000;

const iso = (ms: number | null): string => (ms === null ? 'unknown' : new Date(ms).toISOString());

/** Net contribution of one version of a sales line: voided lines sell nothing. */
const effective = (cantidad: string, anulada: boolean): bigint => (anulada ? 0n : units(cantidad));

// ---- rules ----------------------------------------------------------------------------------

interface Firing {
  rule: PhantomRule;
  confidence: number;
  summary: string;
  evidence: Record<string, string>;
}

function sellingAtZero(state: ProductPhantomState, config: PhantomConfig): Firing | null {
  const ep = state.zero;
  if (!ep) return null;
  const sold = units(ep.salesAfter);
  const min = units(config.sellingAtZeroMinSales);
  if (sold <= 0n || sold < min) return null;
  const minMs = config.sellingAtZeroMinMinutes * 60_000;
  if (minMs > 0 && ep.zero.takenAtMs !== null && (ep.lastSaleAfterMs === null || ep.lastSaleAfterMs - ep.zero.takenAtMs < minMs))
    return null;
  const confidence = score(min > 0n ? ratio(sold, sold + min) : 1);
  return {
    rule: 'SELLING_AT_ZERO',
    confidence,
    summary: `${ep.salesAfter} units sold since snapshot ${ep.zero.snapshotId ?? 'unknown'} recorded stock ${ep.zero.quantity}`,
    evidence: {
      quantity_at_zero: ep.zero.quantity,
      zero_snapshot_id: ep.zero.snapshotId ?? 'unknown',
      zero_taken_at: iso(ep.zero.takenAtMs),
      units_sold_since_zero: ep.salesAfter,
      sale_events_since_zero: String(ep.saleEventsAfter),
      last_sale_at: iso(ep.lastSaleAfterMs),
      min_sales: config.sellingAtZeroMinSales,
      min_minutes: String(config.sellingAtZeroMinMinutes),
    },
  };
}

function unexplainedDrop(state: ProductPhantomState, config: PhantomConfig): Firing | null {
  const ep = state.zero;
  if (!ep?.from) return null;
  const q = units(ep.from.quantity);
  if (q <= 0n || q < units(config.dropThreshold)) return null;
  const sold = units(ep.salesBefore);
  if (!belowShare(sold, config.dropSalesShare, q)) return null;
  const fall = ep.recentFall ? units(ep.recentFall) : 0n;
  if (config.dropRecentFallFactor > 0 && fall > 0n && !belowShare(fall, 1 / config.dropRecentFallFactor, q)) return null;
  const s = sold > 0n ? ratio(sold, q) : 0;
  const confidence = score(config.dropSalesShare > 0 ? 1 - (0.5 * s) / config.dropSalesShare : 1);
  return {
    rule: 'UNEXPLAINED_DROP',
    confidence,
    summary: `stock went from ${ep.from.quantity} to ${ep.zero.quantity} with ${ep.salesBefore} units sold in between`,
    evidence: {
      ...episodeEvidence(ep.from, ep.zero),
      units_sold_between: ep.salesBefore,
      drop_threshold: config.dropThreshold,
      drop_sales_share: String(config.dropSalesShare),
    },
  };
}

/** The evidence both drop rules share: where the stock came from and when it hit zero. */
function episodeEvidence(from: SnapshotRef, zero: SnapshotRef): Record<string, string> {
  return {
    from_quantity: from.quantity,
    from_snapshot_id: from.snapshotId ?? 'unknown',
    from_taken_at: iso(from.takenAtMs),
    quantity_at_zero: zero.quantity,
    zero_snapshot_id: zero.snapshotId ?? 'unknown',
    zero_taken_at: iso(zero.takenAtMs),
  };
}

/** Evaluated only on the change that ends a zero episode with stock > 0. */
function flipFlop(ep: ZeroEpisode, recovered: SnapshotRef, config: PhantomConfig): Firing | null {
  if (!ep.from || ep.alerted) return null;
  const q = units(ep.from.quantity);
  const r = units(recovered.quantity);
  if (q <= 0n) return null;
  const distance = recovered.changeIndex - ep.zero.changeIndex;
  if (distance > config.flipFlopWindowSnapshots) return null;
  if (!atLeastShare(r, config.flipFlopRecovery, q)) return null;
  const sold = units(ep.salesBefore) + units(ep.salesAfter);
  if (!belowShare(sold, config.dropSalesShare, q)) return null;
  const s = sold > 0n ? ratio(sold, q) : 0;
  const salesFactor = config.dropSalesShare > 0 ? 1 - s / config.dropSalesShare : 1;
  const confidence = score(0.5 + 0.5 * salesFactor * Math.min(1, ratio(r, q)));
  return {
    rule: 'FLIP_FLOP',
    confidence,
    summary:
      `stock went ${ep.from.quantity} -> ${ep.zero.quantity} -> ${recovered.quantity} within ${distance} change(s) with ${text(sold)} ` +
      `units sold`,
    evidence: {
      ...episodeEvidence(ep.from, ep.zero),
      recovered_quantity: recovered.quantity,
      recovered_snapshot_id: recovered.snapshotId ?? 'unknown',
      recovered_taken_at: iso(recovered.takenAtMs),
      changes_between: String(distance),
      units_sold: text(sold),
      flip_flop_recovery: String(config.flipFlopRecovery),
      drop_sales_share: String(config.dropSalesShare),
    },
  };
}

function openDecision(f: Firing): AlertDecision {
  return { action: 'OPEN', rule: f.rule, confidence: f.confidence, summary: f.summary, evidence: f.evidence };
}

function resolveDecision(state: ProductPhantomState, open: OpenAlert, reason: string, summary: string, atMs: number): AlertDecision {
  return {
    action: 'RESOLVE',
    rule: open.rule,
    confidence: open.confidence,
    summary,
    evidence: {
      reason,
      opened_at: iso(open.openedAtMs),
      opened_snapshot_id: open.snapshotId ?? 'unknown',
      resolved_at: iso(atMs),
      quantity: state.quantity ?? 'unknown',
      snapshot_id: state.snapshotId ?? 'unknown',
    },
  };
}

/**
 * The shared tail of both steps: resolve the open alert when its rule no longer holds, then
 * open the first rule that fires (FLIP_FLOP, SELLING_AT_ZERO, UNEXPLAINED_DROP) when none is open.
 */
function decide(state: ProductPhantomState, config: PhantomConfig, atMs: number, flip: Firing | null, isInventory: boolean): PhantomStep {
  const decisions: AlertDecision[] = [];
  let open = state.open;
  const saz = sellingAtZero(state, config);
  const drop = unexplainedDrop(state, config);
  if (open) {
    let resolution: { reason: string; summary: string } | null = null;
    const back = state.quantity !== null && units(state.quantity) > 0n;
    if (state.quantity === null) {
      resolution = { reason: 'product_vanished', summary: 'the product vanished from the snapshot' };
    } else if (open.rule === 'FLIP_FLOP') {
      if (isInventory && back && !flip) resolution = { reason: 'stock_normal', summary: `a later snapshot shows stock ${state.quantity}` };
    } else if (back) {
      resolution = { reason: 'stock_back', summary: `stock is back at ${state.quantity}` };
    } else if ((open.rule === 'SELLING_AT_ZERO' && !saz) || (open.rule === 'UNEXPLAINED_DROP' && !drop)) {
      resolution = {
        reason: 'rule_no_longer_holds',
        summary: open.rule === 'SELLING_AT_ZERO' ? 'corrected sales no longer show selling at zero' : 'sales now explain the drop',
      };
    }
    if (resolution) {
      decisions.push(resolveDecision(state, open, resolution.reason, resolution.summary, atMs));
      open = null;
    }
  }
  if (!open) {
    const on = (f: Firing | null) => (f && config.rules.includes(f.rule) ? f : null);
    const firing = on(flip) ?? on(saz) ?? on(drop);
    if (firing) {
      decisions.push(openDecision(firing));
      open = { rule: firing.rule, openedAtMs: atMs, confidence: firing.confidence, snapshotId: state.snapshotId };
      if (state.zero && !state.zero.alerted) return { state: { ...state, zero: { ...state.zero, alerted: true }, open }, decisions };
    }
  }
  return { state: { ...state, open }, decisions };
}

// ---- steps ------------------------------------------------------------------------------------

/** Applies one inventory change of the product. */
export function onInventoryChange(
  state: ProductPhantomState,
  event: InventoryEvent,
  config: PhantomConfig = DEFAULT_PHANTOM_CONFIG,
): PhantomStep {
  // The same snapshot twice (a redelivered change) changes nothing.
  if (state.snapshotId !== null && state.snapshotId === event.snapshot_id) return { state, decisions: [] };
  const atMs = event.taken_at.getTime();
  const changes = state.changes + 1;

  if (event.op === 'd' || event.after === null) {
    const gone: ProductPhantomState = {
      ...initialPhantomState(),
      snapshotId: event.snapshot_id,
      takenAtMs: atMs,
      changes,
      open: state.open,
    };
    return decide(gone, config, atMs, null, true);
  }

  const quantity = text(units(event.after));
  const here: SnapshotRef = { quantity, snapshotId: event.snapshot_id, takenAtMs: atMs, changeIndex: changes };
  // A state that starts mid-stream still knows the previous quantity from `before`.
  let lastPositive = state.lastPositive;
  if (!lastPositive && !state.zero && state.quantity === null && event.before !== null && units(event.before) > 0n) {
    lastPositive = { quantity: text(units(event.before)), snapshotId: null, takenAtMs: null, changeIndex: state.changes };
  }
  const base = { ...state, quantity, snapshotId: event.snapshot_id, takenAtMs: atMs, changes };

  if (units(quantity) > 0n) {
    const flip = state.zero ? flipFlop(state.zero, here, config) : null;
    const fell = state.lastPositive && !state.zero ? units(state.lastPositive.quantity) - units(quantity) : 0n;
    const next: ProductPhantomState = {
      ...base,
      lastPositive: here,
      salesSincePositive: ZERO,
      zero: null,
      lastDecrease: fell > 0n ? text(fell) : null,
    };
    return decide(next, config, atMs, flip, true);
  }

  // Stock <= 0: start an episode, or stay in the current one (0 -> -2 is the same zero).
  const zero: ZeroEpisode = state.zero ?? {
    zero: here,
    from: lastPositive,
    salesBefore: lastPositive ? state.salesSincePositive : ZERO,
    salesAfter: ZERO,
    saleEventsAfter: 0,
    lastSaleAfterMs: null,
    recentFall: state.lastDecrease ?? null,
  };
  const next: ProductPhantomState = { ...base, lastPositive: null, salesSincePositive: ZERO, zero };
  return decide(next, config, atMs, null, true);
}

/** Applies one deduplicated sales line (or a new version of one) of the product. */
export function onSale(state: ProductPhantomState, event: SaleEvent, config: PhantomConfig = DEFAULT_PHANTOM_CONFIG): PhantomStep {
  const atMs = event.fecha_hora.getTime();
  const now = effective(event.cantidad, event.anulada);
  const before = event.op === 'u' && event.previous ? effective(event.previous.cantidad, event.previous.anulada) : 0n;
  const delta = now - before;
  let next = state;
  const ep = state.zero;
  if (ep) {
    const zeroMs = ep.zero.takenAtMs;
    if (zeroMs === null || atMs > zeroMs) {
      next = {
        ...state,
        zero: {
          ...ep,
          salesAfter: add(ep.salesAfter, delta),
          saleEventsAfter: ep.saleEventsAfter + (event.op === 'c' ? 1 : 0),
          lastSaleAfterMs: Math.max(ep.lastSaleAfterMs ?? atMs, atMs),
        },
      };
    } else if (ep.from && (ep.from.takenAtMs === null || atMs >= ep.from.takenAtMs)) {
      next = { ...state, zero: { ...ep, salesBefore: add(ep.salesBefore, delta) } };
    }
  } else if (state.lastPositive && (state.lastPositive.takenAtMs === null || atMs >= state.lastPositive.takenAtMs)) {
    next = { ...state, salesSincePositive: add(state.salesSincePositive, delta) };
  }
  if (next === state) return { state, decisions: [] };
  return decide(next, config, atMs, null, false);
}
