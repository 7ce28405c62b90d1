/**
 * The sink's plan for alerts.phantom-zeros (sinks/sink-batch.ts plans the other topics): the
 * last record of each alert, split into the RESOLVED and OPEN statements, and the model of
 * how an upsert meets a dismissed (DESCARTADA) row.
 */
import type { PhantomAlert } from '../core/records.ts';
import type { TopicName } from '../core/topics.ts';
import { ALERTAS_COLUMNS, SinkBatchError, toColumns, type AlertaEstado, type AlertaRow, type Columns } from './sink-rows.ts';

/**
 * Two groups of alertas upserts, to apply in this order: `resolved`, then `open`.
 *
 * alertas_una_abierta allows one OPEN alert per product, and a unique index is checked row by
 * row as a statement writes, not at its end. When a product's alert A closes and its next
 * alert B opens in the same batch, writing B as OPEN while A's row still says OPEN (from an
 * earlier batch) violates the index and aborts the batch, whatever order the records had.
 * Resolving first empties each product's OPEN slot before anything claims it; splitting into
 * two statements, rather than ordering rows in one, keeps that independent of the order in
 * which PostgreSQL happens to process an unnest.
 */
export interface AlertasPlan {
  resolved: Columns<AlertaRow>;
  open: Columns<AlertaRow>;
}

export const alertProductKey = (a: Pick<PhantomAlert, 'ubicacion_id' | 'deposito' | 'producto_id'>): string =>
  `${a.ubicacion_id}/${a.deposito}/${a.producto_id}`;

/**
 * The last record of each alert_id, split by final status. Two different alerts both left
 * OPEN for one product by the batch would violate alertas_una_abierta whatever the order, so
 * that batch is impossible (the detector resolves an alert before opening the next).
 */
export function planAlertas(alerts: readonly PhantomAlert[]): AlertasPlan {
  const topic: TopicName = 'alerts.phantom-zeros';
  const last = new Map<string, { row: AlertaRow; index: number }>();
  alerts.forEach((a, index) => {
    const key = alertProductKey(a);
    if (!a.alert_id) throw new SinkBatchError(topic, key, 'alert_id', index, 'is empty', a.alert_id);
    if (a.status !== 'OPEN' && a.status !== 'RESOLVED')
      throw new SinkBatchError(topic, key, 'status', index, `"${String(a.status)}" is not OPEN or RESOLVED`, a.status);
    // alertas.confianza has a CHECK: a bad value would abort the whole transaction, every retry.
    if (!Number.isFinite(a.confidence) || a.confidence < 0 || a.confidence > 1) {
      throw new SinkBatchError(topic, key, 'confidence', index, `${a.confidence} is not between 0 and 1`, a.confidence);
    }
    const seen = last.get(a.alert_id);
    if (seen && alertProductKey(seen.row) !== key) {
      throw new SinkBatchError(
        topic,
        key,
        'alert_id',
        index,
        `alert ${a.alert_id} belonged to ${alertProductKey(seen.row)} earlier in this batch`,
        a.alert_id,
      );
    }
    last.set(a.alert_id, {
      index,
      row: {
        alert_id: a.alert_id,
        ubicacion_id: a.ubicacion_id,
        deposito: a.deposito,
        producto_id: a.producto_id,
        regla: a.rule,
        confianza: a.confidence,
        estado: a.status,
        resumen: a.summary,
        evidencia: JSON.stringify(a.evidence),
        abierta_en: a.opened_at,
        actualizada_en: a.updated_at,
        resuelta_en: a.status === 'RESOLVED' ? a.updated_at : null,
      },
    });
  });
  const resolved: AlertaRow[] = [];
  const open: AlertaRow[] = [];
  const openByProduct = new Map<string, { alertId: string; index: number }>();
  for (const { row, index } of last.values()) {
    if (row.estado === 'RESOLVED') {
      resolved.push(row);
      continue;
    }
    const key = alertProductKey(row);
    const other = openByProduct.get(key);
    if (other) {
      const later = Math.max(index, other.index);
      throw new SinkBatchError(
        topic,
        key,
        'status',
        later,
        `alerts ${other.alertId} and ${row.alert_id} both end this batch OPEN for one product`,
        'OPEN',
      );
    }
    openByProduct.set(key, { alertId: row.alert_id, index });
    open.push(row);
  }
  return { resolved: toColumns(ALERTAS_COLUMNS, resolved), open: toColumns(ALERTAS_COLUMNS, open) };
}

/** What the upsert of a planned alertas row reads of the stored row with its alert_id. */
export interface StoredAlerta {
  estado: AlertaEstado;
  resuelta_en: Date | null;
}

/**
 * The row an alertas upsert leaves: the model of writeAlertas' ON CONFLICT (alert_id) DO UPDATE.
 *
 * A dismissed alert does not reopen on the same evidence. Every record the detector sends
 * under a dismissed alert_id (an OPEN with a new confidence, the same OPEN redelivered after
 * a sink crash, its RESOLVED) is that alert's evidence: the row keeps estado DESCARTADA and
 * its nota, descartada_por and descartada_en (the upsert never writes those), while
 * confianza, resumen, evidencia and actualizada_en follow the record as for any alert, so the
 * operator still sees the latest evidence. A RESOLVED sets resuelta_en and leaves it set: a
 * dismissed row says both that a person dismissed it and that the stock came back, rather
 * than a fourth estado. A new zero episode of the product is a new alert_id, a new row, and
 * opens as usual: a DESCARTADA row does not hold alertas_una_abierta's OPEN slot.
 */
export function mergeAlerta(stored: StoredAlerta | undefined, planned: AlertaRow): Omit<AlertaRow, 'estado'> & { estado: AlertaEstado } {
  if (stored?.estado !== 'DESCARTADA') return planned;
  return { ...planned, estado: 'DESCARTADA', resuelta_en: planned.resuelta_en ?? stored.resuelta_en };
}
