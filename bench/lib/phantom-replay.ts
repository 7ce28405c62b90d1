/**
 * The phantom detector without Kafka, for threshold sweeps (bench/phantom --sweep): the
 * detector's inputs as it processed them in a real run (changes of pos.inventario.changes
 * and lines of pos.ventas, in its order), replayed through its own pure steps
 * (processors/phantom-detector.ts stepChange / stepSale, with the sales index of its state
 * store: a line feeds every deposito of its product known, in order) under another
 * PhantomConfig. A sweep point then costs one replay (about 2 s for the default week) instead
 * of a simulated week on Kafka. bench/phantom checks once per run that the replay under the
 * run's config writes exactly the alerts the real detector wrote.
 *
 * Inputs are recorded compactly: only what the steps read (quantities, snapshot, instants,
 * the sales line's identity and units); the rebuilt records carry nothing else, so a step
 * that began reading another field would show as a replay mismatch, not as a silent
 * difference.
 */
import type { InventoryChange, InventoryRow, PhantomAlert, Venta, VentaLinea } from '../../core/records.ts';
import {
  followsChange,
  phantomKey,
  stepChange,
  stepSale,
  type DetectorEntry,
  type PhantomInput,
  type ProductRef,
} from '../../processors/phantom-detector.ts';
import type { PhantomConfig } from '../../processors/phantom-rules.ts';

/**
 * ["c", op, ubicacion, deposito, producto, before cantidad, after cantidad, snapshot_id,
 * taken_at ms, source (absent in older recordings: KLK)]
 */
export type RecordedChange = [
  'c',
  InventoryChange['op'],
  string,
  string,
  string,
  string | null,
  string | null,
  string,
  number,
  InventoryChange['source']?,
];
/** ["v", op, ubicacion, producto, numero_factura, linea, cantidad, anulada, fecha_hora ms] */
export type RecordedVenta = ['v', Venta['op'], string, string, string, number, string, boolean, number];
export type RecordedInput = RecordedChange | RecordedVenta;

export function recordInput(input: PhantomInput): RecordedInput {
  if (input.kind === 'change') {
    const c = input.change;
    return [
      'c',
      c.op,
      c.ubicacion_id,
      c.deposito,
      c.producto_id,
      c.before?.cantidad ?? null,
      c.after?.cantidad ?? null,
      c.snapshot_id,
      c.taken_at.getTime(),
      c.source,
    ];
  }
  const l = input.venta.linea;
  return ['v', input.venta.op, l.ubicacion_id, l.producto_id, l.numero_factura, l.linea, l.cantidad, l.anulada, l.fecha_hora.getTime()];
}

const row = (deposito: string, producto_id: string, cantidad: string | null): InventoryRow | null =>
  cantidad === null ? null : ({ deposito, producto_id, cantidad } as InventoryRow);

/** The input again, with the fields the detector's steps read. */
export function replayedInput(r: RecordedInput): PhantomInput {
  if (r[0] === 'c') {
    const [, op, ubicacion_id, deposito, producto_id, before, after, snapshot_id, takenAt, source = 'KLK'] = r;
    const change: InventoryChange = {
      op,
      ubicacion_id,
      deposito,
      producto_id,
      before: row(deposito, producto_id, before),
      after: row(deposito, producto_id, after),
      snapshot_id,
      taken_at: new Date(takenAt),
      source,
    };
    return { kind: 'change', change };
  }
  const [, op, ubicacion_id, producto_id, numero_factura, linea, cantidad, anulada, fechaHora] = r;
  const l = { ubicacion_id, producto_id, numero_factura, linea, cantidad, anulada, fecha_hora: new Date(fechaHora) } as VentaLinea;
  return { kind: 'venta', venta: { op, linea: l } as Venta };
}

/**
 * Every alert record the detector writes for these inputs under `config`, in order. The
 * detector's `process` step by step, with its store as plain maps of entries (never packed:
 * the steps return new entries and leave the previous ones alone, so nothing is shared).
 */
export function replayDetector(inputs: Iterable<RecordedInput>, config: PhantomConfig): PhantomAlert[] {
  const entries = new Map<string, DetectorEntry>();
  /** ubicacion/producto -> its depositos with an entry, sorted (the detector's sales index). */
  const depositos = new Map<string, string[]>();
  const alerts: PhantomAlert[] = [];
  const put = (key: string, ref: ProductRef, next: DetectorEntry | null) => {
    const had = entries.has(key);
    if (next) entries.set(key, next);
    else entries.delete(key);
    if (had === !!next) return;
    const idx = `${ref.ubicacion_id}\u0001${ref.producto_id}`;
    const rest = (depositos.get(idx) ?? []).filter((d) => d !== ref.deposito);
    const list = next ? [...rest, ref.deposito].sort() : rest;
    if (list.length) depositos.set(idx, list);
    else depositos.delete(idx);
  };
  for (const recorded of inputs) {
    const input = replayedInput(recorded);
    if (input.kind === 'change') {
      const c = input.change;
      const ref = { ubicacion_id: c.ubicacion_id, deposito: c.deposito, producto_id: c.producto_id };
      const key = phantomKey(ref);
      if (!followsChange(entries.get(key), c, config)) continue;
      const step = stepChange(ref, entries.get(key), c, config);
      alerts.push(...step.alerts);
      if (step.write) put(key, ref, step.entry);
      continue;
    }
    const l = input.venta.linea;
    for (const deposito of depositos.get(`${l.ubicacion_id}\u0001${l.producto_id}`) ?? []) {
      const ref = { ubicacion_id: l.ubicacion_id, deposito, producto_id: l.producto_id };
      const key = phantomKey(ref);
      const step = stepSale(entries.get(key)!, input.venta, config);
      alerts.push(...step.alerts);
      if (step.write) put(key, ref, step.entry);
    }
  }
  return alerts;
}

/** What two lists of alert records disagree on (by alert id and status), for the replay check. */
export function compareAlertRecords(
  real: PhantomAlert[],
  replayed: PhantomAlert[],
): { real: number; replayed: number; same: number; only_real: string[]; only_replayed: string[] } {
  const id = (a: PhantomAlert) =>
    `${a.alert_id} ${a.status} ${a.rule} ${a.opened_at.toISOString()} ${a.updated_at.toISOString()} ${a.confidence}`;
  const r = new Set(real.map(id));
  const p = new Set(replayed.map(id));
  const onlyReal = [...r].filter((x) => !p.has(x));
  const onlyReplayed = [...p].filter((x) => !r.has(x));
  return {
    real: r.size,
    replayed: p.size,
    same: [...r].filter((x) => p.has(x)).length,
    only_real: onlyReal.slice(0, 20),
    only_replayed: onlyReplayed.slice(0, 20),
  };
}
