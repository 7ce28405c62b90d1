/**
 * What every command needs, built lazily from validated configuration: a command asks only
 * for the services it uses, and each is closed when the command ends.
 */
import { loadConfig, requireDatabaseUrl, requireKafkaBrokers, requireSchemaRegistryUrl, loadUbicaciones, type FluxionConfig } from '../core/config/environment.ts';
import { createKafkaClient } from '../core/kafka/client.ts';
import type { KafkaClient, KafkaClientOptions } from '../core/kafka/types.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import { createPool, type Pool } from '../core/postgres.ts';
import { createRegistry, type FluxionRegistry, type RegistryOptions } from '../core/registry.ts';
import type { Ubicacion } from '../core/config/ubicaciones.ts';
import type { ExtractionDeps } from '../extractors/extract-run.ts';

export interface CommandContext {
  config: FluxionConfig;
  logger: Logger;
  /** The process environment the configuration came from (POS secrets are read from it by name). */
  env: NodeJS.ProcessEnv;
  kafka(): KafkaClient;
  registry(): FluxionRegistry;
  pool(): Pool;
  ubicaciones(): Ubicacion[];
  extractionDeps(): ExtractionDeps;
  /** Prints a result line for the person or script that ran the command. */
  out(line: string): void;
  close(): Promise<void>;
}

/** How every Kafka client of a command connects: brokers, TLS and SASL from the configuration. */
export function kafkaClientOptions(config: FluxionConfig, logger: Logger): KafkaClientOptions {
  return { brokers: requireKafkaBrokers(config), clientId: config.kafka.clientId, logger, ssl: config.kafka.ssl, sasl: config.kafka.sasl };
}

/** The registry's URL and basic auth from the configuration. */
export function registryOptions(config: FluxionConfig): RegistryOptions {
  const auth = config.schemaRegistryAuth;
  return { url: requireSchemaRegistryUrl(config), ...(auth ? { username: auth.username, password: auth.password } : {}) };
}

export function createContext(env: NodeJS.ProcessEnv, out: (line: string) => void): CommandContext {
  const config = loadConfig(env);
  const logger = createLogger({ level: config.logLevel, destination: 2 });
  let kafka: KafkaClient | undefined;
  let registry: FluxionRegistry | undefined;
  let pool: Pool | undefined;
  let ubicaciones: Ubicacion[] | undefined;
  return {
    config,
    logger,
    env,
    out,
    kafka: () => (kafka ??= createKafkaClient(kafkaClientOptions(config, logger))),
    registry: () => (registry ??= createRegistry(registryOptions(config))),
    pool: () => (pool ??= createPool({ connectionString: requireDatabaseUrl(config), logger })),
    ubicaciones: () => (ubicaciones ??= loadUbicaciones(config)),
    extractionDeps() {
      return { kafka: this.kafka(), registry: this.registry(), logger, env, topicPrefix: config.topics.prefix };
    },
    async close() {
      await pool?.end();
    },
  };
}
