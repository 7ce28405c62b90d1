/**
 * One product's events for the phantom detector's unit tests (test/unit/phantom-fold.test.ts,
 * test/unit/phantom-detector.test.ts): a product, its rows, changes and sales lines at
 * minutes from T0, and `fold`, which steps them through the detector's pure fold from nothing.
 */
import type { InventoryRow, VentaLinea } from '../../core/records.ts';
import { phantomKey, stepChange, stepSale, type DetectorEntry, type DetectorStep } from '../../processors/phantom-fold.ts';
import { entryFromState, packEntry, stateJson, unpackEntry } from '../../processors/phantom-records.ts';
import { DEFAULT_PHANTOM_CONFIG, type PhantomConfig } from '../../processors/phantom-rules.ts';
import type { InventoryChange, PhantomAlert, Venta } from '../../core/records.ts';

export const T0 = Date.parse('2026-11-02T10:00:00Z');
export const MIN = 60_000;
export const at = (minutes: number) => new Date(T0 + minutes * MIN);
export const REF = { ubicacion_id: 'tienda_01', deposito: '01', producto_id: '000123' };
export const KEY = phantomKey(REF);
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export const row = (cantidad: string): InventoryRow => ({
  deposito: REF.deposito,
  producto_id: REF.producto_id,
  codigo_barras: null,
  descripcion: 'HARINA PAN 1KG',
  departamento_codigo: null,
  departamento_nombre: null,
  grupo_codigo: null,
  grupo_nombre: null,
  subgrupo_codigo: null,
  subgrupo_nombre: null,
  unidad: 'UND',
  cantidad,
  costo: null,
  precio: null,
  activo: true,
  actualizado_en: null,
});

let snapshotSeq = 0;
export const change = (
  before: string | null,
  after: string | null,
  m: number,
  snapshot_id = `snap-${++snapshotSeq}`,
): InventoryChange => ({
  op: before === null ? 'c' : after === null ? 'd' : 'u',
  ...REF,
  before: before === null ? null : row(before),
  after: after === null ? null : row(after),
  snapshot_id,
  taken_at: at(m),
  source: 'KLK',
});

export const venta = (numero: string, cantidad: string, m: number, extra: Partial<VentaLinea> & { op?: 'c' | 'u' } = {}): Venta => {
  const { op = 'c', ...linea } = extra;
  return {
    op,
    linea: {
      ubicacion_id: REF.ubicacion_id,
      fecha: '2026-11-02',
      numero_factura: numero,
      linea: 1,
      fecha_hora: at(m),
      producto_id: REF.producto_id,
      cantidad,
      precio_unitario: '1.0000',
      descuento: '0.0000',
      total: `${cantidad}0`,
      caja: '01',
      anulada: false,
      ...linea,
    },
    fingerprint: `fp-${numero}-${cantidad}-${linea.anulada ?? false}`,
    first_seen_at: at(m),
    extracted_at: at(m),
  };
};

export type Ev = { kind: 'change'; c: InventoryChange } | { kind: 'venta'; v: Venta };

/** Folds events through the detector from nothing, as the processor does for one product. */
export function fold(events: Ev[], config: PhantomConfig = DEFAULT_PHANTOM_CONFIG, roundTrip = false) {
  let entry: DetectorEntry | undefined;
  const alerts: PhantomAlert[][] = [];
  const writes: Array<DetectorEntry | null> = [];
  for (const ev of events) {
    // As after a restart (the state record read back), and as the processor keeps it in memory.
    if (roundTrip && entry)
      entry = unpackEntry(
        packEntry(entryFromState({ ubicacion_id: REF.ubicacion_id, state_json: stateJson(entry), open_alert_id: entry.openAlertId })),
      );
    let step: DetectorStep;
    if (ev.kind === 'change') step = stepChange(REF, entry, ev.c, config);
    else if (entry) step = stepSale(entry, ev.v, config);
    else step = { entry: null, alerts: [], write: false };
    alerts.push(step.alerts);
    if (step.write) writes.push(step.entry);
    entry = step.entry ?? undefined;
  }
  return { entry, alerts, all: alerts.flat(), writes };
}

export const c = (x: InventoryChange): Ev => ({ kind: 'change', c: x });
export const v = (x: Venta): Ev => ({ kind: 'venta', v: x });
