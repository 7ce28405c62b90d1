/**
 * `fluxion doctor [--skip-stores] [--json] [--timeout-ms N]`: the preflight (see ops/doctor.ts).
 * Exit 0 when every required part is OK, 1 when one fails, 2 when the configuration is invalid
 * (the table still shows what could be checked).
 */
import type { Command } from 'commander';
import { loadSubjectSchemas } from '../core/avro/schemas.ts';
import { requireDatabaseUrl, requireKafkaBrokers, requireSchemaRegistryUrl, type FluxionConfig } from '../core/config/environment.ts';
import type { Ubicacion } from '../core/config/ubicaciones.ts';
import { ConfigError, UsageError } from '../core/errors.ts';
import { createKafkaClient } from '../core/kafka/client.ts';
import type { KafkaClient } from '../core/kafka/types.ts';
import { MIGRATIONS_DIR } from '../core/paths.ts';
import { createRegistry, subjectFor } from '../core/registry.ts';
import { topicSpecs } from '../core/topics.ts';
import {
  doctorExitCode,
  formatJson,
  formatTable,
  kafkaTarget,
  runChecks,
  safeTarget,
  type CheckResult,
  type DoctorCheck,
} from '../ops/doctor.ts';
import {
  failedCheck,
  kafkaCheck,
  placeholderCheck,
  postgresChecks,
  registryCheck,
  skippedCheck,
  storeCheck,
} from '../ops/doctor-checks.ts';
import { kafkaClientOptions, registryOptions, type CommandContext } from './context.ts';
import type { ProgramIo } from './program-io.ts';

interface DoctorOptions {
  skipStores?: boolean;
  json?: boolean;
  timeoutMs: string;
}

function parseTimeout(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 100 || n > 600_000)
    throw new UsageError(`--timeout-ms must be a whole number of milliseconds from 100 to 600000, not ${JSON.stringify(value)}`);
  return n;
}

function problemsOf(fn: () => unknown, into: string[]): boolean {
  try {
    fn();
    return true;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    into.push(...e.problems);
    return false;
  }
}

/** The config row: what was understood, or every problem found. */
function configCheck(problems: string[], config: FluxionConfig | undefined, ubicaciones: Ubicacion[] | undefined): DoctorCheck {
  const target = config ? `ETL_ENVIRONMENT=${config.environment}, ${config.ubicacionesFile}` : 'the environment';
  if (problems.length) return failedCheck('config', target, problems.join('; '));
  const active = ubicaciones!.filter((u) => u.activa);
  const klk = active.filter((u) => u.pos === 'klk').length;
  const warnings =
    config!.kafka.ssl?.rejectUnauthorized === false
      ? "; WARNING: KAFKA_SSL_REJECT_UNAUTHORIZED=false, the brokers' certificates are not verified"
      : '';
  return {
    part: 'config',
    target,
    run: async () =>
      `valid; ${active.length} active stores (${klk} KLK, ${active.length - klk} Stellar), ${ubicaciones!.length - active.length} ` +
      `inactive${warnings}`,
  };
}

export function registerDoctorCommand(program: Command, io: ProgramIo): void {
  program
    .command('doctor')
    .description(
      'preflight: configuration (in production: no placeholder left in the store list), Kafka, the registry, PostgreSQL (migrations ' +
        "current) and every active store's POS, each within a timeout; exit 0 ready, 1 a required part failed, 2 configuration invalid",
    )
    .option('--skip-stores', "do not reach the stores' POS (services only)")
    .option('--json', 'one JSON document instead of the table')
    .option('--timeout-ms <n>', 'time each check may take', '5000')
    .action(async (opts: DoctorOptions) => {
      const timeoutMs = parseTimeout(opts.timeoutMs);
      const problems: string[] = [];
      let c: CommandContext | undefined;
      problemsOf(() => (c = io.context()), problems);
      let ubicaciones: Ubicacion[] | undefined;
      const checks: DoctorCheck[] = [];
      let closePostgres = async (): Promise<void> => undefined;
      const secrets: string[] = [];

      if (!c) {
        checks.push(configCheck(problems, undefined, undefined));
        for (const part of ['kafka', 'registry', 'postgres', 'migrations', 'stores'])
          checks.push(skippedCheck(part, '-', 'configuration invalid'));
      } else {
        const ctx: CommandContext = c;
        const { config, env } = ctx;
        problemsOf(() => (ubicaciones = ctx.ubicaciones()), problems);
        const hasKafka = problemsOf(() => requireKafkaBrokers(config), problems);
        const hasRegistry = problemsOf(() => requireSchemaRegistryUrl(config), problems);
        const hasDatabase = problemsOf(() => requireDatabaseUrl(config), problems);
        checks.push(configCheck(problems, config, ubicaciones));
        const placeholders = ubicaciones && placeholderCheck(ubicaciones, config.environment, config.ubicacionesFile);
        if (placeholders) checks.push(placeholders);
        if (config.kafka.sasl) secrets.push(config.kafka.sasl.password);
        if (config.schemaRegistryAuth) secrets.push(config.schemaRegistryAuth.password);

        // kafkajs logs every failed attempt at ERROR; the table says it once, so keep stderr for debugging.
        const quiet = ['debug', 'trace'].includes(ctx.logger.level) ? ctx.logger : ctx.logger.child({}, { level: 'fatal' });
        if (hasKafka) {
          let kafka: KafkaClient | undefined;
          checks.push(
            kafkaCheck({
              target: kafkaTarget(config.kafka.brokers!, config.kafka.ssl, config.kafka.sasl),
              // Few retries and short timeouts: the doctor answers within its timeout, it does not wait for Kafka.
              kafka: () =>
                (kafka ??= createKafkaClient({
                  ...kafkaClientOptions(config, quiet),
                  clientId: `${config.kafka.clientId}-doctor`,
                  retries: 1,
                  connectionTimeoutMs: Math.min(timeoutMs, 5_000),
                  requestTimeoutMs: timeoutMs,
                  authenticationTimeoutMs: timeoutMs,
                })),
              expectedTopics: topicSpecs(config.topics.prefix).map((t) => t.name),
              sasl: config.kafka.sasl !== undefined,
            }),
          );
        } else checks.push(skippedCheck('kafka', '-', 'KAFKA_BROKERS is not set'));

        if (hasRegistry) {
          const options = registryOptions(config);
          checks.push(
            registryCheck({
              target: safeTarget(options.url) + (options.username ? ` (basic auth as ${options.username})` : ''),
              registry: () => createRegistry({ ...options, timeoutMs }),
              expectedSubjects: loadSubjectSchemas().map((s) => subjectFor(config.topics.prefix + s.topic)),
            }),
          );
        } else checks.push(skippedCheck('registry', '-', 'SCHEMA_REGISTRY_URL is not set'));

        if (hasDatabase) {
          const url = config.databaseUrl!;
          try {
            const password = decodeURIComponent(new URL(url).password);
            if (password) secrets.push(password);
          } catch {
            // an unparseable URL fails the postgres row itself
          }
          const pg = postgresChecks({ connectionString: url, migrationsDir: MIGRATIONS_DIR, logger: quiet });
          checks.push(...pg.checks);
          closePostgres = pg.close;
        } else
          checks.push(
            skippedCheck('postgres', '-', 'DATABASE_URL is not set'),
            skippedCheck('migrations', '-', 'DATABASE_URL is not set'),
          );

        const active = (ubicaciones ?? []).filter((u) => u.activa);
        if (!ubicaciones) checks.push(skippedCheck('stores', '-', 'the store list is invalid'));
        else if (opts.skipStores) checks.push(skippedCheck('stores', `${active.length} active`, '--skip-stores'));
        else {
          for (const u of active) {
            checks.push(storeCheck(u, env));
            const names = u.pos === 'klk' ? [u.klk.apiKeyEnv] : [u.stellar.passwordEnv];
            for (const n of names) if (env[n]) secrets.push(env[n]!);
          }
        }
      }

      let results: CheckResult[];
      try {
        results = await runChecks(checks, { timeoutMs, secrets });
      } finally {
        await closePostgres();
      }
      if (opts.json) io.out(formatJson(results));
      else for (const line of formatTable(results)) io.out(line);
      const code = doctorExitCode(results);
      if (code !== 0) io.fail(code);
    });
}
