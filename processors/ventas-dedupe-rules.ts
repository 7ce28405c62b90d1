/**
 * The ventas dedupe's domain logic, pure. Every hourly read re-publishes the whole day, so a
 * line (ubicacion_id, numero_factura, linea) arrives many times: emitted once when first
 * seen (c), again only when its content changed (u: voided, corrected), dropped otherwise.
 * State per line lives in a compacted topic (cached in a state store) and expires after a
 * retention window.
 */
import { hash } from 'node:crypto';
import type { Venta, VentaLinea } from '../core/records.ts';

export interface DedupeEntry {
  fingerprint: string;
  /** Epoch ms of the first extraction that carried the line. */
  first_seen_at: number;
  /** Epoch ms of the last extraction that carried the line (expiry counts from here). */
  last_seen_at: number;
}

export type DedupeDecision = 'new' | 'updated' | 'duplicate';

export const DEFAULT_RETENTION_DAYS = 7;

export function ventaKey(l: Pick<VentaLinea, 'ubicacion_id' | 'numero_factura' | 'linea'>): string {
  return `${l.ubicacion_id}/${l.numero_factura}/${l.linea}`;
}

/** What dedupe compares: every field of the line (instants as ISO text). */
export function ventaFingerprint(l: VentaLinea): string {
  const canonical = JSON.stringify([
    l.ubicacion_id,
    l.fecha,
    l.numero_factura,
    l.linea,
    l.fecha_hora.toISOString(),
    l.producto_id,
    l.cantidad,
    l.precio_unitario,
    l.descuento,
    l.total,
    l.caja,
    l.anulada,
  ]);
  return hash('sha1', canonical, 'base64url');
}

export function dedupeLine(
  entry: DedupeEntry | undefined,
  linea: VentaLinea,
  extractedAt: Date,
): { decision: DedupeDecision; output: Venta | null; next: DedupeEntry } {
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
  return {
    decision: 'updated',
    output: { op: 'u', linea, fingerprint, first_seen_at: new Date(entry.first_seen_at), extracted_at: extractedAt },
    next,
  };
}

/** Whether a line's state may be forgotten (tombstoned): not seen for `retentionDays`. */
export function isExpired(entry: DedupeEntry, now: Date, retentionDays = DEFAULT_RETENTION_DAYS): boolean {
  return now.getTime() - entry.last_seen_at > retentionDays * 86_400_000;
}

export const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** Store ids as the store list allows them (core/config/ubicaciones.ts): never a "/". */
const UBICACION_ID = /^[a-z][a-z0-9_]*$/;

/**
 * How far a duplicate's read may run ahead of the recorded last_seen_at before the state
 * record is rewritten. Every hourly read re-publishes the whole day, so recording every
 * duplicate would write the state topic as fast as the input; recording at most every few
 * hours costs only expiry precision: expiry counts from the last recorded read, so a line
 * counts as forgotten between `retention - interval` and `retention` after its last read
 * (and is tombstoned by the next hourly sweep). Capped at a quarter of the window, so a
 * short window still keeps a line for most of it.
 */
export function refreshIntervalMs(retentionDays: number): number {
  return Math.min(6 * HOUR_MS, (retentionDays * DAY_MS) / 4);
}

export interface DedupeWindow {
  retentionDays: number;
  refreshMs: number;
}

export interface DedupeStep {
  decision: DedupeDecision;
  output: Venta | null;
  /** What to record in the state topic (and memory) for the line, or null when nothing changes. */
  record: DedupeEntry | null;
}

/**
 * One line through the dedupe, given what the state knows of it. Memory must equal what the
 * state topic holds (a restart rebuilds it from there), so everything that changes it is
 * returned as `record`.
 */
export function dedupeStep(known: DedupeEntry | undefined, linea: VentaLinea, extractedAt: Date, window: DedupeWindow): DedupeStep {
  // An entry past the window counts as forgotten whether or not the sweep tombstoned it
  // already: the decision never depends on when the last sweep ran.
  const entry = known && !isExpired(known, extractedAt, window.retentionDays) ? known : undefined;
  const { decision, output, next } = dedupeLine(entry, linea, extractedAt);
  const changed = decision !== 'duplicate' || next.last_seen_at - entry!.last_seen_at >= window.refreshMs;
  // One object shape for every entry kept in memory (hundreds of thousands of them).
  return {
    decision,
    output,
    record: changed ? { fingerprint: next.fingerprint, first_seen_at: next.first_seen_at, last_seen_at: next.last_seen_at } : null,
  };
}

/** Whether a partition's stream time entered a new hour: the partition's sweep runs then. */
export function crossesHour(before: number, after: number): boolean {
  return Math.floor(after / HOUR_MS) > Math.floor(before / HOUR_MS);
}

/**
 * A partition's stream time after a line's step: the latest last_seen_at recorded (a step
 * that records nothing leaves it). The hourly sweep runs at the record whose step moves it
 * into a new hour: the same records in every run, since it is read back from the state topic.
 */
export function advanceStreamTime(before: number, record: DedupeEntry | null): { streamTime: number; sweep: boolean } {
  if (!record) return { streamTime: before, sweep: false };
  const streamTime = Math.max(before, record.last_seen_at);
  return { streamTime, sweep: crossesHour(before, streamTime) };
}

/**
 * Keys of the lines to forget (tombstone) at `streamTime`, sorted: memory rebuilt from a
 * compacted topic holds them in another order, and a restarted run must write the same.
 * `current`: the line being recorded by the step that runs the sweep, whose new entry is
 * not expired then, whatever the store still holds for it.
 */
export function expiredKeys(
  lines: Iterable<readonly [string, DedupeEntry]>,
  streamTime: number,
  retentionDays: number,
  current?: string,
): string[] {
  const now = new Date(streamTime);
  const out: string[] = [];
  for (const [key, entry] of lines) if (key !== current && isExpired(entry, now, retentionDays)) out.push(key);
  return out.sort();
}

/**
 * A DedupeEntry as the state store holds it: `fingerprint first_seen_at last_seen_at`, the
 * instants in base 36 (about 45 bytes; the fingerprint is base64url, so never a space).
 */
export function encodeEntry(e: DedupeEntry): string {
  return `${e.fingerprint} ${e.first_seen_at.toString(36)} ${e.last_seen_at.toString(36)}`;
}

/** The entry `encodeEntry` wrote, or null when `text` is not one. */
export function decodeEntry(text: string): DedupeEntry | null {
  const parts = text.split(' ');
  if (parts.length !== 3 || parts[0] === '') return null;
  const [fingerprint, first, last] = parts as [string, string, string];
  if (/\s/.test(fingerprint)) return null;
  const first_seen_at = instant36(first);
  const last_seen_at = instant36(last);
  if (first_seen_at === null || last_seen_at === null) return null;
  return { fingerprint, first_seen_at, last_seen_at };
}

function instant36(text: string): number | null {
  if (!/^-?[0-9a-z]+$/.test(text)) return null;
  const n = parseInt(text, 36);
  return Number.isSafeInteger(n) ? n : null;
}

/** The store of a ventaKey (store ids never hold a "/"). */
export function ubicacionOfKey(key: string): string {
  const slash = key.indexOf('/');
  return slash < 0 ? key : key.slice(0, slash);
}

export interface LineProblem {
  field: string;
  value: unknown;
  reason: string;
}

/**
 * What makes a decoded raw line unusable beyond its schema: keys built from it must be
 * unambiguous. Nothing here looks at the clock: decisions are a function of the input alone,
 * so a replay or a restart decides the same.
 */
export function ventaRawProblem(raw: { linea: VentaLinea; extracted_at: Date }): LineProblem | null {
  const l = raw.linea;
  if (!UBICACION_ID.test(l.ubicacion_id))
    return { field: 'linea.ubicacion_id', value: l.ubicacion_id, reason: 'must be a store id (lower-case letters, digits and _)' };
  if (l.numero_factura.trim() === '') return { field: 'linea.numero_factura', value: l.numero_factura, reason: 'must not be empty' };
  if (!Number.isInteger(l.linea) || l.linea < 1) return { field: 'linea.linea', value: l.linea, reason: 'must be a line number from 1' };
  if (!Number.isFinite(l.fecha_hora.getTime()))
    return { field: 'linea.fecha_hora', value: String(l.fecha_hora), reason: 'must be a valid instant' };
  if (!Number.isFinite(raw.extracted_at.getTime()))
    return { field: 'extracted_at', value: String(raw.extracted_at), reason: 'must be a valid instant' };
  return null;
}
