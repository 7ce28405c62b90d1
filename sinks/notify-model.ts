/**
 * The vocabulary of `fluxion notify` (sinks/notify-rules.ts decides, sinks/notify-mails.ts
 * renders, sinks/notifier.ts delivers): kinds of mail, the rules' configuration, the events
 * they read and the mails they make.
 */
import { DEFAULT_LOCALE, type Locale } from '../core/i18n.ts';
import { withDefaults } from '../core/options.ts';
import type { PhantomAlert, QuarantineRecord } from '../core/records.ts';
import type { SentryEventReport } from '../core/sentry.ts';
import type { EtlRun } from './sink-batch.ts';
import { PHANTOM_DAILY_BUDGET } from './notify-phantoms.ts';

export type { EtlRun };

export type NotifyKind = 'CONNECTIVITY' | 'EXTRACTION_FAILED' | 'SNAPSHOT_QUARANTINED' | 'SNAPSHOT_STALE' | 'PHANTOM_ZEROS';

export const NOTIFY_KINDS: readonly NotifyKind[] = [
  'CONNECTIVITY',
  'EXTRACTION_FAILED',
  'SNAPSHOT_QUARANTINED',
  'SNAPSHOT_STALE',
  'PHANTOM_ZEROS',
];

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
  ignored?:
    | 'run-ok'
    | 'stale'
    | 'not-quarantined'
    | 'alert-resolved'
    | 'alert-dismissed'
    | 'below-threshold'
    | 'outside-window'
    | 'nothing-new-today'
    | 'daily-budget-spent';
}

/** A FAILED run as Sentry sees it: one issue per store, job and error class (the fingerprint). */

/** The throttle key of a kind of mail for a store. */
export const throttleKey = (kind: NotifyKind, ubicacionId: string): string => `${kind}/${ubicacionId}`;

/** What the rules' configuration may leave out, declared once. */
export const NOTIFY_RULES_DEFAULTS = { phantomDailyBudget: PHANTOM_DAILY_BUDGET, locale: DEFAULT_LOCALE as Locale };

/** The configuration with its defaults filled in. */
export const withRulesDefaults = (config: NotifyRulesConfig) => withDefaults(NOTIFY_RULES_DEFAULTS, config);
