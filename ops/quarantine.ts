/**
 * `fluxion quarantine list|release`: the operator's side of the differ's quarantine.
 *
 * A release reads the quarantined snapshot's chunks back from pos.inventario.snapshots (from
 * the offset its quarantine record names) and sends them again, unchanged, with the header
 * `fluxion-release`, in one transaction with a RELEASE_REQUESTED record. The differ applies
 * it in stream order, so a release can never race a newer snapshot of the same store.
 */
import { createTopicCodec } from '../core/avro/topic-codec.ts';
import { FluxionError, UsageError } from '../core/errors.ts';
import type { KafkaClient, OutgoingRecord } from '../core/kafka/types.ts';
import type { Logger } from '../core/logger.ts';
import type { QuarantineRecord } from '../core/records.ts';
import type { FluxionRegistry } from '../core/registry.ts';

/** Must equal RELEASE_HEADER in processors/snapshot-differ.ts (ops does not import processors). */
export const RELEASE_HEADER = 'fluxion-release';

export type QuarantineEntry = QuarantineRecord;

export interface QuarantineDeps {
  kafka: KafkaClient;
  registry: FluxionRegistry;
  logger: Logger;
  topicPrefix: string;
}

export class QuarantineError extends FluxionError {
  constructor(message: string, options: ConstructorParameters<typeof FluxionError>[1] = {}) {
    super(message, { code: 'QUARANTINE', ...options });
  }
}

/** Every snapshot the differ ever quarantined or found stale (its last status), oldest first. */
export async function listQuarantine(deps: QuarantineDeps): Promise<QuarantineEntry[]> {
  const topic = `${deps.topicPrefix}pos.inventario.quarantine`;
  const codec = await createTopicCodec<QuarantineEntry>(deps.registry, 'pos.inventario.quarantine', topic);
  const admin = await deps.kafka.admin();
  const partitions = await admin.topicOffsets(topic).finally(() => admin.disconnect());
  const latest = new Map<string, QuarantineEntry>();
  await deps.kafka.readToEnd(
    topic,
    partitions.map((p) => p.partition),
    async (r) => {
      const key = r.key?.toString() ?? '';
      if (!r.value) latest.delete(key);
      else latest.set(key, await codec.decode(r.value));
    },
  );
  return [...latest.values()].sort((a, b) => a.taken_at.getTime() - b.taken_at.getTime() || a.ubicacion_id.localeCompare(b.ubicacion_id));
}

/** Sends the chunks of a quarantined snapshot again, marked as released; returns the chunks sent. */
export async function releaseQuarantined(
  deps: QuarantineDeps,
  snapshotId: string,
  note: string,
): Promise<{ entry: QuarantineEntry; chunks: number }> {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(snapshotId))
    throw new UsageError(`"${snapshotId}" is not a snapshot id (a UUID): see \`fluxion quarantine list\``);
  const entry = (await listQuarantine(deps)).find((q) => q.snapshot_id === snapshotId);
  if (!entry)
    throw new QuarantineError(`snapshot ${snapshotId} is not in quarantine: see \`fluxion quarantine list --all\``, {
      context: { snapshot: snapshotId },
    });
  if (entry.status === 'STALE') {
    // Applying it would move the store's stock back to an older reading than the one applied.
    throw new QuarantineError(
      `snapshot ${snapshotId} of ${entry.ubicacion_id} is STALE and can never be released: ${entry.reason}. The store's next snapshot ` +
        `brings its current stock`,
      {
        context: { snapshot: snapshotId, ubicacion: entry.ubicacion_id },
      },
    );
  }
  if (entry.status === 'RELEASED' || entry.status === 'SUPERSEDED') {
    throw new QuarantineError(
      `snapshot ${snapshotId} of ${entry.ubicacion_id} is already ${entry.status}${entry.note ? ` (${entry.note})` : ''}: nothing to ` +
        `release`,
      { context: { snapshot: snapshotId, ubicacion: entry.ubicacion_id } },
    );
  }
  const snapshotsTopic = `${deps.topicPrefix}pos.inventario.snapshots`;
  const chunks = new Map<number, OutgoingRecord>();
  const releasedAt = new Date();
  // The differ does not follow the quarantine topic live: the note and instant travel with the chunks.
  const headers = { [RELEASE_HEADER]: snapshotId, [`${RELEASE_HEADER}-note`]: note, [`${RELEASE_HEADER}-at`]: releasedAt.toISOString() };
  // The chunk index sits inside the Avro value; decode only the header fields we need.
  const chunkCodec = await createTopicCodec<{ snapshot_id: string; chunk_index: number }>(
    deps.registry,
    'pos.inventario.snapshots',
    snapshotsTopic,
  );
  await deps.kafka.readToEnd(
    snapshotsTopic,
    [entry.partition],
    async (r) => {
      if (!r.value || r.key?.toString() !== entry.ubicacion_id) return;
      const chunk = await chunkCodec.decode(r.value).catch(() => null);
      if (chunk?.snapshot_id !== snapshotId) return;
      chunks.set(chunk.chunk_index, { ubicacionId: entry.ubicacion_id, key: r.key, value: r.value, headers });
      if (chunks.size === entry.chunk_count) return 'stop';
    },
    { fromOffsets: { [entry.partition]: String(entry.first_offset) } },
  );
  if (chunks.size !== entry.chunk_count) {
    throw new QuarantineError(
      `snapshot ${snapshotId} of ${entry.ubicacion_id}: found ${chunks.size} of its ${entry.chunk_count} chunks on ` +
        `${snapshotsTopic}[${entry.partition}] from offset ${entry.first_offset}; past the topic's retention it can no longer be ` +
        `released`,
      { context: { snapshot: snapshotId, ubicacion: entry.ubicacion_id } },
    );
  }
  const quarantineTopic = `${deps.topicPrefix}pos.inventario.quarantine`;
  const quarantineCodec = await createTopicCodec<QuarantineEntry>(deps.registry, 'pos.inventario.quarantine', quarantineTopic);
  const requested: QuarantineEntry = { ...entry, status: 'RELEASE_REQUESTED', updated_at: releasedAt, note };
  const producer = await deps.kafka.producer({ transactionalId: `fluxion-quarantine-release-${snapshotId}` });
  try {
    await producer.transaction(async (tx) => {
      await tx.send(
        snapshotsTopic,
        [...chunks.entries()].sort((a, b) => a[0] - b[0]).map(([, r]) => r),
      );
      await tx.send(quarantineTopic, [{ ubicacionId: entry.ubicacion_id, key: snapshotId, value: quarantineCodec.encode(requested) }]);
    });
  } finally {
    await producer.disconnect();
  }
  deps.logger.warn({ snapshot: snapshotId, ubicacion: entry.ubicacion_id, chunks: chunks.size, note }, 'quarantined snapshot released');
  return { entry: requested, chunks: chunks.size };
}
