/**
 * `fluxion process phantom`: pos.inventario.changes + pos.ventas -> alerts.phantom-zeros,
 * with one state record per product in alerts.phantom-zeros.state (compacted, key
 * ubicacion/deposito/producto, a tombstone when the product vanished).
 *
 * The rules are processors/phantom-rules.ts; this module adds what they leave to the
 * processor, as pure functions (`stepChange`, `stepSale`) around a thin Kafka shell:
 *
 * - Which products a sales line feeds. pos.ventas carries no deposito, so a line feeds
 *   every deposito of its producto in its store that the detector knows (has state for).
 *   Every KLK store (the only POS with ventas) has one deposito, so this is exact where
 *   sales exist; a store with several selling depositos would charge each sale to all of
 *   them, which can only make SELLING_AT_ZERO fire in a deposito that did not sell. Sales
 *   of a product without known stock are ignored, as the rules ignore them.
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
 *
 * Both inputs are placed by store with the same partition count and the runtime gives one
 * member the same partition numbers of both, so partition p's products live in one
 * instance's state store for p (on disk, docs/state-stores.md; its layout is described
 * above `save`). Which of the two topics is read first is not deterministic: outcomes
 * depend on event times wherever the rules allow (their limits are documented there).
 * The state record of every product an input changed is written in the same transaction
 * as the alerts, and to the store, which the runtime writes to disk only once that
 * transaction committed: a restart finds exactly the state the committed offsets imply. Its
 * state_json is the rules' ProductPhantomState plus one `detector` member (deposito,
 * producto_id, alerts opened, remembered lines): the bookkeeping above, without a schema change.
 */
import { createHash } from 'node:crypto';
import { Counter, Gauge } from 'prom-client';
import { createTopicCodec } from '../core/avro/topic-codec.ts';
import { ConfigError, ValidationError } from '../core/errors.ts';
import { partitionForUbicacion } from '../core/kafka/partitioning.ts';
import type { InventoryChange, InventoryRow, PhantomAlert, Venta, VentaLinea } from '../core/records.ts';

export type { InventoryChange, PhantomAlert, Venta };
export type AlertStatus = PhantomAlert['status'];
import {
  initialPhantomState,
  onInventoryChange,
  onSale,
  PHANTOM_RULES,
  type AlertDecision,
  type InventoryEvent,
  type OpenAlert,
  type PhantomConfig,
  type PhantomRule,
  type ProductPhantomState,
  type SaleEvent,
} from './phantom-rules.ts';
import { registeredMetric } from './runtime/metrics.ts';
import type { ProcessorFactory } from './runtime/processor-kind.ts';
import { fallbackStores, type KeyValueState } from './runtime/state-store.ts';
import type { Output, StreamProcessorSpec } from './runtime/stream-processor.ts';

// ---- record shapes ---------------------------------------------------------------------------

/** schemas/alerts.phantom-zeros.state-value.avsc */
export interface PhantomStateRecord {
  ubicacion_id: string;
  state_json: string;
  open_alert_id: string | null;
}

export type PhantomInput = { kind: 'change'; change: InventoryChange } | { kind: 'venta'; venta: Venta };

// ---- pure detector steps ---------------------------------------------------------------------

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
  const h = createHash('sha1').update(['phantom', key, open.rule, open.openedAtMs, open.snapshotId ?? '', seq].join('\n')).digest();
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
function withDecisions(prev: DetectorEntry, state: ProductPhantomState, decisions: AlertDecision[], atMs: number, trigger: string): { entry: DetectorEntry; alerts: PhantomAlert[] } {
  const key = phantomKey(prev.ref);
  let { openAlertId, opened } = prev;
  const alerts: PhantomAlert[] = [];
  for (const d of decisions) {
    if (d.action === 'RESOLVE') {
      const was = prev.state.open;
      // A state written without its alert id still resolves under the id it opened with.
      const id = openAlertId ?? (was ? alertId(key, was, Math.max(0, opened - 1)) : alertId(key, { rule: d.rule, openedAtMs: atMs, snapshotId: null }, opened));
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

function alertRecord(ref: ProductRef, id: string, status: AlertStatus, d: AlertDecision, openedAtMs: number, atMs: number, trigger: string): PhantomAlert {
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
export function stepChange(ref: ProductRef, prev: DetectorEntry | undefined, change: InventoryChange, config: PhantomConfig): DetectorStep {
  const base = prev ?? newEntry(ref);
  const { state, decisions } = onInventoryChange(base.state, inventoryEvent(change), config);
  if (state === base.state) return { entry: prev ?? null, alerts: [], write: false };
  const { entry, alerts } = withDecisions(base, state, decisions, change.taken_at.getTime(), `inventario snapshot ${change.snapshot_id} (op ${change.op})`);
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

/**
 * state_json: the rules' ProductPhantomState as JSON plus one `detector` member with the
 * processor's bookkeeping (it round-trips exactly, as the rules' state does).
 */
export function stateJson(entry: DetectorEntry): string {
  const { deposito, producto_id } = entry.ref;
  return JSON.stringify({ ...entry.state, detector: { deposito, producto_id, opened: entry.opened, ventas: entry.ventas } });
}

/**
 * One product's entry as one flat string: its value in the state store. The detector keeps an
 * entry for every product of every store it owns (340,000 in the chain), as one JSON string
 * of a few hundred bytes rather than the state record's Avro (bench/README.md). Only the
 * products an input touches are unpacked. Not validated on the way back: only `packEntry`
 * writes these strings.
 */
export function packEntry(entry: DetectorEntry): string {
  const { ubicacion_id, deposito, producto_id } = entry.ref;
  return JSON.stringify([ubicacion_id, deposito, producto_id, entry.openAlertId, entry.opened, entry.state, entry.ventas]);
}

export function unpackEntry(packed: string): DetectorEntry {
  const [ubicacion_id, deposito, producto_id, openAlertId, opened, state, ventas] = JSON.parse(packed) as [string, string, string, string | null, number, ProductPhantomState, Record<string, [string, number]>];
  return { ref: { ubicacion_id, deposito, producto_id }, state, openAlertId, opened, ventas };
}

/** Reads a state record back; a ValidationError when it is not one this module wrote. */
export function entryFromState(record: PhantomStateRecord): DetectorEntry {
  let parsed: unknown;
  try {
    parsed = JSON.parse(record.state_json);
  } catch (cause) {
    throw new ValidationError(`state of ${record.ubicacion_id}: state_json is not JSON`, { cause, context: { ubicacion: record.ubicacion_id, field: 'state_json' } });
  }
  const o = parsed as Partial<ProductPhantomState> & { detector?: { deposito?: unknown; producto_id?: unknown; opened?: unknown; ventas?: unknown } };
  const d = o?.detector;
  if (typeof o !== 'object' || o === null || o.v !== 1 || typeof o.changes !== 'number' || !d || typeof d.deposito !== 'string' || typeof d.producto_id !== 'string') {
    throw new ValidationError(`state of ${record.ubicacion_id}: state_json is not a phantom detector state (v 1)`, { context: { ubicacion: record.ubicacion_id, field: 'state_json' } });
  }
  const { detector: _d, ...state } = o;
  return {
    ref: { ubicacion_id: record.ubicacion_id, deposito: d.deposito, producto_id: d.producto_id },
    state: state as ProductPhantomState,
    openAlertId: record.open_alert_id,
    opened: typeof d.opened === 'number' ? d.opened : 0,
    ventas: d.ventas && typeof d.ventas === 'object' ? (d.ventas as Record<string, [string, number]>) : {},
  };
}

/** What a change must hold beyond its schema for the rules to make sense of it. */
export function checkChange(c: InventoryChange): void {
  const where = `change of ${c.ubicacion_id}/${c.deposito}/${c.producto_id} in snapshot ${c.snapshot_id}`;
  if (!c.ubicacion_id || !c.deposito || !c.producto_id) throw new ValidationError(`${where}: empty ubicacion_id, deposito or producto_id`, { context: { ubicacion: c.ubicacion_id } });
  if (c.op !== 'd' && !c.after) throw new ValidationError(`${where}: op ${c.op} without after`, { context: { ubicacion: c.ubicacion_id, field: 'after' } });
  if (c.op === 'd' && c.after) throw new ValidationError(`${where}: op d with an after row`, { context: { ubicacion: c.ubicacion_id, field: 'after' } });
  for (const [field, row] of [['before', c.before], ['after', c.after]] as const) {
    if (row && (row.deposito !== c.deposito || row.producto_id !== c.producto_id)) {
      throw new ValidationError(`${where}: ${field} is the row of ${row.deposito}/${row.producto_id}`, { context: { ubicacion: c.ubicacion_id, field, value: `${row.deposito}/${row.producto_id}` } });
    }
  }
}

export function checkVenta(v: Venta): void {
  const l = v.linea;
  if (!l.ubicacion_id || !l.producto_id || !l.numero_factura) {
    throw new ValidationError(`sales line ${l.ubicacion_id}/${l.numero_factura}/${l.linea}: empty ubicacion_id, numero_factura or producto_id`, { context: { ubicacion: l.ubicacion_id } });
  }
}

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

// ---- the processor -------------------------------------------------------------------------

/*
 * What the detector keeps in a partition's state store (processors/runtime/state-store.ts,
 * docs/state-stores.md), all of it derived from alerts.phantom-zeros.state and written with
 * each state record, so a store replayed from its checkpoint converges to the changelog's fold:
 * - `ubicacion/deposito/producto` (the state record's key): the product's entry (`packEntry`).
 * - `ubicacion\u0001producto`: the depositos with an entry, a JSON array: where a sales line goes.
 * - OPEN_COUNT: how many entries have an open alert (the gauge, without scanning the store).
 * Each key is kept by `save` alone, from the entry it replaces, so the three stay consistent
 * through every write, flush and replay.
 */
const OPEN_COUNT = '\u0001open';
/** What the detector's state store holds (the keys above): a new value wipes stores of the old one. */
const STORE_LAYOUT = 'phantom-1';

const productIndex = (ubicacionId: string, productoId: string): string => `${ubicacionId}\u0001${productoId}`;

const isOpen = (e: DetectorEntry | null | undefined): boolean => !!e && (e.openAlertId !== null || !!e.state.open);

function entryOf(kv: KeyValueState, key: string): DetectorEntry | undefined {
  const packed = kv.get(key);
  return packed === undefined ? undefined : unpackEntry(packed);
}

/** The depositos of a producto in its store that have an entry, in order. */
export function depositosOf(kv: KeyValueState, ubicacionId: string, productoId: string): string[] {
  const raw = kv.get(productIndex(ubicacionId, productoId));
  return raw === undefined ? [] : (JSON.parse(raw) as string[]);
}

/** The number of entries with an open alert in this store. */
export function openCountOf(kv: KeyValueState): number {
  return Number(kv.get(OPEN_COUNT) ?? 0);
}

/**
 * Replaces the entry under `key` (`prev`, as the store holds it) by `next` (null: forgets it),
 * with the sales index and the open count. Returns the open count after the write.
 */
export function save(kv: KeyValueState, key: string, prev: DetectorEntry | undefined, next: DetectorEntry | null): number {
  const ref = next?.ref ?? prev?.ref;
  let open = openCountOf(kv);
  if (!ref) return open;
  if (next) kv.put(key, packEntry(next));
  else kv.delete(key);
  if (!prev !== !next) {
    const idx = productIndex(ref.ubicacion_id, ref.producto_id);
    const known = depositosOf(kv, ref.ubicacion_id, ref.producto_id);
    const rest = known.filter((d) => d !== ref.deposito);
    const depositos = next ? [...rest, ref.deposito].sort() : rest;
    if (depositos.length === 0) kv.delete(idx);
    else if (depositos.join('\u0000') !== known.join('\u0000')) kv.put(idx, JSON.stringify(depositos));
  }
  const delta = Number(isOpen(next)) - Number(isOpen(prev));
  if (delta !== 0) {
    open += delta;
    if (open === 0) kv.delete(OPEN_COUNT);
    else kv.put(OPEN_COUNT, String(open));
  }
  return open;
}

export const createPhantomSpec: ProcessorFactory = async (deps) => {
  const config: PhantomConfig = { ...deps.config.phantom };
  const problems = phantomConfigProblems(config);
  if (problems.length > 0) throw new ConfigError(problems);
  const p = deps.topicPrefix;
  const topics = {
    changes: `${p}pos.inventario.changes`,
    ventas: `${p}pos.ventas`,
    alerts: `${p}alerts.phantom-zeros`,
    state: `${p}alerts.phantom-zeros.state`,
  };
  const [changeCodec, ventaCodec, alertCodec, stateCodec] = await Promise.all([
    createTopicCodec<InventoryChange>(deps.registry, 'pos.inventario.changes', topics.changes),
    createTopicCodec<Venta>(deps.registry, 'pos.ventas', topics.ventas),
    createTopicCodec<PhantomAlert>(deps.registry, 'alerts.phantom-zeros', topics.alerts),
    createTopicCodec<PhantomStateRecord>(deps.registry, 'alerts.phantom-zeros.state', topics.state),
  ]);
  const log = deps.logger.child({ component: 'phantom' });
  const registry = deps.metrics.registry;
  // Counted when emitted: alerts of a transaction that aborts are counted again when re-processed.
  const alertsTotal = registeredMetric(registry, 'fluxion_phantom_alerts_total', () =>
    new Counter({ name: 'fluxion_phantom_alerts_total', help: 'phantom-zero alert records emitted, by rule and status (OPEN/RESOLVED)', labelNames: ['rule', 'status'], registers: [registry] }),
  );
  const openGauge = registeredMetric(registry, 'fluxion_phantom_open_alerts', () =>
    new Gauge({ name: 'fluxion_phantom_open_alerts', help: 'products with an OPEN phantom-zero alert in the partitions this instance owns', registers: [registry] }),
  );

  /**
   * Per partition, the open count of its store as last read or written: the gauge's terms. A
   * partition appears once a load or an input touched it, and is dropped by `reset` (the
   * runtime discards the store's unflushed writes then).
   */
  const openCounts = new Map<number, number>();
  /** Stores for callers that give none (unit tests, a bench): in memory, dropped by `reset`. */
  const { storeOf, forget: forgetOwnStore } = fallbackStores();
  const misplaced = new Set<string>();

  function updateGauge(): void {
    let total = 0;
    for (const n of openCounts.values()) total += n;
    openGauge.set(total);
  }

  function setOpenCount(partition: number, open: number): void {
    if (openCounts.get(partition) === open) return;
    openCounts.set(partition, open);
    updateGauge();
  }

  /** Alerts and the state record of one product's step, and the step applied to the store. */
  function outputs(kv: KeyValueState, partition: number, ref: ProductRef, prev: DetectorEntry | undefined, step: DetectorStep): Output[] {
    const out: Output[] = [];
    const key = phantomKey(ref);
    const ubicacionId = ref.ubicacion_id;
    for (const a of step.alerts) {
      out.push({ topic: topics.alerts, ubicacionId: a.ubicacion_id, key, value: alertCodec.encode(a) });
      alertsTotal.inc({ rule: a.rule, status: a.status });
      log.info({ key, alertId: a.alert_id, rule: a.rule, status: a.status, confidence: a.confidence, evidence: a.evidence }, a.status === 'OPEN' ? 'phantom-zero alert opened' : 'phantom-zero alert resolved');
    }
    if (step.write) {
      const value = step.entry ? stateCodec.encode({ ubicacion_id: step.entry.ref.ubicacion_id, state_json: stateJson(step.entry), open_alert_id: step.entry.openAlertId }) : null;
      out.push({ topic: topics.state, ubicacionId, key, value });
      // The same write as the state record's, so the store holds what the changelog will.
      setOpenCount(partition, save(kv, key, prev, step.entry));
    }
    return out;
  }

  function checkPlacement(ubicacionId: string, partition: number): void {
    if (misplaced.has(ubicacionId) || partitionForUbicacion(ubicacionId, deps.partitions) === partition) return;
    misplaced.add(ubicacionId);
    // Its state record goes to the store's partition, so after a rebalance another instance may read it.
    log.warn({ ubicacion: ubicacionId, partition, expected: partitionForUbicacion(ubicacionId, deps.partitions), partitions: deps.partitions }, 'input record of a store on a partition that is not the store\'s');
  }

  async function loadRecord(kv: KeyValueState, record: { key: Buffer | null; value: Buffer | null; partition: number; offset: string }): Promise<void> {
    const key = record.key?.toString('utf8') ?? '';
    let next: DetectorEntry | null = null;
    if (record.value) {
      try {
        next = entryFromState(await stateCodec.decode(record.value));
      } catch (err) {
        // Anything else (registry unreachable) fails the load, so the processor restarts and reads again.
        if (!(err instanceof ValidationError)) throw err;
        // Bad bytes never become readable: dropping one product's state only loses its history,
        // while refusing it would stop every store of the partition.
        log.error({ err, key, partition: record.partition, offset: record.offset }, 'phantom state record unreadable: the product starts again without state');
      }
    }
    // A record is the key's whole value: applied again onto a store that already holds it
    // (a restart replays from the checkpoint) it changes nothing.
    setOpenCount(record.partition, save(kv, key, entryOf(kv, key), next));
  }

  const spec: StreamProcessorSpec<PhantomInput> = {
    name: 'phantom',
    inputTopics: [topics.changes, topics.ventas],
    async decode(record) {
      if (record.topic === topics.changes) {
        const change = await changeCodec.decode(record.value);
        checkChange(change);
        return { kind: 'change', change };
      }
      if (record.topic === topics.ventas) {
        const venta = await ventaCodec.decode(record.value);
        checkVenta(venta);
        return { kind: 'venta', venta };
      }
      throw new ValidationError(`record of ${record.topic}, which is not an input of the phantom detector`, { context: { topic: record.topic } });
    },
    async process(input, ctx) {
      const kv = storeOf(ctx.store, ctx.partition);
      if (!openCounts.has(ctx.partition)) setOpenCount(ctx.partition, openCountOf(kv));
      const out: Output[] = [];
      if (input.kind === 'change') {
        const c = input.change;
        checkPlacement(c.ubicacion_id, ctx.partition);
        const ref = { ubicacion_id: c.ubicacion_id, deposito: c.deposito, producto_id: c.producto_id };
        const prev = entryOf(kv, phantomKey(ref));
        if (!followsChange(prev, c, config)) return out;
        out.push(...outputs(kv, ctx.partition, ref, prev, stepChange(ref, prev, c, config)));
      } else {
        const l = input.venta.linea;
        checkPlacement(l.ubicacion_id, ctx.partition);
        for (const deposito of depositosOf(kv, l.ubicacion_id, l.producto_id)) {
          const ref = { ubicacion_id: l.ubicacion_id, deposito, producto_id: l.producto_id };
          const prev = entryOf(kv, phantomKey(ref))!;
          out.push(...outputs(kv, ctx.partition, ref, prev, stepSale(prev, input.venta, config)));
        }
      }
      return out;
    },
    state: {
      topics: [topics.state],
      store: { topics: [topics.state], dir: deps.config.stateDir, layout: STORE_LAYOUT },
      async load(record, store) {
        const kv = storeOf(store, record.partition);
        if (!openCounts.has(record.partition)) setOpenCount(record.partition, openCountOf(kv));
        await loadRecord(kv, record);
      },
      reset(partition) {
        // The runtime discards the store's unflushed writes: the count is read again from it.
        forgetOwnStore(partition);
        openCounts.delete(partition);
        updateGauge();
      },
    },
  };
  log.info({ inputTopics: spec.inputTopics, output: topics.alerts, state: topics.state, config }, 'phantom detector ready');
  return spec;
};
