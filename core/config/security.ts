/**
 * TLS, SASL and registry credentials: settings that only mean something together are checked
 * together, and the CA file is read here, so a wrong path stops every command at once.
 * The variables themselves are declared in core/config/environment.ts.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.ts';

export type KafkaSaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';

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

/** The parsed values securityConfig() reads. */
export interface SecurityValues {
  KAFKA_SSL: boolean;
  KAFKA_SSL_CA_FILE?: string;
  KAFKA_SSL_REJECT_UNAUTHORIZED: boolean;
  KAFKA_SASL_MECHANISM?: KafkaSaslMechanism;
  KAFKA_SASL_USERNAME?: string;
  KAFKA_SASL_PASSWORD?: string;
  SCHEMA_REGISTRY_USERNAME?: string;
  SCHEMA_REGISTRY_PASSWORD?: string;
}

/** Secret-bearing object with `password` readable but not enumerable (as node-postgres does). */
function withHiddenPassword<T extends object>(shown: T, password: string): T & { readonly password: string } {
  return Object.defineProperty(shown, 'password', { value: password, enumerable: false }) as T & { readonly password: string };
}

function tlsConfig(e: SecurityValues, problems: string[]): KafkaTlsConfig | undefined {
  if (!e.KAFKA_SSL) {
    if (e.KAFKA_SSL_CA_FILE) {
      problems.push(
        'KAFKA_SSL_CA_FILE is set but KAFKA_SSL is not true: set KAFKA_SSL=true to connect over TLS, or unset KAFKA_SSL_CA_FILE',
      );
    }
    if (!e.KAFKA_SSL_REJECT_UNAUTHORIZED) {
      problems.push('KAFKA_SSL_REJECT_UNAUTHORIZED=false is set but KAFKA_SSL is not true: it only applies to TLS connections');
    }
    return undefined;
  }
  const ssl: KafkaTlsConfig = { rejectUnauthorized: e.KAFKA_SSL_REJECT_UNAUTHORIZED };
  const file = e.KAFKA_SSL_CA_FILE;
  if (!file) return ssl;
  const shown = `KAFKA_SSL_CA_FILE=${JSON.stringify(file)}`;
  try {
    const pem = readFileSync(file, 'utf8');
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) problems.push(`${shown}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    return { ...ssl, ca: pem, caFile: file };
  } catch (cause) {
    problems.push(`${shown}: cannot be read: ${(cause as Error).message}`);
    return ssl;
  }
}

function saslConfig(e: SecurityValues, problems: string[]): KafkaSaslConfig | undefined {
  const { KAFKA_SASL_MECHANISM: mechanism, KAFKA_SASL_USERNAME: username, KAFKA_SASL_PASSWORD: password } = e;
  if (!mechanism) {
    if (username || password) {
      const given = username ? 'KAFKA_SASL_USERNAME' : 'KAFKA_SASL_PASSWORD';
      problems.push(`KAFKA_SASL_MECHANISM is not set but ${given} is: set it to plain, scram-sha-256 or scram-sha-512`);
    }
    return undefined;
  }
  const needs = `KAFKA_SASL_MECHANISM=${mechanism} needs`;
  if (!username) problems.push(`KAFKA_SASL_USERNAME is not set: ${needs} a user and KAFKA_SASL_PASSWORD`);
  if (!password) problems.push(`KAFKA_SASL_PASSWORD is not set: ${needs} the user's password`);
  return username && password ? withHiddenPassword({ mechanism, username }, password) : undefined;
}

function registryAuthConfig(e: SecurityValues, problems: string[]): BasicAuthConfig | undefined {
  const { SCHEMA_REGISTRY_USERNAME: username, SCHEMA_REGISTRY_PASSWORD: password } = e;
  if (username && password) return withHiddenPassword({ username }, password);
  if (username) problems.push('SCHEMA_REGISTRY_PASSWORD is not set: SCHEMA_REGISTRY_USERNAME is, and basic auth needs both');
  else if (password) problems.push('SCHEMA_REGISTRY_USERNAME is not set: SCHEMA_REGISTRY_PASSWORD is, and basic auth needs both');
  return undefined;
}

export function securityConfig(e: SecurityValues): { ssl?: KafkaTlsConfig; sasl?: KafkaSaslConfig; registryAuth?: BasicAuthConfig } {
  const problems: string[] = [];
  const result = { ssl: tlsConfig(e, problems), sasl: saslConfig(e, problems), registryAuth: registryAuthConfig(e, problems) };
  if (problems.length > 0) throw new ConfigError(problems);
  return result;
}
