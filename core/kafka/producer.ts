/**
 * Producers: idempotent, acks=-1, one request in flight, every record placed on its store's
 * partition (Java-compatible, core/kafka/partitioning.ts), sends sliced under the broker's
 * batch limit, and transactions that commit with the consumer offsets they carry.
 */
import type { Producer, Transaction } from 'kafkajs';
import { Partitioners } from 'kafkajs';
import { TopicLayoutError } from '../errors.ts';
import { withRetry } from '../retry.ts';
import { compressionFor } from '../topics.ts';
import { kafkajsCompression } from './compression.ts';
import type { KafkaConnection } from './connection.ts';
import { kafkaErrorType } from './faults.ts';
import { partitionForUbicacion } from './partitioning.ts';
import type { FluxionProducer, OutgoingRecord, RecordBatchSender } from './types.ts';

/** Bytes of keys and values per produce call, well under the broker's 1 MB batch limit. */
const MAX_BATCH_BYTES = 512 * 1024;
/** kafkajs groups a send's messages by partition copying its array per message: keep sends small. */
const MAX_BATCH_MESSAGES = 500;

/** The client's `producer()`: partition counts are asked once per topic and client. */
export function producerFactory(
  connection: KafkaConnection,
): (opts?: { transactionalId?: string; transactionTimeoutMs?: number }) => Promise<FluxionProducer> {
  const { kafka, options, log, faults, translate } = connection;
  const partitionCounts = new Map<string, number>();
  async function partitionsOf(topic: string): Promise<number> {
    const known = partitionCounts.get(topic);
    if (known !== undefined) return known;
    // A short-lived admin: kafkajs producers do not expose their metadata. Partition counts
    // never change under us (topics ensure refuses to), so each topic is asked once.
    const metadataAdmin = kafka.admin();
    await metadataAdmin.connect();
    const meta = await metadataAdmin.fetchTopicMetadata({ topics: [topic] }).finally(() => metadataAdmin.disconnect());
    const count = meta.topics[0]?.partitions.length ?? 0;
    if (count < 1) throw new TopicLayoutError(`topic ${topic} has no partitions: run \`fluxion topics ensure\``, { context: { topic } });
    partitionCounts.set(topic, count);
    return count;
  }

  async function placed(topic: string, records: OutgoingRecord[]) {
    const count = await partitionsOf(topic);
    return records.map((r) => ({
      key: r.key,
      value: r.value,
      headers: r.headers,
      partition: r.partition === undefined ? partitionForUbicacion(r.ubicacionId, count) : r.partition % count,
    }));
  }

  function sender(target: Producer | Transaction): RecordBatchSender {
    return {
      async send(topic, records) {
        // kafkajs puts one send() in one record batch, and the broker refuses a batch over
        // message.max.bytes (1 MB by default): send a store's snapshot in slices.
        const messages = await placed(topic, records);
        const compression = kafkajsCompression(compressionFor(topic));
        let slice: typeof messages = [];
        let bytes = 0;
        for (const m of messages) {
          const size = (m.value?.length ?? 0) + (typeof m.key === 'string' ? Buffer.byteLength(m.key) : (m.key?.length ?? 0));
          if (slice.length > 0 && (bytes + size > MAX_BATCH_BYTES || slice.length >= MAX_BATCH_MESSAGES)) {
            await target.send({ topic, acks: -1, compression, messages: slice });
            slice = [];
            bytes = 0;
          }
          slice.push(m);
          bytes += size;
        }
        if (slice.length > 0) await target.send({ topic, acks: -1, compression, messages: slice });
      },
    };
  }

  return async function producer(opts = {}): Promise<FluxionProducer> {
    const producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      // We place every record ourselves (by ubicacion); naming the Java-compatible
      // partitioner keeps any unplaced record consistent and silences kafkajs's warning.
      createPartitioner: Partitioners.DefaultPartitioner,
      transactionalId: opts.transactionalId,
      transactionTimeout: opts.transactionTimeoutMs ?? 60_000,
      retry: { retries: options.retries ?? 8 },
    });
    // After a crash the coordinator may still be aborting the dead producer's transaction:
    // initProducerId answers CONCURRENT_TRANSACTIONS until it is done (kafkajs#296).
    await withRetry(
      {
        retries: Number.POSITIVE_INFINITY,
        initialDelayMs: 100,
        maxDelayMs: 2_000,
        factor: 2,
        maxElapsedMs: (opts.transactionTimeoutMs ?? 60_000) + 10_000,
      },
      async () => {
        try {
          await producer.connect();
        } catch (err) {
          await producer.disconnect().catch(() => undefined);
          throw err;
        }
      },
      {
        retriable: (err) => kafkaErrorType(err) === 'CONCURRENT_TRANSACTIONS',
        onRetry: (_err, attempt) => {
          if (attempt === 1) log.info({ transactionalId: opts.transactionalId }, 'previous transaction still completing: retrying');
        },
      },
    ).catch((err: unknown) => {
      throw translate(err, 'connect a producer');
    });
    faults.ok();
    const plain = sender(producer);
    return {
      send: plain.send,
      async transaction(work) {
        const tx = await producer.transaction();
        try {
          const result = await work({
            ...sender(tx),
            async sendOffsets(groupId, topic, offsets) {
              // kafkajs retries AddPartitionsToTxn but not AddOffsetsToTxn: right after the
              // previous commit the coordinator answers CONCURRENT_TRANSACTIONS until its
              // markers are written, and giving up would abort a good transaction.
              await withRetry(
                { retries: 20, initialDelayMs: 20, maxDelayMs: 1_000, factor: 2 },
                () => tx.sendOffsets({ consumerGroupId: groupId, topics: [{ topic, partitions: offsets }] }),
                { retriable: (err) => kafkaErrorType(err) === 'CONCURRENT_TRANSACTIONS' },
              );
            },
          });
          await tx.commit();
          faults.ok();
          return result;
        } catch (err) {
          await tx.abort().catch((abortErr: unknown) => log.error({ err: abortErr }, 'transaction abort failed'));
          throw err;
        }
      },
      async disconnect() {
        await producer.disconnect();
      },
    };
  };
}
