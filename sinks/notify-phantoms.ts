/**
 * What `fluxion notify` remembers of a store's phantom-zero alerts (pure, in memory, no clock
 * of its own): the window of recently opened alerts that makes a mail, and the ledger of open
 * alerts with the daily budget of alerts mailed per store (sinks/notify-rules.ts has the why).
 */
import type { PhantomAlert } from '../core/records.ts';
import { SINKS_ENV } from './config.ts';

export interface WindowAlert {
  alert_id: string;
  deposito: string;
  producto_id: string;
  rule: PhantomAlert['rule'];
  openedMs: number;
  summary: string;
}

export interface PhantomStoreWindow {
  /**
   * Counts an OPEN alert in its store's window (by opened_at, relative to the newest alert of
   * the store); returns the alerts now in the window, oldest first, or null when the alert is
   * older than the window. An alert seen again (redelivery) is counted once.
   */
  add(alert: PhantomAlert): WindowAlert[] | null;
}

export function createPhantomStoreWindow(windowMs: number): PhantomStoreWindow {
  const stores = new Map<string, { newestMs: number; alerts: Map<string, WindowAlert> }>();
  return {
    add(alert) {
      const openedMs = alert.opened_at.getTime();
      let store = stores.get(alert.ubicacion_id);
      if (!store) stores.set(alert.ubicacion_id, (store = { newestMs: openedMs, alerts: new Map() }));
      store.newestMs = Math.max(store.newestMs, openedMs);
      const from = store.newestMs - windowMs;
      if (openedMs < from) return null;
      store.alerts.set(alert.alert_id, {
        alert_id: alert.alert_id,
        deposito: alert.deposito,
        producto_id: alert.producto_id,
        rule: alert.rule,
        openedMs,
        summary: alert.summary,
      });
      for (const [id, a] of store.alerts) if (a.openedMs < from) store.alerts.delete(id);
      return [...store.alerts.values()].sort((a, b) => a.openedMs - b.openedMs || a.alert_id.localeCompare(b.alert_id));
    },
  };
}

// ---- the daily budget of phantom-zero alerts per store ------------------------------------------

/** At most this many alerts a day reach a store's people: FLUXION_NOTIFY_PHANTOM_DAILY_BUDGET's default (sinks/config.ts). */
export const PHANTOM_DAILY_BUDGET: number = SINKS_ENV.FLUXION_NOTIFY_PHANTOM_DAILY_BUDGET.parse(undefined);

export interface LedgerAlert {
  alert_id: string;
  ubicacion_id: string;
  rule: PhantomAlert['rule'];
  confidence: number;
  openedMs: number;
  summary: string;
}

/** What a store's next mail may list: `listed` within the day's budget, `beyond` only counted. */
export interface PhantomListing {
  listed: LedgerAlert[];
  beyond: number;
  /** Alerts of the store mailed on this day so far. */
  mailedToday: number;
}

export interface PhantomLedger {
  /** An OPEN record: the alert is open (its confidence updated), unless it was dismissed. Returns false for a dismissed one. */
  open(alert: PhantomAlert): boolean;
  /** A RESOLVED record: the alert leaves the store's list. */
  resolve(alert: PhantomAlert): void;
  /** Alerts an operator dismissed: out of every list, for good (later OPEN records of them are ignored). */
  dismiss(alertIds: Iterable<string>): void;
  /** The store's open alerts (what the notifier asks PostgreSQL about). */
  openIds(store: string): string[];
  /** The store's open alerts no mail listed yet, most confident first, split by what is left of `day`'s budget. */
  listing(store: string, day: string): PhantomListing;
  /** The alerts a mail listed count against the store's budget of `day`... */
  mailed(store: string, day: string, alertIds: readonly string[]): void;
  /** ...unless the mail could not be delivered. */
  unmailed(store: string, day: string, alertIds: readonly string[]): void;
}

/** Most confident first; of equal confidence, the one open longest, then by id (a stable order). */
export const byConfidence = (a: LedgerAlert, b: LedgerAlert): number =>
  b.confidence - a.confidence || a.openedMs - b.openedMs || a.alert_id.localeCompare(b.alert_id);

export function createPhantomLedger(budget: number): PhantomLedger {
  interface StoreLedger {
    open: Map<string, LedgerAlert>;
    /** Open alerts some mail already listed: news once, not every day (`fluxion alertas listar` has them all). */
    mailed: Set<string>;
    /** Alerts mailed on `day`: a new store-local day starts with the whole budget. */
    spent: { day: string; count: number };
  }
  const stores = new Map<string, StoreLedger>();
  const dismissed = new Set<string>();
  const storeOf = (id: string): StoreLedger => {
    let s = stores.get(id);
    if (!s) stores.set(id, (s = { open: new Map(), mailed: new Set(), spent: { day: '', count: 0 } }));
    return s;
  };
  const spentOn = (s: StoreLedger, day: string): number => (s.spent.day === day ? s.spent.count : 0);
  const forget = (s: StoreLedger, id: string) => {
    s.open.delete(id);
    s.mailed.delete(id);
  };
  return {
    open(alert) {
      if (dismissed.has(alert.alert_id)) return false;
      storeOf(alert.ubicacion_id).open.set(alert.alert_id, {
        alert_id: alert.alert_id,
        ubicacion_id: alert.ubicacion_id,
        rule: alert.rule,
        confidence: alert.confidence,
        openedMs: alert.opened_at.getTime(),
        summary: alert.summary,
      });
      return true;
    },
    resolve(alert) {
      const s = stores.get(alert.ubicacion_id);
      if (s) forget(s, alert.alert_id);
    },
    dismiss(alertIds) {
      for (const id of alertIds) {
        dismissed.add(id);
        for (const s of stores.values()) forget(s, id);
      }
    },
    openIds: (store) => [...(stores.get(store)?.open.keys() ?? [])],
    listing(store, day) {
      const s = storeOf(store);
      const pending = [...s.open.values()].filter((a) => !s.mailed.has(a.alert_id)).sort(byConfidence);
      const spent = spentOn(s, day);
      const left = Math.max(0, budget - spent);
      return { listed: pending.slice(0, left), beyond: Math.max(0, pending.length - left), mailedToday: spent };
    },
    mailed(store, day, alertIds) {
      const s = storeOf(store);
      s.spent = { day, count: spentOn(s, day) + alertIds.length };
      for (const id of alertIds) s.mailed.add(id);
    },
    unmailed(store, day, alertIds) {
      const s = stores.get(store);
      if (!s) return;
      for (const id of alertIds) s.mailed.delete(id);
      if (s.spent.day === day) s.spent = { day, count: Math.max(0, s.spent.count - alertIds.length) };
    },
  };
}
