/**
 * What one dashboard sample is (ops/dashboard/sampler.ts reads it, server.ts serves it): its
 * shape, the quarantine counts by store and status, and the ring buffer of the history chart.
 */
import type { GroupLag, LagStatus } from './lag.ts';
import type { StoreFreshness } from './freshness.ts';

/** The differ's record of a snapshot older than the store's last applied one: counted apart, waits for nobody. */
export const STALE_STATUS = 'STALE';

export interface QuarantineCount {
  ubicacion: string;
  /** The entry's last status, as a string: STALE is newer than some schemas this may read. */
  status: string;
  count: number;
  /** Waits for a decision (QUARANTINED, RELEASE_REQUESTED). */
  open: boolean;
}

/** Counts the quarantine topic's entries by store and last status. */
export function countQuarantine(entries: ReadonlyArray<{ ubicacion_id: string; status: string }>): QuarantineCount[] {
  const counts = new Map<string, QuarantineCount>();
  for (const e of entries) {
    const k = `${e.ubicacion_id}|${e.status}`;
    const c = counts.get(k) ?? {
      ubicacion: e.ubicacion_id,
      status: e.status,
      count: 0,
      open: e.status === 'QUARANTINED' || e.status === 'RELEASE_REQUESTED',
    };
    c.count++;
    counts.set(k, c);
  }
  return [...counts.values()];
}

/** How many of a store's entries are stale snapshots, and how many wait for a decision. */
export function storeQuarantine(counts: readonly QuarantineCount[], ubicacion: string): { quarantined: number; stale: number } {
  const mine = counts.filter((q) => q.ubicacion === ubicacion);
  return {
    quarantined: mine.filter((q) => q.open).reduce((s, q) => s + q.count, 0),
    stale: mine.filter((q) => q.status === STALE_STATUS).reduce((s, q) => s + q.count, 0),
  };
}

export interface DashboardSample {
  sampledAt: string;
  /** FLUXION_TOPIC_PREFIX of every topic and group shown. */
  topicPrefix: string;
  /** How long the sample took. */
  durationMs: number;
  /** Sources that failed in this sample (their figures are the previous sample's). */
  errors: Array<{ source: string; message: string }>;
  groups: GroupLag[];
  /** Expected interval per topic (ms), from the schedule. */
  intervals: Record<string, number>;
  stores: StoreFreshness[];
  lookbackHours: number;
  /** Records in each DLQ topic (without prefix). */
  dlq: Record<string, number>;
  /** Snapshots on the quarantine topic by store and last status (STALE ones too: see freshness.ts). */
  quarantine: Array<{ ubicacion: string; status: string; count: number }>;
  /** Rows extracted by OK runs, per store and job (all of etl_runs). */
  rowsExtracted: Array<{ ubicacion: string; job: string; rows: number }>;
  /** Inventory changes applied per store in the last 24 h (rows of inventario_historico). */
  changes24h: Record<string, number>;
  /** Rows written per table and operation (PostgreSQL's statistics, since its last reset). */
  rowsWritten: Array<{ table: string; operation: 'insert' | 'update' | 'delete'; rows: number }>;
  /** End offset per topic (without prefix) and partition. */
  topicEnds: Array<{ topic: string; partition: number; end: string }>;
}

export interface HistoryPoint {
  at: number;
  groups: Record<string, { lagMessages: number; lagSeconds: number | null; status: LagStatus }>;
}

/** Fixed-size history: the oldest point goes when a new one comes. */
export class RingBuffer<T> {
  readonly capacity: number;
  private readonly items: T[] = [];
  private next = 0;
  constructor(capacity: number) {
    this.capacity = Math.max(1, Math.floor(capacity));
  }
  push(item: T): void {
    if (this.items.length < this.capacity) this.items.push(item);
    else this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
  }
  toArray(): T[] {
    return this.items.length < this.capacity ? [...this.items] : [...this.items.slice(this.next), ...this.items.slice(0, this.next)];
  }
}
