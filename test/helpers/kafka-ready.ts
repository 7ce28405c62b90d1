/**
 * A freshly formatted broker answers before its internal topics exist: the first consumer
 * group or transaction gets NOT_COORDINATOR / UNKNOWN_TOPIC_OR_PARTITION until
 * __consumer_offsets and __transaction_state are created and loaded. Tests that measure
 * exactly-once must not start in that window, so the run waits here until one transaction
 * with a group offset commits and a group can read it back.
 */
import { createKafkaClient } from '../../core/kafka/client.ts';
import { createLogger } from '../../core/logger.ts';

export async function waitForKafkaReady(brokers: string[], timeoutMs = 120_000): Promise<void> {
  const logger = createLogger({ level: 'silent' });
  const kafka = createKafkaClient({ brokers, clientId: 'fluxion-readiness', logger });
  const topic = 'fluxion.readiness';
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const admin = await kafka.admin();
      try {
        if (!(await admin.listTopics()).includes(topic))
          await admin.createTopics([{ name: topic, partitions: 1, config: { 'retention.ms': '3600000' } }]);
        const producer = await kafka.producer({ transactionalId: 'fluxion-readiness' });
        try {
          const high = (await admin.topicOffsets(topic))[0]!.high;
          await producer.transaction(async (tx) => {
            await tx.send(topic, [{ ubicacionId: 'readiness', key: 'k', value: Buffer.from('ready') }]);
            await tx.sendOffsets('fluxion-readiness', topic, [{ partition: 0, offset: high }]);
          });
        } finally {
          await producer.disconnect();
        }
        const offsets = await admin.groupOffsets('fluxion-readiness', topic);
        if (offsets.length > 0) return;
      } finally {
        await admin.disconnect();
      }
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
  throw new Error(
    `Kafka at ${brokers.join(',')} did not become ready for transactions and groups in ${timeoutMs} ms: ${(lastError as Error)?.message}`,
  );
}
