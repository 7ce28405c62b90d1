/**
 * One kafkajs instance per client: TLS and SASL from our options, kafkajs's retries, and its
 * log lines routed into this process's fault episode (core/kafka/faults.ts). The producer,
 * consumer, admin and read-to-end modules share what it returns.
 */
import { Kafka, logLevel as KafkaLogLevel, type LogEntry, type SASLOptions } from 'kafkajs';
import type { Logger } from '../logger.ts';
// Registers the zstd codec in kafkajs for every producer and consumer of this client.
import './compression.ts';
import { createKafkaFaultLog, isKafkajsNoise, kafkajsLogFault, translateKafkaError, type KafkaFaultLog } from './faults.ts';
import type { KafkaClientOptions } from './types.ts';

/** What the client's parts share: the kafkajs instance, its options, the log and the fault episode. */
export interface KafkaConnection {
  kafka: Kafka;
  options: KafkaClientOptions;
  log: Logger;
  faults: KafkaFaultLog;
  /** kafkajs's connection and authentication failures as our typed errors, naming what we tried. */
  translate(err: unknown, action: string): unknown;
}

const LEVEL_NAMES: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [KafkaLogLevel.ERROR]: 'error',
  [KafkaLogLevel.WARN]: 'warn',
  [KafkaLogLevel.INFO]: 'info',
  [KafkaLogLevel.DEBUG]: 'debug',
};

/** kafkajs options for TLS and SASL, from ours (pure: unit-tested). */
export function kafkajsSecurity(options: Pick<KafkaClientOptions, 'ssl' | 'sasl'>): {
  ssl?: { ca?: string[]; rejectUnauthorized: boolean };
  sasl?: SASLOptions;
} {
  return {
    ...(options.ssl
      ? { ssl: { ...(options.ssl.ca ? { ca: [options.ssl.ca] } : {}), rejectUnauthorized: options.ssl.rejectUnauthorized !== false } }
      : {}),
    ...(options.sasl
      ? { sasl: { mechanism: options.sasl.mechanism, username: options.sasl.username, password: options.sasl.password } as SASLOptions }
      : {}),
  };
}

/**
 * kafkajs 2.2.4 schedules a timer with a negative delay on Node >= 23, which prints a
 * TimeoutNegativeWarning per process (the timer fires at once, as kafkajs intended). Drop
 * that one warning so operators do not chase it; every other warning is emitted as usual.
 */
let negativeTimeoutFilterInstalled = false;
function dropKafkajsNegativeTimeoutWarning(): void {
  if (negativeTimeoutFilterInstalled) return;
  negativeTimeoutFilterInstalled = true;
  const emit = process.emitWarning.bind(process);
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const name = typeof warning === 'string' ? rest[0] : warning.name;
    if (
      name === 'TimeoutNegativeWarning' ||
      (typeof rest[0] === 'object' && (rest[0] as { type?: string })?.type === 'TimeoutNegativeWarning')
    )
      return;
    (emit as (...args: unknown[]) => void)(warning, ...rest);
  }) as typeof process.emitWarning;
}

export function connectKafka(options: KafkaClientOptions): KafkaConnection {
  dropKafkajsNegativeTimeoutWarning();
  const { brokers, clientId } = options;
  const log = options.logger.child({ component: 'kafka' });
  const faults = createKafkaFaultLog(log, brokers);
  if (options.ssl?.rejectUnauthorized === false) {
    log.warn(
      { variable: 'KAFKA_SSL_REJECT_UNAUTHORIZED' },
      "KAFKA_SSL_REJECT_UNAUTHORIZED=false: the Kafka brokers' TLS certificates are NOT verified, so anyone between us and them can " +
        'read and change the records; give the CA with KAFKA_SSL_CA_FILE instead',
    );
  }
  if (options.sasl?.mechanism === 'plain' && !options.ssl) {
    log.warn(
      { variable: 'KAFKA_SASL_MECHANISM' },
      'SASL PLAIN without TLS sends the Kafka password in clear text: set KAFKA_SSL=true (or use scram-sha-256/512)',
    );
  }
  const kafka = new Kafka({
    clientId,
    brokers,
    ...kafkajsSecurity(options),
    ...(options.sasl ? { authenticationTimeout: options.authenticationTimeoutMs ?? 10_000 } : {}),
    connectionTimeout: options.connectionTimeoutMs ?? 5_000,
    requestTimeout: options.requestTimeoutMs ?? 30_000,
    retry: { retries: options.retries ?? 8, initialRetryTime: 200, maxRetryTime: 10_000 },
    logLevel: KafkaLogLevel.WARN,
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, ...rest } = entry;
        if (isKafkajsNoise(message)) return;
        // kafkajs logs every failed request and connection at ERROR, then retries it (a
        // coordinator still loading after a broker start, a leader moving, a broker
        // restarting). Those count in this process's fault episode, which logs one line;
        // each stays at debug. A failure retries cannot cure reaches its caller and is
        // reported there.
        const seen = level <= KafkaLogLevel.WARN ? kafkajsLogFault(message, rest as Record<string, unknown>) : { kind: 'other' as const };
        if (seen.kind === 'fault') faults.fault(seen.cause);
        const name = seen.kind === 'other' ? (LEVEL_NAMES[level] ?? 'info') : 'debug';
        log[name]({ kafkajs: rest }, message);
      },
  });
  return { kafka, options, log, faults, translate: (err, action) => translateKafkaError(err, brokers, options.sasl, action) };
}
