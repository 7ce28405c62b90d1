/**
 * Events for the phantom-zero rules (processors/phantom-rules.ts) and a fold of them from the
 * initial state, shared by phantom-rules.test.ts and phantom-rules-episodes.test.ts.
 */
import {
  DEFAULT_PHANTOM_CONFIG,
  initialPhantomState,
  onInventoryChange,
  onSale,
  type AlertDecision,
  type InventoryEvent,
  type PhantomConfig,
  type ProductPhantomState,
  type SaleEvent,
} from '../../processors/phantom-rules.ts';

export const T0 = Date.parse('2026-11-02T10:00:00Z');
export const MIN = 60_000;
export const at = (minutes: number) => new Date(T0 + minutes * MIN);

export type Ev = { kind: 'inv'; e: InventoryEvent } | { kind: 'sale'; e: SaleEvent };

let snapshotSeq = 0;
/** A change to `after` at minute `m` (before is filled in by `run`). */
export const inv = (after: string | null, m: number, snapshot_id = `snap-${++snapshotSeq}`): Ev => ({
  kind: 'inv',
  e: { op: after === null ? 'd' : 'u', before: null, after, snapshot_id, taken_at: at(m) },
});
export const sale = (cantidad: string, m: number, extra: Partial<SaleEvent> = {}): Ev => ({
  kind: 'sale',
  e: { op: 'c', cantidad, anulada: false, fecha_hora: at(m), previous: null, ...extra },
});

export function step(state: ProductPhantomState, ev: Ev, config: PhantomConfig) {
  return ev.kind === 'inv' ? onInventoryChange(state, ev.e, config) : onSale(state, ev.e, config);
}

/** Folds events from the initial state; returns every step's decisions and the final state. */
export function run(events: Ev[], config: PhantomConfig = DEFAULT_PHANTOM_CONFIG) {
  let state = initialPhantomState();
  const steps: AlertDecision[][] = [];
  let last: string | null = null;
  for (const ev of events) {
    if (ev.kind === 'inv') {
      ev.e.before = last;
      if (ev.e.op === 'u' && last === null) ev.e.op = 'c';
      last = ev.e.after;
    }
    const r = step(state, ev, config);
    state = r.state;
    steps.push(r.decisions);
  }
  return { state, steps, all: steps.flat() };
}
