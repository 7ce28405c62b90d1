/**
 * `fluxion notify`: reads ops.etl-runs, pos.inventario.quarantine and alerts.phantom-zeros
 * and mails (SendGrid) what sinks/notify-rules.ts decides: a store's failed extraction, a
 * store that cannot be reached, a massive stockout (a quarantined snapshot), phantom zeros to
 * count in a store. Failed runs also go to Sentry as events tagged with ubicacion_id, job
 * and run_id.
 *
 * Delivery guarantees, on purpose weaker than the sink's:
 * - A plain consumer group (read_committed) that commits each batch's offsets after its
 *   records were handled: at-least-once. A crash between a mail and its commit sends that mail
 *   again after the restart; a mail is cheap to repeat and costly to lose.
 * - The throttle and the phantom windows live in memory: a restarted notifier may mail once
 *   more per (kind, store) within an interval.
 * - A mail that cannot be delivered (SendGrid 4xx, or 5xx/429/network after retries) is
 *   logged with its status and reported to Sentry, and the stream goes on: a mail failure
 *   never stops the consumer.
 * - A record that does not decode is logged and skipped (the PostgreSQL sink, which reads
 *   ops.etl-runs and alerts.phantom-zeros too, sends those to the DLQ; two writers would
 *   duplicate them there).
 * - Dismissed alerts are never mailed: before deciding on a phantom-zero OPEN, the notifier
 *   asks PostgreSQL (`dismissedAlerts`) which of the store's open alerts an operator dismissed
 *   (`fluxion alertas descartar`); the rules then forget them. Without PostgreSQL configured,
 *   or when it does not answer, the mail goes without that filter (logged): a dismissed alert
 *   mailed once more costs less than a massive stockout not mailed.
 * - A new group starts at the beginning of the topics; the rules ignore events older than
 *   FLUXION_NOTIFY_MAX_AGE_MINUTES, so a first start does not mail the history.
 * - Kafka's retriable faults are ridden out by the one consume loop (core/consume-loop/; the
 *   consumer starts again from the committed offsets); a non-retriable one rejects `run()`.
 *
 * This file is the consumer only: what to mail is decided by sinks/notify-rules.ts and
 * rendered by sinks/notify-mails.ts, both pure; SendGrid is core/mail/sendgrid.ts.
 */
import { createTopicCodec, type TopicCodec } from '../core/avro/topic-codec.ts';
import { FluxionError, errorMessage } from '../core/errors.ts';
import { createConsumeLoop, type CommitStrategy, type ConsumeLoop } from '../core/consume-loop/loop.ts';
import type { ConsumedRecord, KafkaClient } from '../core/kafka/client.ts';
import type { Logger } from '../core/logger.ts';
import { MailDeliveryError, type Mailer } from '../core/mail/sendgrid.ts';
import type { PhantomAlert, QuarantineRecord } from '../core/records.ts';
import type { FluxionRegistry } from '../core/registry.ts';
import { withDefaults } from '../core/options.ts';
import { DEFAULT_RETRY, withRetry, type RetryPolicy } from '../core/retry.ts';
import type { SentryEvents } from '../core/sentry.ts';
import type { TopicName } from '../core/topics.ts';
import { createNotifyRules, eventTime, type EtlRun, type Mail, type NotifyEvent, type NotifyRulesConfig } from './notify-rules.ts';

export const NOTIFY_TOPICS = ['ops.etl-runs', 'pos.inventario.quarantine', 'alerts.phantom-zeros'] as const satisfies readonly TopicName[];

// The transport moved to core/mail/sendgrid.ts (the jobs mail through it too); re-exported for the CLI.
export { createMailer, createSendGridMailer, MailDeliveryError, type Mailer } from '../core/mail/sendgrid.ts';

export class NotifierError extends FluxionError {
  constructor(message: string, options: ConstructorParameters<typeof FluxionError>[1] = {}) {
    super(message, { code: 'NOTIFIER', ...options });
  }
}

// ---- the consumer ----------------------------------------------------------------------------

export interface NotifierDeps {
  kafka: KafkaClient;
  registry: FluxionRegistry;
  logger: Logger;
  mailer: Mailer;
  sentry: SentryEvents;
  /** The throttle's clock (milliseconds); default Date.now. */
  now?: () => number;
  /** Which of these alert ids an operator dismissed (sinks/alertas.ts descartadas); absent: none known. */
  dismissedAlerts?: (alertIds: string[]) => Promise<string[]>;
}

/** The notifier's defaults, declared once (an option given as undefined keeps its default). */
export const NOTIFIER_DEFAULTS = {
  topicPrefix: '',
  /** The consumer group when none is given, after the topic prefix. */
  groupName: 'fluxion-notify',
  /** Consumer session timeout; undefined: the client's. */
  sessionTimeoutMs: undefined as number | undefined,
  /** Bytes per fetch. */
  maxBytes: 1024 * 1024,
  /** For records whose schema must be fetched and the registry does not answer. */
  decodeRetry: DEFAULT_RETRY as RetryPolicy,
};

export type NotifierOptions = {
  /** Default `<topicPrefix><groupName>`. */
  groupId?: string;
  rules: NotifyRulesConfig;
} & Partial<typeof NOTIFIER_DEFAULTS>;

export interface Notifier {
  readonly groupId: string;
  /** Resolves after `stop()`; rejects when the consumer crashes. */
  run(): Promise<void>;
  /** Finishes the record in hand, commits, leaves the group, flushes Sentry. */
  stop(): Promise<void>;
}

type Decoder = (value: Buffer) => Promise<NotifyEvent>;

export function createNotifier(deps: NotifierDeps, given: NotifierOptions): Notifier {
  // Arguments are checked before any I/O.
  const options = withDefaults(NOTIFIER_DEFAULTS, given);
  const prefix = options.topicPrefix;
  const { groupId } = withDefaults({ groupId: `${prefix}${options.groupName}` }, given);
  if (!groupId) throw new NotifierError('the notifier needs a group id');
  const r = options.rules;
  if (
    !(r.throttleMs >= 0) ||
    !(r.phantomWindowMs > 0) ||
    !(r.maxAgeMs > 0) ||
    !Number.isInteger(r.phantomStoreThreshold) ||
    r.phantomStoreThreshold < 1 ||
    (r.phantomDailyBudget !== undefined && !(Number.isInteger(r.phantomDailyBudget) && r.phantomDailyBudget >= 1))
  ) {
    throw new NotifierError(`invalid notify rules: ${JSON.stringify(r)}`);
  }
  const { kafka, mailer, sentry } = deps;
  const now = deps.now ?? Date.now;
  const rules = createNotifyRules(options.rules);
  const log = deps.logger.child({ component: 'notifier', groupId });
  const topicOf = (t: TopicName) => `${prefix}${t}`;

  let loop: ConsumeLoop | undefined;
  let started = false;
  let stopping = false;
  let stopped: Promise<void> | undefined;

  async function decoders(): Promise<Map<string, Decoder>> {
    const [runs, quarantine, alerts] = await Promise.all([
      createTopicCodec<EtlRun>(deps.registry, 'ops.etl-runs', topicOf('ops.etl-runs')),
      createTopicCodec<QuarantineRecord>(deps.registry, 'pos.inventario.quarantine', topicOf('pos.inventario.quarantine')),
      createTopicCodec<PhantomAlert>(deps.registry, 'alerts.phantom-zeros', topicOf('alerts.phantom-zeros')),
    ]);
    const decodeWith =
      <T>(codec: TopicCodec<T>, wrap: (v: T) => NotifyEvent): Decoder =>
      async (value) =>
        wrap(
          await withRetry(options.decodeRetry, () => codec.decode(value), {
            onRetry: (err, attempt, delayMs) =>
              log.warn(
                { topic: codec.topic, attempt, delayMs, reason: errorMessage(err) },
                'decoding needs the registry, which did not answer; retrying',
              ),
          }),
        );
    return new Map<string, Decoder>([
      [runs.topic, decodeWith(runs, (run) => ({ type: 'etl-run', run }))],
      [quarantine.topic, decodeWith(quarantine, (record) => ({ type: 'quarantine', record }))],
      [alerts.topic, decodeWith(alerts, (alert) => ({ type: 'phantom-alert', alert }))],
    ]);
  }

  async function deliver(mail: Mail, where: Record<string, unknown>, heartbeat: () => Promise<void>): Promise<void> {
    try {
      await mailer.send(mail, { heartbeat });
    } catch (err) {
      rules.deliveryFailed(mail, now());
      const status = err instanceof MailDeliveryError ? err.status : undefined;
      log.error(
        {
          ...where,
          kind: mail.kind,
          key: mail.key,
          ubicacion_id: mail.ubicacion_id,
          subject: mail.subject,
          status,
          reason: errorMessage(err),
        },
        'mail not delivered; going on',
      );
      sentry.capture({
        message: `notify: mail not delivered (${mail.kind}, ${mail.ubicacion_id}): ${errorMessage(err)}`,
        level: 'error',
        error: err instanceof Error ? err : new Error(String(err)),
        tags: {
          component: 'notify',
          kind: mail.kind,
          ubicacion_id: mail.ubicacion_id,
          ...(status === undefined ? {} : { status: String(status) }),
        },
        fingerprint: ['fluxion-notify-mail-failed', status === undefined ? 'network' : String(status)],
      });
    }
  }

  /** Tells the rules which of the store's open alerts (and this one) an operator dismissed. */
  async function forgetDismissed(alert: PhantomAlert, where: Record<string, unknown>): Promise<void> {
    if (!deps.dismissedAlerts) return;
    const ids = [...new Set([alert.alert_id, ...rules.openPhantomAlerts(alert.ubicacion_id)])];
    try {
      const dismissed = await deps.dismissedAlerts(ids);
      if (dismissed.length)
        log.info({ ...where, ubicacion_id: alert.ubicacion_id, dismissed }, 'dismissed alerts left out of phantom-zero mails');
      rules.dismissed(dismissed);
    } catch (err) {
      log.warn(
        { ...where, ubicacion_id: alert.ubicacion_id, reason: errorMessage(err) },
        'could not ask PostgreSQL which alerts were dismissed; a phantom-zero mail may list one',
      );
    }
  }

  async function handleRecord(record: ConsumedRecord, decode: Decoder, heartbeat: () => Promise<void>): Promise<void> {
    const where = { topic: record.topic, partition: record.partition, offset: record.offset };
    if (!record.value) return; // a tombstone of the compacted quarantine topic
    let event: NotifyEvent;
    try {
      event = await decode(record.value);
    } catch (err) {
      // Retriable errors got their retries inside decode: a registry still down is a crash
      // (the supervisor restarts from the committed offsets); bad bytes are skipped.
      if (err instanceof FluxionError && err.retriable) throw err;
      log.warn({ ...where, err }, 'record skipped: it does not decode (the PostgreSQL sink sends bad runs and alerts to their DLQ)');
      return;
    }
    // Stale alerts (a new group reading the topic's history) make no mail: PostgreSQL is not asked about them.
    if (event.type === 'phantom-alert' && event.alert.status === 'OPEN' && now() - eventTime(event).getTime() <= r.maxAgeMs)
      await forgetDismissed(event.alert, where);
    const decision = rules.decide(event, now());
    const ubicacion_id =
      event.type === 'etl-run'
        ? event.run.ubicacion_id
        : event.type === 'quarantine'
          ? event.record.ubicacion_id
          : event.alert.ubicacion_id;
    if (decision.ignored) log.debug({ ...where, ubicacion_id, ignored: decision.ignored }, 'nothing to notify');
    for (const m of decision.throttled)
      log.info({ ...where, ubicacion_id, kind: m.kind, key: m.key, subject: m.subject }, 'mail held back by the throttle');
    if (decision.sentry) {
      sentry.capture(decision.sentry);
      if (sentry.enabled) log.info({ ...where, ubicacion_id, tags: decision.sentry.tags }, 'failed run reported to Sentry');
    }
    for (const mail of decision.send) await deliver(mail, where, heartbeat);
  }

  /**
   * At least once: each record is one slice, handled (mailed) then resolved; the batch's
   * offsets are committed after its mails went. A revoked partition's new owner starts from
   * the last commit: its records may be notified twice, never lost.
   */
  function atLeastOnce(decode: Map<string, Decoder>): CommitStrategy {
    return {
      async pending(batch) {
        if (!decode.has(batch.topic)) throw new NotifierError(`no decoder for topic ${batch.topic}`);
        return batch.records;
      },
      async commit(batch, [record], ctx) {
        await handleRecord(record!, decode.get(batch.topic)!, () => ctx.control.heartbeat());
        return true;
      },
      async batchDone(batch, last, ctx) {
        try {
          await ctx.consumer().commit(batch.topic, batch.partition, (BigInt(last) + 1n).toString());
        } catch (err) {
          log.warn(
            { topic: batch.topic, partition: batch.partition, offset: last, err },
            'offset commit failed: these records may be notified again after a rebalance or restart',
          );
        }
      },
      // Nothing is tied to one consumer: the throttle and the phantom windows live on.
      tearDown: async () => undefined,
    };
  }

  async function shutdown(): Promise<void> {
    stopping = true;
    await loop?.stop();
    await sentry.flush().catch(() => false);
  }

  return {
    groupId,
    async run() {
      if (started) throw new NotifierError('the notifier is already running');
      started = true;
      const decode = await decoders();
      if (stopping) return; // stopped while the codecs were being prepared
      const topics = NOTIFY_TOPICS.map(topicOf);
      loop = createConsumeLoop(kafka, {
        name: 'notifier',
        logger: deps.logger,
        consumer: { groupId, readCommitted: true, sessionTimeoutMs: options.sessionTimeoutMs, maxBytes: options.maxBytes },
        topics,
        maxBatch: 1,
        strategy: atLeastOnce(decode),
      });
      log.info(
        {
          topics,
          mails: mailer.delivering ? 'sent' : 'logged',
          sentry: sentry.enabled,
          throttleMinutes: options.rules.throttleMs / 60_000,
          phantomStoreThreshold: options.rules.phantomStoreThreshold,
          phantomDailyBudget: options.rules.phantomDailyBudget,
          phantomWindowMinutes: options.rules.phantomWindowMs / 60_000,
          maxAgeMinutes: options.rules.maxAgeMs / 60_000,
        },
        'notifier starting',
      );
      try {
        await loop.run();
      } catch (error) {
        const err = new NotifierError(`notifier: ${errorMessage(error).replace(/^notifier: /, '')}`, { cause: error });
        sentry.capture({ message: err.message, level: 'fatal', error: err, tags: { component: 'notify' } });
        await sentry.flush().catch(() => false);
        throw err;
      }
    },
    async stop() {
      log.info('notifier stopping');
      stopped ??= shutdown();
      await stopped;
      log.info('notifier stopped');
    },
  };
}
