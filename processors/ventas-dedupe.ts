/**
 * `fluxion process dedupe`: pos.ventas.raw -> pos.ventas, with its memory in pos.ventas.state.
 *
 * Every hourly read re-publishes the whole day, so a sales line (ubicacion_id, numero_factura,
 * linea) arrives many times: it is emitted once as `c`, again as `u` only when its content
 * changed (voided, corrected), and dropped otherwise (processors/ventas-dedupe-rules.ts).
 *
 * What keeps it exact across crashes, restarts and rebalances:
 * - Memory is exactly what the state topic holds: every change to an entry is written as a
 *   state record in the same transaction as the output and the input offset, and nothing
 *   else changes memory. A new owner of a partition reads the same entries back, so it
 *   takes the same decisions an uninterrupted run would.
 * - Stream time per partition is the latest last_seen_at recorded, hence recomputable from
 *   the state topic; the sweep runs when it enters a new hour, at the same input records in
 *   every run, and tombstones the lines not read for the retention window.
 * - A line whose entry is past the window is decided as new even before the sweep removed it.
 *
 * A duplicate rewrites its state record only when its read is at least `refreshIntervalMs`
 * later than the recorded one: see that function for what it costs.
 *
 * The counters count lines as processed: lines of a transaction that aborts (and is retried
 * from the committed offset) are counted again.
 */
import { Counter } from 'prom-client';
import { createTopicCodec } from '../core/avro/topic-codec.ts';
import { ConfigError, TopicLayoutError, ValidationError } from '../core/errors.ts';
import type { KafkaClient } from '../core/kafka/client.ts';
import { partitionForUbicacion } from '../core/kafka/partitioning.ts';
import type { Logger } from '../core/logger.ts';
import type { VentaLinea } from '../core/records.ts';
import { registeredMetric } from './runtime/metrics.ts';
import type { ProcessorFactory } from './runtime/processor-kind.ts';
import type { Output, ProcessorContext, StreamProcessorSpec } from './runtime/stream-processor.ts';
import {
  crossesHour,
  dedupeStep,
  expiredKeys,
  refreshIntervalMs,
  ubicacionOfKey,
  ventaKey,
  ventaRawProblem,
  type DedupeEntry,
  type VentaOut,
} from './ventas-dedupe-rules.ts';

/** schemas/pos.ventas.raw-value.avsc */
export interface VentaRaw {
  linea: VentaLinea;
  extracted_at: Date;
  run_id: string;
}

/** schemas/pos.ventas.state-value.avsc */
export interface VentaStateRecord {
  ubicacion_id: string;
  fingerprint: string;
  first_seen_at: Date;
  last_seen_at: Date;
}

interface PartitionMemory {
  lines: Map<string, DedupeEntry>;
  /** Latest last_seen_at recorded on the partition (-Infinity before any). */
  streamTime: number;
  /** Whether the first line after (re)loading was logged. */
  announced: boolean;
}

export const createDedupeSpec: ProcessorFactory = async (deps) => {
  const retentionDays = deps.config.dedupeRetentionDays;
  if (!(retentionDays > 0)) throw new ConfigError([`FLUXION_DEDUPE_RETENTION_DAYS=${retentionDays}: must be a number of days above 0`]);
  const window = { retentionDays, refreshMs: refreshIntervalMs(retentionDays) };
  const p = deps.topicPrefix;
  const topics = { raw: `${p}pos.ventas.raw`, ventas: `${p}pos.ventas`, state: `${p}pos.ventas.state` };
  const log = deps.logger.child({ component: 'dedupe' });
  const [rawCodec, ventaCodec, stateCodec] = await Promise.all([
    createTopicCodec<VentaRaw>(deps.registry, 'pos.ventas.raw', topics.raw),
    createTopicCodec<VentaOut>(deps.registry, 'pos.ventas', topics.ventas),
    createTopicCodec<VentaStateRecord>(deps.registry, 'pos.ventas.state', topics.state),
  ]);
  const partitionCount = await copartitionedPartitions(deps.kafka, [topics.raw, topics.state], deps.partitions, log);

  const registry = deps.metrics.registry;
  const linesCounter = registeredMetric(registry, 'fluxion_dedupe_lines_total', () =>
    new Counter({
      name: 'fluxion_dedupe_lines_total',
      help: 'sales lines by decision: new (emitted c), updated (emitted u), duplicate (dropped); counted as processed, so lines of an aborted transaction count again',
      labelNames: ['decision'],
      registers: [registry],
    }),
  );
  const expiredCounter = registeredMetric(registry, 'fluxion_dedupe_expired_total', () =>
    new Counter({
      name: 'fluxion_dedupe_expired_total',
      help: 'sales lines forgotten (state tombstoned) after the retention window; counted as processed',
      registers: [registry],
    }),
  );

  const partitions = new Map<number, PartitionMemory>();

  function memory(partition: number): PartitionMemory {
    let m = partitions.get(partition);
    if (!m) {
      m = { lines: new Map(), streamTime: -Infinity, announced: false };
      partitions.set(partition, m);
    }
    return m;
  }

  function stateOutput(key: string, entry: DedupeEntry | null): Output {
    const ubicacion = ubicacionOfKey(key);
    const value = entry
      ? stateCodec.encode({ ubicacion_id: ubicacion, fingerprint: entry.fingerprint, first_seen_at: new Date(entry.first_seen_at), last_seen_at: new Date(entry.last_seen_at) })
      : null;
    return { topic: topics.state, ubicacionId: ubicacion, key, value };
  }

  /** Forgets the partition's lines not read for the window: tombstones them and drops them from memory. */
  function sweep(m: PartitionMemory, ctx: ProcessorContext): Output[] {
    const keys = expiredKeys(m.lines, m.streamTime, retentionDays);
    if (keys.length === 0) return [];
    for (const key of keys) m.lines.delete(key);
    expiredCounter.inc(keys.length);
    log.info(
      { partition: ctx.partition, offset: ctx.offset, expired: keys.length, remaining: m.lines.size, streamTime: new Date(m.streamTime).toISOString(), retentionDays },
      'sales lines not read for the retention window forgotten (state tombstoned)',
    );
    return keys.map((key) => stateOutput(key, null));
  }

  const spec: StreamProcessorSpec<VentaRaw> = {
    name: 'dedupe',
    inputTopics: [topics.raw],
    async decode(record) {
      const raw = await rawCodec.decode(record.value);
      const l = raw.linea;
      const where = `ventas line ${l.ubicacion_id}/${l.numero_factura}/${l.linea}`;
      const problem = ventaRawProblem(raw);
      if (problem) {
        throw new ValidationError(`${where}: ${problem.field} ${JSON.stringify(problem.value)} ${problem.reason}`, {
          context: { ubicacion: l.ubicacion_id, field: problem.field, value: problem.value, topic: record.topic, partition: record.partition, offset: record.offset },
        });
      }
      // Its state is placed by store: read on another partition, a restart would look for it
      // where it is not.
      const expected = partitionForUbicacion(l.ubicacion_id, partitionCount);
      if (record.partition !== expected) {
        throw new ValidationError(`${where}: read on partition ${record.partition} of ${record.topic}, but ${l.ubicacion_id}'s records belong on partition ${expected} (every topic is partitioned by store)`, {
          context: { ubicacion: l.ubicacion_id, field: 'partition', value: record.partition, topic: record.topic, partition: record.partition, offset: record.offset },
        });
      }
      return raw;
    },
    async process({ linea, extracted_at }, ctx) {
      const m = memory(ctx.partition);
      if (!m.announced) {
        m.announced = true;
        log.info({ partition: ctx.partition, offset: ctx.offset, lines: m.lines.size, streamTime: Number.isFinite(m.streamTime) ? new Date(m.streamTime).toISOString() : null }, 'dedupe state ready');
      }
      const key = ventaKey(linea);
      const known = m.lines.get(key);
      const step = dedupeStep(known, linea, extracted_at, window);
      const out: Output[] = [];
      if (step.output) out.push({ topic: topics.ventas, ubicacionId: linea.ubicacion_id, key, value: ventaCodec.encode(step.output) });
      if (step.record) out.push(stateOutput(key, step.record));
      // Everything that can throw (encoding) is done: memory changes only for a record
      // whose outputs are written.
      linesCounter.inc({ decision: step.decision });
      if (known && step.decision === 'new') log.debug({ key, partition: ctx.partition, offset: ctx.offset }, 'line read again after the retention window: emitted as new');
      if (step.decision === 'updated') log.debug({ key, partition: ctx.partition, offset: ctx.offset, anulada: linea.anulada }, 'line changed: emitted as u');
      if (step.record) {
        m.lines.set(key, step.record);
        const before = m.streamTime;
        m.streamTime = Math.max(before, step.record.last_seen_at);
        if (crossesHour(before, m.streamTime)) out.push(...sweep(m, ctx));
      }
      return out;
    },
    state: {
      topics: [topics.state],
      async load(record) {
        const key = record.key?.toString('utf8');
        const where = { topic: record.topic, partition: record.partition, offset: record.offset, key };
        if (!key) throw new ValidationError(`${record.topic}[${record.partition}]@${record.offset}: state record without a key`, { context: where });
        const m = memory(record.partition);
        if (!record.value) {
          m.lines.delete(key);
          return;
        }
        let v: VentaStateRecord;
        try {
          v = await stateCodec.decode(record.value);
        } catch (err) {
          // Skipping it would forget the line and emit it again as new: refuse to start instead.
          log.error({ ...where, err }, 'state record cannot be read: the dedupe cannot start until it is fixed (e.g. tombstone that key)');
          throw err;
        }
        const entry: DedupeEntry = { fingerprint: v.fingerprint, first_seen_at: v.first_seen_at.getTime(), last_seen_at: v.last_seen_at.getTime() };
        m.lines.set(key, entry);
        if (entry.last_seen_at > m.streamTime) m.streamTime = entry.last_seen_at;
      },
      reset(partition) {
        partitions.delete(partition);
      },
    },
  };
  return spec;
};

/**
 * The partition count the input and its state share. Placement by store keeps a store's lines
 * and their state on the same partition number only when both topics have the same count.
 */
async function copartitionedPartitions(kafka: KafkaClient, names: string[], configured: number, log: Logger): Promise<number> {
  const admin = await kafka.admin();
  let described: Array<{ name: string; partitions: number }>;
  try {
    described = await admin.describeTopics(names);
  } finally {
    await admin.disconnect();
  }
  const counts = names.map((name) => described.find((t) => t.name === name)?.partitions ?? 0);
  if (counts.some((c) => c < 1)) throw new TopicLayoutError(`missing topics among ${names.join(', ')}: run \`fluxion topics ensure\``, { context: { topic: names.join(',') } });
  if (new Set(counts).size > 1) {
    throw new TopicLayoutError(`${names.map((n, i) => `${n} has ${counts[i]} partitions`).join(', ')}: they must be equal (lines and their state are co-partitioned by store)`, {
      context: { topic: names.join(',') },
    });
  }
  if (counts[0] !== configured) log.warn({ topics: names, partitions: counts[0], configured }, 'topic partition count differs from FLUXION_TOPIC_PARTITIONS: placing by the topics');
  return counts[0]!;
}
