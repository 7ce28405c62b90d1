/**
 * A pipeline in a known state of lag for the dashboard's integration and browser tests, on the
 * real services under a unique topic prefix and database:
 *
 * - differ: its group committed offset 5 of the tienda_01 partition of pos.inventario.snapshots,
 *   12 records there (the last 7 produced `gapMs` after the first 5): behind by 7, no member.
 * - sink: `sink_offsets` says 1 on the tienda_01 partition of ops.etl-runs, which holds 3
 *   records; Kafka has no committed offset for it: behind by 2, read from PostgreSQL.
 * - dedupe: committed on the commit marker of a transaction on pos.ventas.raw: caught up.
 * - notify: never committed, reads ops.etl-runs from its beginning: behind by 3.
 * - phantom: its topics are empty.
 *
 * With `populateStores`, etl_runs holds an OK run of every active store at every scheduled
 * tick of the last 24 h except: tienda_05 missed one inventario poll, cedi_seco the last two
 * judged ones (and any newer one, whose slot has not ended);
 * each store's last snapshot is in inventario_historico, and tienda_02 has open alerts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { loadUbicacionesFile, resolveUbicacion, type Ubicacion } from '../../core/config/ubicaciones.ts';
import { partitionForUbicacion } from '../../core/kafka/partitioning.ts';
import { projectPath } from '../../core/paths.ts';
import { createControlApi } from '../../ops/control-api.ts';
import { scheduledTicks } from '../../ops/dashboard/freshness.ts';
import { jobIntervalMs } from '../../ops/dashboard/lag.ts';
import { createDashboardMetrics } from '../../ops/dashboard/metrics.ts';
import { createSampler, type DashboardSampler } from '../../ops/dashboard/sampler.ts';
import { createDashboardServer, type DashboardServer } from '../../ops/dashboard/server.ts';
import { loadScheduleFile } from '../../ops/schedule-config.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';
import { testLogger } from '../../fixtures/services.ts';
import { migratedDatabase, type MigratedDatabase } from '../../fixtures/sink-run.ts';

export const PARTITIONS = 3;
export const STORE = 'tienda_01';

export interface DashboardFixture {
  pipeline: TestPipeline;
  db: MigratedDatabase;
  sampler: DashboardSampler;
  server: DashboardServer;
  url: string;
  stores: Ubicacion[];
  /** The partition every record of the fixture is on (tienda_01's). */
  partition: number;
  /** When the oldest record the differ has not consumed was produced (ms, before and after the send). */
  differOldest: { before: number; after: number };
  close(): Promise<void>;
}

const raw = (n: number, label: string) =>
  Array.from({ length: n }, (_, i) => ({ ubicacionId: STORE, key: STORE, value: Buffer.from(`${label}-${i}`) }));

async function populateStores(db: MigratedDatabase, stores: Ubicacion[]): Promise<void> {
  const jobs = loadScheduleFile().jobs;
  const now = new Date();
  const from = new Date(now.getTime() - 24 * 3_600_000);
  const inventarioJob = jobs.find((j) => j.name === 'inventario')!;
  const inventario = scheduledTicks(inventarioJob, from, now);
  // A tick is judged once its slot ended: during opening hours the newest tick is not yet, so
  // "the last two" are counted among the judged ones, and cedi_seco misses the newer ones too.
  const judged = inventario.filter((t) => t.getTime() + jobIntervalMs(inventarioJob)! <= now.getTime()).length;
  const ventas = scheduledTicks(jobs.find((j) => j.name === 'ventas')!, from, now);
  const rows: unknown[][] = [];
  let n = 0;
  const uuid = () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`;
  for (const u of stores.filter((s) => s.activa)) {
    const invTicks = inventario.filter((_t, i) => {
      if (u.id === 'tienda_05' && i === Math.floor(inventario.length / 2)) return false;
      if (u.id === 'cedi_seco' && i >= judged - 2) return false;
      return true;
    });
    let last: { snapshot: string; at: Date } | undefined;
    for (const t of invTicks) {
      const started = new Date(t.getTime() + 20_000);
      const snapshot = uuid();
      rows.push([uuid(), u.id, 'INVENTARIO', 'OK', 1_000 + n, started, new Date(started.getTime() + 15_000), snapshot, null]);
      last = { snapshot, at: started };
    }
    if (u.pos === 'klk') {
      for (const t of ventas) {
        const started = new Date(t.getTime() + 30_000);
        rows.push([
          uuid(),
          u.id,
          'VENTAS',
          'OK',
          200,
          started,
          new Date(started.getTime() + 5_000),
          null,
          started.toISOString().slice(0, 10),
        ]);
      }
    }
    if (last) {
      await db.pool.query(
        `INSERT INTO inventario_historico
           (ubicacion_id, deposito, producto_id, cantidad, costo, precio, activo, op, snapshot_id, valid_from, valid_to)
         VALUES ($1, '01', '000001', 5, 1, 2, true, 'u', $2, $3, NULL)`,
        [u.id, last.snapshot, last.at],
      );
    }
  }
  for (let i = 0; i < rows.length; i += 500) {
    const slice = rows.slice(i, i + 500);
    const values = slice.map((_, r) => `(${Array.from({ length: 9 }, (__, c) => `$${r * 9 + c + 1}`).join(', ')})`).join(', ');
    await db.pool.query(
      `INSERT INTO etl_runs (run_id, ubicacion_id, job, status, rows, started_at, finished_at, snapshot_id, fecha) VALUES ${values}`,
      slice.flat(),
    );
  }
  for (const producto of ['000007', '000008']) {
    await db.pool.query(
      `INSERT INTO alertas
         (alert_id, ubicacion_id, deposito, producto_id, regla, confianza, estado, resumen, evidencia, abierta_en, actualizada_en)
       VALUES (gen_random_uuid(), 'tienda_02', '01', $1, 'SELLING_AT_ZERO', 0.9, 'OPEN', 'sold at zero', '{}', now(), now())`,
      [producto],
    );
  }
}

export async function startDashboardFixture(options: { populateStores?: boolean; gapMs?: number } = {}): Promise<DashboardFixture> {
  const pipeline = await createTestPipeline(PARTITIONS);
  const db = await migratedDatabase();
  const p = pipeline.prefix;
  const partition = partitionForUbicacion(STORE, PARTITIONS);
  const stores = loadUbicacionesFile(projectPath('config/ubicaciones.yaml')).map((u) => resolveUbicacion(u, 'local'));

  const producer = await pipeline.kafka.producer();
  await producer.send(`${p}pos.inventario.snapshots`, raw(5, 'early'));
  await sleep(options.gapMs ?? 1_500);
  const before = Date.now();
  await producer.send(`${p}pos.inventario.snapshots`, raw(7, 'late'));
  const after = Date.now();
  await producer.send(`${p}ops.etl-runs`, raw(3, 'run'));
  await producer.disconnect();

  const tx = await pipeline.kafka.producer({ transactionalId: `${p}dashboard-fixture` });
  await tx.transaction((t) => t.send(`${p}pos.ventas.raw`, raw(4, 'venta')));
  await tx.transaction(async (t) => {
    await t.sendOffsets(`${p}fluxion-differ`, `${p}pos.inventario.snapshots`, [{ partition, offset: '5' }]);
    // Offsets 0-3 are the records, 4 the commit marker: position 4 has nothing left to read.
    await t.sendOffsets(`${p}fluxion-dedupe`, `${p}pos.ventas.raw`, [{ partition, offset: '4' }]);
  });
  await tx.disconnect();
  await db.pool.query(`INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset) VALUES ($1, $2, $3, 1)`, [
    `${p}fluxion-sink-postgres`,
    `${p}ops.etl-runs`,
    partition,
  ]);
  if (options.populateStores) await populateStores(db, stores);

  const sampler = createSampler(
    {
      kafka: pipeline.kafka,
      pool: db.pool,
      registry: pipeline.registry,
      logger: testLogger,
      topicPrefix: p,
      stores,
      schedule: loadScheduleFile().jobs,
    },
    { intervalMs: 1_000, historyMs: 3_600_000 },
  );
  const server = createDashboardServer({
    host: '127.0.0.1',
    port: 0,
    sampler,
    metrics: createDashboardMetrics(() => sampler.latest()),
    control: createControlApi({ token: undefined, stores: () => stores, run: async () => undefined, logger: testLogger }),
    logger: testLogger,
    refreshSeconds: 2,
  });
  const url = await server.listen();
  return {
    pipeline,
    db,
    sampler,
    server,
    url,
    stores,
    partition,
    differOldest: { before, after },
    async close() {
      await server.close();
      await sampler.stop();
      await db.drop();
      await pipeline.cleanup();
    },
  };
}
