/**
 * The mails of `fluxion notify`, rendered (pure): subject and body from the events, in
 * `config.locale` (FLUXION_LOCALE through core/i18n.ts, Spanish by default; the words are in
 * sinks/notify-messages.ts), and the Sentry event of a failed run. Kinds, keys and Sentry
 * events stay English. sinks/notify-rules.ts decides which mail goes when.
 */
import { FluxionError } from '../core/errors.ts';
import { formatInstant, formatMinutes, mailTable, subjectPrefix } from '../core/mail/format.ts';
import type { QuarantineRecord } from '../core/records.ts';
import type { SentryEventReport } from '../core/sentry.ts';
import type { Admission } from '../core/throttle.ts';
import { notifyMessages, type NotifyMessages } from './notify-messages.ts';
import { throttleKey, withRulesDefaults, type EtlRun, type Mail, type NotifyKind, type NotifyRulesConfig } from './notify-model.ts';
import type { PhantomListing, WindowAlert } from './notify-phantoms.ts';

export { formatInstant };

export class EtlRunFailedError extends FluxionError {
  constructor(run: EtlRun) {
    super(`${run.ubicacion_id}: ${run.job} run failed (${run.error_class ?? 'UNKNOWN'}): ${run.error_message ?? 'no message'}`, {
      code: run.error_class ?? 'UNKNOWN',
      context: { ubicacion: run.ubicacion_id, job: run.job, run_id: run.run_id },
    });
  }
}

function kindLabel(kind: NotifyKind, m: NotifyMessages): string {
  return {
    CONNECTIVITY: m.kindConnectivity,
    EXTRACTION_FAILED: m.kindExtraction,
    SNAPSHOT_QUARANTINED: m.kindQuarantine,
    SNAPSHOT_STALE: m.kindStale,
    PHANTOM_ZEROS: m.kindPhantom,
  }[kind];
}

export function heldBackLine(
  kind: NotifyKind,
  store: string,
  admission: Extract<Admission, { admitted: true }>,
  config: NotifyRulesConfig,
): string | null {
  if (admission.heldBack === 0) return null;
  const m = messagesOf(config);
  const since = admission.heldBackSinceMs === null ? '' : formatInstant(admission.heldBackSinceMs);
  return m.heldBack(admission.heldBack, kindLabel(kind, m), store, since, formatMinutes(config.throttleMs));
}

const messagesOf = (config: NotifyRulesConfig): NotifyMessages => notifyMessages(withRulesDefaults(config).locale);

function footer(config: NotifyRulesConfig, key: string): string {
  const m = messagesOf(config);
  return m.footer(config.environment ?? m.unknownEnvironment, key);
}

/** Subject and body of a FAILED run's mail. */
export function runMail(
  run: EtlRun,
  kind: 'CONNECTIVITY' | 'EXTRACTION_FAILED',
  config: NotifyRulesConfig,
  heldBack: string | null = null,
): Mail {
  const m = messagesOf(config);
  const store = run.ubicacion_id;
  const key = throttleKey(kind, store);
  const errorClass = run.error_class ?? 'UNKNOWN';
  const subject =
    `${subjectPrefix(config.environment)} ` +
    `${kind === 'CONNECTIVITY' ? m.subjectConnectivity(store, run.job, errorClass) : m.subjectExtraction(store, run.job, errorClass)}`;
  const advice =
    kind === 'CONNECTIVITY' ? m.adviceConnectivity(store) : errorClass === 'POS_AUTH' ? m.adviceAuth(store) : m.adviceOther(store);
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
function snapshotMail(
  kind: 'SNAPSHOT_QUARANTINED' | 'SNAPSHOT_STALE',
  q: QuarantineRecord,
  config: NotifyRulesConfig,
  heldBack: string | null,
  parts: { subject: string; intro: string; advice: string[]; rows: boolean },
): Mail {
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
  return snapshotMail('SNAPSHOT_STALE', q, config, heldBack, {
    subject: m.subjectStale(store),
    intro: m.staleIntro(store),
    advice: [m.staleAdvice(store)],
    rows: false,
  });
}

/**
 * Subject and body of a store's phantom-zeros mail: the window that triggered it, then the
 * alerts of `listing` (most confident first) and how many more wait in the alertas table.
 */
export function phantomMail(
  store: string,
  window: readonly WindowAlert[],
  listing: PhantomListing,
  config: NotifyRulesConfig,
  heldBack: string | null = null,
): Mail {
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
      [
        m.lByRule,
        [...byRule]
          .sort()
          .map(([r, n]) => `${r} ${n}`)
          .join(', '),
      ],
      [m.lFirstOpened, formatInstant(window[0]?.openedMs ?? 0)],
      [m.lLastOpened, formatInstant(window.at(-1)?.openedMs ?? 0)],
    ]),
    '',
    m.phantomTop(withRulesDefaults(config).phantomDailyBudget, listing.mailedToday),
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
    kind: 'PHANTOM_ZEROS',
    key,
    ubicacion_id: store,
    subject: `${subjectPrefix(config.environment)} ${m.subjectPhantom(store, window.length, minutes)}`,
    text,
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
