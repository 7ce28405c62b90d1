/**
 * `fluxion replay historico`: rebuilds inventario_historico from pos.inventario.changes alone
 * (DESIGN.md section 4.5), with the sink's own planner and statements, into a shadow table
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
 * - Cancelled (Ctrl-C) or failed: the shadow table is dropped, the live one never touched.
 * - Records the live sink dead-lettered (undecodable, refused by the planner) are skipped
 *   the same way, and counted.
 */
import { createTopicCodec } from '../core/avro/topic-codec.ts';
import { errorMessage, FluxionError } from '../core/errors.ts';
import type { ConsumedRecord, KafkaClient } from '../core/kafka/client.ts';
import type { Logger } from '../core/logger.ts';
import { withTransaction, type Pool, type PoolClient } from '../core/postgres.ts';
import type { Progress } from '../core/progress.ts';
import type { InventoryChange } from '../core/records.ts';
import type { FluxionRegistry } from '../core/registry.ts';
import { topicName } from '../core/topics.ts';
import { readSinkOffsets, writeInventory } from './postgres-writer.ts';
import { planInventory, SinkBatchError } from './sink-batch.ts';

export const LIVE = 'inventario_historico';
export const SHADOW = 'inventario_historico_replay';
/** How far the POS clock may run ahead of the differ's: the read starts this much before --from. */
export const CLOCK_MARGIN_MS = 60 * 60_000;

export interface ReplayDeps {
  kafka: KafkaClient;
  registry: FluxionRegistry;
  pool: Pool;
  logger: Logger;
  topicPrefix: string;
}

export interface ReplayOptions {
  from?: Date;
  to?: Date;
  /** The live sink's consumer group, whose position the replay catches up with. */
  sinkGroup: string;
  /** Change events per shadow-table transaction (default 20,000). */
  batchSize?: number;
  signal?: AbortSignal;
  /** Given the number of events to read, returns the progress display. */
  progress?: (total: number) => Progress;
}

export interface ReplayResult {
  /** Events read from the topic (including those outside --from/--to, and skipped ones). */
  read: number;
  applied: number;
  /** Events the live sink dead-lettered too (undecodable or refused by the planner). */
  skipped: number;
  keptRows: number;
  rows: number;
  durationMs: number;
}

export class ReplayError extends FluxionError {
  constructor(message: string, options: ConstructorParameters<typeof FluxionError>[1] = {}) {
    super(message, { code: 'REPLAY', ...options });
  }
}

export class ReplayCancelled extends ReplayError {
  constructor() {
    super('replay cancelled: inventario_historico was left untouched');
  }
}

const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;

export async function replayHistorico(deps: ReplayDeps, options: ReplayOptions): Promise<ReplayResult> {
  const { from, to } = options;
  if (from && to && from.getTime() >= to.getTime()) throw new ReplayError(`--from (${from.toISOString()}) must be before --to (${to.toISOString()})`);
  const batchSize = options.batchSize ?? 20_000;
  const log = deps.logger.child({ component: 'replay-historico' });
  const topic = topicName('pos.inventario.changes', deps.topicPrefix);
  const codec = await createTopicCodec<InventoryChange>(deps.registry, 'pos.inventario.changes', topic);
  const started = Date.now();
  const checkCancelled = () => {
    if (options.signal?.aborted) throw new ReplayCancelled();
  };

  const admin = await deps.kafka.admin();
  let ends: Map<number, bigint>;
  let starts: Map<number, bigint>;
  try {
    const offsets = await admin.topicOffsets(topic);
    starts = new Map(offsets.map((o) => [o.partition, BigInt(o.low)]));
    if (from) {
      for (const o of await admin.offsetsForTimestamp(topic, from.getTime() - CLOCK_MARGIN_MS)) starts.set(o.partition, BigInt(o.offset));
    }
    ends = await sinkPosition(deps, options.sinkGroup, topic, admin);
  } finally {
    await admin.disconnect();
  }
  const total = [...ends].reduce((n, [p, end]) => n + Number(end > starts.get(p)! ? end - starts.get(p)! : 0n), 0);
  log.info({ topic, from: from?.toISOString(), to: to?.toISOString(), starts: Object.fromEntries([...starts].map(([p, o]) => [p, o.toString()])), ends: Object.fromEntries([...ends].map(([p, o]) => [p, o.toString()])) }, 'replay starting');
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
        read++;
        progress?.update(read);
        let change: InventoryChange;
        try {
          change = await codec.decode(record.value!);
        } catch (err) {
          if (err instanceof FluxionError && err.retriable) throw err;
          log.warn({ partition: record.partition, offset: record.offset, err: errorMessage(err) }, 'event skipped: it cannot be decoded (the live sink dead-lettered it too)');
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
      { fromOffsets: Object.fromEntries(partitions.map((p) => [p, fromOffsets.get(p)!.toString()])), toOffsets: Object.fromEntries(partitions.map((p) => [p, toOffsets.get(p)!.toString()])) },
    );
    await write();
  };

  let keptRows = 0;
  try {
    keptRows = await createShadow(deps.pool, from, to);
    log.info({ keptRows }, 'shadow table created');
    checkCancelled();
    const inOwnTransaction = async () => {
      if (buffer.length > 0) await withTransaction(deps.pool, flush);
    };
    await replayRange(starts, ends, inOwnTransaction);
    checkCancelled();

    // The swap: the sink waits on the lock; what it wrote since `ends` is replayed first.
    const rows = await withTransaction(deps.pool, async (client) => {
      await client.query(`LOCK TABLE ${LIVE} IN ACCESS EXCLUSIVE MODE`);
      const caughtUp = await sinkPosition(deps, options.sinkGroup, topic, undefined, client);
      await replayRange(ends, caughtUp, async () => {
        if (buffer.length > 0) await flush(client);
      });
      checkCancelled();
      if (to) await closeAtTo(client, to, firstAtOrAfterTo);
      await swap(client);
      return Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${LIVE}`)).rows[0]!.n);
    });
    progress?.finish(`replay done: ${applied} events applied, ${skipped} skipped, ${keptRows} rows kept; inventario_historico has ${rows} rows`);
    return { read, applied, skipped, keptRows, rows, durationMs: Date.now() - started };
  } catch (caught) {
    // kafkajs may wrap what the record handler threw: a cancellation is known by the signal.
    const err = options.signal?.aborted ? new ReplayCancelled() : caught;
    await deps.pool.query(`DROP TABLE IF EXISTS ${SHADOW} CASCADE`).catch((e: unknown) => log.warn({ err: errorMessage(e) }, `could not drop ${SHADOW}; the next replay drops it`));
    if (err instanceof ReplayError) throw err;
    throw new ReplayError(`replay failed, inventario_historico was left untouched: ${errorMessage(err)}`, { cause: err });
  }
}

/**
 * Where the live sink is on the topic (its sink_offsets), or the topic's end when no sink
 * has written yet: the replay must cover exactly what the live table holds.
 */
async function sinkPosition(deps: ReplayDeps, group: string, topic: string, admin?: Awaited<ReturnType<KafkaClient['admin']>>, client?: PoolClient): Promise<Map<number, bigint>> {
  const stored = await readSinkOffsets(client ?? deps.pool, group);
  const own = admin ?? (await deps.kafka.admin());
  try {
    const offsets = await own.topicOffsets(topic);
    return new Map(offsets.map((o) => [o.partition, stored.get(`${topic}\u0000${o.partition}`) ?? BigInt(o.high)]));
  } finally {
    if (!admin) await own.disconnect();
  }
}

/** The shadow table, partitioned and indexed as the live one, holding the rows --from/--to keep. */
async function createShadow(pool: Pool, from: Date | undefined, to: Date | undefined): Promise<number> {
  return withTransaction(pool, async (client) => {
    await client.query(`DROP TABLE IF EXISTS ${SHADOW} CASCADE`);
    await client.query(`CREATE TABLE ${SHADOW} (LIKE ${LIVE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (valid_from)`);
    await client.query(`ALTER TABLE ${SHADOW} ADD CONSTRAINT ${SHADOW}_pkey PRIMARY KEY (ubicacion_id, deposito, producto_id, valid_from)`);
    await client.query(`CREATE TABLE ${SHADOW}_default PARTITION OF ${SHADOW} DEFAULT`);
    await client.query(`CREATE INDEX ${SHADOW}_al ON ${SHADOW} (ubicacion_id, valid_from) INCLUDE (valid_to)`);
    await client.query(`CREATE INDEX ${SHADOW}_abiertos ON ${SHADOW} (ubicacion_id, deposito, producto_id) WHERE valid_to IS NULL`);
    let kept = 0;
    const keep = async (where: string, validTo: string, params: unknown[]) => {
      await client.query(
        `SELECT inventario_historico_asegurar_mes(m, '${SHADOW}') FROM (SELECT DISTINCT date_trunc('month', valid_from, 'UTC') AS m FROM ${LIVE} WHERE ${where}) AS meses`,
        params,
      );
      const r = await client.query(
        `INSERT INTO ${SHADOW} (ubicacion_id, deposito, producto_id, cantidad, costo, precio, activo, op, snapshot_id, valid_from, valid_to)
         SELECT ubicacion_id, deposito, producto_id, cantidad, costo, precio, activo, op, snapshot_id, valid_from, ${validTo} FROM ${LIVE} WHERE ${where}`,
        params,
      );
      kept += r.rowCount ?? 0;
    };
    // Rows closed by an event at or after --from are reopened: that event is replayed.
    if (from) await keep('valid_from < $1', 'CASE WHEN valid_to >= $1 THEN NULL ELSE valid_to END', [from]);
    if (to) await keep('valid_from >= $1', 'valid_to', [to]);
    return kept;
  });
}

/** A replayed interval still open at --to ends at its key's first event at or after --to. */
async function closeAtTo(client: PoolClient, to: Date, firstAtOrAfter: Map<string, Date>): Promise<void> {
  const keys = [...firstAtOrAfter.keys()].map((k) => k.split('\u0000'));
  await client.query(
    `UPDATE ${SHADOW} s SET valid_to = f.t
     FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS f(ubicacion_id, deposito, producto_id, t)
     WHERE s.ubicacion_id = f.ubicacion_id AND s.deposito = f.deposito AND s.producto_id = f.producto_id
       AND s.valid_to IS NULL AND s.valid_from < $1`,
    [to, keys.map((k) => k[0]), keys.map((k) => k[1]), keys.map((k) => k[2]), [...firstAtOrAfter.values()]],
  );
}

/** Drops the live table and gives the shadow, its partitions and indexes the live names. */
async function swap(client: PoolClient): Promise<void> {
  const parts = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass`,
    [SHADOW],
  );
  await client.query(`DROP TABLE ${LIVE} CASCADE`);
  await client.query(`ALTER TABLE ${SHADOW} RENAME TO ${LIVE}`);
  for (const { name } of parts.rows) {
    await client.query(`ALTER TABLE ${ident(name)} RENAME TO ${ident(LIVE + name.slice(SHADOW.length))}`);
  }
  await client.query(`ALTER TABLE ${LIVE} RENAME CONSTRAINT ${SHADOW}_pkey TO ${LIVE}_pkey`);
  await client.query(`ALTER INDEX ${SHADOW}_al RENAME TO ${LIVE}_al`);
  await client.query(`ALTER INDEX ${SHADOW}_abiertos RENAME TO ${LIVE}_abiertos`);
}
