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
 *   within `phantomWindowMs` (by their opened_at): another face of a massive stockout.
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
import { formatInstant, formatMinutes, mailTable, subjectPrefix } from '../core/mail/format.ts';
import type { EtlRun } from './sink-batch.ts';

export type { EtlRun, Admission };

export type NotifyKind = 'CONNECTIVITY' | 'EXTRACTION_FAILED' | 'SNAPSHOT_QUARANTINED' | 'SNAPSHOT_STALE' | 'PHANTOM_ZEROS';

export const NOTIFY_KINDS: readonly NotifyKind[] = ['CONNECTIVITY', 'EXTRACTION_FAILED', 'SNAPSHOT_QUARANTINED', 'SNAPSHOT_STALE', 'PHANTOM_ZEROS'];

export interface NotifyRulesConfig {
  /** One mail per (kind, store) per this many milliseconds. */
  throttleMs: number;
  /** Phantom-zero alerts opened in one store within the window that make a mail. */
  phantomStoreThreshold: number;
  phantomWindowMs: number;
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
}

export interface NotifyDecision {
  /** Mails to deliver now. */
  send: Mail[];
  /** Mails the throttle held back (their count goes into the next mail of their key). */
  throttled: Mail[];
  /** A Sentry event to send (every FAILED run that is not stale). */
  sentry: SentryEventReport | null;
  /** Why the event made nothing, for a debug log. */
  ignored?: 'run-ok' | 'stale' | 'not-quarantined' | 'alert-resolved' | 'below-threshold' | 'outside-window';
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

/** How many of the window's alerts a mail lists by product. */
export const PHANTOM_MAIL_LISTED = 15;

/** Subject and body of a store's phantom-zeros mail. */
export function phantomMail(store: string, alerts: readonly WindowAlert[], config: NotifyRulesConfig, heldBack: string | null = null): Mail {
  const m = messagesOf(config);
  const key = throttleKey('PHANTOM_ZEROS', store);
  const window = formatMinutes(config.phantomWindowMs);
  const byRule = new Map<string, number>();
  for (const a of alerts) byRule.set(a.rule, (byRule.get(a.rule) ?? 0) + 1);
  const listed = alerts.slice(-PHANTOM_MAIL_LISTED);
  const text = [
    m.phantomIntro(store, alerts.length, window, config.phantomStoreThreshold),
    '',
    mailTable([
      [m.lStore, store],
      [m.lAlerts, alerts.length],
      [m.lByRule, [...byRule].sort().map(([r, n]) => `${r} ${n}`).join(', ')],
      [m.lFirstOpened, formatInstant(alerts[0]?.openedMs ?? 0)],
      [m.lLastOpened, formatInstant(alerts.at(-1)?.openedMs ?? 0)],
    ]),
    '',
    listed.length === alerts.length ? m.phantomAll : m.phantomLatest(listed.length),
    ...listed.map((a) => `  - ${a.summary} [${a.rule}]`),
    '',
    m.phantomWhere,
    ...(heldBack ? ['', heldBack] : []),
    '',
    footer(config, key),
  ].join('\n');
  return { kind: 'PHANTOM_ZEROS', key, ubicacion_id: store, subject: `${subjectPrefix(config.environment)} ${m.subjectPhantom(store, alerts.length, window)}`, text };
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
  /** A mail could not be delivered: the next event of its key mails again at once. */
  deliveryFailed(mail: Mail): void;
}

/** The notifier's memory: the throttle and the per-store phantom windows (both in memory). */
export function createNotifyRules(config: NotifyRulesConfig): NotifyRules {
  const throttle = createThrottle(config.throttleMs);
  const phantoms = createPhantomStoreWindow(config.phantomWindowMs);

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
          if (alert.status !== 'OPEN') return none('alert-resolved');
          const inWindow = phantoms.add(alert);
          if (inWindow === null) return none('outside-window');
          if (inWindow.length < config.phantomStoreThreshold) return none('below-threshold');
          return { ...throttled('PHANTOM_ZEROS', alert.ubicacion_id, nowMs, (heldBack) => phantomMail(alert.ubicacion_id, inWindow, config, heldBack)), sentry: null };
        }
      }
    },
    deliveryFailed(mail) {
      throttle.release(mail.key);
    },
  };
}
