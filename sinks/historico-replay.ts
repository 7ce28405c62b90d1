/**
 * `fluxion replay historico`: rebuilds inventario_historico from pos.inventario.changes alone
 * (docs/replay.md), with the sink's own planner and statements, into a shadow table
 * that replaces the live one in one transaction. Readers see the old history until the
 * commit and the new one after it, never a half-built one.
 *
 * - `--from T` keeps the live rows that began before T (reopening those an event at or after
 *   T closed, since that event is replayed) and replays the events taken at or after T. It
 *   starts reading at the offsets of produce time T minus a margin: an event is produced
 *   after its snapshot was taken, but the POS clock that stamped taken_at may run ahead.
 * - `--to T` replays only events taken before T and keeps the live rows that began at or
 *   after T. A replayed interval still open at T ends at its key's first event at or after
 *   T (read from the topic too: a d leaves no row to learn it from).
 * - The live sink keeps running. The replay reads up to the sink's own position
 *   (sink_offsets), then, holding an exclusive lock on inventario_historico (which makes the
 *   sink wait), replays what the sink wrote meanwhile and swaps. Nothing is lost between the
 *   two.
 * - The bulk of the log is written set-based: events are COPYed into a TEMP table of the
 *   session as they are read, and a few statements derive every interval from it at once
 *   (the key's next event closes it, window functions over the key's events in offset
 *   order), instead of planning and writing 20,000-event slices. The planner's rules hold:
 *   the last event of an instant wins, a d closes and opens nothing, an event older than an
 *   earlier one of its key is skipped. The catch-up under the lock uses the sink's planner.
 * - Cancelled (Ctrl-C) or failed: the shadow table is dropped, the live one never touched.
 * - Records the live sink dead-lettered (undecodable, refused by the planner) are skipped
 *   the same way, and counted.
 * - It never destroys history it cannot rebuild: before reading, and again before the swap,
 *   the log must cover what the live table was built from (sinks/replay-coverage.ts: every
 *   partition from offset 0, or from --from's offset, up to the sink's position). Otherwise
 *   it throws ReplayCoverageError naming the gaps, the live table untouched; `force` goes on,
 *   and reports how many live rows the rebuilt table lacks before swapping it in.
 */
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import { createTopicCodec } from '../core/avro/topic-codec.ts';
import { errorMessage, FluxionError } from '../core/errors.ts';
import type { ConsumedRecord, KafkaClient } from '../core/kafka/types.ts';
import { inTransaction, withTransaction, type PoolClient } from '../core/postgres.ts';
import type { InventoryChange } from '../core/records.ts';
import { topicName } from '../core/topics.ts';
import {
  applyEvents,
  closeAtTo,
  countLost,
  countRows,
  createShadow,
  EVENT_COLUMNS,
  EVENTS,
  LIVE,
  SHADOW,
  swap,
} from './historico-replay-sql.ts';
import { copyChunks, readSinkOffsets, writeInventory } from './postgres-writer.ts';
import { checkCoverage, describeProblem, positionsOnTopic, type LogPartition } from './replay-coverage.ts';
import { checkChange, planInventory, SinkBatchError } from './sink-batch.ts';
import {
  ReplayError,
  ReplayCoverageError,
  ReplayCancelled,
  type ReplayDeps,
  type ReplayOptions,
  type ForcedReport,
  type ReplayResult,
} from './historico-replay-types.ts';

// The replay's options, result and errors live in sinks/historico-replay-types.ts; still importable from here.
export {
  ReplayError,
  EXIT_NOT_COVERED,
  ReplayCoverageError,
  ReplayCancelled,
  type ReplayDeps,
  type ReplayOptions,
  type ForcedReport,
  type ReplayResult,
} from './historico-replay-types.ts';

/** How far the POS clock may run ahead of the differ's: the read starts this much before --from. */
export const CLOCK_MARGIN_MS = 60 * 60_000;

export async function replayHistorico(deps: ReplayDeps, options: ReplayOptions): Promise<ReplayResult> {
  const { from, to } = options;
  if (from && to && from.getTime() >= to.getTime())
    throw new ReplayError(`--from (${from.toISOString()}) must be before --to (${to.toISOString()})`);
  const batchSize = options.batchSize ?? 20_000;
  const log = deps.logger.child({ component: 'replay-historico' });
  const topic = topicName('pos.inventario.changes', deps.topicPrefix);
  const codec = await createTopicCodec<InventoryChange>(deps.registry, 'pos.inventario.changes', topic);
  const started = Date.now();
  const checkCancelled = () => {
    if (options.signal?.aborted) throw new ReplayCancelled();
  };

  let planned!: Positions;
  let groupsOnTopic: string[] = [];
  const starts = new Map<number, bigint>();
  /** Per partition, the first offset the read delivered: shows a skip if retention overtook it. */
  const firstRead = new Map<number, bigint>();
  const coverage = (now: Positions, liveRows: number, afterRead: boolean) => {
    // The read began at the planned watermarks: a low watermark that moved since is judged
    // against what the read delivered (afterRead), not as a trim of the history.
    const log = now.log.map((p) => ({ ...p, low: planned.log.find((q) => q.partition === p.partition)?.low ?? p.low }));
    const afterReadInput = afterRead ? { low: new Map(now.log.map((p) => [p.partition, p.low])), firstRead } : undefined;
    return checkCoverage({
      log,
      readFrom: starts,
      keepsOlder: from !== undefined,
      sinkPositions: now.sink,
      liveRows,
      groupsOnTopic,
      afterRead: afterReadInput,
    });
  };
  try {
    const admin = await deps.kafka.admin();
    try {
      planned = await positions(deps, options.sinkGroup, topic, admin);
      for (const p of planned.log) starts.set(p.partition, p.low);
      if (from) {
        for (const o of await admin.offsetsForTimestamp(topic, from.getTime() - CLOCK_MARGIN_MS))
          starts.set(o.partition, BigInt(o.offset));
      }
    } finally {
      await admin.disconnect();
    }
    groupsOnTopic = (
      await deps.pool.query<{ g: string }>('SELECT DISTINCT consumer_group AS g FROM sink_offsets WHERE topic = $1 ORDER BY 1', [topic])
    ).rows.map((r) => r.g);
    const liveAtStart = await countRows(deps.pool, LIVE);
    const refused = coverage(planned, liveAtStart, false);
    if (refused.length > 0) {
      if (!options.force) throw new ReplayCoverageError(topic, options.sinkGroup, refused, liveAtStart);
      log.warn(
        { topic, problems: refused.map((p) => describeProblem(topic, p, options.sinkGroup)) },
        'the log does not cover inventario_historico; --force: replaying anyway',
      );
    }
  } catch (err) {
    throw untouched(err);
  }
  const ends = planned.ends;
  const total = [...ends].reduce((n, [p, end]) => {
    const stop = min(end, planned.log.find((o) => o.partition === p)!.high);
    return n + Number(stop > starts.get(p)! ? stop - starts.get(p)! : 0n);
  }, 0);
  log.info(
    {
      topic,
      from: from?.toISOString(),
      to: to?.toISOString(),
      starts: Object.fromEntries([...starts].map(([p, o]) => [p, o.toString()])),
      ends: Object.fromEntries([...ends].map(([p, o]) => [p, o.toString()])),
    },
    'replay starting',
  );
  const progress = options.progress?.(total);

  let read = 0;
  let applied = 0;
  let skipped = 0;
  const buffer: Array<{ change: InventoryChange; record: ConsumedRecord }> = [];
  /** With --to: per key, the taken_at of its first event at or after --to (where its open interval ends). */
  const firstAtOrAfterTo = new Map<string, Date>();

  const flush = async (client: PoolClient) => {
    let items = buffer.splice(0);
    for (;;) {
      try {
        const plan = planInventory(items.map((i) => i.change));
        await writeInventory(client, plan, { actual: null, historico: SHADOW, productos: false });
        applied += items.length;
        return;
      } catch (err) {
        if (!(err instanceof SinkBatchError)) throw err;
        const bad = items[err.index]!.record;
        log.warn({ partition: bad.partition, offset: bad.offset, err: err.message }, 'event skipped (the live sink dead-lettered it too)');
        skipped++;
        items = items.filter((_, i) => i !== err.index);
      }
    }
  };

  /** Reads [fromOffsets, toOffsets) of every partition into the shadow table through `write`. */
  const replayRange = async (fromOffsets: Map<number, bigint>, toOffsets: Map<number, bigint>, write: () => Promise<void>) => {
    const partitions = [...toOffsets].filter(([p, end]) => end > fromOffsets.get(p)!).map(([p]) => p);
    if (partitions.length === 0) return;
    await deps.kafka.readToEnd(
      topic,
      partitions,
      async (record) => {
        checkCancelled();
        if (BigInt(record.offset) >= toOffsets.get(record.partition)!) return;
        if (!firstRead.has(record.partition)) firstRead.set(record.partition, BigInt(record.offset));
        read++;
        progress?.update(read);
        let change: InventoryChange;
        try {
          change = await codec.decode(record.value!);
        } catch (err) {
          if (err instanceof FluxionError && err.retriable) throw err;
          log.warn(
            { partition: record.partition, offset: record.offset, err: errorMessage(err) },
            'event skipped: it cannot be decoded (the live sink dead-lettered it too)',
          );
          skipped++;
          return;
        }
        if (from && change.taken_at.getTime() < from.getTime()) return;
        if (to && change.taken_at.getTime() >= to.getTime()) {
          const key = `${change.ubicacion_id}\u0000${change.deposito}\u0000${change.producto_id}`;
          if (!firstAtOrAfterTo.has(key)) firstAtOrAfterTo.set(key, change.taken_at);
          return;
        }
        buffer.push({ change, record });
        if (buffer.length >= batchSize) await write();
      },
      {
        fromOffsets: Object.fromEntries(partitions.map((p) => [p, fromOffsets.get(p)!.toString()])),
        toOffsets: Object.fromEntries(partitions.map((p) => [p, toOffsets.get(p)!.toString()])),
      },
    );
    await write();
  };

  let keptRows = 0;
  let bulk: PoolClient | undefined;
  let bulkBroken: Error | undefined;
  try {
    keptRows = await createShadow(deps.pool, from, to);
    log.info({ keptRows }, 'shadow table created');
    checkCancelled();
    bulk = await deps.pool.connect();
    await bulk.query(`DROP TABLE IF EXISTS ${EVENTS}`);
    await bulk.query(`CREATE TEMP TABLE ${EVENTS.slice('pg_temp.'.length)} (${EVENT_COLUMNS.map(([c, t]) => `${c} ${t}`).join(', ')})`);
    let seq = 0;
    // One COPY for the whole read, fed as the log is read: PostgreSQL stores one slice while
    // the next is fetched and decoded.
    const copy = bulk.query(copyFrom(`COPY ${EVENTS} (${EVENT_COLUMNS.map(([c]) => c).join(', ')}) FROM STDIN`));
    let copyFailed: Error | undefined;
    copy.on('error', (err: Error) => (copyFailed = err));
    const copyDone = finished(copy);
    // Awaited below; a replay that fails first must not leave its rejection unhandled.
    copyDone.catch(() => undefined);
    const stageBuffered = async () => {
      const items = buffer.splice(0);
      const rows: unknown[][] = EVENT_COLUMNS.map(() => []);
      for (const { change: c, record } of items) {
        try {
          checkChange(c, 0);
        } catch (err) {
          if (!(err instanceof SinkBatchError)) throw err;
          log.warn(
            { partition: record.partition, offset: record.offset, err: err.message },
            'event skipped (the live sink dead-lettered it too)',
          );
          skipped++;
          continue;
        }
        const a = c.after;
        const values: unknown[] = [seq++, record.partition, record.offset, c.ubicacion_id, c.deposito, c.producto_id, c.op];
        values.push(a?.cantidad, a?.costo, a?.precio, a?.activo, c.snapshot_id, c.taken_at);
        for (let i = 0; i < values.length; i++) rows[i]!.push(values[i] ?? null);
      }
      if (copyFailed) throw copyFailed;
      for (const chunk of copyChunks(rows, rows[0]!.length)) {
        if (!copy.write(chunk)) await Promise.race([once(copy, 'drain'), copyDone]);
        if (copyFailed) throw copyFailed;
      }
    };
    const readStarted = Date.now();
    await replayRange(starts, ends, stageBuffered);
    copy.end();
    await copyDone;
    if (copy.rowCount !== seq) throw new ReplayError(`COPY into ${EVENTS} wrote ${copy.rowCount} events of ${seq}`);
    checkCancelled();
    const applyStarted = Date.now();
    const bulkResult = await inTransaction(bulk, (client) => applyEvents(client, keptRows > 0));
    log.info(
      { staged: seq, readAndCopyMs: applyStarted - readStarted, applyMs: Date.now() - applyStarted },
      'log read and COPYed, intervals written set-based',
    );
    applied += bulkResult.applied;
    skipped += bulkResult.skipped;
    for (const s of bulkResult.skippedSample)
      log.warn(s, 'event skipped: older than an earlier event of its key (the live sink dead-lettered it too)');
    await bulk.query(`DROP TABLE IF EXISTS ${EVENTS}`);
    bulk.release();
    bulk = undefined;
    checkCancelled();

    // The swap: the sink waits on the lock; what it wrote since `ends` is replayed first.
    let lostRows = 0;
    const rows = await withTransaction(deps.pool, async (client) => {
      await client.query(`LOCK TABLE ${LIVE} IN ACCESS EXCLUSIVE MODE`);
      const now = await positions(deps, options.sinkGroup, topic, undefined, client);
      await replayRange(ends, now.ends, async () => {
        if (buffer.length > 0) await flush(client);
      });
      checkCancelled();
      if (to) await closeAtTo(client, to, firstAtOrAfterTo);
      const liveRows = await countRows(client, LIVE);
      const late = coverage(now, liveRows, true);
      if (late.length > 0) {
        if (!options.force) throw new ReplayCoverageError(topic, options.sinkGroup, late, liveRows);
        lostRows = await countLost(client);
        const report: ForcedReport = {
          problems: late.map((p) => describeProblem(topic, p, options.sinkGroup)),
          liveRows,
          rebuiltRows: await countRows(client, SHADOW),
          lostRows,
        };
        log.warn({ topic, ...report }, 'forced replay: swapping in a table that lacks rows the log could not rebuild');
        options.onForced?.(report);
      }
      await swap(client);
      return countRows(client, LIVE);
    });
    progress?.finish(
      `replay done: ${applied} events applied, ${skipped} skipped, ${keptRows} rows kept; inventario_historico has ${rows} rows`,
    );
    return { read, applied, skipped, keptRows, rows, lostRows, durationMs: Date.now() - started };
  } catch (caught) {
    bulkBroken = caught as Error;
    // kafkajs may wrap what the record handler threw: a cancellation is known by the signal.
    const err = options.signal?.aborted ? new ReplayCancelled() : caught;
    await deps.pool
      .query(`DROP TABLE IF EXISTS ${SHADOW} CASCADE`)
      .catch((e: unknown) => log.warn({ err: errorMessage(e) }, `could not drop ${SHADOW}; the next replay drops it`));
    throw untouched(err);
  } finally {
    // A session that failed mid-COPY is discarded, its TEMP table with it.
    bulk?.release(bulkBroken ?? new Error('replay ended with its bulk session open'));
  }
}

function untouched(err: unknown): ReplayError {
  if (err instanceof ReplayError) return err;
  // 42P01: undefined_table, a database never migrated.
  const hint = (err as { code?: unknown }).code === '42P01' ? ' (run `fluxion migrate`)' : '';
  return new ReplayError(`replay failed, inventario_historico was left untouched: ${errorMessage(err)}${hint}`, { cause: err });
}

interface Positions {
  /** The topic's partitions and watermarks. */
  log: LogPartition[];
  /** The live sink's position (sink_offsets) per partition of this topic only. */
  sink: Map<number, bigint>;
  /** Where the replay reads to: the sink's position, or the log's end where the sink has none. */
  ends: Map<number, bigint>;
}

/**
 * Where the log and the live sink are on the topic: the replay must cover exactly what the
 * live table holds. Positions on other topics (the sink's others, another prefix's) are ignored.
 */
async function positions(
  deps: ReplayDeps,
  group: string,
  topic: string,
  admin?: Awaited<ReturnType<KafkaClient['admin']>>,
  client?: PoolClient,
): Promise<Positions> {
  const sink = positionsOnTopic(await readSinkOffsets(client ?? deps.pool, group), topic);
  const own = admin ?? (await deps.kafka.admin());
  try {
    const log = (await own.topicOffsets(topic)).map((o) => ({ partition: o.partition, low: BigInt(o.low), high: BigInt(o.high) }));
    return { log, sink, ends: new Map(log.map((o) => [o.partition, sink.get(o.partition) ?? o.high])) };
  } finally {
    if (!admin) await own.disconnect();
  }
}

const min = (a: bigint, b: bigint) => (a < b ? a : b);
