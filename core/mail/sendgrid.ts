/**
 * Mail out through SendGrid, for every component that mails operators: the notifier
 * (sinks/notifier.ts) and the jobs that fail as a whole (ops/job-failure-mail.ts). One
 * transport, so both retry, time out and hide the API key the same way:
 *
 * - 5xx, 429 (its Retry-After honoured, capped) and network errors are retried with backoff;
 *   a 4xx is final. Either way the caller gets a typed MailDeliveryError.
 * - SendGrid's raw error carries the request, whose Authorization header holds the key: it is
 *   never logged nor kept as `cause`; `SG.` keys in any message are masked.
 * - Without SENDGRID_API_KEY, mails are logged, not sent (`createLogMailer`).
 */
import type { NotifyConfig } from '../config/environment.ts';
import { FluxionError, errorMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { withRetry, type RetryPolicy } from '../retry.ts';

/** What a mailer sends. `kind` and `key` are for logs and SendGrid's categories, never shown to the reader. */
export interface MailMessage {
  kind: string;
  /** What the caller throttles the mail by (logged with it). */
  key: string;
  /** The store it is about, when it is about one. */
  ubicacion_id?: string;
  subject: string;
  text: string;
}

export class MailerError extends FluxionError {
  constructor(message: string, options: ConstructorParameters<typeof FluxionError>[1] = {}) {
    super(message, { code: 'MAILER', ...options });
  }
}

/** A mail SendGrid did not take. `status` is SendGrid's HTTP status (undefined: no answer). */
export class MailDeliveryError extends FluxionError {
  readonly status: number | undefined;
  constructor(message: string, options: ConstructorParameters<typeof FluxionError>[1] & { status?: number } = {}) {
    super(message, { code: options.status === undefined ? 'MAIL_DELIVERY' : `SENDGRID_HTTP_${options.status}`, ...options });
    this.status = options.status;
  }
}

export interface Mailer {
  /** True when mails really go out (SendGrid); false when they are only logged. */
  readonly delivering: boolean;
  /**
   * Delivers one mail; a MailDeliveryError once SendGrid refused it or retries ran out.
   * `heartbeat` is called before each wait between retries (the consumer's group session).
   */
  send(mail: MailMessage, options?: { heartbeat?: () => Promise<void> }): Promise<void>;
}

export interface SendGridMailerOptions {
  apiKey: string;
  /** Default SendGrid's own API. */
  baseUrl?: string;
  from: string;
  to: string[];
  logger: Logger;
  /** For 5xx, 429 and network errors (a 429's Retry-After wins). */
  retry?: RetryPolicy;
  /** One HTTP request (default MAIL_TIMEOUT_MS). */
  timeoutMs?: number;
  /** First SendGrid category of every mail (the second is the mail's kind); default fluxion-notify. */
  category?: string;
}

/**
 * Waits of about 1, 2, 4 and 8 s, and one request at most 10 s (`timeoutMs`): with a heartbeat
 * before each wait, the consumer stays well inside its 30 s group session while it retries.
 */
export const MAIL_RETRY: RetryPolicy = { retries: 4, initialDelayMs: 1_000, maxDelayMs: 10_000, factor: 2 };
export const MAIL_TIMEOUT_MS = 10_000;
/** A longer Retry-After is cut to this, for the same reason. */
const MAX_RETRY_AFTER_MS = 10_000;

const hideKeys = (text: string): string => text.replace(/SG\.[\w.-]+/g, 'SG.***');

/**
 * SendGrid's failures as our typed error, keeping only status, SendGrid's own error messages
 * and the network code: the raw error carries the request (its Authorization header holds the
 * API key), so it is never logged nor kept as `cause`.
 */
export function translateSendGridError(err: unknown, baseUrl: string): MailDeliveryError {
  const e = err as { code?: unknown; message?: unknown; response?: { headers?: Record<string, unknown>; body?: unknown } };
  if (typeof e?.code === 'number') {
    const status = e.code;
    const body = e.response?.body as { errors?: Array<{ message?: unknown; field?: unknown }> } | undefined;
    const detail = Array.isArray(body?.errors)
      ? body.errors.map((x) => `${String(x.message ?? '')}${x.field ? ` (${String(x.field)})` : ''}`).join('; ')
      : '';
    const retryAfter = Number(e.response?.headers?.['retry-after']);
    return new MailDeliveryError(hideKeys(`SendGrid answered HTTP ${status}${detail ? `: ${detail.slice(0, 300)}` : ''}`), {
      status,
      retriable: status === 429 || status >= 500,
      context: Number.isFinite(retryAfter) && retryAfter >= 0 ? { retryAfterMs: Math.min(retryAfter * 1000, MAX_RETRY_AFTER_MS) } : {},
    });
  }
  // A string code is the network's (ECONNREFUSED, ETIMEDOUT, ECONNABORTED on timeout): worth retrying.
  if (typeof e?.code === 'string') {
    return new MailDeliveryError(hideKeys(`SendGrid at ${baseUrl} could not be reached: ${e.code}: ${errorMessage(err)}`), {
      retriable: true,
    });
  }
  // Anything else was refused before sending (the helpers' checks of the mail itself).
  return new MailDeliveryError(hideKeys(`the mail was refused before sending: ${errorMessage(err)}`), { retriable: false });
}

/** Mails through @sendgrid/mail, with its own client (never the module-wide singleton). */
export async function createSendGridMailer(options: SendGridMailerOptions): Promise<Mailer> {
  if (!options.apiKey) throw new MailerError('a SendGrid mailer needs an API key');
  if (!options.from) throw new MailerError('a SendGrid mailer needs a sender (FLUXION_NOTIFY_FROM)');
  if (options.to.length === 0) throw new MailerError('a SendGrid mailer needs recipients (FLUXION_NOTIFY_TO)');
  const log = options.logger.child({ component: 'sendgrid' });
  // Loaded only when mails really go out.
  // The packages' typings declare only their singletons; the classes are named exports at run time.
  const [{ MailService }, { Client }] = (await Promise.all([import('@sendgrid/mail'), import('@sendgrid/client')])) as unknown as [
    { MailService: new () => typeof import('@sendgrid/mail') },
    { Client: new () => typeof import('@sendgrid/client') },
  ];
  const client = new Client();
  // setApiKey resets the base URL to SendGrid's: set ours after it.
  client.setApiKey(options.apiKey);
  const baseUrl = options.baseUrl ?? 'https://api.sendgrid.com/';
  if (options.baseUrl) client.setDefaultRequest('baseUrl', options.baseUrl);
  const service = new MailService();
  service.setClient(client);
  service.setTimeout(options.timeoutMs ?? MAIL_TIMEOUT_MS);
  const policy = options.retry ?? MAIL_RETRY;
  log.info({ baseUrl, from: options.from, to: options.to }, 'mails go out through SendGrid');

  return {
    delivering: true,
    async send(mail, sendOptions = {}) {
      const about = { kind: mail.kind, key: mail.key, ubicacion_id: mail.ubicacion_id };
      await withRetry(
        policy,
        async (attempt) => {
          try {
            const [response] = await service.send({
              from: options.from,
              to: options.to,
              subject: mail.subject,
              text: mail.text,
              categories: [options.category ?? 'fluxion-notify', mail.kind.toLowerCase()],
            });
            log.info({ ...about, status: response.statusCode, to: options.to, subject: mail.subject, attempt }, 'mail sent');
          } catch (err) {
            throw translateSendGridError(err, baseUrl);
          }
        },
        {
          onRetry: (err, attempt, delayMs) => {
            log.warn(
              { ...about, status: (err as MailDeliveryError).status, attempt, delayMs, reason: errorMessage(err) },
              'SendGrid did not take the mail; retrying',
            );
            void sendOptions.heartbeat?.().catch(() => undefined);
          },
        },
      );
    },
  };
}

/** Without SENDGRID_API_KEY: logs each mail it would send, and says so once at start. */
export function createLogMailer(options: { from?: string; to: string[]; logger: Logger }): Mailer {
  const log = options.logger.child({ component: 'mail-log' });
  log.warn('SENDGRID_API_KEY is not set: mails are logged, not sent');
  return {
    delivering: false,
    async send(mail) {
      log.info(
        {
          kind: mail.kind,
          key: mail.key,
          ubicacion_id: mail.ubicacion_id,
          from: options.from ?? null,
          to: options.to,
          subject: mail.subject,
        },
        `would send: ${mail.subject}`,
      );
      log.debug({ key: mail.key, text: mail.text }, 'would send this body');
    },
  };
}

/** SendGrid when the configuration has a key, the log otherwise. */
export async function createMailer(
  config: NotifyConfig,
  logger: Logger,
  options: { retry?: RetryPolicy; timeoutMs?: number; category?: string } = {},
): Promise<Mailer> {
  if (!config.sendgridApiKey) return createLogMailer({ from: config.from, to: config.to, logger });
  return createSendGridMailer({
    apiKey: config.sendgridApiKey,
    baseUrl: config.sendgridBaseUrl,
    from: config.from ?? '',
    to: config.to,
    logger,
    ...options,
  });
}
