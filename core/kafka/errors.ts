/** The typed errors of Fluxion's Kafka calls (core/kafka/faults.ts decides when kafkajs's mean one). */
import { FluxionError, type FluxionErrorOptions } from '../errors.ts';

/**
 * Kafka refused our SASL credentials, or the listener does not speak the mechanism. Never
 * retried (kafkajs would otherwise go on reconnecting): the message names the mechanism and
 * the user, never the password.
 */
export class KafkaAuthError extends FluxionError {
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'KAFKA_AUTH', retriable: false, service: 'kafka', ...options });
  }
}

/** Kafka refused a request in a way waiting will not cure (authorization, a bad request): the message names the broker's answer. */
export class KafkaRequestError extends FluxionError {
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'KAFKA_REQUEST', retriable: false, service: 'kafka', ...options });
  }
}
