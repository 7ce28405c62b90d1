/**
 * bench/processors.ts's ceiling, run as its child (`--decode-only-child`): a plain consumer
 * that decodes every record and counts rows, nothing else, with the stream runtime's fetch size.
 */
import { createTopicCodec } from '../../core/avro/topic-codec.ts';
import { loadConfig, requireKafkaBrokers, requireSchemaRegistryUrl } from '../../cli/config.ts';
import { createKafkaClient } from '../../core/kafka/client.ts';
import { createLogger } from '../../core/logger.ts';
import { createRegistry } from '../../core/registry.ts';
import type { TopicName } from '../../core/topics.ts';
import type { SnapshotChunk } from '../../processors/snapshot-diff.ts';
import type { VentaRaw } from '../../processors/ventas-dedupe.ts';

/** Fetch size of the stream runtime's consumer (processors/runtime/stream-processor.ts). */
export const FETCH_BYTES = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// The ceiling: a plain consumer that decodes every record and counts rows, nothing else.
// ---------------------------------------------------------------------------------------

export async function decodeOnlyChild(topic: string, schemaTopic: TopicName, group: string): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger({ level: 'warn', destination: 2 });
  const kafka = createKafkaClient({ brokers: requireKafkaBrokers(config), clientId: 'fluxion-bench-ceiling', logger });
  const registry = createRegistry({ url: requireSchemaRegistryUrl(config) });
  const codec = await createTopicCodec<SnapshotChunk | VentaRaw>(registry, schemaTopic, topic);
  const rowsOf = schemaTopic === 'pos.inventario.snapshots' ? (v: SnapshotChunk | VentaRaw) => (v as SnapshotChunk).rows.length : () => 1;
  const consumer = await kafka.consumer({
    groupId: group,
    readCommitted: true,
    sessionTimeoutMs: config.processors.sessionTimeoutMs,
    maxBytes: FETCH_BYTES,
    crashOnFailure: true,
  });
  let rows = 0;
  let records = 0;
  // The same line the stream runtime logs, so the parent times both from the same event.
  consumer.onAssignment((assignment) => process.stderr.write(`${JSON.stringify({ msg: 'partitions assigned', assignment })}\n`));
  consumer.onCrash(({ error }) => {
    process.stderr.write(`${JSON.stringify({ level: 'error', msg: 'consumer crashed', err: error.message })}\n`);
    process.exit(1);
  });
  process.once('SIGTERM', () => {
    void consumer
      .stop()
      .then(() => consumer.disconnect())
      .finally(() => process.exit(0));
  });
  await consumer.subscribe([topic], true);
  await consumer.runBatches(async (batch, control) => {
    for (const r of batch.records) {
      rows += rowsOf(await codec.decode(r.value));
      records++;
    }
    const last = batch.records[batch.records.length - 1];
    if (!last) return;
    control.resolveOffset(last.offset);
    await consumer.commit(batch.topic, batch.partition, (BigInt(last.offset) + 1n).toString());
    process.stdout.write(`${JSON.stringify({ rows, records })}\n`);
  });
}
