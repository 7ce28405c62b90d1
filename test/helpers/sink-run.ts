/**
 * The PostgreSQL sink in tests: a migrated database of its own, the sink started in-process
 * or as `fluxion sink postgres`, waiting for it to reach the end of its topics, and the
 * tables read back in a comparable order.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { Registry, type Counter } from 'prom-client';
import { offsetsAfterLastRecord } from '../../core/kafka/read-to-end.ts';
import { counterValue } from '../../core/metrics.ts';
import { MIGRATIONS_DIR } from '../../core/paths.ts';
import { createPool, type Pool } from '../../core/postgres.ts';
import { migrate } from '../../ops/migrate.ts';
import { createPostgresSink, SINK_TOPICS, type PostgresSink } from '../../sinks/postgres-sink.ts';
import type { TestPipeline } from './pipeline.ts';
import { freshDatabase, testLogger } from './services.ts';

export interface MigratedDatabase {
  url: string;
  pool: Pool;
  drop(): Promise<void>;
}

export async function migratedDatabase(): Promise<MigratedDatabase> {
  const db = await freshDatabase();
  const pool = createPool({ connectionString: db.url, logger: testLogger, max: 6 });
  await migrate(pool, MIGRATIONS_DIR, testLogger);
  return {
    url: db.url,
    pool,
    async drop() {
      await pool.end().catch(() => undefined);
      await db.drop();
    },
  };
}

export interface RunningSink {
  sink: PostgresSink;
  /** Settles when run() does; a rejection is kept for the test to inspect. */
  finished: Promise<unknown>;
  ventasCommits: () => number;
  /** Sum of the sink's counter `name` (prom-client) for the given labels. */
  counter(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

export function startSink(pipeline: TestPipeline, pool: Pool, groupId: string, options: { maxBatch?: number } = {}): RunningSink {
  let ventasCommits = 0;
  const metricsRegistry = new Registry();
  const sink = createPostgresSink(
    { kafka: pipeline.kafka, registry: pipeline.registry, pool, logger: testLogger, topicPrefix: pipeline.prefix, metricsRegistry, onVentasCommitted: () => void ventasCommits++ },
    { groupId, maxBatch: options.maxBatch ?? 5_000, sessionTimeoutMs: 3_000, retryMaxMs: 1_000 },
  );
  const finished = sink.run().then(
    () => undefined,
    (err: unknown) => err,
  );
  return {
    sink,
    finished,
    ventasCommits: () => ventasCommits,
    counter: (name, labels) => counterValue(metricsRegistry.getSingleMetric(name) as Counter<string>, labels),
    stop: () => sink.stop(),
  };
}

/**
 * Waits until the sink's offsets in PostgreSQL pass the last committed record of every
 * partition of its topics. The targets come from reading the topics (read_committed): a
 * partition's end offset also counts transaction markers, one or several (concurrent
 * producers), which no consumer ever sees.
 */
export async function waitForSinkEnd(pipeline: TestPipeline, pool: Pick<pg.Pool, 'query'>, group: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const ends: Array<{ topic: string; partition: number; end: bigint }> = [];
  for (const t of SINK_TOPICS) {
    const topic = pipeline.prefix + t;
    const { ends: after } = await offsetsAfterLastRecord(pipeline.kafka, topic, [0, 1, 2]);
    for (const [partition, end] of after) ends.push({ topic, partition, end });
  }
  for (;;) {
    let stored = new Map<string, bigint>();
    try {
      const r = await pool.query<{ topic: string; partition: number; next_offset: string }>('SELECT topic, partition, next_offset FROM sink_offsets WHERE consumer_group = $1', [group]);
      stored = new Map(r.rows.map((x) => [`${x.topic}/${x.partition}`, BigInt(x.next_offset)]));
    } catch {
      // PostgreSQL restarting under the test: ask again.
    }
    const behind = ends.filter((e) => (stored.get(`${e.topic}/${e.partition}`) ?? -1n) < e.end);
    if (behind.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`sink group ${group} did not reach the end in ${timeoutMs} ms: ${behind.map((b) => `${b.topic}[${b.partition}] at ${stored.get(`${b.topic}/${b.partition}`) ?? 'none'} of ${b.end}`).join(', ')}`);
    }
    await sleep(200);
  }
}

/** Every table the sink writes, as sorted text lines without the columns now() fills. */
export async function sinkTables(pool: Pick<pg.Pool, 'query'>): Promise<Record<string, string[]>> {
  const queries: Record<string, string> = {
    inventario_actual: `SELECT ubicacion_id, deposito, producto_id, cantidad, costo, precio, activo, snapshot_id, taken_at FROM inventario_actual`,
    inventario_historico: `SELECT ubicacion_id, deposito, producto_id, cantidad, costo, precio, activo, op, snapshot_id, valid_from, valid_to FROM inventario_historico`,
    // Without visto_en and ubicacion_id: a description equal to the stored one is not written
    // again (sinks/postgres-writer.ts), so which store's snapshot wrote it first depends on
    // how the log was batched and which partition committed first.
    productos: `SELECT producto_id, descripcion, codigo_barras, departamento_codigo, departamento_nombre, grupo_codigo, grupo_nombre, subgrupo_codigo, subgrupo_nombre, unidad FROM productos`,
    ventas: `SELECT ubicacion_id, numero_factura, linea, fecha, fecha_hora, producto_id, cantidad, precio_unitario, descuento, total, caja, anulada, fingerprint, first_seen_at, extracted_at, version FROM ventas`,
    alertas: `SELECT alert_id, ubicacion_id, deposito, producto_id, regla, confianza, estado, resumen, evidencia, abierta_en, actualizada_en FROM alertas`,
    etl_runs: `SELECT run_id, ubicacion_id, job, status, rows, started_at, finished_at, snapshot_id, fecha, error_class, error_message FROM etl_runs`,
  };
  const out: Record<string, string[]> = {};
  for (const [table, sql] of Object.entries(queries)) {
    const r = await pool.query({ text: sql, rowMode: 'array' });
    out[table] = r.rows.map((row: unknown[]) => JSON.stringify(row)).sort();
  }
  return out;
}
