/**
 * The phantom detector's fold, pure: one product's entry (the rules' state plus the
 * detector's bookkeeping) stepped by an inventory change or a sales line, returning the
 * alert records to write and whether its state record must be written. The rules decide
 * (phantom-rules.ts); this adds what they leave to the detector:
 *
 * - The previous version of a corrected or voided line (the rules need it so a void takes
 *   units back). Each product remembers the lines whose units are in its current sales
 *   totals (`ventas`: `numero_factura/linea` -> [units, fecha_hora ms]); the memory is
 *   cleared whenever the rules restart those totals (no zero episode left), so it always
 *   mirrors what was counted. A line not remembered counts as first seen (op c).
 * - Alert ids: deterministic (sha1 of key, rule, opened instant, opening snapshot and the
 *   number of alerts the product opened before, laid out as a version-5 UUID), so a run
 *   interrupted by kill -9 writes the same alerts as one that was not. opened_at and
 *   updated_at are event times (taken_at of a change, fecha_hora of a sale), never the
 *   wall clock; updated_at never goes before opened_at (a late void may be timed earlier).
 * - Which changes are followed at all (`followsChange`: the POS judged).
 *
 * The detector (phantom-detector.ts) and bench/phantom's replay (bench/lib/phantom-replay.ts)
 * both call these steps, so a replay writes exactly the alerts the detector wrote.
 */
import { createHash } from 'node:crypto';
import type { InventoryChange, PhantomAlert, Venta, VentaLinea } from '../core/records.ts';
import {
  initialPhantomState,
  onInventoryChange,
  onSale,
  type AlertDecision,
  type InventoryEvent,
  type OpenAlert,
  type PhantomConfig,
  type ProductPhantomState,
  type SaleEvent,
} from './phantom-rules.ts';

export type AlertStatus = PhantomAlert['status'];

export interface ProductRef {
  ubicacion_id: string;
  deposito: string;
  producto_id: string;
}

/** The key of a product's state record and of its alerts. */
export const phantomKey = (r: ProductRef): string => `${r.ubicacion_id}/${r.deposito}/${r.producto_id}`;

/** What the detector keeps per product: the rules' state plus the processor's bookkeeping. */
export interface DetectorEntry {
  ref: ProductRef;
  state: ProductPhantomState;
  openAlertId: string | null;
  /** Alerts this product opened so far: part of the alert id, so a reopening never reuses one. */
  opened: number;
  /** Sales lines whose units are in the state's totals: `numero_factura/linea` -> [units, fecha_hora ms]. */
  ventas: Record<string, [string, number]>;
}

export interface DetectorStep {
  /** The product after the event; null when it is forgotten (vanished, nothing open). */
  entry: DetectorEntry | null;
  alerts: PhantomAlert[];
  /** Whether the product's state record must be written (a tombstone when `entry` is null). */
  write: boolean;
}

/**
 * Bounds the remembered lines of one product (a product selling at zero for days): the
 * oldest are forgotten first, and a later void of a forgotten line cannot take its units
 * back (the rules' fallback for a line without its previous version).
 */
export const MAX_REMEMBERED_LINES = 500;

const ZERO = '0.000';

export function newEntry(ref: ProductRef): DetectorEntry {
  return { ref, state: initialPhantomState(), openAlertId: null, opened: 0, ventas: {} };
}

/** A UUID (version 5 layout) from the sha1 of what identifies one alert. */
export function alertId(key: string, open: Pick<OpenAlert, 'rule' | 'openedAtMs' | 'snapshotId'>, seq: number): string {
  const h = createHash('sha1')
    .update(['phantom', key, open.rule, open.openedAtMs, open.snapshotId ?? '', seq].join('\n'))
    .digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

export function inventoryEvent(change: InventoryChange): InventoryEvent {
  return {
    op: change.op,
    before: change.before?.cantidad ?? null,
    after: change.after?.cantidad ?? null,
    snapshot_id: change.snapshot_id,
    taken_at: change.taken_at,
  };
}

/** The rules' sale event for a line, given what this product already counted of it. */
export function saleEvent(linea: VentaLinea, counted: [string, number] | undefined): SaleEvent {
  const base = { cantidad: linea.cantidad, anulada: linea.anulada, fecha_hora: linea.fecha_hora };
  return counted ? { op: 'u', ...base, previous: { cantidad: counted[0], anulada: false } } : { op: 'c', ...base, previous: null };
}

const lineId = (l: Pick<VentaLinea, 'numero_factura' | 'linea'>): string => `${l.numero_factura}/${l.linea}`;

/** Turns the rules' decisions into alert records, carrying the open alert's id over to its RESOLVED. */
function withDecisions(
  prev: DetectorEntry,
  state: ProductPhantomState,
  decisions: AlertDecision[],
  atMs: number,
  trigger: string,
): { entry: DetectorEntry; alerts: PhantomAlert[] } {
  const key = phantomKey(prev.ref);
  let { openAlertId, opened } = prev;
  const alerts: PhantomAlert[] = [];
  for (const d of decisions) {
    if (d.action === 'RESOLVE') {
      const was = prev.state.open;
      // A state written without its alert id still resolves under the id it opened with.
      const id =
        openAlertId ??
        (was ? alertId(key, was, Math.max(0, opened - 1)) : alertId(key, { rule: d.rule, openedAtMs: atMs, snapshotId: null }, opened));
      alerts.push(alertRecord(prev.ref, id, 'RESOLVED', d, was?.openedAtMs ?? atMs, atMs, trigger));
      openAlertId = null;
    } else {
      const open = state.open ?? { rule: d.rule, openedAtMs: atMs, confidence: d.confidence, snapshotId: state.snapshotId };
      const id = alertId(key, open, opened);
      opened++;
      alerts.push(alertRecord(prev.ref, id, 'OPEN', d, open.openedAtMs, atMs, trigger));
      openAlertId = id;
    }
  }
  return { entry: { ...prev, state, openAlertId, opened }, alerts };
}

function alertRecord(
  ref: ProductRef,
  id: string,
  status: AlertStatus,
  d: AlertDecision,
  openedAtMs: number,
  atMs: number,
  trigger: string,
): PhantomAlert {
  return {
    alert_id: id,
    ubicacion_id: ref.ubicacion_id,
    deposito: ref.deposito,
    producto_id: ref.producto_id,
    rule: d.rule,
    confidence: d.confidence,
    status,
    summary: `${ref.ubicacion_id} deposito ${ref.deposito} producto ${ref.producto_id}: ${d.summary}`,
    evidence: { ...d.evidence, trigger },
    opened_at: new Date(openedAtMs),
    updated_at: new Date(Math.max(atMs, openedAtMs)),
  };
}

/**
 * Whether the detector follows this change: its POS is one judged (`config.sources`), or the
 * product was followed before (the setting changed), so its open alert resolves as the rules say.
 */
export function followsChange(prev: DetectorEntry | undefined, change: Pick<InventoryChange, 'source'>, config: PhantomConfig): boolean {
  return prev !== undefined || config.sources.includes(change.source);
}

/** Applies one inventory change of the product (`prev` undefined: not known yet). */
export function stepChange(
  ref: ProductRef,
  prev: DetectorEntry | undefined,
  change: InventoryChange,
  config: PhantomConfig,
): DetectorStep {
  const base = prev ?? newEntry(ref);
  const { state, decisions } = onInventoryChange(base.state, inventoryEvent(change), config);
  if (state === base.state) return { entry: prev ?? null, alerts: [], write: false };
  const { entry, alerts } = withDecisions(
    base,
    state,
    decisions,
    change.taken_at.getTime(),
    `inventario snapshot ${change.snapshot_id} (op ${change.op})`,
  );
  // Without a zero episode the rules restart their sales totals: nothing counted so far is in them.
  if (!state.zero) entry.ventas = {};
  if (state.quantity === null && !state.open) return { entry: null, alerts, write: prev !== undefined };
  return { entry, alerts, write: true };
}

/** Applies one sales line (a new version of it, for op u) to one deposito of its producto. */
export function stepSale(prev: DetectorEntry, venta: Venta, config: PhantomConfig): DetectorStep {
  const l = venta.linea;
  const id = lineId(l);
  const { state, decisions } = onSale(prev.state, saleEvent(l, prev.ventas[id]), config);
  // The rules ignored it (timed before the window, or stock unknown): nothing was counted.
  if (state === prev.state) return { entry: prev, alerts: [], write: false };
  const atMs = l.fecha_hora.getTime();
  const { entry, alerts } = withDecisions(prev, state, decisions, atMs, `venta ${id} (op ${venta.op})`);
  entry.ventas = rememberLine(prev.ventas, id, [l.anulada ? ZERO : l.cantidad, atMs]);
  return { entry, alerts, write: true };
}

function rememberLine(ventas: Record<string, [string, number]>, id: string, counted: [string, number]): Record<string, [string, number]> {
  const next = { ...ventas, [id]: counted };
  // One line over the limit at a time (a product selling at zero for days): dropping the
  // oldest (by time, then id) is one scan; sorting all 500 on every sale made the detector
  // spend most of a long episode here (bench/README.md, bench/phantom).
  for (let over = Object.keys(next).length - MAX_REMEMBERED_LINES; over > 0; over--) {
    let oldest: string | null = null;
    for (const k in next) {
      if (oldest === null || next[k]![1] < next[oldest]![1] || (next[k]![1] === next[oldest]![1] && k < oldest)) oldest = k;
    }
    delete next[oldest!];
  }
  return next;
}
