/**
 * Process configuration from the environment, validated in one place before any I/O.
 * Every variable is documented here (this table feeds the README's reference); service
 * addresses are optional at load and demanded by the commands that use them, so that
 * `fluxion migrate` does not ask for Kafka.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { loadUbicacionesFile, resolveUbicacion, type EtlEnvironment, type Ubicacion } from './ubicaciones.ts';
import { projectPath } from '../paths.ts';

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
  { name: 'SCHEMA_REGISTRY_URL', description: 'base URL of the Confluent-API schema registry' },
  { name: 'DATABASE_URL', description: 'PostgreSQL connection string (postgres://user:password@host:port/db)', secret: true },
  { name: 'FLUXION_TOPIC_PARTITIONS', description: 'partitions of every topic (all topics share it: records are placed by ubicacion)', default: '6' },
  { name: 'FLUXION_TOPIC_PREFIX', description: 'prefix added to every topic name (isolates tests and environments sharing a cluster)', default: '' },
  { name: 'FLUXION_UBICACIONES_FILE', description: 'path of the store list', default: 'config/ubicaciones.yaml' },
  { name: 'LOG_LEVEL', description: 'pino level: fatal, error, warn, info, debug, trace', default: 'info' },
  { name: 'SENTRY_DSN', description: 'Sentry DSN for errors and cron check-ins; unset turns both off', secret: true },
  { name: 'SENTRY_ENVIRONMENT', description: 'environment name reported to Sentry', default: 'the value of ETL_ENVIRONMENT' },
  { name: 'FLUXION_SESSION_TIMEOUT_MS', description: 'consumer-group session of the processors: how long a dead instance holds its stores before another takes over', default: '30000' },
  { name: 'FLUXION_PROCESSOR_MAX_BATCH', description: 'input records per processor transaction', default: '500' },
  { name: 'FLUXION_QUARANTINE_MAX_ZEROED_SHARE', description: "differ: a snapshot in which more than this share of the store's products with stock drop to 0 or vanish is quarantined", default: '0.3' },
  { name: 'FLUXION_DEDUPE_RETENTION_DAYS', description: 'dedupe: days a sales line is remembered after its last read (then tombstoned)', default: '7' },
  { name: 'FLUXION_PHANTOM_FLIP_FLOP_RECOVERY', description: 'phantom FLIP_FLOP: share of the pre-zero quantity the stock must come back to', default: '0.8' },
  { name: 'FLUXION_PHANTOM_FLIP_FLOP_WINDOW', description: "phantom FLIP_FLOP: the product's changes within which it must come back", default: '3' },
  { name: 'FLUXION_PHANTOM_DROP_THRESHOLD', description: 'phantom UNEXPLAINED_DROP: smallest quantity whose drop to 0 is judged', default: '10' },
  { name: 'FLUXION_PHANTOM_DROP_SALES_SHARE', description: 'phantom UNEXPLAINED_DROP and FLIP_FLOP: sales below this share of the quantity do not explain it', default: '0.2' },
  { name: 'FLUXION_PHANTOM_SELLING_AT_ZERO_MIN_SALES', description: 'phantom SELLING_AT_ZERO: units sold after the zero snapshot that open an alert', default: '1' },
];

const share = z.coerce.number().gt(0, 'must be a share above 0').lte(1, 'must be a share up to 1');
const quantity = z
  .string()
  .regex(/^\d{1,15}(\.\d{1,3})?$/, 'must be a non-negative quantity with up to 3 decimals')
  .transform((s) => {
    const [int, frac = ''] = s.split('.');
    return `${BigInt(int!)}.${frac.padEnd(3, '0')}`;
  });

const envSchema = z.object({
  ETL_ENVIRONMENT: z.enum(['local', 'production']).default('local'),
  KAFKA_BROKERS: z
    .string()
    .optional()
    .transform((s) => (s ? s.split(',').map((b) => b.trim()).filter(Boolean) : undefined))
    .refine((list) => list === undefined || list.every((b) => /^[^\s:]+:\d{1,5}$/.test(b)), 'must be host:port[,host:port...]'),
  KAFKA_CLIENT_ID: z.string().min(1).default('fluxion'),
  SCHEMA_REGISTRY_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  DATABASE_URL: z
    .string()
    .optional()
    .refine((s) => s === undefined || /^postgres(ql)?:\/\//.test(s), 'must start with postgres:// or postgresql://'),
  FLUXION_TOPIC_PARTITIONS: z.coerce.number().int().min(1).max(1000).default(6),
  FLUXION_TOPIC_PREFIX: z.string().regex(/^[a-zA-Z0-9._-]*$/, 'may hold only letters, digits, . _ -').default(''),
  FLUXION_UBICACIONES_FILE: z.string().min(1).default('config/ubicaciones.yaml'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  FLUXION_SESSION_TIMEOUT_MS: z.coerce.number().int().min(1_000).max(300_000).default(30_000),
  FLUXION_PROCESSOR_MAX_BATCH: z.coerce.number().int().min(1).max(100_000).default(500),
  FLUXION_QUARANTINE_MAX_ZEROED_SHARE: share.default(0.3),
  FLUXION_DEDUPE_RETENTION_DAYS: z.coerce.number().gt(0, 'must be a number of days above 0').max(3650).default(7),
  FLUXION_PHANTOM_FLIP_FLOP_RECOVERY: share.default(0.8),
  FLUXION_PHANTOM_FLIP_FLOP_WINDOW: z.coerce.number().int().min(1).max(1000).default(3),
  FLUXION_PHANTOM_DROP_THRESHOLD: quantity.default('10.000'),
  FLUXION_PHANTOM_DROP_SALES_SHARE: share.default(0.2),
  FLUXION_PHANTOM_SELLING_AT_ZERO_MIN_SALES: quantity.default('1.000'),
});

export interface FluxionConfig {
  environment: EtlEnvironment;
  kafka: { brokers?: string[]; clientId: string };
  schemaRegistryUrl?: string;
  databaseUrl?: string;
  topics: { partitions: number; prefix: string };
  ubicacionesFile: string;
  logLevel: string;
  processors: {
    sessionTimeoutMs: number;
    maxBatch: number;
    quarantineMaxZeroedShare: number;
    dedupeRetentionDays: number;
    /** The shape of processors/phantom-rules.ts PhantomConfig (core does not import components). */
    phantom: { flipFlopRecovery: number; flipFlopWindowSnapshots: number; dropThreshold: string; dropSalesShare: number; sellingAtZeroMinSales: string };
  };
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
        const shown = ENV_VARS.find((v) => v.name === name)?.secret ? '(value hidden)' : JSON.stringify(env[name]);
        return `${name}=${shown}: ${i.message}`;
      }),
    );
  }
  const e = parsed.data;
  return {
    environment: e.ETL_ENVIRONMENT,
    kafka: { brokers: e.KAFKA_BROKERS, clientId: e.KAFKA_CLIENT_ID },
    schemaRegistryUrl: e.SCHEMA_REGISTRY_URL,
    databaseUrl: e.DATABASE_URL,
    topics: { partitions: e.FLUXION_TOPIC_PARTITIONS, prefix: e.FLUXION_TOPIC_PREFIX },
    ubicacionesFile: e.FLUXION_UBICACIONES_FILE,
    logLevel: e.LOG_LEVEL,
    processors: {
      sessionTimeoutMs: e.FLUXION_SESSION_TIMEOUT_MS,
      maxBatch: e.FLUXION_PROCESSOR_MAX_BATCH,
      quarantineMaxZeroedShare: e.FLUXION_QUARANTINE_MAX_ZEROED_SHARE,
      dedupeRetentionDays: e.FLUXION_DEDUPE_RETENTION_DAYS,
      phantom: {
        flipFlopRecovery: e.FLUXION_PHANTOM_FLIP_FLOP_RECOVERY,
        flipFlopWindowSnapshots: e.FLUXION_PHANTOM_FLIP_FLOP_WINDOW,
        dropThreshold: e.FLUXION_PHANTOM_DROP_THRESHOLD,
        dropSalesShare: e.FLUXION_PHANTOM_DROP_SALES_SHARE,
        sellingAtZeroMinSales: e.FLUXION_PHANTOM_SELLING_AT_ZERO_MIN_SALES,
      },
    },
  };
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
