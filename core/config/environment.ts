/**
 * Process configuration from the environment, validated in one place before any I/O.
 *
 * Each variable is declared once, as a zod schema carrying its default, its description and
 * whether it is secret (core/config/env-var.ts). This module declares the shared ones: Kafka,
 * the schema registry, PostgreSQL, topics, the store list, locale, logging, Sentry and mail
 * delivery. Each component declares its own in its config.ts; cli/config.ts composes them all
 * into `loadConfig` and `ENV_VARS` (core imports no component), and docs/configuration.md is
 * generated from them (`npm run docs:config`).
 *
 * Service addresses are optional at load and demanded by the commands that use them, so that
 * `fluxion migrate` does not ask for Kafka.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { DEFAULT_LOCALE, LOCALES, type Locale } from '../i18n.ts';
import { projectPath } from '../paths.ts';
import { defineSection } from './compose.ts';
import { commaList, EMAIL, envVarsOf, flag, minutes, secret, whenUnset } from './env-var.ts';
import { securityConfig, type BasicAuthConfig, type KafkaSaslConfig, type KafkaTlsConfig } from './security.ts';
import { loadUbicacionesFile, resolveUbicacion, type EtlEnvironment, type Ubicacion } from './ubicaciones.ts';

export type { EnvVarSpec } from './env-var.ts';
export type { BasicAuthConfig, KafkaSaslConfig, KafkaSaslMechanism, KafkaTlsConfig } from './security.ts';

const httpUrl = () => z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });

/** The services every command may use, and how it reports. */
export const CORE_ENV = {
  ETL_ENVIRONMENT: z
    .enum(['local', 'production'])
    .default('local')
    .describe('`local` (simulators on this machine) or `production` (stores over the VPN)'),
  KAFKA_BROKERS: z
    .string()
    .optional()
    .transform((s) => (s ? commaList(s) : undefined))
    .refine((list) => list === undefined || list.every((b) => /^[^\s:]+:\d{1,5}$/.test(b)), 'must be host:port[,host:port...]')
    .describe('comma-separated `host:port` bootstrap brokers'),
  KAFKA_CLIENT_ID: z.string().min(1).default('fluxion').describe('client id prefix sent to Kafka'),
  KAFKA_SSL: flag()
    .prefault('false')
    .describe('`true`: TLS to every broker, certificates verified against the system CAs or `KAFKA_SSL_CA_FILE`'),
  KAFKA_SSL_CA_FILE: whenUnset(
    z.string().optional().describe("PEM file of the CA that signed the brokers' certificates (read at start; needs `KAFKA_SSL=true`)"),
    'the system CAs',
  ),
  KAFKA_SSL_REJECT_UNAUTHORIZED: flag()
    .prefault('true')
    .describe('`false` accepts certificates that do not verify: a test cluster only, and every process logs a warning saying so'),
  KAFKA_SASL_MECHANISM: z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.enum(['plain', 'scram-sha-256', 'scram-sha-512'], { error: 'must be plain, scram-sha-256 or scram-sha-512' }))
    .optional()
    .describe('`plain`, `scram-sha-256` or `scram-sha-512` (any case); unset: no authentication'),
  KAFKA_SASL_USERNAME: z.string().optional().describe('SASL user; required with the mechanism'),
  KAFKA_SASL_PASSWORD: secret(z.string().optional().describe('SASL password; required with the mechanism')),
  SCHEMA_REGISTRY_URL: httpUrl()
    .optional()
    .refine(
      (u) => u === undefined || !/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(u),
      'must not hold credentials: put them in SCHEMA_REGISTRY_USERNAME and SCHEMA_REGISTRY_PASSWORD',
    )
    .describe('base URL of the Confluent-API schema registry (no credentials in it)'),
  SCHEMA_REGISTRY_USERNAME: z
    .string()
    .optional()
    .describe('registry HTTP basic-auth user (e.g. a Confluent Cloud API key); unset: no authentication'),
  SCHEMA_REGISTRY_PASSWORD: secret(z.string().optional().describe('registry basic-auth password; required with the user')),
  DATABASE_URL: secret(
    z
      .string()
      .optional()
      .refine((s) => s === undefined || /^postgres(ql)?:\/\//.test(s), 'must start with postgres:// or postgresql://')
      .describe('`postgres://user:password@host:port/db`'),
  ),
  FLUXION_TOPIC_PARTITIONS: z.coerce
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(6)
    .describe('partitions of every topic (all topics share it: records are placed by ubicacion)'),
  FLUXION_TOPIC_PREFIX: z
    .string()
    .regex(/^[a-zA-Z0-9._-]*$/, 'may hold only letters, digits, . _ -')
    .default('')
    .describe('prefix of every topic and subject (isolates tests and environments sharing a cluster)'),
  FLUXION_UBICACIONES_FILE: z.string().min(1).default('config/ubicaciones.yaml').describe('the store list'),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('pino level: fatal, error, warn, info, debug, trace'),
  FLUXION_LOCALE: z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.enum(LOCALES, { error: 'must be es (Spanish) or en (English)' }))
    .prefault(DEFAULT_LOCALE)
    .describe('language of what operators read (mails, the dashboard): `es` or `en`; logs and metric names stay English'),
  SENTRY_DSN: secret(z.string().trim().optional().describe("Sentry DSN for cron check-ins and the notifier's error events (unset: off)")),
  SENTRY_ENVIRONMENT: whenUnset(
    z.string().trim().optional().describe('environment name reported to Sentry'),
    'the value of `ETL_ENVIRONMENT`',
  ),
  SENDGRID_API_KEY: secret(
    z
      .string()
      .optional()
      .refine((s) => s === undefined || /^SG\.\S+$/.test(s.trim()), 'must be a SendGrid API key (starts with SG.)')
      .transform((s) => s?.trim())
      .describe('mail: SendGrid API key (`SG.…`); unset: mails are logged, not sent'),
  ),
  SENDGRID_BASE_URL: whenUnset(
    httpUrl().optional().describe('mail: SendGrid API base URL (a proxy, or a fake in tests)'),
    "SendGrid's, `https://api.sendgrid.com/`",
  ),
  FLUXION_NOTIFY_FROM: z
    .string()
    .optional()
    .transform((s) => s?.trim())
    .refine(
      (s) => s === undefined || EMAIL.test(s) || (/^[^<>]*<[^<>]+>$/.test(s) && EMAIL.test(s.slice(s.indexOf('<') + 1, -1))),
      'must be an address (etl@example.com) or a name and an address (Fluxion <etl@example.com>)',
    )
    .describe('mail: sender (`etl@example.com` or `Fluxion <etl@example.com>`), verified in SendGrid; required with the key'),
  FLUXION_NOTIFY_TO: z
    .string()
    .optional()
    .transform((s) => (s ? commaList(s) : []))
    .refine((list) => list.every((a) => EMAIL.test(a)), {
      error: (issue) =>
        `must be comma-separated addresses; not an address: ${(issue.input as string[])
          .filter((a) => !EMAIL.test(a))
          .map((a) => JSON.stringify(a))
          .join(', ')}`,
    })
    .describe('mail: comma-separated recipients of every mail; required with the key'),
  FLUXION_NOTIFY_THROTTLE_MINUTES: minutes(7 * 24 * 60)
    .default(60)
    .describe('mail: at most one mail per store and kind (the notifier), or per job and error class (a failed job), in this many minutes'),
};

export const CORE_ENV_VARS = envVarsOf(CORE_ENV);

const MINUTE_MS = 60_000;

/** Mail delivery (core/mail/sendgrid.ts) and the throttle every mailer shares; components add NotifySettings. */
export interface NotifyConfig extends NotifySettings {
  /** SendGrid API key, or undefined: mails are logged, not sent. Not enumerable: never in a log or a dump of the config. */
  readonly sendgridApiKey?: string;
  /** Undefined: SendGrid's own (https://api.sendgrid.com/). */
  sendgridBaseUrl?: string;
  from?: string;
  to: string[];
  throttleMs: number;
}

/**
 * The notify settings components declare (sinks/config.ts, ops/config.ts add theirs by
 * declaration merging: core names no component's setting).
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled by declaration merging
export interface NotifySettings {}

/** The configuration parts components build (each component's config.ts merges its own in). */
// biome-ignore lint/suspicious/noEmptyInterface: filled by declaration merging
export interface ComponentConfigs {}

export interface CoreConfig {
  environment: EtlEnvironment;
  kafka: { brokers?: string[]; clientId: string; ssl?: KafkaTlsConfig; sasl?: KafkaSaslConfig };
  schemaRegistryUrl?: string;
  /** Basic auth for the registry, or undefined. */
  schemaRegistryAuth?: BasicAuthConfig;
  databaseUrl?: string;
  topics: { partitions: number; prefix: string };
  ubicacionesFile: string;
  logLevel: string;
  /** FLUXION_LOCALE: the language of mails and the dashboard. */
  locale: Locale;
  /** SENTRY_*: no DSN turns check-ins and error events off. */
  sentry: { dsn?: string; environment: string };
  notify: NotifyConfig;
}

/** What cli/config.ts loadConfig returns: core's part and every component's. */
export type FluxionConfig = CoreConfig & ComponentConfigs;

/** SENTRY_DSN and SENTRY_ENVIRONMENT, the latter falling back to ETL_ENVIRONMENT. */
function sentryConfig(e: { SENTRY_DSN?: string; SENTRY_ENVIRONMENT?: string; ETL_ENVIRONMENT: string }): CoreConfig['sentry'] {
  return { dsn: e.SENTRY_DSN || undefined, environment: e.SENTRY_ENVIRONMENT || e.ETL_ENVIRONMENT };
}

export const coreSection = defineSection(CORE_ENV, (e): CoreConfig => {
  const security = securityConfig(e);
  const notify = {
    sendgridBaseUrl: e.SENDGRID_BASE_URL,
    from: e.FLUXION_NOTIFY_FROM,
    to: e.FLUXION_NOTIFY_TO,
    throttleMs: e.FLUXION_NOTIFY_THROTTLE_MINUTES * MINUTE_MS,
  } as NotifyConfig;
  // As node-postgres does with passwords: readable, but absent from JSON, logs and inspection.
  Object.defineProperty(notify, 'sendgridApiKey', { value: e.SENDGRID_API_KEY, enumerable: false });
  return {
    environment: e.ETL_ENVIRONMENT,
    kafka: { brokers: e.KAFKA_BROKERS, clientId: e.KAFKA_CLIENT_ID, ssl: security.ssl, sasl: security.sasl },
    schemaRegistryUrl: e.SCHEMA_REGISTRY_URL,
    schemaRegistryAuth: security.registryAuth,
    databaseUrl: e.DATABASE_URL,
    topics: { partitions: e.FLUXION_TOPIC_PARTITIONS, prefix: e.FLUXION_TOPIC_PREFIX },
    ubicacionesFile: e.FLUXION_UBICACIONES_FILE,
    logLevel: e.LOG_LEVEL,
    locale: e.FLUXION_LOCALE,
    sentry: sentryConfig(e),
    notify,
  };
});

/** The Sentry settings alone, for callers that run before (or without) a full configuration. */
export function sentryFromEnv(env: NodeJS.ProcessEnv): CoreConfig['sentry'] {
  const { SENTRY_DSN, SENTRY_ENVIRONMENT, ETL_ENVIRONMENT } = CORE_ENV;
  const shape = { SENTRY_DSN, SENTRY_ENVIRONMENT, ETL_ENVIRONMENT: z.string().trim().default(ETL_ENVIRONMENT.def.defaultValue) };
  return sentryConfig(z.object(shape).parse(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== ''))));
}

const HOW_TO_START = 'start the local services with `scripts/services up` and run `eval "$(scripts/services env)"`';

/**
 * What `fluxion notify` demands beyond the shapes: with a SendGrid key, a sender and at least
 * one recipient (without a key, mails are only logged and both may be missing).
 */
export function requireNotifyDelivery(config: Pick<CoreConfig, 'notify'>): void {
  if (!config.notify.sendgridApiKey) return;
  const problems: string[] = [];
  if (!config.notify.from) {
    problems.push(
      'FLUXION_NOTIFY_FROM is not set: SENDGRID_API_KEY is, so mails need a sender verified in SendGrid ' +
        '(e.g. FLUXION_NOTIFY_FROM="Fluxion <etl@lagranja.example>")',
    );
  }
  if (config.notify.to.length === 0) {
    problems.push('FLUXION_NOTIFY_TO is not set: SENDGRID_API_KEY is, so mails need recipients (comma-separated addresses)');
  }
  if (problems.length > 0) throw new ConfigError(problems);
}

export function requireKafkaBrokers(config: Pick<CoreConfig, 'kafka'>): string[] {
  if (!config.kafka.brokers?.length) {
    throw new ConfigError([`KAFKA_BROKERS is not set: ${HOW_TO_START}, or set it to host:port`]);
  }
  return config.kafka.brokers;
}

export function requireSchemaRegistryUrl(config: Pick<CoreConfig, 'schemaRegistryUrl'>): string {
  if (!config.schemaRegistryUrl) {
    throw new ConfigError([`SCHEMA_REGISTRY_URL is not set: ${HOW_TO_START}, or set it to the registry's URL`]);
  }
  return config.schemaRegistryUrl;
}

export function requireDatabaseUrl(config: Pick<CoreConfig, 'databaseUrl'>): string {
  if (!config.databaseUrl) {
    throw new ConfigError([`DATABASE_URL is not set: ${HOW_TO_START}, or set it to postgres://user:password@host:port/db`]);
  }
  return config.databaseUrl;
}

/** The store list with each store's address for this environment. */
export function loadUbicaciones(config: Pick<CoreConfig, 'ubicacionesFile' | 'environment'>, cwd?: string): Ubicacion[] {
  const file = cwd ? resolve(cwd, config.ubicacionesFile) : projectPath(config.ubicacionesFile);
  return loadUbicacionesFile(file).map((u) => resolveUbicacion(u, config.environment));
}
