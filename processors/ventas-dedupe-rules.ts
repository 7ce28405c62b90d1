/**
 * The ventas dedupe's domain logic, pure. Every hourly read re-publishes the whole day, so a
 * line (ubicacion_id, numero_factura, linea) arrives many times: emitted once when first
 * seen (c), again only when its content changed (u: voided, corrected), dropped otherwise.
 * State per line lives in a compacted topic and expires after a retention window.
 */
import { createHash } from 'node:crypto';
import type { VentaLinea } from '../core/records.ts';

export interface DedupeEntry {
  fingerprint: string;
  /** Epoch ms of the first extraction that carried the line. */
  first_seen_at: number;
  /** Epoch ms of the last extraction that carried the line (expiry counts from here). */
  last_seen_at: number;
}

export interface VentaOut {
  op: 'c' | 'u';
  linea: VentaLinea;
  fingerprint: string;
  first_seen_at: Date;
  extracted_at: Date;
}

export type DedupeDecision = 'new' | 'updated' | 'duplicate';

export const DEFAULT_RETENTION_DAYS = 7;

export function ventaKey(l: Pick<VentaLinea, 'ubicacion_id' | 'numero_factura' | 'linea'>): string {
  return `${l.ubicacion_id}/${l.numero_factura}/${l.linea}`;
}

/** What dedupe compares: every field of the line (instants as ISO text). */
export function ventaFingerprint(l: VentaLinea): string {
  const canonical = JSON.stringify([
    l.ubicacion_id, l.fecha, l.numero_factura, l.linea, l.fecha_hora.toISOString(), l.producto_id,
    l.cantidad, l.precio_unitario, l.descuento, l.total, l.caja, l.anulada,
  ]);
  return createHash('sha1').update(canonical).digest('base64url');
}

export function dedupeLine(
  entry: DedupeEntry | undefined,
  linea: VentaLinea,
  extractedAt: Date,
): { decision: DedupeDecision; output: VentaOut | null; next: DedupeEntry } {
  const fingerprint = ventaFingerprint(linea);
  const at = extractedAt.getTime();
  if (!entry) {
    return {
      decision: 'new',
      output: { op: 'c', linea, fingerprint, first_seen_at: extractedAt, extracted_at: extractedAt },
      next: { fingerprint, first_seen_at: at, last_seen_at: at },
    };
  }
  const next = { ...entry, last_seen_at: Math.max(entry.last_seen_at, at), fingerprint };
  if (entry.fingerprint === fingerprint) return { decision: 'duplicate', output: null, next: { ...next, fingerprint: entry.fingerprint } };
  return { decision: 'updated', output: { op: 'u', linea, fingerprint, first_seen_at: new Date(entry.first_seen_at), extracted_at: extractedAt }, next };
}

/** Whether a line's state may be forgotten (tombstoned): not seen for `retentionDays`. */
export function isExpired(entry: DedupeEntry, now: Date, retentionDays = DEFAULT_RETENTION_DAYS): boolean {
  return now.getTime() - entry.last_seen_at > retentionDays * 86_400_000;
}
