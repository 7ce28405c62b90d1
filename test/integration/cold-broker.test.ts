/**
 * Issue 15, item 1: no process dies of a retriable Kafka error. On a private broker of this
 * file's own (test/helpers/private-broker.ts; the shared one is never restarted), the three
 * processors, the PostgreSQL sink and the notifier run as real `fluxion` processes:
 *
 * 1. started right after the broker's very first start (no __consumer_offsets yet: the group
 *    coordinator answers "loading" / "not available" while they join), each one works:
 *    changes and ventas reach PostgreSQL through the differ, the dedupe and the sink, the
 *    phantom detector reads both to their end, and the notifier mails a failed run (the
 *    dashboard runs beside them);
 * 2. the broker is SIGKILLed under them and restarted on the same storage and ports: each one
 *    is still running, processes what is fed afterwards, and logged the outage as one episode
 *    (one warning when it began, one line when it ended).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTopicCodec, type TopicCodec } from '../../core/avro/topic-codec.ts';
import { EPISODE_END_MESSAGE, EPISODE_START_MESSAGE } from '../../core/kafka/faults.ts';
import type { VentaLinea } from '../../core/records.ts';
import type { VentaRaw } from '../../processors/ventas-dedupe.ts';
import type { EtlRun } from '../../core/etl-run.ts';
import { fakeSendGrid, startFluxion, until, type FakeSendGrid, type FluxionProcess } from '../helpers/fluxion-process.ts';
import { cycleRows, snapshotFeeder, uuidFrom, type SnapshotFeeder } from '../../fixtures/inventory-feed.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';
import { createPrivateBroker, type PrivateBroker } from '../helpers/private-broker.ts';
import { waitForGroupPastLastRecord } from '../../fixtures/processor-run.ts';
import { serviceEnv } from '../../fixtures/services.ts';
import { migratedDatabase, type MigratedDatabase } from '../../fixtures/sink-run.ts';

const STORES = ['tienda_01', 'tienda_02'];
const PRODUCTS = 20;
const PARTITIONS = 3;

let broker: PrivateBroker;
let pipeline: TestPipeline;
let db: MigratedDatabase;
let sendgrid: FakeSendGrid;
let snapshots: SnapshotFeeder;
let ventasCodec: TopicCodec<VentaRaw>;
let runsCodec: TopicCodec<EtlRun>;
const processes: FluxionProcess[] = [];

const count = async (sql: string): Promise<number> => Number((await db.pool.query<{ n: string }>(sql)).rows[0]!.n);

function ventasOfDay(store: string, invoicePrefix: string): VentaLinea[] {
  const fecha = new Date().toISOString().slice(0, 10);
  return Array.from({ length: 6 }, (_, i) => ({
    ubicacion_id: store,
    fecha,
    numero_factura: `${invoicePrefix}-${String(Math.floor(i / 3) + 1).padStart(4, '0')}`,
    linea: (i % 3) + 1,
    fecha_hora: new Date(Date.now() - 3_600_000 + i * 60_000),
    producto_id: String(i + 1).padStart(6, '0'),
    cantidad: '2.000',
    precio_unitario: '1.2000',
    descuento: '0.0000',
    total: '2.4000',
    caja: '03',
    anulada: false,
  }));
}

async function feedVentas(lines: VentaLinea[]): Promise<void> {
  const producer = await pipeline.kafka.producer();
  const extractedAt = new Date();
  await producer.send(
    ventasCodec.topic,
    lines.map((linea) => ({
      ubicacionId: linea.ubicacion_id,
      key: `${linea.ubicacion_id}/${linea.numero_factura}`,
      value: ventasCodec.encode({ linea, extracted_at: extractedAt, run_id: uuidFrom(`run-${extractedAt.getTime()}`) }),
    })),
  );
  await producer.disconnect();
}

async function feedFailedRun(store: string): Promise<void> {
  const finished = new Date();
  const run: EtlRun = {
    run_id: uuidFrom(`failed-${store}-${finished.getTime()}`),
    job: 'INVENTARIO',
    ubicacion_id: store,
    status: 'FAILED',
    rows: 0,
    started_at: new Date(finished.getTime() - 10_000),
    finished_at: finished,
    snapshot_id: null,
    fecha: null,
    error_class: 'POS_UNAVAILABLE',
    error_message: `${store}: KLK GET /inventario?page=1 failed: connect ECONNREFUSED 10.0.3.5:443`,
  };
  const producer = await pipeline.kafka.producer();
  await producer.send(runsCodec.topic, [{ ubicacionId: store, key: `INVENTARIO/${store}`, value: runsCodec.encode(run) }]);
  await producer.disconnect();
}

async function feedSnapshots(cycle: number): Promise<void> {
  await snapshots.publish(
    STORES.map((ubicacion) => ({
      ubicacion,
      snapshotId: uuidFrom(`${pipeline.prefix}${ubicacion}-${cycle}`),
      takenAt: new Date(Date.now() - 60_000),
      rows: cycleRows(ubicacion, cycle, PRODUCTS, 0.5),
    })),
  );
}

/** inventario_actual holds cycle `cycle`'s quantities, for every product of every store. */
async function inventoryIs(cycle: number): Promise<boolean> {
  const { rows } = await db.pool.query<{ ubicacion_id: string; producto_id: string; cantidad: string }>(
    'SELECT ubicacion_id, producto_id, cantidad::text FROM inventario_actual',
  );
  if (rows.length !== STORES.length * PRODUCTS) return false;
  const want = new Map(
    STORES.flatMap((s) => cycleRows(s, cycle, PRODUCTS, 0.5).map((r) => [`${s}/${r.producto_id}`, r.cantidad] as const)),
  );
  return rows.every((r) => want.get(`${r.ubicacion_id}/${r.producto_id}`) === r.cantidad);
}

async function phantomReadEverything(): Promise<void> {
  const group = `${pipeline.prefix}fluxion-phantom`;
  const partitions = Array.from({ length: PARTITIONS }, (_, i) => i);
  await waitForGroupPastLastRecord(pipeline.kafka, group, `${pipeline.prefix}pos.inventario.changes`, partitions, 60_000);
  await waitForGroupPastLastRecord(pipeline.kafka, group, `${pipeline.prefix}pos.ventas`, partitions, 60_000);
}

const episodeLines = (p: FluxionProcess, from: number, message: string) => p.lines(from).filter((l) => l.msg === message);

beforeAll(async () => {
  // The database and the mail server are set up while the broker starts: neither touches it.
  broker = await createPrivateBroker();
  // The broker's very first start: everything below runs against a cold coordinator.
  [sendgrid, db] = await Promise.all([fakeSendGrid(), migratedDatabase(), broker.start()]);
  pipeline = await createTestPipeline(PARTITIONS, { brokers: broker.brokers });
  const env = {
    KAFKA_BROKERS: broker.brokers.join(','),
    SCHEMA_REGISTRY_URL: serviceEnv().SCHEMA_REGISTRY_URL,
    DATABASE_URL: db.url,
    FLUXION_TOPIC_PREFIX: pipeline.prefix,
    FLUXION_TOPIC_PARTITIONS: String(PARTITIONS),
    FLUXION_SESSION_TIMEOUT_MS: '6000',
    SENDGRID_API_KEY: 'SG.fluxion-test-key-cold-broker',
    SENDGRID_BASE_URL: sendgrid.url,
    FLUXION_NOTIFY_FROM: 'Fluxion <etl@lagranja.example>',
    FLUXION_NOTIFY_TO: 'ops@lagranja.example',
  };
  processes.push(
    startFluxion('differ', ['process', 'differ'], env),
    startFluxion('dedupe', ['process', 'dedupe'], env),
    startFluxion('phantom', ['process', 'phantom'], env),
    startFluxion('sink', ['sink', 'postgres', '--no-abc'], env),
    startFluxion('notify', ['notify'], env),
    startFluxion('dashboard', ['dashboard', '--port', '0'], { ...env, FLUXION_DASHBOARD_SAMPLE_SECONDS: '2' }),
  );
  snapshots = await snapshotFeeder(pipeline.kafka, pipeline.registry, pipeline.prefix);
  ventasCodec = await createTopicCodec<VentaRaw>(pipeline.registry, 'pos.ventas.raw', `${pipeline.prefix}pos.ventas.raw`);
  runsCodec = await createTopicCodec<EtlRun>(pipeline.registry, 'ops.etl-runs', `${pipeline.prefix}ops.etl-runs`);
}, 180_000);

afterAll(async () => {
  for (const p of processes) await p.stop(5_000).catch(() => undefined);
  // COLD_BROKER_LOG_DIR=/tmp/x keeps every process's log lines for a look afterwards.
  if (process.env.COLD_BROKER_LOG_DIR)
    for (const p of processes) writeFileSync(join(process.env.COLD_BROKER_LOG_DIR, `${p.name}.log`), p.log());
  await snapshots?.close().catch(() => undefined);
  await broker?.destroy();
  await db?.drop();
  await sendgrid?.close();
}, 60_000);

const describeLogs = () =>
  processes.map((p) => `--- ${p.name} (${p.alive() ? 'running' : `exited ${p.child.exitCode}`}) ---\n${p.log().slice(-3_000)}`).join('\n');

describe('Kafka faults: every long-running process on a private broker', () => {
  it("joins and works when started right after the broker's very first start", { timeout: 150_000 }, async () => {
    await feedSnapshots(1);
    await feedVentas([...ventasOfDay('tienda_01', 'A'), ...ventasOfDay('tienda_02', 'A')]);
    await feedFailedRun('tienda_01');
    try {
      await until('cycle 1 in inventario_actual (differ, sink)', () => inventoryIs(1), 120_000);
      await until('12 ventas rows (dedupe, sink)', async () => (await count('SELECT count(*) AS n FROM ventas')) === 12, 60_000);
      await until(
        'the failed run in etl_runs (sink)',
        async () => (await count(`SELECT count(*) AS n FROM etl_runs WHERE status = 'FAILED'`)) === 1,
        60_000,
      );
      await until('the mail of the failed run (notify)', () => sendgrid.subjects.some((s) => s.includes('tienda_01')), 60_000);
      await phantomReadEverything();
      // A process that met the cold coordinator logged it as one episode, and its end.
      await until(
        'every start-up episode to be over',
        () => processes.every((p) => episodeLines(p, 0, EPISODE_START_MESSAGE).length === episodeLines(p, 0, EPISODE_END_MESSAGE).length),
        30_000,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${describeLogs()}`);
    }
    for (const p of processes) {
      expect(p.alive(), `${p.name} is running`).toBe(true);
      expect(episodeLines(p, 0, EPISODE_START_MESSAGE).length, `${p.name}: episodes at start`).toBeLessThanOrEqual(1);
    }
  });

  it('rides out a broker killed (SIGKILL) and restarted under them, with one log line per episode', { timeout: 180_000 }, async () => {
    const marks = processes.map((p) => p.log().length);
    const historicoBefore = await count('SELECT count(*) AS n FROM inventario_historico');
    await broker.kill();
    // Down until every process noticed (its episode began), at most 8 s as before: fetches
    // and heartbeats fail meanwhile.
    await until(
      'every process to notice the broker is gone',
      () => processes.every((p, i) => episodeLines(p, marks[i]!, EPISODE_START_MESSAGE).length > 0),
      8_000,
    ).catch(() => undefined);
    await broker.start();
    await feedSnapshots(2);
    await feedVentas([...ventasOfDay('tienda_01', 'B'), ...ventasOfDay('tienda_02', 'B')]);
    await feedFailedRun('tienda_02');
    try {
      await until('cycle 2 in inventario_actual (differ, sink)', () => inventoryIs(2), 120_000);
      await until('24 ventas rows (dedupe, sink)', async () => (await count('SELECT count(*) AS n FROM ventas')) === 24, 60_000);
      await until('the mail of the second failed run (notify)', () => sendgrid.subjects.some((s) => s.includes('tienda_02')), 60_000);
      await phantomReadEverything();
      // Each process says the episode is over once Kafka answered for a few seconds.
      await until(
        'every process logged the end of the episode',
        () => processes.every((p) => episodeLines(p, marks[processes.indexOf(p)]!, EPISODE_END_MESSAGE).length > 0),
        60_000,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${describeLogs()}`);
    }
    expect(await count('SELECT count(*) AS n FROM inventario_historico')).toBeGreaterThan(historicoBefore);
    for (const [i, p] of processes.entries()) {
      expect(p.alive(), `${p.name} is running`).toBe(true);
      const starts = episodeLines(p, marks[i]!, EPISODE_START_MESSAGE);
      const ends = episodeLines(p, marks[i]!, EPISODE_END_MESSAGE);
      expect({ process: p.name, starts: starts.length, ends: ends.length }).toEqual({ process: p.name, starts: 1, ends: 1 });
      expect(starts[0]!.level, `${p.name}: the episode's first line is a warning`).toBe('warn');
      // kafkajs's own retry lines are not repeated at warning level or above meanwhile.
      const loud = p
        .lines(marks[i]!)
        .filter(
          (l) => ['warn', 'error', 'fatal'].includes(l.level as string) && l.component === 'kafka' && l.msg !== EPISODE_START_MESSAGE,
        );
      expect(
        loud.map((l) => l.msg),
        `${p.name}: kafka lines at warning level besides the episode's`,
      ).toEqual([]);
    }
    // The dashboard kept sampling: the samples Kafka failed were said once, and their end too.
    const dashboard = processes.find((p) => p.name === 'dashboard')!;
    const sampled = dashboard.lines(marks[processes.indexOf(dashboard)]!).map((l) => l.msg as string);
    const incomplete = sampled.filter((m) => m.startsWith('dashboard sample incomplete'));
    if (incomplete.length > 0)
      await until(
        'the dashboard to say its sources answer again',
        () => dashboard.lines(marks[processes.indexOf(dashboard)]!).some((l) => l.msg === 'dashboard sources answer again'),
        30_000,
      );
  });
});
