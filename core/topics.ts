/**
 * The topics of docs/architecture.md: names, retention, compaction. Every topic has the same
 * partition count, because records are placed by ubicacion on every topic (co-partitioning).
 */
import type { Compression } from './kafka/compression.ts';

export type TopicName =
  | 'pos.inventario.snapshots'
  | 'pos.inventario.state'
  | 'pos.inventario.changes'
  | 'pos.inventario.quarantine'
  | 'pos.ventas.raw'
  | 'pos.ventas'
  | 'pos.ventas.state'
  | 'alerts.phantom-zeros'
  | 'alerts.phantom-zeros.state'
  | 'ops.etl-runs';

export interface TopicSpec {
  name: string;
  description: string;
  /** Topic configs `fluxion topics ensure` owns; anything else on the topic is left alone. */
  config: Record<string, string>;
  /** Whether records on it are Avro with a registered `<name>-value` schema. */
  avro: boolean;
  /** How producers compress its record batches (consumers read any codec core/kafka/ registers). */
  compression: Compression;
}

const DAY_MS = 86_400_000;
const retention = (days: number) => ({ 'cleanup.policy': 'delete', 'retention.ms': String(days * DAY_MS) });
const FOREVER = { 'cleanup.policy': 'delete', 'retention.ms': '-1', 'retention.bytes': '-1' };
// Compacted state: keep tombstones a day so a restarting reader sees the delete.
const COMPACTED = { 'cleanup.policy': 'compact', 'delete.retention.ms': String(DAY_MS), 'min.compaction.lag.ms': '0' };

const BASE: Array<{ name: TopicName; description: string; config: Record<string, string> }> = [
  { name: 'pos.inventario.snapshots', description: 'full inventory reads, chunked, one transaction per store', config: retention(7) },
  { name: 'pos.inventario.state', description: "the differ's last applied row per product (compacted)", config: COMPACTED },
  { name: 'pos.inventario.changes', description: 'c/u/d changes between applied snapshots: the event log', config: FOREVER },
  {
    name: 'pos.inventario.quarantine',
    description: 'snapshots the differ refused to apply, by snapshot_id (compacted)',
    config: COMPACTED,
  },
  { name: 'pos.ventas.raw', description: 'sales lines as read, every read of the day', config: retention(7) },
  { name: 'pos.ventas', description: 'deduplicated sales lines (c/u)', config: FOREVER },
  { name: 'pos.ventas.state', description: "the dedupe's fingerprint per sales line (compacted)", config: COMPACTED },
  { name: 'alerts.phantom-zeros', description: 'phantom-zero alerts OPEN/RESOLVED', config: retention(90) },
  { name: 'alerts.phantom-zeros.state', description: "the phantom detector's state per product (compacted)", config: COMPACTED },
  { name: 'ops.etl-runs', description: 'one record per store per extraction run', config: retention(30) },
];

/** Topics consumed by a processor or the sink get a dead-letter topic for bad records. */
export const CONSUMED_TOPICS: TopicName[] = [
  'pos.inventario.snapshots',
  'pos.inventario.changes',
  'pos.ventas.raw',
  'pos.ventas',
  'alerts.phantom-zeros',
  'ops.etl-runs',
];

export function dlqTopic(topic: string): string {
  return `${topic}.dlq`;
}

/** Every topic with its configuration; `prefix` isolates environments or tests on one cluster. */
export function topicSpecs(prefix = ''): TopicSpec[] {
  const specs: TopicSpec[] = BASE.map((t) => ({
    name: prefix + t.name,
    description: t.description,
    config: t.config,
    avro: true,
    compression: COMPRESSION,
  }));
  for (const t of CONSUMED_TOPICS) {
    specs.push({
      name: prefix + dlqTopic(t),
      description: `records of ${t} that could not be processed`,
      config: retention(30),
      avro: false,
      compression: 'none',
    });
  }
  return specs;
}

/**
 * zstd on every Avro topic: bench/compression.ts measured each topic's records in the
 * producer's batches (bench/README.md, "Bytes on the log"). Dead-letter topics keep the bad
 * bytes as they came, uncompressed.
 */
const COMPRESSION: Compression = 'zstd';

/** The codec a producer uses on `topic` (with any prefix); none for topics not declared here. */
export function compressionFor(topic: string): Compression {
  if (topic.endsWith('.dlq')) return 'none';
  return BASE.some((t) => topic.endsWith(t.name)) ? COMPRESSION : 'none';
}

export function topicName(name: TopicName, prefix = ''): string {
  return prefix + name;
}
