/**
 * Process configuration from the environment, validated in one place before any I/O.
 * Every variable is documented here (this table feeds docs/configuration.md); service
 * addresses are optional at load and demanded by the commands that use them, so that
 * `fluxion migrate` does not ask for Kafka.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { scrubSecrets } from '../logger.ts';
import { loadUbicacionesFile, resolveUbicacion, type EtlEnvironment, type Ubicacion } from './ubicaciones.ts';
import { projectPath } from '../paths.ts';
import { DEFAULT_LOCALE, LOCALES, type Locale } from '../i18n.ts';

export interface EnvVarSpec {
  name: string;
  description: string;
  default?: string;
  secret?: boolean;
}

export const ENV_VARS: EnvVarSpec[] = [
  { name: 'ETL_ENVIRONMENT', description: 'local (simulators on this machine) or production (stores over the VPN)', default: 'local' },
  { name: 'KAFKA_BROKERS', description: 'comma-separated host:port list of Kafka bootstrap brokers' },
  { name: 'KAFKA_CLIENT_ID', description: 'client id prefix sent to Kafka', default: 'fluxion' },
  { name: 'KAFKA_SSL', description: 'true: connect to Kafka over TLS (managed clusters); the brokers\' certificates are verified against the system CAs or KAFKA_SSL_CA_FILE', default: 'false' },
  { name: 'KAFKA_SSL_CA_FILE', description: 'PEM file of the CA certificate(s) that signed the brokers\' certificates (a private CA); needs KAFKA_SSL=true', default: 'the system CAs' },
  { name: 'KAFKA_SSL_REJECT_UNAUTHORIZED', description: 'false: accept broker certificates that do not verify (a test cluster only; every process logs a warning); needs KAFKA_SSL=true', default: 'true' },
  { name: 'KAFKA_SASL_MECHANISM', description: 'plain, scram-sha-256 or scram-sha-512: authenticate to Kafka with SASL; unset: no authentication' },
  { name: 'KAFKA_SASL_USERNAME', description: 'SASL user; required with KAFKA_SASL_MECHANISM' },
  { name: 'KAFKA_SASL_PASSWORD', description: 'SASL password; required with KAFKA_SASL_MECHANISM', secret: true },
  { name: 'SCHEMA_REGISTRY_URL', description: 'base URL of the Confluent-API schema registry' },
  { name: 'SCHEMA_REGISTRY_USERNAME', description: 'schema registry HTTP basic-auth user; unset: no authentication' },
  { name: 'SCHEMA_REGISTRY_PASSWORD', description: 'schema registry HTTP basic-auth password; required with SCHEMA_REGISTRY_USERNAME', secret: true },
  { name: 'DATABASE_URL', description: 'PostgreSQL connection string (postgres://user:password@host:port/db)', secret: true },
  { name: 'FLUXION_TOPIC_PARTITIONS', description: 'partitions of every topic (all topics share it: records are placed by ubicacion)', default: '6' },
  { name: 'FLUXION_TOPIC_PREFIX', description: 'prefix added to every topic name (isolates tests and environments sharing a cluster)', default: '' },
  { name: 'FLUXION_UBICACIONES_FILE', description: 'path of the store list', default: 'config/ubicaciones.yaml' },
  { name: 'FLUXION_LOCALE', description: "language of what operators read (alert mails, the dashboard): es (Spanish) or en (English); logs and metric names stay English", default: 'es' },
  { name: 'FLUXION_JOB_ALERT_STATE_FILE', description: 'a job that fails as a whole (Kafka, the registry or PostgreSQL unreachable) mails at most once per job and error class per FLUXION_NOTIFY_THROTTLE_MINUTES; this file keeps that throttle when PostgreSQL is unreachable too', default: '.cache/job-alerts.json' },
  { name: 'FLUXION_OPERATOR', description: 'who an operator command records as its author (`fluxion alertas descartar`); `--por` overrides it', default: 'the OS user' },
  { name: 'LOG_LEVEL', description: 'pino level: fatal, error, warn, info, debug, trace', default: 'info' },
  { name: 'SENTRY_DSN', description: 'Sentry DSN for errors and cron check-ins; unset turns both off', secret: true },
  { name: 'SENTRY_ENVIRONMENT', description: 'environment name reported to Sentry', default: 'the value of ETL_ENVIRONMENT' },
  { name: 'FLUXION_SESSION_TIMEOUT_MS', description: 'consumer-group session of the processors: how long a dead instance holds its stores before another takes over', default: '30000' },
  { name: 'FLUXION_PROCESSOR_MAX_BATCH', description: 'input records per processor transaction', default: '500' },
  { name: 'FLUXION_STATE_DIR', description: "processors' local state stores (one directory per processor, group and partition; docs/state-stores.md): a cache of the state topics that makes a restart read only their tail. Safe to delete while the processor is stopped", default: '.cache/state' },
  { name: 'FLUXION_QUARANTINE_MAX_ZEROED_SHARE', description: "differ: a snapshot in which more than this share of the store's products with stock drop to 0 or vanish is quarantined", default: '0.3' },
  { name: 'FLUXION_QUARANTINE_GROUP_MAX_ZEROED_SHARE', description: 'differ: the same within one deposito, or one department of a deposito (a POS that read the whole group as 0)', default: '0.9' },
  { name: 'FLUXION_QUARANTINE_GROUP_MIN_PRODUCTS', description: 'differ: a deposito or department with fewer products with stock is not judged by the group share', default: '20' },
  { name: 'FLUXION_DEDUPE_RETENTION_DAYS', description: 'dedupe: days a sales line is remembered after its last read (then tombstoned)', default: '7' },
  { name: 'FLUXION_PHANTOM_FLIP_FLOP_RECOVERY', description: 'phantom FLIP_FLOP: share of the pre-zero quantity the stock must come back to', default: '0.8' },
  { name: 'FLUXION_PHANTOM_FLIP_FLOP_WINDOW', description: "phantom FLIP_FLOP: the product's changes within which it must come back", default: '3' },
  { name: 'FLUXION_PHANTOM_DROP_THRESHOLD', description: 'phantom UNEXPLAINED_DROP: smallest quantity whose drop to 0 is judged (calibrated on bench/phantom: 10 alerted real stockouts whose sales were not read yet)', default: '20' },
  { name: 'FLUXION_PHANTOM_DROP_SALES_SHARE', description: 'phantom UNEXPLAINED_DROP and FLIP_FLOP: sales below this share of the quantity do not explain it', default: '0.2' },
  { name: 'FLUXION_PHANTOM_DROP_RECENT_FALL_FACTOR', description: "phantom UNEXPLAINED_DROP: the quantity must also exceed this many times the stock's fall between the last two positive snapshots (0: off); a fast seller sells out before the ventas read that explains it", default: '2' },
  { name: 'FLUXION_PHANTOM_SELLING_AT_ZERO_MIN_SALES', description: 'phantom SELLING_AT_ZERO: units sold after the zero snapshot that open an alert', default: '1' },
  { name: 'FLUXION_PHANTOM_SELLING_AT_ZERO_MIN_MINUTES', description: 'phantom SELLING_AT_ZERO: minutes after the zero snapshot the last of those sales must come (0: any time); a receipt between two snapshots explains sales before the next one', default: '0' },
  { name: 'FLUXION_PHANTOM_SOURCES', description: 'phantom: the POS whose stock is judged, comma-separated (klk, stellar). The rules weigh stock against sales lines, which only KLK stores have', default: 'klk' },
  { name: 'FLUXION_PHANTOM_RULES', description: 'phantom: the rules that may open an alert, comma-separated (SELLING_AT_ZERO, FLIP_FLOP, UNEXPLAINED_DROP; `none` for none)', default: 'SELLING_AT_ZERO,FLIP_FLOP,UNEXPLAINED_DROP' },
  { name: 'FLUXION_SINK_MAX_BATCH', description: 'sink: records per PostgreSQL transaction', default: '5000' },
  { name: 'FLUXION_ABC_WINDOW_DAYS', description: 'ABC: business days of ventas the classes are computed from', default: '90' },
  { name: 'FLUXION_ABC_DEBOUNCE_MS', description: 'ABC: after the sink commits new ventas, recalculate at most once per this many milliseconds', default: '300000' },
  { name: 'SENDGRID_API_KEY', description: 'notify: SendGrid API key (SG....); unset: mails are logged, not sent', secret: true },
  { name: 'SENDGRID_BASE_URL', description: 'notify: base URL of the SendGrid API (a proxy, or a fake in tests)', default: 'https://api.sendgrid.com/' },
  { name: 'FLUXION_NOTIFY_FROM', description: 'notify: sender address, verified in SendGrid (`etl@example.com` or `Fluxion <etl@example.com>`); required with SENDGRID_API_KEY' },
  { name: 'FLUXION_NOTIFY_TO', description: 'notify: comma-separated recipient addresses of every mail; required with SENDGRID_API_KEY' },
  { name: 'FLUXION_NOTIFY_THROTTLE_MINUTES', description: 'notify: at most one mail per store and kind in this many minutes (the ones held back are counted in the next)', default: '60' },
  { name: 'FLUXION_NOTIFY_PHANTOM_STORE_THRESHOLD', description: 'notify: phantom-zero alerts opened in one store within the window that make a mail (1: every new alert, throttled and within the daily budget)', default: '1' },
  { name: 'FLUXION_NOTIFY_PHANTOM_WINDOW_MINUTES', description: "notify: the window (by the alerts' opened_at) in which they are counted", default: '60' },
  { name: 'FLUXION_NOTIFY_PHANTOM_DAILY_BUDGET', description: "notify: phantom-zero alerts mailed per store per store-local day (America/Caracas), most confident first; the rest are only counted (see `fluxion alertas listar`)", default: '10' },
  { name: 'FLUXION_NOTIFY_MAX_AGE_MINUTES', description: 'notify: events older than this when read are neither mailed nor sent to Sentry (a new group reads the topics from their beginning)', default: '1440' },
  { name: 'FLUXION_DASHBOARD_HOST', description: 'dashboard: address the HTTP server binds (0.0.0.0 in a container behind its port mapping)', default: '127.0.0.1' },
  { name: 'FLUXION_DASHBOARD_PORT', description: 'dashboard: port of the page, /api/*, /metrics, /healthz and the control API (`--port` overrides it)', default: '8080' },
  { name: 'FLUXION_DASHBOARD_SAMPLE_SECONDS', description: 'dashboard: seconds between two readings of offsets, lag and freshness (also the page refresh)', default: '30' },
  { name: 'FLUXION_DASHBOARD_HISTORY_HOURS', description: 'dashboard: hours of lag history kept in memory for the chart', default: '6' },
  { name: 'FLUXION_SYNC_TOKEN', description: 'control API: bearer token of POST /etl/sync and GET /etl/runs/:id (at least 16 characters); unset: the control API is off', secret: true },
];

/** The names of processors/phantom-rules.ts PhantomRule (core does not import components). */
const PHANTOM_RULE_NAMES = ['SELLING_AT_ZERO', 'FLIP_FLOP', 'UNEXPLAINED_DROP'] as const;
type PhantomRuleName = (typeof PHANTOM_RULE_NAMES)[number];

const share = z.coerce.number().gt(0, 'must be a share above 0').lte(1, 'must be a share up to 1');
const quantity = z
  .string()
  .regex(/^\d{1,15}(\.\d{1,3})?$/, 'must be a non-negative quantity with up to 3 decimals')
  .transform((s) => {
    const [int, frac = ''] = s.split('.');
    return `${BigInt(int!)}.${frac.padEnd(3, '0')}`;
  });

/** A bare e-mail address; the checks that matter (does it exist, is the sender verified) are SendGrid's. */
const EMAIL = /^[^\s@<>,;"]+@[^\s@<>,;"]+$/;
const minutes = (max: number) => z.coerce.number().gt(0, 'must be a number of minutes above 0').max(max);
/** true or false (any case), as a shell or a compose file writes it. */
const flag = z.string().trim().toLowerCase().pipe(z.enum(['true', 'false'], { error: 'must be true or false' })).transform((s) => s === 'true');
export type KafkaSaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';

const envSchema = z.object({
  ETL_ENVIRONMENT: z.enum(['local', 'production']).default('local'),
  KAFKA_BROKERS: z
    .string()
    .optional()
    .transform((s) => (s ? s.split(',').map((b) => b.trim()).filter(Boolean) : undefined))
    .refine((list) => list === undefined || list.every((b) => /^[^\s:]+:\d{1,5}$/.test(b)), 'must be host:port[,host:port...]'),
  KAFKA_CLIENT_ID: z.string().min(1).default('fluxion'),
  KAFKA_SSL: flag.default(false),
  KAFKA_SSL_CA_FILE: z.string().optional(),
  KAFKA_SSL_REJECT_UNAUTHORIZED: flag.default(true),
  KAFKA_SASL_MECHANISM: z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.enum(['plain', 'scram-sha-256', 'scram-sha-512'], { error: 'must be plain, scram-sha-256 or scram-sha-512' }))
    .optional(),
  KAFKA_SASL_USERNAME: z.string().optional(),
  KAFKA_SASL_PASSWORD: z.string().optional(),
  SCHEMA_REGISTRY_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
    .optional()
    .refine((u) => u === undefined || !/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(u), 'must not hold credentials: put them in SCHEMA_REGISTRY_USERNAME and SCHEMA_REGISTRY_PASSWORD'),
  SCHEMA_REGISTRY_USERNAME: z.string().optional(),
  SCHEMA_REGISTRY_PASSWORD: z.string().optional(),
  DATABASE_URL: z
    .string()
    .optional()
    .refine((s) => s === undefined || /^postgres(ql)?:\/\//.test(s), 'must start with postgres:// or postgresql://'),
  FLUXION_TOPIC_PARTITIONS: z.coerce.number().int().min(1).max(1000).default(6),
  FLUXION_TOPIC_PREFIX: z.string().regex(/^[a-zA-Z0-9._-]*$/, 'may hold only letters, digits, . _ -').default(''),
  FLUXION_UBICACIONES_FILE: z.string().min(1).default('config/ubicaciones.yaml'),
  FLUXION_OPERATOR: z.string().trim().min(1, 'must name a person (or be unset: the OS user)').optional(),
  FLUXION_LOCALE: z.string().trim().toLowerCase().pipe(z.enum(LOCALES, { error: 'must be es (Spanish) or en (English)' })).default(DEFAULT_LOCALE),
  FLUXION_JOB_ALERT_STATE_FILE: z.string().trim().min(1).default('.cache/job-alerts.json'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  FLUXION_SESSION_TIMEOUT_MS: z.coerce.number().int().min(1_000).max(300_000).default(30_000),
  FLUXION_PROCESSOR_MAX_BATCH: z.coerce.number().int().min(1).max(100_000).default(500),
  FLUXION_STATE_DIR: z.string().trim().min(1).default('.cache/state'),
  FLUXION_QUARANTINE_MAX_ZEROED_SHARE: share.default(0.3),
  FLUXION_QUARANTINE_GROUP_MAX_ZEROED_SHARE: share.default(0.9),
  FLUXION_QUARANTINE_GROUP_MIN_PRODUCTS: z.coerce.number().int().min(1).max(1_000_000).default(20),
  FLUXION_DEDUPE_RETENTION_DAYS: z.coerce.number().gt(0, 'must be a number of days above 0').max(3650).default(7),
  FLUXION_PHANTOM_FLIP_FLOP_RECOVERY: share.default(0.8),
  FLUXION_PHANTOM_FLIP_FLOP_WINDOW: z.coerce.number().int().min(1).max(1000).default(3),
  FLUXION_PHANTOM_DROP_THRESHOLD: quantity.default('20.000'),
  FLUXION_PHANTOM_DROP_SALES_SHARE: share.default(0.2),
  FLUXION_PHANTOM_DROP_RECENT_FALL_FACTOR: z.coerce.number().min(0, 'must be a factor, 0 (off) or more').max(1000).default(2),
  FLUXION_PHANTOM_SELLING_AT_ZERO_MIN_SALES: quantity.default('1.000'),
  FLUXION_PHANTOM_SELLING_AT_ZERO_MIN_MINUTES: z.coerce.number().min(0, 'must be a number of minutes, 0 or more').max(7 * 24 * 60).default(0),
  FLUXION_PHANTOM_SOURCES: z
    .string()
    .default('klk')
    .transform((s) => [...new Set(s.split(',').map((x) => x.trim().toUpperCase()).filter(Boolean))])
    .refine((list) => list.length > 0 && list.every((x) => x === 'KLK' || x === 'STELLAR'), 'must be klk, stellar or both, comma-separated')
    .transform((list) => list as Array<'KLK' | 'STELLAR'>),
  FLUXION_PHANTOM_RULES: z
    .string()
    .default('SELLING_AT_ZERO,FLIP_FLOP,UNEXPLAINED_DROP')
    .transform((s) => (s.trim().toLowerCase() === 'none' ? [] : s.split(',').map((r) => r.trim().toUpperCase()).filter(Boolean)))
    .refine((list) => list.every((r) => (PHANTOM_RULE_NAMES as readonly string[]).includes(r)), {
      error: (issue) => `must be rule names among ${PHANTOM_RULE_NAMES.join(', ')} (or none); unknown: ${(issue.input as string[]).filter((r) => !(PHANTOM_RULE_NAMES as readonly string[]).includes(r)).join(', ')}`,
    })
    .transform((list) => [...new Set(list)] as PhantomRuleName[]),
  FLUXION_SINK_MAX_BATCH: z.coerce.number().int().min(1).max(100_000).default(5_000),
  FLUXION_ABC_WINDOW_DAYS: z.coerce.number().int().min(1, 'must be at least 1 day').max(3660, 'must be at most 3660 days').default(90),
  FLUXION_ABC_DEBOUNCE_MS: z.coerce.number().int().min(0).max(86_400_000, 'must be at most a day').default(300_000),
  SENDGRID_API_KEY: z
    .string()
    .optional()
    .refine((s) => s === undefined || /^SG\.\S+$/.test(s.trim()), 'must be a SendGrid API key (starts with SG.)')
    .transform((s) => s?.trim()),
  SENDGRID_BASE_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  FLUXION_NOTIFY_FROM: z
    .string()
    .optional()
    .transform((s) => s?.trim())
    .refine((s) => s === undefined || EMAIL.test(s) || (/^[^<>]*<[^<>]+>$/.test(s) && EMAIL.test(s.slice(s.indexOf('<') + 1, -1))), 'must be an address (etl@example.com) or a name and an address (Fluxion <etl@example.com>)'),
  FLUXION_NOTIFY_TO: z
    .string()
    .optional()
    .transform((s) => (s ? s.split(',').map((a) => a.trim()).filter(Boolean) : []))
    .refine((list) => list.every((a) => EMAIL.test(a)), { error: (issue) => `must be comma-separated addresses; not an address: ${(issue.input as string[]).filter((a) => !EMAIL.test(a)).map((a) => JSON.stringify(a)).join(', ')}` }),
  FLUXION_NOTIFY_THROTTLE_MINUTES: minutes(7 * 24 * 60).default(60),
  FLUXION_NOTIFY_PHANTOM_STORE_THRESHOLD: z.coerce.number().int().min(1).max(1_000_000).default(1),
  FLUXION_NOTIFY_PHANTOM_WINDOW_MINUTES: minutes(7 * 24 * 60).default(60),
  FLUXION_NOTIFY_PHANTOM_DAILY_BUDGET: z.coerce.number().int().min(1).max(10_000).default(10),
  FLUXION_NOTIFY_MAX_AGE_MINUTES: minutes(90 * 24 * 60).default(1440),
  FLUXION_DASHBOARD_HOST: z.string().trim().min(1).default('127.0.0.1'),
  FLUXION_DASHBOARD_PORT: z.coerce.number().int().min(1, 'must be a port 1-65535').max(65535, 'must be a port 1-65535').default(8080),
  FLUXION_DASHBOARD_SAMPLE_SECONDS: z.coerce.number().int().min(1).max(3600).default(30),
  FLUXION_DASHBOARD_HISTORY_HOURS: z.coerce.number().gt(0).max(168, 'must be at most 168 hours (a week)').default(6),
  FLUXION_SYNC_TOKEN: z.string().trim().min(16, 'must be at least 16 characters (e.g. `openssl rand -hex 32`)').optional(),
});

export interface FluxionConfig {
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
  /** FLUXION_OPERATOR, or undefined: operator commands fall back to the OS user. */
  operator?: string;
  processors: {
    sessionTimeoutMs: number;
    maxBatch: number;
    /** FLUXION_STATE_DIR: root of the processors' state stores (processors/runtime/state-store.ts). */
    stateDir: string;
    quarantineMaxZeroedShare: number;
    quarantineGroupMaxZeroedShare: number;
    quarantineGroupMinProducts: number;
    dedupeRetentionDays: number;
    /** The shape of processors/phantom-rules.ts PhantomConfig (core does not import components). */
    phantom: {
      flipFlopRecovery: number;
      flipFlopWindowSnapshots: number;
      dropThreshold: string;
      dropSalesShare: number;
      dropRecentFallFactor: number;
      sellingAtZeroMinSales: string;
      sellingAtZeroMinMinutes: number;
      rules: readonly PhantomRuleName[];
      sources: ReadonlyArray<'KLK' | 'STELLAR'>;
    };
  };
  sink: { maxBatch: number };
  /** The shape of sinks/abc-recalc.ts AbcConfig. */
  abc: { windowDays: number; debounceMs: number };
  notify: NotifyConfig;
  dashboard: DashboardConfig;
}

/** `fluxion dashboard` (ops/dashboard/server.ts) and its control API (ops/control-api.ts). */
export interface DashboardConfig {
  host: string;
  port: number;
  sampleMs: number;
  historyMs: number;
  /** FLUXION_SYNC_TOKEN, or undefined: the control API is off. Not enumerable: never in a log or a dump of the config. */
  readonly syncToken?: string;
}

/** KAFKA_SSL=true: TLS to every broker. */
export interface KafkaTlsConfig {
  /** PEM of KAFKA_SSL_CA_FILE, or undefined: the system CAs. */
  ca?: string;
  caFile?: string;
  /** False only when KAFKA_SSL_REJECT_UNAUTHORIZED=false (the Kafka client warns on every start). */
  rejectUnauthorized: boolean;
}

/** KAFKA_SASL_*: SASL authentication to every broker. */
export interface KafkaSaslConfig {
  mechanism: KafkaSaslMechanism;
  username: string;
  /** Not enumerable: never in a log or a dump of the config. */
  readonly password: string;
}

export interface BasicAuthConfig {
  username: string;
  /** Not enumerable: never in a log or a dump of the config. */
  readonly password: string;
}

/** `fluxion notify` (sinks/notifier.ts). */
export interface NotifyConfig {
  /** SendGrid API key, or undefined: mails are logged, not sent. Not enumerable: never in a log or a dump of the config. */
  readonly sendgridApiKey?: string;
  /** Undefined: SendGrid's own (https://api.sendgrid.com/). */
  sendgridBaseUrl?: string;
  from?: string;
  to: string[];
  throttleMs: number;
  phantomStoreThreshold: number;
  phantomWindowMs: number;
  /** Phantom-zero alerts mailed per store per store-local day. */
  phantomDailyBudget: number;
  maxAgeMs: number;
  /** Where a failed job's mail throttle is kept when PostgreSQL cannot be reached (FLUXION_JOB_ALERT_STATE_FILE, resolved). */
  jobAlertStateFile: string;
}

const HOW_TO_START = 'start the local services with `scripts/services up` and run `eval "$(scripts/services env)"`';

/** Parses the environment; every problem is reported at once, each naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): FluxionConfig {
  // Empty strings mean "not set", as a shell `export X=` would intend.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== ''));
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => {
        const name = String(i.path[0]);
        const shown = ENV_VARS.find((v) => v.name === name)?.secret ? '(value hidden)' : scrubSecrets(JSON.stringify(env[name]));
        return `${name}=${shown}: ${i.message}`;
      }),
    );
  }
  const e = parsed.data;
  const security = securityConfig(e);
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
    operator: e.FLUXION_OPERATOR,
    processors: {
      sessionTimeoutMs: e.FLUXION_SESSION_TIMEOUT_MS,
      maxBatch: e.FLUXION_PROCESSOR_MAX_BATCH,
      stateDir: e.FLUXION_STATE_DIR,
      quarantineMaxZeroedShare: e.FLUXION_QUARANTINE_MAX_ZEROED_SHARE,
      quarantineGroupMaxZeroedShare: e.FLUXION_QUARANTINE_GROUP_MAX_ZEROED_SHARE,
      quarantineGroupMinProducts: e.FLUXION_QUARANTINE_GROUP_MIN_PRODUCTS,
      dedupeRetentionDays: e.FLUXION_DEDUPE_RETENTION_DAYS,
      phantom: {
        flipFlopRecovery: e.FLUXION_PHANTOM_FLIP_FLOP_RECOVERY,
        flipFlopWindowSnapshots: e.FLUXION_PHANTOM_FLIP_FLOP_WINDOW,
        dropThreshold: e.FLUXION_PHANTOM_DROP_THRESHOLD,
        dropSalesShare: e.FLUXION_PHANTOM_DROP_SALES_SHARE,
        dropRecentFallFactor: e.FLUXION_PHANTOM_DROP_RECENT_FALL_FACTOR,
        sellingAtZeroMinSales: e.FLUXION_PHANTOM_SELLING_AT_ZERO_MIN_SALES,
        sellingAtZeroMinMinutes: e.FLUXION_PHANTOM_SELLING_AT_ZERO_MIN_MINUTES,
        rules: e.FLUXION_PHANTOM_RULES,
        sources: e.FLUXION_PHANTOM_SOURCES,
      },
    },
    sink: { maxBatch: e.FLUXION_SINK_MAX_BATCH },
    abc: { windowDays: e.FLUXION_ABC_WINDOW_DAYS, debounceMs: e.FLUXION_ABC_DEBOUNCE_MS },
    notify: notifyConfig(e),
    dashboard: dashboardConfig(e),
  };
}

const MINUTE_MS = 60_000;

/** Secret-bearing object with `password` readable but not enumerable (as node-postgres does). */
function withHiddenPassword<T extends object>(shown: T, password: string): T & { readonly password: string } {
  return Object.defineProperty(shown, 'password', { value: password, enumerable: false }) as T & { readonly password: string };
}

/**
 * TLS, SASL and registry credentials: settings that only mean something together are checked
 * together, and the CA file is read here, so a wrong path stops every command at once.
 */
function securityConfig(e: z.infer<typeof envSchema>): { ssl?: KafkaTlsConfig; sasl?: KafkaSaslConfig; registryAuth?: BasicAuthConfig } {
  const problems: string[] = [];
  let ssl: KafkaTlsConfig | undefined;
  if (e.KAFKA_SSL) {
    ssl = { rejectUnauthorized: e.KAFKA_SSL_REJECT_UNAUTHORIZED };
    if (e.KAFKA_SSL_CA_FILE) {
      const file = e.KAFKA_SSL_CA_FILE;
      try {
        const pem = readFileSync(file, 'utf8');
        if (!pem.includes('-----BEGIN CERTIFICATE-----')) problems.push(`KAFKA_SSL_CA_FILE=${JSON.stringify(file)}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
        ssl = { ...ssl, ca: pem, caFile: file };
      } catch (cause) {
        problems.push(`KAFKA_SSL_CA_FILE=${JSON.stringify(file)}: cannot be read: ${(cause as Error).message}`);
      }
    }
  } else {
    if (e.KAFKA_SSL_CA_FILE) problems.push('KAFKA_SSL_CA_FILE is set but KAFKA_SSL is not true: set KAFKA_SSL=true to connect over TLS, or unset KAFKA_SSL_CA_FILE');
    if (!e.KAFKA_SSL_REJECT_UNAUTHORIZED) problems.push('KAFKA_SSL_REJECT_UNAUTHORIZED=false is set but KAFKA_SSL is not true: it only applies to TLS connections');
  }
  let sasl: KafkaSaslConfig | undefined;
  if (e.KAFKA_SASL_MECHANISM) {
    if (!e.KAFKA_SASL_USERNAME) problems.push(`KAFKA_SASL_USERNAME is not set: KAFKA_SASL_MECHANISM=${e.KAFKA_SASL_MECHANISM} needs a user and KAFKA_SASL_PASSWORD`);
    if (!e.KAFKA_SASL_PASSWORD) problems.push(`KAFKA_SASL_PASSWORD is not set: KAFKA_SASL_MECHANISM=${e.KAFKA_SASL_MECHANISM} needs the user's password`);
    if (e.KAFKA_SASL_USERNAME && e.KAFKA_SASL_PASSWORD) sasl = withHiddenPassword({ mechanism: e.KAFKA_SASL_MECHANISM, username: e.KAFKA_SASL_USERNAME }, e.KAFKA_SASL_PASSWORD);
  } else if (e.KAFKA_SASL_USERNAME || e.KAFKA_SASL_PASSWORD) {
    problems.push(`KAFKA_SASL_MECHANISM is not set but ${e.KAFKA_SASL_USERNAME ? 'KAFKA_SASL_USERNAME' : 'KAFKA_SASL_PASSWORD'} is: set it to plain, scram-sha-256 or scram-sha-512`);
  }
  let registryAuth: BasicAuthConfig | undefined;
  if (e.SCHEMA_REGISTRY_USERNAME && e.SCHEMA_REGISTRY_PASSWORD) {
    registryAuth = withHiddenPassword({ username: e.SCHEMA_REGISTRY_USERNAME }, e.SCHEMA_REGISTRY_PASSWORD);
  } else if (e.SCHEMA_REGISTRY_USERNAME) {
    problems.push('SCHEMA_REGISTRY_PASSWORD is not set: SCHEMA_REGISTRY_USERNAME is, and basic auth needs both');
  } else if (e.SCHEMA_REGISTRY_PASSWORD) {
    problems.push('SCHEMA_REGISTRY_USERNAME is not set: SCHEMA_REGISTRY_PASSWORD is, and basic auth needs both');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { ssl, sasl, registryAuth };
}

function dashboardConfig(e: z.infer<typeof envSchema>): DashboardConfig {
  const dashboard: DashboardConfig = {
    host: e.FLUXION_DASHBOARD_HOST,
    port: e.FLUXION_DASHBOARD_PORT,
    sampleMs: e.FLUXION_DASHBOARD_SAMPLE_SECONDS * 1000,
    historyMs: e.FLUXION_DASHBOARD_HISTORY_HOURS * 3_600_000,
  };
  Object.defineProperty(dashboard, 'syncToken', { value: e.FLUXION_SYNC_TOKEN, enumerable: false });
  return dashboard;
}

function notifyConfig(e: z.infer<typeof envSchema>): NotifyConfig {
  const notify: NotifyConfig = {
    sendgridBaseUrl: e.SENDGRID_BASE_URL,
    from: e.FLUXION_NOTIFY_FROM,
    to: e.FLUXION_NOTIFY_TO,
    throttleMs: e.FLUXION_NOTIFY_THROTTLE_MINUTES * MINUTE_MS,
    phantomStoreThreshold: e.FLUXION_NOTIFY_PHANTOM_STORE_THRESHOLD,
    phantomWindowMs: e.FLUXION_NOTIFY_PHANTOM_WINDOW_MINUTES * MINUTE_MS,
    phantomDailyBudget: e.FLUXION_NOTIFY_PHANTOM_DAILY_BUDGET,
    maxAgeMs: e.FLUXION_NOTIFY_MAX_AGE_MINUTES * MINUTE_MS,
    jobAlertStateFile: projectPath(e.FLUXION_JOB_ALERT_STATE_FILE),
  };
  // As node-postgres does with passwords: readable, but absent from JSON, logs and inspection.
  Object.defineProperty(notify, 'sendgridApiKey', { value: e.SENDGRID_API_KEY, enumerable: false });
  return notify;
}

/**
 * What `fluxion notify` demands beyond the shapes: with a SendGrid key, a sender and at least
 * one recipient (without a key, mails are only logged and both may be missing).
 */
export function requireNotifyDelivery(config: FluxionConfig): void {
  if (!config.notify.sendgridApiKey) return;
  const problems: string[] = [];
  if (!config.notify.from) problems.push('FLUXION_NOTIFY_FROM is not set: SENDGRID_API_KEY is, so mails need a sender verified in SendGrid (e.g. FLUXION_NOTIFY_FROM="Fluxion <etl@lagranja.example>")');
  if (config.notify.to.length === 0) problems.push('FLUXION_NOTIFY_TO is not set: SENDGRID_API_KEY is, so mails need recipients (comma-separated addresses)');
  if (problems.length > 0) throw new ConfigError(problems);
}

export function requireKafkaBrokers(config: FluxionConfig): string[] {
  if (!config.kafka.brokers?.length) throw new ConfigError([`KAFKA_BROKERS is not set: ${HOW_TO_START}, or set it to host:port`]);
  return config.kafka.brokers;
}

export function requireSchemaRegistryUrl(config: FluxionConfig): string {
  if (!config.schemaRegistryUrl) throw new ConfigError([`SCHEMA_REGISTRY_URL is not set: ${HOW_TO_START}, or set it to the registry's URL`]);
  return config.schemaRegistryUrl;
}

export function requireDatabaseUrl(config: FluxionConfig): string {
  if (!config.databaseUrl) throw new ConfigError([`DATABASE_URL is not set: ${HOW_TO_START}, or set it to postgres://user:password@host:port/db`]);
  return config.databaseUrl;
}

/** The store list with each store's address for this environment. */
export function loadUbicaciones(config: FluxionConfig, cwd?: string): Ubicacion[] {
  return loadUbicacionesFile(cwd ? resolve(cwd, config.ubicacionesFile) : projectPath(config.ubicacionesFile)).map((u) => resolveUbicacion(u, config.environment));
}
