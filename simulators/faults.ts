/**
 * Faults the simulators inject on demand, per store (from the control endpoint, CLI flags or
 * tests). Transport faults affect how an answer travels; data faults change what the POS
 * reports. `servedInventario` applies the data faults to the simulation's truth, so the
 * servers and the tests agree on what a faulty POS said.
 */
import type { InventarioTruthRow } from './data/store-simulation.ts';

export interface StoreFaults {
  /** Added before every answer (ms). */
  latencyMs?: number;
  /** The next `times` requests answer this HTTP status (KLK). 429 carries Retry-After. */
  httpError?: { status: 401 | 429 | 500 | 502 | 503; times: number; retryAfterSeconds?: number };
  /** The connection is reset while sending this (1-based) page (KLK). */
  resetOnPage?: number;
  /** This page's body is cut in half (KLK). */
  truncateOnPage?: number;
  /** This page's body is not JSON (KLK). */
  malformedOnPage?: number;
  /** This product's cantidad is reported as a non-decimal ("12,5"). */
  invalidDecimalFor?: string;
  /** The POS reports no rows at all. */
  emptyInventory?: boolean;
  /** This share (0..1) of products with positive stock is reported at 0 (a POS error). */
  massZerosShare?: number;
  /** These products are reported at 0 although they keep selling. */
  phantomZeros?: string[];
  /** The SQL connection is dropped after this many result rows (Stellar). */
  dropConnectionAfterRows?: number;
  /** The answer stalls (never completes) after this many rows or at this page. */
  stallAfterRows?: number;
  stallOnPage?: number;
}

export class FaultControl {
  private readonly faults = new Map<string, StoreFaults>();

  get(ubicacionId: string): StoreFaults {
    return this.faults.get(ubicacionId) ?? {};
  }

  set(ubicacionId: string, faults: StoreFaults): void {
    this.faults.set(ubicacionId, { ...faults });
  }

  clear(ubicacionId?: string): void {
    if (ubicacionId) this.faults.delete(ubicacionId);
    else this.faults.clear();
  }

  /** Takes one occurrence of the store's HTTP error fault, if any is left. */
  takeHttpError(ubicacionId: string): StoreFaults['httpError'] | undefined {
    const f = this.faults.get(ubicacionId);
    if (!f?.httpError || f.httpError.times <= 0) return undefined;
    f.httpError = { ...f.httpError, times: f.httpError.times - 1 };
    return f.httpError;
  }
}

/** Deterministic choice of the products a mass-zero fault hits: every k-th positive one. */
function massZeroed(rows: InventarioTruthRow[], share: number): Set<string> {
  const positive = rows.filter((r) => !r.cantidad.startsWith('-') && /[1-9]/.test(r.cantidad));
  const count = Math.round(positive.length * share);
  const hit = new Set<string>();
  if (count <= 0) return hit;
  const step = positive.length / count;
  for (let i = 0; i < count; i++) {
    const r = positive[Math.floor(i * step)]!;
    hit.add(`${r.deposito}\u0000${r.producto_id}`);
  }
  return hit;
}

/** What a POS with these faults reports for these truthful rows. */
export function servedInventario(rows: InventarioTruthRow[], faults: StoreFaults): InventarioTruthRow[] {
  if (faults.emptyInventory) return [];
  const zeroed = faults.massZerosShare ? massZeroed(rows, faults.massZerosShare) : new Set<string>();
  const phantoms = new Set(faults.phantomZeros ?? []);
  if (zeroed.size === 0 && phantoms.size === 0 && !faults.invalidDecimalFor) return rows;
  return rows.map((r) => {
    if (r.producto_id === faults.invalidDecimalFor) return { ...r, cantidad: r.cantidad.replace('.', ',') };
    if (zeroed.has(`${r.deposito}\u0000${r.producto_id}`) || phantoms.has(r.producto_id)) return { ...r, cantidad: '0.000' };
    return r;
  });
}
