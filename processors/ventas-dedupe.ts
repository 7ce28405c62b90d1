/**
 * `fluxion process dedupe`: pos.ventas.raw -> pos.ventas, with its memory in pos.ventas.state.
 *
 * Every hourly read re-publishes the whole day, so a sales line (ubicacion_id, numero_factura,
 * linea) arrives many times: it is emitted once as `c`, again as `u` only when its content
 * changed (voided, corrected), and dropped otherwise (processors/ventas-dedupe-rules.ts).
 *
 The entries live in the partition's state store (processors/runtime/state-store.ts, on disk
 * under FLUXION_STATE_DIR), not in the heap: `l/<ventaKey>` -> encodeEntry, and the meta key
 * STREAM_TIME. A restart on the same directory reads only the state topic's tail.
 *
 * What keeps it exact across crashes, restarts and rebalances:
 * - The store is exactly what the state topic holds: every change to an entry is written as a
 *   state record in the same transaction as the output and the input offset, and nothing
 *   else changes the store (its writes reach the disk only after that transaction
 *   committed). A new owner of a partition reads the same entries back, so it takes the same
 *   decisions an uninterrupted run would.
 * - Stream time per partition is the latest last_seen_at recorded, hence recomputable from
 *   the state topic: the store keeps it as a meta key, raised by every entry written or
 *   loaded, so a load of the tail alone gives the same maximum as a load of the whole topic.
 *   The sweep runs when it enters a new hour, at the same input records in every run, and
 *   tombstones the lines not read for the retention window; it reads the partition's store
 *   once (entries() streams it from disk, only the expired keys are kept), as often as the
 *   in-memory sweep used to: once per hour of stream time, never per batch.
 * - A line whose entry is past the window is decided as new even before the sweep removed it.
 *
 * A duplicate rewrites its state record only when its read is at least `refreshIntervalMs`
 * later than the recorded one: see that function for what it costs.
 *
 * The counters count lines as processed: lines of a transaction that aborts (and is retried
 * from the committed offset) are counted again.
 */
import { createTopicCodec } from '../core/avro/topic-codec.ts';
import { ConfigError, TopicLayoutError, ValidationError } from '../core/errors.ts';
import type { KafkaClient } from '../core/kafka/types.ts';
import { partitionForUbicacion } from '../core/kafka/partitioning.ts';
import type { Logger } from '../core/logger.ts';
import type { Venta, VentaLinea } from '../core/records.ts';
import { sharedCounter } from '../core/metrics.ts';
import type { ProcessorFactory } from './runtime/processor-kind.ts';
import { fallbackStores, StateStoreError, type KeyValueState } from './runtime/state-store.ts';
import type { Output, ProcessorContext, StreamProcessorSpec } from './runtime/stream-processor.ts';
import {
  advanceStreamTime,
  decodeEntry,
  dedupeStep,
  encodeEntry,
  expiredKeys,
  refreshIntervalMs,
  ubicacionOfKey,
  ventaKey,
  ventaRawProblem,
  type DedupeEntry,
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

/** Store keys of the lines: `l/` + ventaKey, so that one prefix scan reads them all. */
const LINE = 'l/';
/**
 * Store key of the partition's stream time (latest last_seen_at recorded, epoch ms): a
 * control character never begins a data key, and the store reserves only `\u0000...`.
 */
const STREAM_TIME = '\u0001stream-time';
/** What the dedupe's state store holds (the keys above): a new value wipes stores of the old one. */
const STORE_LAYOUT = 'dedupe-1';

export const createDedupeSpec: ProcessorFactory = async (deps) => {
  const retentionDays = deps.config.dedupeRetentionDays;
  if (!(retentionDays > 0)) throw new ConfigError([`FLUXION_DEDUPE_RETENTION_DAYS=${retentionDays}: must be a number of days above 0`]);
  const window = { retentionDays, refreshMs: refreshIntervalMs(retentionDays) };
  const p = deps.topicPrefix;
  const topics = { raw: `${p}pos.ventas.raw`, ventas: `${p}pos.ventas`, state: `${p}pos.ventas.state` };
  const log = deps.logger.child({ component: 'dedupe' });
  const [rawCodec, ventaCodec, stateCodec] = await Promise.all([
    createTopicCodec<VentaRaw>(deps.registry, 'pos.ventas.raw', topics.raw),
    createTopicCodec<Venta>(deps.registry, 'pos.ventas', topics.ventas),
    createTopicCodec<VentaStateRecord>(deps.registry, 'pos.ventas.state', topics.state),
  ]);
  const partitionCount = await copartitionedPartitions(deps.kafka, [topics.raw, topics.state], deps.partitions, log);

  const registry = deps.metrics.registry;
  const linesCounter = sharedCounter(registry, {
    name: 'fluxion_dedupe_lines_total',
    help:
      'sales lines by decision: new (emitted c), updated (emitted u), duplicate (dropped); counted as processed, so lines of an ' +
      'aborted transaction count again',
    labelNames: ['decision'],
  });
  const expiredCounter = sharedCounter(registry, {
    name: 'fluxion_dedupe_expired_total',
    help: 'sales lines forgotten (state tombstoned) after the retention window; counted as processed',
  });

  /** Partitions whose first line after (re)loading was logged. */
  const announced = new Set<number>();
  /**
   * The runtime hands every call the partition's store (spec.state.store). Driven without
   * one (the spec on its own, as the unit tests drive it), the spec keeps a store per
   * partition in memory, which `reset` forgets.
   */
  const { storeOf, forget: forgetOwnStore } = fallbackStores();

  function unreadable(key: string, value: string, partition: number): StateStoreError {
    return new StateStoreError(
      `dedupe state store, partition ${partition}: value ${JSON.stringify(value.slice(0, 80))} of key ${JSON.stringify(key)} cannot ` +
        `be read; stop the dedupe and wipe its state store (docs/state-stores.md), the next start rebuilds it from ${topics.state}`,
      { context: { partition, key, topic: topics.state } },
    );
  }

  function entryOf(kv: KeyValueState, key: string, partition: number): DedupeEntry | undefined {
    const raw = kv.get(LINE + key);
    if (raw === undefined) return undefined;
    return decodeEntry(raw) ?? throwError(unreadable(LINE + key, raw, partition));
  }

  function streamTimeOf(kv: KeyValueState, partition: number): number {
    const raw = kv.get(STREAM_TIME);
    if (raw === undefined) return -Infinity;
    const t = Number(raw);
    return Number.isSafeInteger(t) ? t : throwError(unreadable(STREAM_TIME, raw, partition));
  }

  /** Every line of the partition's store, streamed from disk in key order. */
  function* storedLines(kv: KeyValueState, partition: number, seen: { lines: number }): Generator<[string, DedupeEntry]> {
    for (const [k, v] of kv.entries(LINE)) {
      seen.lines++;
      yield [k.slice(LINE.length), decodeEntry(v) ?? throwError(unreadable(k, v, partition))];
    }
  }

  function stateOutput(key: string, entry: DedupeEntry | null): Output {
    const ubicacion = ubicacionOfKey(key);
    const value = entry
      ? stateCodec.encode({
          ubicacion_id: ubicacion,
          fingerprint: entry.fingerprint,
          first_seen_at: new Date(entry.first_seen_at),
          last_seen_at: new Date(entry.last_seen_at),
        })
      : null;
    return { topic: topics.state, ubicacionId: ubicacion, key, value };
  }

  /**
   * The partition's lines not read for the window at `streamTime`, but `current` (the line
   * being recorded, whose new entry is not expired then). Reads the store and writes nothing:
   * it can throw before the record changes anything.
   */
  function sweepKeys(kv: KeyValueState, streamTime: number, current: string, ctx: ProcessorContext): string[] {
    const started = performance.now();
    const seen = { lines: 0 };
    const keys = expiredKeys(storedLines(kv, ctx.partition, seen), streamTime, retentionDays, current);
    log.debug(
      {
        partition: ctx.partition,
        offset: ctx.offset,
        scanned: seen.lines,
        expired: keys.length,
        ms: Math.round(performance.now() - started),
      },
      'sweep scanned the state store',
    );
    if (keys.length > 0) {
      log.info(
        {
          partition: ctx.partition,
          offset: ctx.offset,
          expired: keys.length,
          scanned: seen.lines,
          streamTime: new Date(streamTime).toISOString(),
          retentionDays,
        },
        'sales lines not read for the retention window forgotten (state tombstoned)',
      );
    }
    return keys;
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
          context: {
            ubicacion: l.ubicacion_id,
            field: problem.field,
            value: problem.value,
            topic: record.topic,
            partition: record.partition,
            offset: record.offset,
          },
        });
      }
      // Its state is placed by store: read on another partition, a restart would look for it
      // where it is not.
      const expected = partitionForUbicacion(l.ubicacion_id, partitionCount);
      if (record.partition !== expected) {
        throw new ValidationError(
          `${where}: read on partition ${record.partition} of ${record.topic}, but ${l.ubicacion_id}'s records belong on partition ` +
            `${expected} (every topic is partitioned by store)`,
          {
            context: {
              ubicacion: l.ubicacion_id,
              field: 'partition',
              value: record.partition,
              topic: record.topic,
              partition: record.partition,
              offset: record.offset,
            },
          },
        );
      }
      return raw;
    },
    async process({ linea, extracted_at }, ctx) {
      const kv = storeOf(ctx.store, ctx.partition);
      const before = streamTimeOf(kv, ctx.partition);
      if (!announced.has(ctx.partition)) {
        announced.add(ctx.partition);
        log.info(
          { partition: ctx.partition, offset: ctx.offset, streamTime: Number.isFinite(before) ? new Date(before).toISOString() : null },
          'dedupe state ready',
        );
      }
      const key = ventaKey(linea);
      const known = entryOf(kv, key, ctx.partition);
      const step = dedupeStep(known, linea, extracted_at, window);
      const out: Output[] = [];
      if (step.output) out.push({ topic: topics.ventas, ubicacionId: linea.ubicacion_id, key, value: ventaCodec.encode(step.output) });
      if (step.record) out.push(stateOutput(key, step.record));
      const { streamTime: after, sweep } = advanceStreamTime(before, step.record);
      const expired = sweep ? sweepKeys(kv, after, key, ctx) : [];
      // Everything that can throw (encoding, reading the store) is done: the store changes
      // only for a record whose outputs are written.
      linesCounter.inc({ decision: step.decision });
      if (known && step.decision === 'new')
        log.debug({ key, partition: ctx.partition, offset: ctx.offset }, 'line read again after the retention window: emitted as new');
      if (step.decision === 'updated')
        log.debug({ key, partition: ctx.partition, offset: ctx.offset, anulada: linea.anulada }, 'line changed: emitted as u');
      if (step.record) {
        kv.put(LINE + key, encodeEntry(step.record));
        if (after > before) kv.put(STREAM_TIME, String(after));
      }
      for (const k of expired) {
        kv.delete(LINE + k);
        out.push(stateOutput(k, null));
      }
      if (expired.length > 0) expiredCounter.inc(expired.length);
      return out;
    },
    state: {
      topics: [topics.state],
      store: { topics: [topics.state], dir: deps.config.stateDir, layout: STORE_LAYOUT },
      async load(record, store) {
        const key = record.key?.toString('utf8');
        const where = { topic: record.topic, partition: record.partition, offset: record.offset, key };
        if (!key)
          throw new ValidationError(`${record.topic}[${record.partition}]@${record.offset}: state record without a key`, {
            context: where,
          });
        const kv = storeOf(store, record.partition);
        if (!record.value) {
          kv.delete(LINE + key);
          return;
        }
        let v: VentaStateRecord;
        try {
          v = await stateCodec.decode(record.value);
          // encodeEntry separates the fields by spaces: a fingerprint holding one (never one of
          // ventaFingerprint's) would not be read back.
          if (!/^\S+$/.test(v.fingerprint))
            throw new ValidationError(
              `${record.topic}[${record.partition}]@${record.offset} (${key}): fingerprint ${JSON.stringify(v.fingerprint)} is empty ` +
                `or holds a space`,
              { context: { ...where, field: 'fingerprint' } },
            );
        } catch (err) {
          // Skipping it would forget the line and emit it again as new: refuse to start instead.
          log.error({ ...where, err }, 'state record cannot be read: the dedupe cannot start until it is fixed (e.g. tombstone that key)');
          throw err;
        }
        const entry: DedupeEntry = {
          fingerprint: v.fingerprint,
          first_seen_at: v.first_seen_at.getTime(),
          last_seen_at: v.last_seen_at.getTime(),
        };
        kv.put(LINE + key, encodeEntry(entry));
        // The maximum over the records loaded: the stored one covers the changelog below the
        // checkpoint, this record one of its tail.
        if (entry.last_seen_at > streamTimeOf(kv, record.partition)) kv.put(STREAM_TIME, String(entry.last_seen_at));
      },
      reset(partition) {
        // The runtime's store drops its pending writes itself; only the spec's own is forgotten here.
        announced.delete(partition);
        forgetOwnStore(partition);
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
  if (counts.some((c) => c < 1))
    throw new TopicLayoutError(`missing topics among ${names.join(', ')}: run \`fluxion topics ensure\``, {
      context: { topic: names.join(',') },
    });
  if (new Set(counts).size > 1) {
    throw new TopicLayoutError(
      `${names.map((n, i) => `${n} has ${counts[i]} partitions`).join(', ')}: they must be equal (lines and their state are ` +
        `co-partitioned by store)`,
      {
        context: { topic: names.join(',') },
      },
    );
  }
  if (counts[0] !== configured)
    log.warn(
      { topics: names, partitions: counts[0], configured },
      'topic partition count differs from FLUXION_TOPIC_PARTITIONS: placing by the topics',
    );
  return counts[0]!;
}

function throwError(err: Error): never {
  throw err;
}
