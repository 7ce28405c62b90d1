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
 * Language: subjects and bodies are rendered by sinks/notify-mails.ts in `config.locale`
 * (FLUXION_LOCALE, Spanish by default); kinds, keys and Sentry events stay English.
 *
 * Staleness: an event whose own time (finished_at, updated_at, opened_at) is older than
 * `maxAgeMs` when read is neither mailed nor reported: a new consumer group reads the topics
 * from their beginning, and 30 days of old failures are nobody's news.
 */
import { admit, type Admission, type ThrottleEntry } from '../core/throttle.ts';
import { fechaCaracas } from '../core/time.ts';
import { heldBackLine, phantomMail, quarantineMail, runMail, runSentryReport, staleMail } from './notify-mails.ts';
import {
  throttleKey,
  withRulesDefaults,
  type EtlRun,
  type Mail,
  type NotifyDecision,
  type NotifyEvent,
  type NotifyKind,
  type NotifyRulesConfig,
} from './notify-model.ts';
import { createPhantomLedger, createPhantomStoreWindow } from './notify-phantoms.ts';

// The vocabulary, the phantom-zero memory and the rendering live beside; their names stay importable from here.
export * from './notify-model.ts';
export * from './notify-phantoms.ts';
export { EtlRunFailedError, formatInstant, phantomMail, quarantineMail, runMail, runSentryReport, staleMail } from './notify-mails.ts';
export type { Admission };

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
  'POS_UNAVAILABLE',
  'SERVICE_UNAVAILABLE',
  'DEADLINE',
  'TIMEOUT',
  'HTTP_429',
  'ESOCKET',
  'ETIMEOUT',
  'ECONNCLOSED',
  'EINSTLOOKUP',
  'ETIMEDOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
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
      if (entries.size > 1_000)
        for (const [k, x] of entries) if (nowMs - x.lastSentMs >= intervalMs && x.heldBack === 0) entries.delete(k);
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
  const ledger = createPhantomLedger(withRulesDefaults(config).phantomDailyBudget);

  function throttled(
    kind: NotifyKind,
    store: string,
    nowMs: number,
    build: (heldBack: string | null) => Mail,
  ): Pick<NotifyDecision, 'send' | 'throttled'> {
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
          const mails = throttled(kind, run.ubicacion_id, nowMs, (heldBack) =>
            runMail(run, kind as 'CONNECTIVITY' | 'EXTRACTION_FAILED', config, heldBack),
          );
          return { ...mails, sentry: runSentryReport(run, kind) };
        }
        case 'quarantine': {
          const { record } = event;
          if (record.status === 'STALE')
            return {
              ...throttled('SNAPSHOT_STALE', record.ubicacion_id, nowMs, (heldBack) => staleMail(record, config, heldBack)),
              sentry: null,
            };
          if (record.status !== 'QUARANTINED') return none('not-quarantined');
          return {
            ...throttled('SNAPSHOT_QUARANTINED', record.ubicacion_id, nowMs, (heldBack) => quarantineMail(record, config, heldBack)),
            sentry: null,
          };
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
