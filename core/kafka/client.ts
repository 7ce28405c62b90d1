/**
 * The client of Fluxion's Kafka calls. kafkajs is unmaintained (tulios/kafkajs#1603): only
 * core/kafka/ imports it, so moving to another KafkaJS-compatible client is a change to this
 * folder only. Its modules, one concern each:
 *
 *   types.ts        the contracts components code against (KafkaClient, producer, consumer, admin)
 *   connection.ts   the kafkajs instance: TLS, SASL, retries, its log lines
 *   producer.ts     placement by store, sliced sends, transactions
 *   consumer.ts     read_committed consumers, the co-partitioned assignment, batch handlers
 *   read-to-end.ts  reading partitions from a start to their end as of the call
 *   admin.ts        topics, configs, offsets, groups
 *   errors.ts       KafkaAuthError, KafkaRequestError
 *   faults.ts       every reading of kafkajs's errors and log lines; what is waited out
 *
 * Settings follow docs/pitfalls.md: Java-compatible placement by ubicacion, idempotent producer
 * with acks=-1 and one request in flight, explicit retries, read_committed consumers without
 * auto-commit, and connection failures translated into our typed errors.
 *
 * This module builds the client; it also re-exports the names that lived here before the
 * split, so an import from core/kafka/client.ts keeps working.
 */
import { openAdmin } from './admin.ts';
import { connectKafka } from './connection.ts';
import { openConsumer } from './consumer.ts';
import { producerFactory } from './producer.ts';
import { readToEnd } from './read-to-end.ts';
import type { KafkaClient, KafkaClientOptions } from './types.ts';

export type * from './types.ts';
export { KafkaAuthError, KafkaRequestError } from './errors.ts';
export {
  closedConnectionHint,
  isProducerFenced,
  kafkaAuthError,
  kafkaErrorType,
  saslFailureOf,
  tlsCertificateFailureOf,
} from './faults.ts';
export { kafkajsSecurity } from './connection.ts';
export { offsetsAfterLastRecord } from './read-to-end.ts';

export function createKafkaClient(options: KafkaClientOptions): KafkaClient {
  const connection = connectKafka(options);
  return {
    faults: connection.faults,
    admin: () => openAdmin(connection),
    producer: producerFactory(connection),
    consumer: (opts) => openConsumer(connection, opts),
    readToEnd: (topic, partitions, onRecord, readOptions) => readToEnd(connection, topic, partitions, onRecord, readOptions),
  };
}
