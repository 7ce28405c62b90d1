/**
 * A job that fails as a whole mails the operators itself. Per-store failures reach mail
 * through ops.etl-runs and the notifier; a job that cannot reach Kafka or the registry cannot
 * publish those records, and an ABC recalculation has none: without this, both reached Sentry
 * only. Used by `fluxion extract`, `fluxion abc recalc` (cli/) and `fluxion schedule`
 * (ops/scheduler.ts), through the same SendGrid transport as the notifier (core/mail/).
 *
 * What counts as failing as a whole (`jobFailureOf`, `jobFailureOfOutcomes`):
 * - the job threw (the registry did not answer before any store was read, PostgreSQL was
 *   unreachable for the ABC recalculation, the recalculation itself failed); usage and
 *   configuration errors are the caller's, printed to them, and not mailed;
 * - or a store failed because of our own services, not its POS: Kafka, the registry
 *   (SERVICE_UNAVAILABLE, KAFKA_AUTH, REGISTRY_AUTH, TOPIC_LAYOUT): its run record could not
 *   be published either, so the notifier will not hear of it;
 * - or a store failed at its POS and its run record could not be published (Kafka down at the
 *   same time): the same blindness, whatever the store's own error.
 *
 * Throttled like the notifier's mails (core/throttle.ts): at most one mail per key per
 * FLUXION_NOTIFY_THROTTLE_MINUTES, the next one saying how many were held back. The key is
 * job/service/error class (`inventario/kafka/SERVICE_UNAVAILABLE`): Kafka down for three hours
 * mails the inventario job three times an hour-long throttle apart, not six times an hour,
 * while a different failure of the same job still mails at once.
 *
 * Where the throttle lives: a one-shot job in a fresh container has no memory, and the
 * failing service may be the one that would hold it. So it is kept in two places, read from
 * both (the newer entry wins) and written to both, each best-effort:
 * - PostgreSQL `avisos_trabajos` (sql/postgres/007_avisos_trabajos.sql): shared by every
 *   container and every run, survives restarts; unavailable exactly when PostgreSQL is the
 *   failure (or the database is not migrated);
 * - a JSON file (FLUXION_JOB_ALERT_STATE_FILE): survives the run on the same host or volume,
 *   whatever is down. A container without a persistent volume loses it; with PostgreSQL down
 *   as well, such a job mails once per run: too many mails rather than none.
 * A mail SendGrid did not take is not remembered, so the next failure mails again. Mailing
 * never changes a command's exit code or the error it reports.
 */
import type { FluxionConfig } from '../core/config/environment.ts';
import { ConfigError, FluxionError, UsageError, errorMessage, failedServiceOf, type OurService } from '../core/errors.ts';
import type { StoreOutcome } from '../core/etl-run.ts';
import { DEFAULT_LOCALE, defineMessages, type Locale } from '../core/i18n.ts';
import { scrubSecrets, type Logger } from '../core/logger.ts';
import { formatInstant, formatMinutes, mailTable, subjectPrefix } from '../core/mail/format.ts';
import { createMailer, type Mailer, type MailMessage } from '../core/mail/sendgrid.ts';
import type { Pool } from '../core/postgres.ts';
import { admit, type ThrottleEntry } from '../core/throttle.ts';
import { fileThrottleMemory, postgresThrottleMemory, type ThrottleMemory } from './job-failure-throttle.ts';

// The throttle's memory lives in ops/job-failure-throttle.ts; its names stay importable from here.
export { fileThrottleMemory, postgresThrottleMemory, type ThrottleMemory } from './job-failure-throttle.ts';

/** The service a failure is about. */
export type FailedService = 'kafka' | 'registry' | 'postgres' | 'job';

export interface JobFailure {
  /** The scheduled job's name (inventario, ventas, ventas-recovery, abc). */
  job: string;
  service: FailedService;
  /** The error's code (SERVICE_UNAVAILABLE, ABC_RECALC, ...). */
  errorClass: string;
  /** The error, secrets scrubbed. */
  message: string;
  /** Stores whose run could not be published (extractions). */
  stores: string[];
}

/** Error classes of a store's run that mean "our services failed", not its POS. */
export const SERVICE_ERROR_CLASSES: ReadonlySet<string> = new Set(['SERVICE_UNAVAILABLE', 'KAFKA_AUTH', 'REGISTRY_AUTH', 'TOPIC_LAYOUT']);

/** The service a failure names: the one its adapter set (core/errors.ts failedServiceOf), else the job itself. */
export function serviceOf(service: OurService | null | undefined): FailedService {
  return service ?? 'job';
}

/** A thrown error as a whole-job failure; null for the caller's own mistakes (usage, configuration). */
export function jobFailureOf(job: string, err: unknown): JobFailure | null {
  if (err instanceof UsageError || err instanceof ConfigError) return null;
  const errorClass = err instanceof FluxionError ? err.code : 'UNEXPECTED';
  const message = scrubSecrets(errorMessage(err));
  return { job, service: serviceOf(failedServiceOf(err)), errorClass, message, stores: [] };
}

/** What the job-failure mail reads of a store's outcome. */
type StoreResult = Pick<StoreOutcome, 'ubicacionId' | 'status' | 'errorClass' | 'errorMessage' | 'errorService' | 'unrecorded'>;

/**
 * The stores that failed because of Kafka or the registry, or whose failure could not be
 * recorded on ops.etl-runs (a POS failure during a Kafka outage), as one failure; null when
 * none did. The error named is our service's, since that is what kept the notifier blind.
 */
export function jobFailureOfOutcomes(job: string, outcomes: readonly StoreResult[]): JobFailure | null {
  const failed = outcomes.flatMap((o) => {
    if (o.status !== 'FAILED') return [];
    if (o.unrecorded)
      return [
        {
          ubicacionId: o.ubicacionId,
          errorClass: o.unrecorded.errorClass,
          errorMessage: o.unrecorded.errorMessage,
          errorService: o.unrecorded.errorService,
        },
      ];
    if (o.errorClass !== null && SERVICE_ERROR_CLASSES.has(o.errorClass))
      return [{ ubicacionId: o.ubicacionId, errorClass: o.errorClass, errorMessage: o.errorMessage, errorService: o.errorService }];
    return [];
  });
  if (failed.length === 0) return null;
  const first = failed[0]!;
  const message = scrubSecrets(first.errorMessage ?? first.errorClass!);
  return {
    job,
    service: serviceOf(first.errorService),
    errorClass: first.errorClass!,
    message,
    stores: failed.map((o) => o.ubicacionId),
  };
}

export const jobAlertKey = (f: Pick<JobFailure, 'job' | 'service' | 'errorClass'>): string => `${f.job}/${f.service}/${f.errorClass}`;

// ---- the mail --------------------------------------------------------------------------------

const en = {
  serviceKafka: 'Kafka unreachable',
  serviceRegistry: 'schema registry unreachable',
  servicePostgres: 'PostgreSQL unreachable',
  serviceJob: 'the job failed',
  subject: (job: string, what: string, errorClass: string) => `job ${job} failed as a whole: ${what} (${errorClass})`,
  intro: (job: string) =>
    `The ${job} job failed as a whole: what it produces was not published, and the per-store mails of the notifier will not come for it.`,
  adviceKafka:
    'Kafka did not answer: no store of this run could publish its data or its run record. Check the brokers (KAFKA_BROKERS, their ' +
    'containers or hosts, the network); nothing is lost at the stores: the next run reads them again in full.',
  adviceRegistry:
    'The schema registry did not answer: nothing could be encoded, so nothing was published. Check the registry (SCHEMA_REGISTRY_URL) ' +
    'and that it can reach Kafka; the next run tries again.',
  advicePostgres:
    'PostgreSQL could not be reached: productos_abc_cache (or what this job writes) stays as it was. Check the database ' +
    '(DATABASE_URL, its host, disk and connections); once it is back, run the job again or wait for the next scheduled run.',
  adviceJob:
    'Read the error above; `fluxion doctor` checks every service this job needs. The job runs again at its next scheduled time, or ' +
    'now by hand.',
  stores: 'stores not published',
  heldBack: (n: number, since: string, every: string) =>
    `${n} more failure(s) of this job for the same cause were not mailed since ${since} (at most one mail per job and cause every ` +
    `${every}).`,
  footer: (environment: string, key: string) =>
    `--\nFluxion Stream (${environment}), throttle key ${key}. Sentry has the run too (its cron monitor).`,
  lJob: 'job',
  lService: 'service',
  lErrorClass: 'error class',
  lError: 'error',
  lAt: 'at',
};

export const jobMailMessages = defineMessages<typeof en>({
  en,
  es: {
    serviceKafka: 'Kafka inaccesible',
    serviceRegistry: 'registro de esquemas inaccesible',
    servicePostgres: 'PostgreSQL inaccesible',
    serviceJob: 'el trabajo falló',
    subject: (job, what, errorClass) => `el trabajo ${job} falló por completo: ${what} (${errorClass})`,
    intro: (job) =>
      `El trabajo ${job} falló por completo: lo que produce no se publicó, y los correos por tienda del notificador no llegarán por él.`,
    adviceKafka:
      'Kafka no respondió: ninguna tienda de esta corrida pudo publicar sus datos ni el registro de su corrida. Revise los brokers ' +
      '(KAFKA_BROKERS, sus contenedores o servidores, la red); en las tiendas no se pierde nada: la próxima corrida las vuelve a leer ' +
      'completas.',
    adviceRegistry:
      'El registro de esquemas no respondió: no se pudo codificar nada, así que no se publicó nada. Revise el registro ' +
      '(SCHEMA_REGISTRY_URL) y que llegue a Kafka; la próxima corrida lo intenta de nuevo.',
    advicePostgres:
      'No se pudo conectar a PostgreSQL: productos_abc_cache (o lo que escribe este trabajo) queda como estaba. Revise la base de ' +
      'datos (DATABASE_URL, su servidor, disco y conexiones); cuando vuelva, corra el trabajo de nuevo o espere la próxima corrida ' +
      'programada.',
    adviceJob:
      'Lea el error de arriba; `fluxion doctor` revisa cada servicio que este trabajo necesita. El trabajo vuelve a correr a su ' +
      'próxima hora programada, o ahora a mano.',
    stores: 'tiendas no publicadas',
    heldBack: (n, since, every) =>
      `${n} falla(s) más de este trabajo por la misma causa no se enviaron desde ${since} (a lo sumo un correo por trabajo y causa ` +
      `cada ${every}).`,
    footer: (environment, key) =>
      `--\nFluxion Stream (${environment}), clave de limitación ${key}. Sentry también tiene la corrida (su monitor cron).`,
    lJob: 'trabajo',
    lService: 'servicio',
    lErrorClass: 'clase de error',
    lError: 'error',
    lAt: 'cuándo',
  },
});

export interface JobMailOptions {
  locale?: Locale;
  environment?: string;
  throttleMs: number;
  nowMs: number;
  heldBack?: { count: number; sinceMs: number | null };
}

export function jobFailureMail(f: JobFailure, o: JobMailOptions): MailMessage {
  const m = jobMailMessages(o.locale ?? DEFAULT_LOCALE);
  const key = jobAlertKey(f);
  const what = { kafka: m.serviceKafka, registry: m.serviceRegistry, postgres: m.servicePostgres, job: m.serviceJob }[f.service];
  const advice = { kafka: m.adviceKafka, registry: m.adviceRegistry, postgres: m.advicePostgres, job: m.adviceJob }[f.service];
  const held =
    o.heldBack && o.heldBack.count > 0
      ? m.heldBack(o.heldBack.count, formatInstant(o.heldBack.sinceMs ?? o.nowMs), formatMinutes(o.throttleMs))
      : null;
  const text = [
    m.intro(f.job),
    '',
    mailTable([
      [m.lJob, f.job],
      [m.lService, f.service],
      [m.lErrorClass, f.errorClass],
      [m.lError, f.message],
      [m.stores, f.stores.join(', ')],
      [m.lAt, formatInstant(o.nowMs)],
    ]),
    '',
    advice,
    ...(held ? ['', held] : []),
    '',
    m.footer(o.environment ?? 'local', key),
  ].join('\n');
  return { kind: 'JOB_FAILED', key, subject: `${subjectPrefix(o.environment)} ${m.subject(f.job, what, f.errorClass)}`, text };
}

// ---- mailing a failure -----------------------------------------------------------------------

export interface JobAlerts {
  /** Mails the failure unless the throttle holds it back; never throws. */
  failed(failure: JobFailure): Promise<'sent' | 'held-back' | 'not-delivered'>;
}

export interface JobAlertsDeps {
  /** Made when a failure is to be mailed (SendGrid with a key, the log without). */
  mailer: () => Promise<Mailer>;
  memories: ThrottleMemory[];
  logger: Logger;
  throttleMs: number;
  locale?: Locale;
  environment?: string;
  now?: () => number;
}

export function createJobAlerts(deps: JobAlertsDeps): JobAlerts {
  const log = deps.logger.child({ component: 'job-alerts' });
  const now = deps.now ?? Date.now;
  let queue: Promise<unknown> = Promise.resolve();

  async function recall(key: string): Promise<ThrottleEntry | null> {
    let newest: ThrottleEntry | null = null;
    for (const memory of deps.memories) {
      try {
        const e = await memory.get(key);
        if (e && (!newest || e.lastSentMs > newest.lastSentMs || (e.lastSentMs === newest.lastSentMs && e.heldBack > newest.heldBack)))
          newest = e;
      } catch (err) {
        log.warn(
          { memory: memory.name, key, reason: scrubSecrets(errorMessage(err)) },
          'the mail throttle could not be read there; using the others',
        );
      }
    }
    return newest;
  }

  async function remember(key: string, entry: ThrottleEntry): Promise<void> {
    for (const memory of deps.memories) {
      try {
        await memory.put(key, entry);
      } catch (err) {
        log.warn({ memory: memory.name, key, reason: scrubSecrets(errorMessage(err)) }, 'the mail throttle could not be written there');
      }
    }
  }

  async function handle(f: JobFailure): Promise<'sent' | 'held-back' | 'not-delivered'> {
    const key = jobAlertKey(f);
    const nowMs = now();
    const before = await recall(key);
    const { admission, entry } = admit(before, nowMs, deps.throttleMs);
    if (!admission.admitted) {
      await remember(key, entry);
      log.info(
        { key, job: f.job, heldBack: admission.heldBack, nextAt: new Date(admission.nextMs).toISOString() },
        'job failure mail held back by the throttle',
      );
      return 'held-back';
    }
    const mail = jobFailureMail(f, {
      locale: deps.locale,
      environment: deps.environment,
      throttleMs: deps.throttleMs,
      nowMs,
      heldBack: { count: admission.heldBack, sinceMs: admission.heldBackSinceMs },
    });
    try {
      await (await deps.mailer()).send(mail);
    } catch (err) {
      // Not remembered: the next failure mails again.
      log.error({ key, job: f.job, subject: mail.subject, reason: errorMessage(err) }, 'job failure mail not delivered');
      return 'not-delivered';
    }
    await remember(key, entry);
    log.info({ key, job: f.job, subject: mail.subject }, 'job failure mailed');
    return 'sent';
  }

  return {
    failed(failure) {
      // One at a time: two failures of one process never read the same throttle entry.
      const done = queue.then(() => handle(failure));
      queue = done.catch(() => undefined);
      return done.catch((err: unknown) => {
        log.error({ err, job: failure.job }, 'job failure mail failed');
        return 'not-delivered' as const;
      });
    },
  };
}

/** The alerts of a command: mail settings, locale and throttle from the configuration; PostgreSQL when DATABASE_URL is set. */
export function jobAlertsFromConfig(config: FluxionConfig, logger: Logger, pool: () => Pool | undefined): JobAlerts {
  let mailer: Promise<Mailer> | undefined;
  const memories: ThrottleMemory[] = [];
  const p = pool();
  if (p) memories.push(postgresThrottleMemory(p));
  memories.push(fileThrottleMemory(config.notify.jobAlertStateFile));
  return createJobAlerts({
    mailer: () => (mailer ??= createMailer(config.notify, logger, { category: 'fluxion-job' })),
    memories,
    logger,
    throttleMs: config.notify.throttleMs,
    locale: config.locale,
    environment: config.environment,
  });
}

/**
 * Runs a job; when it fails as a whole, mails (awaited, so a one-shot command does not exit
 * first) and returns or rethrows exactly what the job did.
 */
export async function withFailureMail<T>(
  alerts: JobAlerts,
  job: string,
  run: () => Promise<T>,
  failureOf: (result: T) => JobFailure | null = () => null,
): Promise<T> {
  let result: T;
  try {
    result = await run();
  } catch (err) {
    const failure = jobFailureOf(job, err);
    if (failure) await alerts.failed(failure);
    throw err;
  }
  const failure = failureOf(result);
  if (failure) await alerts.failed(failure);
  return result;
}
