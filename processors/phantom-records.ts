/**
 * The phantom detector's records, pure: its state record (alerts.phantom-zeros.state) and
 * the packed entry its state store holds, both ways, and the checks an input must pass
 * before the rules read it. A state record this module did not write, or an input the rules
 * cannot read, is a ValidationError naming the store and the field.
 */
import { ValidationError } from '../core/errors.ts';
import type { InventoryChange, Venta } from '../core/records.ts';
import type { DetectorEntry } from './phantom-fold.ts';
import type { ProductPhantomState } from './phantom-rules.ts';

/** schemas/alerts.phantom-zeros.state-value.avsc */
export interface PhantomStateRecord {
  ubicacion_id: string;
  state_json: string;
  open_alert_id: string | null;
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
  const [ubicacion_id, deposito, producto_id, openAlertId, opened, state, ventas] = JSON.parse(packed) as [
    string,
    string,
    string,
    string | null,
    number,
    ProductPhantomState,
    Record<string, [string, number]>,
  ];
  return { ref: { ubicacion_id, deposito, producto_id }, state, openAlertId, opened, ventas };
}

/** Reads a state record back; a ValidationError when it is not one this module wrote. */
export function entryFromState(record: PhantomStateRecord): DetectorEntry {
  let parsed: unknown;
  try {
    parsed = JSON.parse(record.state_json);
  } catch (cause) {
    throw new ValidationError(`state of ${record.ubicacion_id}: state_json is not JSON`, {
      cause,
      context: { ubicacion: record.ubicacion_id, field: 'state_json' },
    });
  }
  const o = parsed as Partial<ProductPhantomState> & {
    detector?: { deposito?: unknown; producto_id?: unknown; opened?: unknown; ventas?: unknown };
  };
  const d = o?.detector;
  if (
    typeof o !== 'object' ||
    o === null ||
    o.v !== 1 ||
    typeof o.changes !== 'number' ||
    !d ||
    typeof d.deposito !== 'string' ||
    typeof d.producto_id !== 'string'
  ) {
    throw new ValidationError(`state of ${record.ubicacion_id}: state_json is not a phantom detector state (v 1)`, {
      context: { ubicacion: record.ubicacion_id, field: 'state_json' },
    });
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
  if (!c.ubicacion_id || !c.deposito || !c.producto_id)
    throw new ValidationError(`${where}: empty ubicacion_id, deposito or producto_id`, { context: { ubicacion: c.ubicacion_id } });
  if (c.op !== 'd' && !c.after)
    throw new ValidationError(`${where}: op ${c.op} without after`, { context: { ubicacion: c.ubicacion_id, field: 'after' } });
  if (c.op === 'd' && c.after)
    throw new ValidationError(`${where}: op d with an after row`, { context: { ubicacion: c.ubicacion_id, field: 'after' } });
  for (const [field, row] of [
    ['before', c.before],
    ['after', c.after],
  ] as const) {
    if (row && (row.deposito !== c.deposito || row.producto_id !== c.producto_id)) {
      throw new ValidationError(`${where}: ${field} is the row of ${row.deposito}/${row.producto_id}`, {
        context: { ubicacion: c.ubicacion_id, field, value: `${row.deposito}/${row.producto_id}` },
      });
    }
  }
}

export function checkVenta(v: Venta): void {
  const l = v.linea;
  if (!l.ubicacion_id || !l.producto_id || !l.numero_factura) {
    throw new ValidationError(
      `sales line ${l.ubicacion_id}/${l.numero_factura}/${l.linea}: empty ubicacion_id, numero_factura or producto_id`,
      { context: { ubicacion: l.ubicacion_id } },
    );
  }
}
