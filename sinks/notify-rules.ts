/**
 * What `fluxion notify` says, to whom it matters and how often: pure decisions over the
 * records of ops.etl-runs, pos.inventario.quarantine and alerts.phantom-zeros. No I/O and
 * no wall clock: every decision takes the time it is made at (`nowMs`), so tests drive it
 * with a fake clock. sinks/notifier.ts feeds it records and delivers what it decides.
 *
 * Kinds of mail (one subject each):
 * - CONNECTIVITY: a store's run FAILED because the POS could not be reached or did not answer
 *   in time (see `CONNECTIVITY_ERROR_CLASSES`).
 * - EXTRACTION_FAILED: a store's run FAILED for any other reason (bad data, credentials, ...).
 * - SNAPSHOT_QUARANTINED: the differ refused a snapshot (empty, or too many products dropping
 *   to 0): a massive stockout, real or not, that an operator must look at.
 * - SNAPSHOT_STALE: the differ received a snapshot older than the store's applied one and did
 *   not apply it. Once is an overlapping or delayed run; every run is a POS clock set back,
 *   and then the store's stock stays frozen until its clock passes the applied snapshot's time:
 *   nothing else would tell anyone, since each run itself reports OK.
 * - PHANTOM_ZEROS: at least `phantomStoreThreshold` phantom-zero alerts opened in one store
 *   within `phantomWindowMs` (by their opened_at; 1 by default: every alert is news). The mail
 *   lists the store's OPEN alerts no mail listed yet, most confident first, at most
 *   `phantomDailyBudget` alerts per store per store-local day (America/Caracas, on the caller's
 *   clock); the rest are counted ("and N more", to be read with `fluxion alertas listar`),
 *   never mailed. A mail is news: an alert is listed once, not again the next day. Resolved
 *   alerts leave the list; dismissed ones (`fluxion alertas descartar`, told by the notifier
 *   through `dismissed`) never enter it again. A day whose budget is spent mails nothing more
 *   for the store; the next day its most confident waiting alerts go first.
 *
 * Throttling: at most one mail per (kind, store) per `throttleMs` of the caller's clock; the
 * ones held back are counted and the next mail says how many. A flapping store thus sends one
 * mail per interval, not one per run. Failed runs also go to Sentry, every one (Sentry groups
 * them by fingerprint and has its own alert rules).
 *
 * Language: subjects and bodies are in `config.locale` (FLUXION_LOCALE, Spanish by default;
 * the words are in sinks/notify-messages.ts); kinds, keys and Sentry events stay English.
 *
 * Staleness: an event whose own time (finished_at, updated_at, opened_at) is older than
 * `maxAgeMs` when read is neither mailed nor reported: a new consumer group reads the topics
 * from their beginning, and 30 days of old failures are nobody's news.
 */
import { FluxionError } from '../core/errors.ts';
import type { PhantomAlert, QuarantineRecord } from '../core/records.ts';
import type { SentryEventReport } from '../core/sentry.ts';
import { admit, type Admission, type ThrottleEntry } from '../core/throttle.ts';
import { notifyMessages, type NotifyMessages } from './notify-messages.ts';
import { DEFAULT_LOCALE, type Locale } from '../core/i18n.ts';
import { fechaCaracas } from '../core/time.ts';
import { formatInstant, formatMinutes, mailTable, subjectPrefix } from '../core/mail/format.ts';
import type { EtlRun } from '../core/etl-run.ts';

export type { EtlRun, Admission };

export type NotifyKind = 'CONNECTIVITY' | 'EXTRACTION_FAILED' | 'SNAPSHOT_QUARANTINED' | 'SNAPSHOT_STALE' | 'PHANTOM_ZEROS';

export const NOTIFY_KINDS: readonly NotifyKind[] = ['CONNECTIVITY', 'EXTRACTION_FAILED', 'SNAPSHOT_QUARANTINED', 'SNAPSHOT_STALE', 'PHANTOM_ZEROS'];

export interface NotifyRulesConfig {
  /** One mail per (kind, store) per this many milliseconds. */
  throttleMs: number;
  /** Phantom-zero alerts opened in one store within the window that make a mail. */
  phantomStoreThreshold: number;
  phantomWindowMs: number;
  /** Phantom-zero alerts mailed per store per store-local day; default PHANTOM_DAILY_BUDGET. */
  phantomDailyBudget?: number;
  /** Events older than this (by their own time) when read are ignored. */
  maxAgeMs: number;
  /** Shown in subjects unless `production` (so a test mail never looks like a real one). */
  environment?: string;
  /** The mails' language (FLUXION_LOCALE); default Spanish, what La Granja's operators read. */
  locale?: Locale;
}

export type NotifyEvent =
  | { type: 'etl-run'; run: EtlRun }
  | { type: 'quarantine'; record: QuarantineRecord }
  | { type: 'phantom-alert'; alert: PhantomAlert };

export interface Mail {
  kind: NotifyKind;
  /** The throttle key: `<kind>/<ubicacion_id>`. */
  key: string;
  ubicacion_id: string;
  subject: string;
  text: string;
  /** PHANTOM_ZEROS: the alerts the mail lists (counted against the store's daily budget). */
  alertIds?: string[];
}

export interface NotifyDecision {
  /** Mails to deliver now. */
  send: Mail[];
  /** Mails the throttle held back (their count goes into the next mail of their key). */
  throttled: Mail[];
  /** A Sentry event to send (every FAILED run that is not stale). */
  sentry: SentryEventReport | null;
  /** Why the event made nothing, for a debug log. */
  ignored?: 'run-ok' | 'stale' | 'not-quarantined' | 'alert-resolved' | 'alert-dismissed' | 'below-threshold' | 'outside-window' | 'nothing-new-today' | 'daily-budget-spent';
}

/** A FAILED run as Sentry sees it: one issue per store, job and error class (the fingerprint). */
export class EtlRunFailedError extends FluxionError {
  constructor(run: EtlRun) {
    super(`${run.ubicacion_id}: ${run.job} run failed (${run.error_class ?? 'UNKNOWN'}): ${run.error_message ?? 'no message'}`, {
      code: run.error_class ?? 'UNKNOWN',
      context: { ubicacion: run.ubicacion_id, job: run.job, run_id: run.run_id },
    });
  }
}

// ---- classification --------------------------------------------------------------------------

/**
 * error_class values of ops.etl-runs (FluxionError codes, see extractors/extract-run.ts) that
 * mean "the POS could not be reached or did not answer in time":
 * - POS_UNAVAILABLE: KLK connection refused/reset or request timeout, after retries; Stellar
 *   failures without a driver code. HTTP_429 / HTTP_5xx: KLK answered busy or broken, after retries.
 * - ESOCKET, ETIMEOUT, ECONNCLOSED, EINSTLOOKUP, ...: the mssql driver's codes for Stellar
 *   connections (kept as error_class by extractors/stellar-inventario.ts).
 * - DEADLINE: the store's whole read outlived its deadline (a stalled answer).
 * - SERVICE_UNAVAILABLE: Kafka or the registry did not answer while publishing the run.
 * - TIMEOUT and the Node socket codes: older or foreign writers of the topic.
 * Anything else (POS_AUTH, POS_DATA, HTTP_4xx, VALIDATION, UNEXPECTED, ...) is EXTRACTION_FAILED.
 */
export const CONNECTIVITY_ERROR_CLASSES: ReadonlySet<string> = new Set([
  'POS_UNAVAILABLE', 'SERVICE_UNAVAILABLE', 'DEADLINE', 'TIMEOUT', 'HTTP_429',
  'ESOCKET', 'ETIMEOUT', 'ECONNCLOSED', 'EINSTLOOKUP',
  'ETIMEDOUT', 'ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE',
]);

export function isConnectivityError(errorClass: string | null): boolean {
  if (!errorClass) return false;
  return CONNECTIVITY_ERROR_CLASSES.has(errorClass) || /^HTTP_5\d\d$/.test(errorClass);
}

/** The kind of mail a run makes; null for an OK run. */
export function classifyRun(run: Pick<EtlRun, 'status' | 'error_class'>): NotifyKind | null {
  if (run.status !== 'FAILED') return null;
  return isConnectivityError(run.error_class) ? 'CONNECTIVITY' : 'EXTRACTION_FAILED';
}

export const throttleKey = (kind: NotifyKind, ubicacionId: string): string => `${kind}/${ubicacionId}`;

/** The instant an event happened, by its own clock. */
export function eventTime(event: NotifyEvent): Date {
  switch (event.type) {
    case 'etl-run':
      return event.run.finished_at;
    case 'quarantine':
      return event.record.updated_at;
    case 'phantom-alert':
      return event.alert.status === 'OPEN' ? event.alert.opened_at : event.alert.updated_at;
  }
}

// ---- throttle --------------------------------------------------------------------------------

export interface Throttle {
  /** Whether a mail under `key` may go at `nowMs`; a refused one is counted as held back. */
  admit(key: string, nowMs: number): Admission;
  /** Forgets the last mail of `key` (it could not be delivered): the next one under it goes at once. */
  release(key: string): void;
  /** Keys currently remembered (for tests and metrics). */
  size(): number;
}

/** In memory: a restart forgets it, so a restarted notifier may mail once more per key. */
export function createThrottle(intervalMs: number): Throttle {
  const entries = new Map<string, ThrottleEntry>();
  return {
    admit(key, nowMs) {
      // Keys whose interval is over carry nothing but a held-back count: sweep them now and then.
      if (entries.size > 1_000) for (const [k, x] of entries) if (nowMs - x.lastSentMs >= intervalMs && x.heldBack === 0) entries.delete(k);
      const { admission, entry } = admit(entries.get(key), nowMs, intervalMs);
      entries.set(key, entry);
      return admission;
    },
    release(key) {
      entries.delete(key);
    },
    size: () => entries.size,
  };
}

// ---- phantom zeros per store -----------------------------------------------------------------

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
        alert_id: alert.alert_id, deposito: alert.deposito, producto_id: alert.producto_id, rule: alert.rule, openedMs, summary: alert.summary,
      });
      for (const [id, a] of store.alerts) if (a.openedMs < from) store.alerts.delete(id);
      return [...store.alerts.values()].sort((a, b) => a.openedMs - b.openedMs || a.alert_id.localeCompare(b.alert_id));
    },
  };
}

// ---- the daily budget of phantom-zero alerts per store ------------------------------------------

/** The goal: at most 10 alerts a day reach a store's people. */
export const PHANTOM_DAILY_BUDGET = 10;

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
export const byConfidence = (a: LedgerAlert, b: LedgerAlert): number => b.confidence - a.confidence || a.openedMs - b.openedMs || a.alert_id.localeCompare(b.alert_id);

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
        alert_id: alert.alert_id, ubicacion_id: alert.ubicacion_id, rule: alert.rule, confidence: alert.confidence, openedMs: alert.opened_at.getTime(), summary: alert.summary,
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

// ---- messages --------------------------------------------------------------------------------

export { formatInstant };

function kindLabel(kind: NotifyKind, m: NotifyMessages): string {
  return { CONNECTIVITY: m.kindConnectivity, EXTRACTION_FAILED: m.kindExtraction, SNAPSHOT_QUARANTINED: m.kindQuarantine, SNAPSHOT_STALE: m.kindStale, PHANTOM_ZEROS: m.kindPhantom }[kind];
}

function heldBackLine(kind: NotifyKind, store: string, admission: Extract<Admission, { admitted: true }>, config: NotifyRulesConfig): string | null {
  if (admission.heldBack === 0) return null;
  const m = messagesOf(config);
  const since = admission.heldBackSinceMs === null ? '' : formatInstant(admission.heldBackSinceMs);
  return m.heldBack(admission.heldBack, kindLabel(kind, m), store, since, formatMinutes(config.throttleMs));
}

const messagesOf = (config: NotifyRulesConfig): NotifyMessages => notifyMessages(config.locale ?? DEFAULT_LOCALE);

function footer(config: NotifyRulesConfig, key: string): string {
  const m = messagesOf(config);
  return m.footer(config.environment ?? m.unknownEnvironment, key);
}

/** Subject and body of a FAILED run's mail. */
export function runMail(run: EtlRun, kind: 'CONNECTIVITY' | 'EXTRACTION_FAILED', config: NotifyRulesConfig, heldBack: string | null = null): Mail {
  const m = messagesOf(config);
  const store = run.ubicacion_id;
  const key = throttleKey(kind, store);
  const errorClass = run.error_class ?? 'UNKNOWN';
  const subject = `${subjectPrefix(config.environment)} ${kind === 'CONNECTIVITY' ? m.subjectConnectivity(store, run.job, errorClass) : m.subjectExtraction(store, run.job, errorClass)}`;
  const advice = kind === 'CONNECTIVITY' ? m.adviceConnectivity(store) : errorClass === 'POS_AUTH' ? m.adviceAuth(store) : m.adviceOther(store);
  const text = [
    m.runIntro(store, run.job),
    '',
    mailTable([
      [m.lStore, store],
      [m.lJob, run.job],
      [m.lErrorClass, errorClass],
      [m.lError, run.error_message ?? m.noMessage],
      [m.lRun, run.run_id],
      [m.lStarted, formatInstant(run.started_at)],
      [m.lFinished, formatInstant(run.finished_at)],
    ]),
    '',
    advice,
    ...(heldBack ? ['', heldBack] : []),
    '',
    footer(config, key),
  ].join('\n');
  return { kind, key, ubicacion_id: store, subject, text };
}

/** A mail about one snapshot the differ did not apply: its table, then what to do. */
function snapshotMail(kind: 'SNAPSHOT_QUARANTINED' | 'SNAPSHOT_STALE', q: QuarantineRecord, config: NotifyRulesConfig, heldBack: string | null, parts: { subject: string; intro: string; advice: string[]; rows: boolean }): Mail {
  const m = messagesOf(config);
  const store = q.ubicacion_id;
  const key = throttleKey(kind, store);
  const text = [
    parts.intro,
    '',
    mailTable([
      [m.lStore, store],
      [m.lReason, q.reason],
      [m.lSnapshot, q.snapshot_id],
      [m.lSource, q.source],
      [m.lTakenAt, formatInstant(q.taken_at)],
      ...(parts.rows ? [[m.lRows, q.row_count] as [string, number]] : []),
    ]),
    '',
    ...parts.advice,
    ...(heldBack ? ['', heldBack] : []),
    '',
    footer(config, key),
  ].join('\n');
  return { kind, key, ubicacion_id: store, subject: `${subjectPrefix(config.environment)} ${parts.subject}`, text };
}

/** Subject and body of a quarantined snapshot's mail. */
export function quarantineMail(q: QuarantineRecord, config: NotifyRulesConfig, heldBack: string | null = null): Mail {
  const m = messagesOf(config);
  const store = q.ubicacion_id;
  return snapshotMail('SNAPSHOT_QUARANTINED', q, config, heldBack, {
    subject: m.subjectQuarantine(store),
    intro: m.quarantineIntro(store),
    advice: [m.quarantineRelease, `  fluxion quarantine release ${q.snapshot_id} --note "${m.quarantineNote}"`, m.quarantineOtherwise],
    rows: true,
  });
}

/** Subject and body of a stale snapshot's mail (the differ's reason names both snapshots). */
export function staleMail(q: QuarantineRecord, config: NotifyRulesConfig, heldBack: string | null = null): Mail {
  const m = messagesOf(config);
  const store = q.ubicacion_id;
  return snapshotMail('SNAPSHOT_STALE', q, config, heldBack, { subject: m.subjectStale(store), intro: m.staleIntro(store), advice: [m.staleAdvice(store)], rows: false });
}

/**
 * Subject and body of a store's phantom-zeros mail: the window that triggered it, then the
 * alerts of `listing` (most confident first) and how many more wait in the alertas table.
 */
export function phantomMail(store: string, window: readonly WindowAlert[], listing: PhantomListing, config: NotifyRulesConfig, heldBack: string | null = null): Mail {
  const m = messagesOf(config);
  const key = throttleKey('PHANTOM_ZEROS', store);
  const minutes = formatMinutes(config.phantomWindowMs);
  const byRule = new Map<string, number>();
  for (const a of window) byRule.set(a.rule, (byRule.get(a.rule) ?? 0) + 1);
  const text = [
    m.phantomIntro(store, window.length, minutes, config.phantomStoreThreshold),
    '',
    mailTable([
      [m.lStore, store],
      [m.lAlerts, window.length],
      [m.lByRule, [...byRule].sort().map(([r, n]) => `${r} ${n}`).join(', ')],
      [m.lFirstOpened, formatInstant(window[0]?.openedMs ?? 0)],
      [m.lLastOpened, formatInstant(window.at(-1)?.openedMs ?? 0)],
    ]),
    '',
    m.phantomTop(config.phantomDailyBudget ?? PHANTOM_DAILY_BUDGET, listing.mailedToday),
    ...listing.listed.map((a) => `  - ${a.confidence.toFixed(2)}  ${a.summary} [${a.rule}] ${a.alert_id}`),
    ...(listing.beyond > 0 ? [m.phantomBeyond(listing.beyond, store)] : []),
    '',
    m.phantomDismiss,
    m.phantomWhere,
    ...(heldBack ? ['', heldBack] : []),
    '',
    footer(config, key),
  ].join('\n');
  return {
    kind: 'PHANTOM_ZEROS', key, ubicacion_id: store, subject: `${subjectPrefix(config.environment)} ${m.subjectPhantom(store, window.length, minutes)}`, text,
    alertIds: listing.listed.map((a) => a.alert_id),
  };
}

/** The Sentry event of a FAILED run: tagged by store, job and run, grouped by store, job and error class. */
export function runSentryReport(run: EtlRun, kind: NotifyKind): SentryEventReport {
  const errorClass = run.error_class ?? 'UNKNOWN';
  return {
    message: `${run.ubicacion_id}: ${run.job} run failed (${errorClass}): ${run.error_message ?? 'no message'}`,
    level: 'error',
    error: new EtlRunFailedError(run),
    tags: { ubicacion_id: run.ubicacion_id, job: run.job, run_id: run.run_id, error_class: errorClass, kind },
    fingerprint: ['fluxion-etl-run-failed', run.job, run.ubicacion_id, errorClass],
    extra: { started_at: run.started_at.toISOString(), finished_at: run.finished_at.toISOString(), error_message: run.error_message },
  };
}

// ---- the decision ----------------------------------------------------------------------------

export interface NotifyRules {
  decide(event: NotifyEvent, nowMs: number): NotifyDecision;
  /** A mail could not be delivered: the next event of its key mails again at once (and its alerts do not count against the budget). */
  deliveryFailed(mail: Mail, nowMs: number): void;
  /** Alerts an operator dismissed (found in PostgreSQL by the notifier): never mailed from now on. */
  dismissed(alertIds: Iterable<string>): void;
  /** The store's open phantom-zero alerts the rules would still mail. */
  openPhantomAlerts(store: string): string[];
}

/** The notifier's memory: the throttle and the per-store phantom windows (both in memory). */
export function createNotifyRules(config: NotifyRulesConfig): NotifyRules {
  const throttle = createThrottle(config.throttleMs);
  const phantoms = createPhantomStoreWindow(config.phantomWindowMs);
  const ledger = createPhantomLedger(config.phantomDailyBudget ?? PHANTOM_DAILY_BUDGET);

  function throttled(kind: NotifyKind, store: string, nowMs: number, build: (heldBack: string | null) => Mail): Pick<NotifyDecision, 'send' | 'throttled'> {
    const admission = throttle.admit(throttleKey(kind, store), nowMs);
    if (!admission.admitted) return { send: [], throttled: [build(null)] };
    return { send: [build(heldBackLine(kind, store, admission, config))], throttled: [] };
  }

  return {
    decide(event, nowMs) {
      const none = (ignored: NotifyDecision['ignored']): NotifyDecision => ({ send: [], throttled: [], sentry: null, ignored });
      if (nowMs - eventTime(event).getTime() > config.maxAgeMs) return none('stale');
      switch (event.type) {
        case 'etl-run': {
          const { run } = event;
          const kind = classifyRun(run);
          if (kind === null) return none('run-ok');
          const mails = throttled(kind, run.ubicacion_id, nowMs, (heldBack) => runMail(run, kind as 'CONNECTIVITY' | 'EXTRACTION_FAILED', config, heldBack));
          return { ...mails, sentry: runSentryReport(run, kind) };
        }
        case 'quarantine': {
          const { record } = event;
          if (record.status === 'STALE') return { ...throttled('SNAPSHOT_STALE', record.ubicacion_id, nowMs, (heldBack) => staleMail(record, config, heldBack)), sentry: null };
          if (record.status !== 'QUARANTINED') return none('not-quarantined');
          return { ...throttled('SNAPSHOT_QUARANTINED', record.ubicacion_id, nowMs, (heldBack) => quarantineMail(record, config, heldBack)), sentry: null };
        }
        case 'phantom-alert': {
          const { alert } = event;
          const store = alert.ubicacion_id;
          if (alert.status !== 'OPEN') {
            ledger.resolve(alert);
            return none('alert-resolved');
          }
          if (!ledger.open(alert)) return none('alert-dismissed');
          const inWindow = phantoms.add(alert);
          if (inWindow === null) return none('outside-window');
          if (inWindow.length < config.phantomStoreThreshold) return none('below-threshold');
          // The budget is looked at before the throttle: a mail with nothing to list is no mail.
          const day = fechaCaracas(new Date(nowMs));
          const listing = ledger.listing(store, day);
          if (listing.listed.length === 0) return none(listing.beyond > 0 ? 'daily-budget-spent' : 'nothing-new-today');
          const decision = throttled('PHANTOM_ZEROS', store, nowMs, (heldBack) => phantomMail(store, inWindow, listing, config, heldBack));
          for (const mail of decision.send) ledger.mailed(store, day, mail.alertIds ?? []);
          return { ...decision, sentry: null };
        }
      }
    },
    deliveryFailed(mail, nowMs) {
      throttle.release(mail.key);
      if (mail.alertIds) ledger.unmailed(mail.ubicacion_id, fechaCaracas(new Date(nowMs)), mail.alertIds);
    },
    dismissed(alertIds) {
      ledger.dismiss(alertIds);
    },
    openPhantomAlerts: (store) => ledger.openIds(store),
  };
}
