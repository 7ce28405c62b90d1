/**
 * The PostgreSQL sink on the real services: what it writes (tables, type-2 history,
 * inventario_al), what it does with bad records (DLQ with the reason and the SQLSTATE, the
 * rest written), and PostgreSQL restarting under it.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createTopicCodec, type TopicCodec } from '../../core/avro/topic-codec.ts';
import { PROJECT_ROOT } from '../../core/paths.ts';
import type { Ubicacion } from '../../core/config/ubicaciones.ts';
import type { InventoryChange, PhantomAlert, Venta } from '../../core/records.ts';
import { extractInventario } from '../../extractors/extract-run.ts';
import { createDifferSpec } from '../../processors/snapshot-differ.ts';
import { StoreSimulation } from '../../simulators/data/store-simulation.ts';
import { startKlkSimulator } from '../../simulators/klk/server.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';
import { sendTransactionsVisibly, startProcessor, waitForGroupPastLastRecord } from '../../fixtures/processor-run.ts';
import { testLogger, uniqueId } from '../../fixtures/services.ts';
import { cycleRows, inventoryRow, uuidFrom } from '../../fixtures/inventory-feed.ts';
import { buildSinkFeed, publishSinkFeed, sinkFeedRecords } from '../helpers/sink-feed.ts';
import { migratedDatabase, startSink, waitForSinkEnd, type MigratedDatabase, type RunningSink } from '../../fixtures/sink-run.ts';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** One KLK change of tienda_01's deposito 01. */
const change = (producto: number, op: 'c' | 'u' | 'd', cantidad: string, at: Date): InventoryChange => ({
  op,
  ubicacion_id: 'tienda_01',
  deposito: '01',
  producto_id: String(producto).padStart(6, '0'),
  before: null,
  after: op === 'd' ? null : inventoryRow(producto, cantidad),
  snapshot_id: uuidFrom(`${producto}/${op}/${cantidad}`),
  taken_at: at,
  source: 'KLK',
});
const changeRecord = (codec: TopicCodec<InventoryChange>) => (c: InventoryChange) => ({
  ubicacionId: c.ubicacion_id,
  key: `${c.ubicacion_id}/${c.deposito}/${c.producto_id}`,
  value: codec.encode(c),
});

async function setUp(): Promise<{ pipeline: TestPipeline; db: MigratedDatabase }> {
  const pipeline = await createTestPipeline();
  cleanups.push(() => pipeline.cleanup());
  const db = await migratedDatabase();
  cleanups.push(() => db.drop());
  return { pipeline, db };
}

function run(pipeline: TestPipeline, db: MigratedDatabase, group: string, maxBatch?: number): RunningSink {
  const sink = startSink(pipeline, db.pool, group, { maxBatch });
  cleanups.push(() => sink.stop());
  return sink;
}

/** The comparable columns of an inventory row. */
const stock = (r: {
  deposito: string;
  producto_id: string;
  cantidad: string;
  costo: string | null;
  precio: string | null;
  activo: boolean;
}) => `${r.deposito}/${r.producto_id} ${r.cantidad} ${r.costo} ${r.precio} ${r.activo}`;

describe('fluxion sink postgres', () => {
  it('writes current inventory, type-2 history, productos, ventas, alertas, etl_runs; inventario_al gives every cycle back', async () => {
    const { pipeline, db } = await setUp();
    const stores = ['tienda_01', 'tienda_02', 'tienda_03', 'tienda_04'];
    const feed = buildSinkFeed({ stores, products: 400, cycles: 4, ventasPerStore: 300, alertsPerStore: 5 });
    await publishSinkFeed(pipeline, feed, 500);
    const group = uniqueId('sink');
    // Small transactions, so a key's history spans many batches.
    const sink = run(pipeline, db, group, 97);
    await waitForSinkEnd(pipeline, db.pool, group);

    const vanishedAt = (p: number, c: number) => c > 1 && (p * 31 + c * 7) % 53 === 0;
    const truth = (store: string, cycle: number) =>
      cycleRows(store, cycle, 400)
        .filter((_, i) => !vanishedAt(i + 1, cycle))
        .map(stock)
        .sort();
    const q = (sql: string, params: unknown[] = []) => db.pool.query(sql, params).then((r) => r.rows);
    for (const store of stores) {
      expect((await q('SELECT * FROM inventario_actual WHERE ubicacion_id = $1', [store])).map(stock).sort()).toEqual(truth(store, 4));
      for (let c = 1; c <= 4; c++) {
        const t = feed.cycleTimes[c - 1]!;
        expect((await q('SELECT * FROM inventario_al($1, $2)', [t, store])).map(stock).sort(), `${store} at cycle ${c}`).toEqual(
          truth(store, c),
        );
        const mid = new Date(t.getTime() + 15 * 60_000);
        expect(
          (await q('SELECT * FROM inventario_al($1, $2)', [mid, store])).map(stock).sort(),
          `${store} between cycles ${c} and ${c + 1}`,
        ).toEqual(truth(store, c));
      }
      expect(await q('SELECT * FROM inventario_al($1, $2)', [new Date(feed.cycleTimes[0]!.getTime() - 1), store])).toEqual([]);
    }
    // One history row per change that left a value; vanished products have their interval closed.
    const opens = feed.changes.filter((c) => c.op !== 'd').length;
    expect(Number((await q('SELECT count(*) AS n FROM inventario_historico'))[0].n)).toBe(opens);
    expect(Number((await q('SELECT count(*) AS n FROM inventario_historico WHERE valid_to IS NULL'))[0].n)).toBe(
      Number((await q('SELECT count(*) AS n FROM inventario_actual'))[0].n),
    );
    // productos: every product described, once, by the latest snapshot.
    const productos = await q('SELECT producto_id, descripcion, unidad, visto_en FROM productos ORDER BY producto_id');
    expect(productos.length).toBe(400);
    expect(productos[0]).toMatchObject({ producto_id: '000001', descripcion: 'PRODUCTO 000001', unidad: 'UND' });

    // ventas: one row per line, corrected lines at version 2 with the correction's content.
    const ventas = await q('SELECT ubicacion_id, numero_factura, linea, anulada, version FROM ventas');
    expect(ventas.length).toBe(stores.length * 300);
    expect(ventas.filter((v) => v.version === 2).length).toBe(stores.length * 30);
    expect(ventas.every((v) => (v.version === 2) === v.anulada)).toBe(true);
    // alertas: the first alert of each product resolved, the second open.
    const alertas = await q('SELECT estado, regla FROM alertas');
    expect(alertas.filter((a) => a.estado === 'RESOLVED' && a.regla === 'UNEXPLAINED_DROP').length).toBe(stores.length * 5);
    expect(alertas.filter((a) => a.estado === 'OPEN' && a.regla === 'FLIP_FLOP').length).toBe(stores.length * 5);
    expect(Number((await q('SELECT count(*) AS n FROM etl_runs'))[0].n)).toBe(stores.length * 4);
    expect(sink.ventasCommits()).toBeGreaterThan(0);
    expect(await Promise.race([sink.finished.then(() => 'ended'), Promise.resolve('running')])).toBe('running');
  });

  it("inventario_al gives back the KLK simulator's truth at every extraction instant (extractor -> differ -> sink)", {
    timeout: 180_000,
  }, async () => {
    const { pipeline, db } = await setUp();
    const ids = ['tienda_01', 'tienda_02'];
    const keys = Object.fromEntries(ids.map((id) => [id, `key-${id}-not-a-real-secret`]));
    const sims = ids.map(
      (id, i) => new StoreSimulation({ ubicacionId: id, pos: 'klk', depositos: ['01'], products: 500 + i * 50, salesLinesPerHour: 300 }),
    );
    const klk = await startKlkSimulator({ stores: sims, apiKeys: keys });
    cleanups.push(() => klk.close());
    const stores: Ubicacion[] = ids.map((id) => ({
      id,
      nombre: id,
      tipo: 'tienda',
      activa: true,
      pos: 'klk',
      depositos: ['01'],
      klk: { baseUrl: klk.baseUrl(id), apiKeyEnv: `KLK_API_KEY_${id.toUpperCase()}`, pageSize: 200, timeoutMs: 5_000 },
    }));
    const deps = {
      kafka: pipeline.kafka,
      registry: pipeline.registry,
      logger: testLogger,
      topicPrefix: pipeline.prefix,
      env: Object.fromEntries(ids.map((id) => [`KLK_API_KEY_${id.toUpperCase()}`, keys[id]!])),
      // taken_at is the simulated POS clock, so the instants are the simulation's.
      now: () => new Date(sims[0]!.clock),
    };
    const differGroup = uniqueId('differ');
    const differ = await startProcessor(createDifferSpec, pipeline, differGroup);
    cleanups.push(() => differ.stop());
    const sinkGroup = uniqueId('sink');
    run(pipeline, db, sinkGroup);

    // Four extractions 30 simulated minutes apart; the truth of each store at each instant.
    const truths: Array<{ at: Date; rows: Map<string, string[]> }> = [];
    for (let cycle = 0; cycle < 4; cycle++) {
      for (const sim of sims) sim.advance(30);
      const at = new Date(sims[0]!.clock);
      const outcomes = await extractInventario(stores, deps, { retry: { retries: 2, initialDelayMs: 20, maxDelayMs: 100, factor: 2 } });
      expect(outcomes.map((o) => o.status)).toEqual(['OK', 'OK']);
      truths.push({ at, rows: new Map(sims.map((sim) => [sim.ubicacionId, sim.klkInventario('01').map(stock).sort()])) });
    }
    await waitForGroupPastLastRecord(pipeline.kafka, differGroup, `${pipeline.prefix}pos.inventario.snapshots`, [0, 1, 2]);
    await waitForSinkEnd(pipeline, db.pool, sinkGroup, 60_000);

    const q = (sql: string, params: unknown[]) => db.pool.query(sql, params).then((r) => r.rows);
    for (const [i, { at, rows }] of truths.entries()) {
      const next = truths[i + 1]?.at ?? new Date(at.getTime() + 30 * 60_000);
      for (const id of ids) {
        const want = rows.get(id)!;
        expect(want.length).toBeGreaterThan(400);
        expect((await q('SELECT * FROM inventario_al($1, $2)', [at, id])).map(stock).sort(), `${id} at ${at.toISOString()}`).toEqual(want);
        // Until the next extraction, the store's inventory is the last one read.
        expect((await q('SELECT * FROM inventario_al($1, $2)', [new Date(next.getTime() - 1), id])).map(stock).sort()).toEqual(want);
      }
    }
    // Sales between extractions moved stock: the history holds more than the first snapshot.
    const first = truths[0]!.rows;
    expect(truths.slice(1).some((t) => ids.some((id) => JSON.stringify(t.rows.get(id)) !== JSON.stringify(first.get(id))))).toBe(true);
  });

  it('a change at the instant a previous batch already wrote supersedes it, also when it is a d', async () => {
    const { pipeline, db } = await setUp();
    const codec = await createTopicCodec<InventoryChange>(
      pipeline.registry,
      'pos.inventario.changes',
      `${pipeline.prefix}pos.inventario.changes`,
    );
    const t1 = new Date('2026-11-01T12:00:00Z');
    const t2 = new Date('2026-11-01T12:30:00Z');
    const record = changeRecord(codec);
    // One record per sink transaction (maxBatch 1): every step meets the previous one's rows.
    const steps = [
      change(1, 'c', '5.000', t1),
      change(1, 'u', '7.000', t1),
      change(2, 'c', '3.000', t1),
      change(2, 'd', '0', t1),
      change(1, 'u', '9.000', t2),
    ];
    const producer = await pipeline.kafka.producer({ transactionalId: uniqueId('instants') });
    cleanups.push(() => producer.disconnect());
    await sendTransactionsVisibly(pipeline.kafka, producer, `${pipeline.prefix}pos.inventario.changes`, [steps.map(record)]);
    const group = uniqueId('sink');
    run(pipeline, db, group, 1);
    await waitForSinkEnd(pipeline, db.pool, group);
    const rows = (
      await db.pool.query('SELECT producto_id, cantidad, valid_from, valid_to FROM inventario_historico ORDER BY producto_id, valid_from')
    ).rows;
    expect(rows).toEqual([
      { producto_id: '000001', cantidad: '7.000', valid_from: t1, valid_to: t2 },
      { producto_id: '000001', cantidad: '9.000', valid_from: t2, valid_to: null },
    ]);
    expect((await db.pool.query('SELECT producto_id, cantidad FROM inventario_actual')).rows).toEqual([
      { producto_id: '000001', cantidad: '9.000' },
    ]);
  });

  it(
    'dead-letters a change whose taken_at goes back into a closed history interval (HistoryOrderError, sqlstate 23505), and writes the ' +
      'rest',
    async () => {
      const { pipeline, db } = await setUp();
      const codec = await createTopicCodec<InventoryChange>(
        pipeline.registry,
        'pos.inventario.changes',
        `${pipeline.prefix}pos.inventario.changes`,
      );
      const t1 = new Date('2026-11-01T12:00:00Z');
      const t2 = new Date('2026-11-01T12:30:00Z');
      // One record per sink transaction (maxBatch 1): the third meets the interval [t1, t2) the
      // first two closed, and would reopen it.
      const steps = [change(1, 'c', '5.000', t1), change(1, 'u', '7.000', t2), change(1, 'u', '6.000', t1), change(2, 'c', '3.000', t2)];
      const producer = await pipeline.kafka.producer({ transactionalId: uniqueId('backwards') });
      cleanups.push(() => producer.disconnect());
      await sendTransactionsVisibly(pipeline.kafka, producer, `${pipeline.prefix}pos.inventario.changes`, [
        steps.map(changeRecord(codec)),
      ]);
      const group = uniqueId('sink');
      const sink = run(pipeline, db, group, 1);
      await waitForSinkEnd(pipeline, db.pool, group);
      const dlq = await pipeline.read('pos.inventario.changes.dlq', { raw: true });
      expect(dlq.map((r) => [r.headers.source_offset, r.headers.sqlstate, r.headers.error_class])).toEqual([
        ['2', '23505', 'HistoryOrderError'],
      ]);
      expect(dlq[0]!.headers.error).toMatch(/would reopen a closed interval of "inventario_historico"/);
      const rows = (
        await db.pool.query(
          'SELECT producto_id, cantidad, valid_from, valid_to FROM inventario_historico ORDER BY producto_id, valid_from',
        )
      ).rows;
      expect(rows).toEqual([
        { producto_id: '000001', cantidad: '5.000', valid_from: t1, valid_to: t2 },
        { producto_id: '000001', cantidad: '7.000', valid_from: t2, valid_to: null },
        { producto_id: '000002', cantidad: '3.000', valid_from: t2, valid_to: null },
      ]);
      expect(await Promise.race([sink.finished.then(() => 'ended'), Promise.resolve('running')])).toBe('running');
    },
  );

  it('dead-letters a record it cannot decode and rows PostgreSQL refuses (with the SQLSTATE), writes the rest of the batch', async () => {
    const { pipeline, db } = await setUp();
    const ventaCodec = await createTopicCodec<Venta>(pipeline.registry, 'pos.ventas', `${pipeline.prefix}pos.ventas`);
    const alertCodec = await createTopicCodec<PhantomAlert>(
      pipeline.registry,
      'alerts.phantom-zeros',
      `${pipeline.prefix}alerts.phantom-zeros`,
    );
    const feed = buildSinkFeed({ stores: ['tienda_01'], products: 50, cycles: 1, ventasPerStore: 30, alertsPerStore: 0 });
    const records = await sinkFeedRecords(pipeline, feed);
    const good = records['pos.ventas']!;
    // PostgreSQL text cannot hold U+0000: Avro can, so only the database refuses it (22021).
    const nul = { ...feed.ventas[0]!, linea: { ...feed.ventas[0]!.linea, numero_factura: 'F\u0000BAD', linea: 1 } };
    const ventas = [
      ...good.slice(0, 10),
      { ubicacionId: 'tienda_01', key: 'tienda_01/garbage/1', value: Buffer.from('not avro at all') },
      ...good.slice(10, 20),
      { ubicacionId: 'tienda_01', key: 'tienda_01/F\u0000BAD/1', value: ventaCodec.encode(nul) },
      ...good.slice(20),
    ];
    const alert = (id: string, producto: string): PhantomAlert => ({
      alert_id: uuidFrom(id),
      ubicacion_id: 'tienda_01',
      deposito: '01',
      producto_id: producto,
      rule: 'SELLING_AT_ZERO',
      confidence: 0.9,
      status: 'OPEN',
      summary: 'vende con 0',
      evidence: {},
      opened_at: new Date('2026-11-01T10:00:00Z'),
      updated_at: new Date('2026-11-01T10:00:00Z'),
    });
    const alertRecord = (a: PhantomAlert) => ({
      ubicacionId: a.ubicacion_id,
      key: `${a.ubicacion_id}/01/${a.producto_id}`,
      value: alertCodec.encode(a),
    });
    const producer = await pipeline.kafka.producer({ transactionalId: uniqueId('poison') });
    cleanups.push(() => producer.disconnect());
    await sendTransactionsVisibly(pipeline.kafka, producer, `${pipeline.prefix}pos.ventas`, [ventas]);
    // A second OPEN alert for a product whose first alert is still OPEN in the table breaks
    // alertas_una_abierta (23505); it comes in a later batch, so the planner cannot see it.
    await sendTransactionsVisibly(pipeline.kafka, producer, `${pipeline.prefix}alerts.phantom-zeros`, [
      [alertRecord(alert('a1', '000001'))],
    ]);
    const group = uniqueId('sink');
    const sink = run(pipeline, db, group);
    await waitForSinkEnd(pipeline, db.pool, group);
    await sendTransactionsVisibly(pipeline.kafka, producer, `${pipeline.prefix}alerts.phantom-zeros`, [
      [alertRecord(alert('a2', '000001')), alertRecord(alert('a3', '000002'))],
    ]);
    await waitForSinkEnd(pipeline, db.pool, group);

    const count = async (sql: string) => Number((await db.pool.query(sql)).rows[0].n);
    expect(await count('SELECT count(*) AS n FROM ventas')).toBe(
      new Set(feed.ventas.map((v) => `${v.linea.numero_factura}/${v.linea.linea}`)).size,
    );
    expect((await db.pool.query('SELECT alert_id FROM alertas ORDER BY producto_id')).rows.map((r) => r.alert_id)).toEqual([
      uuidFrom('a1'),
      uuidFrom('a3'),
    ]);

    const dlq = await pipeline.read('pos.ventas.dlq', { raw: true });
    expect(dlq.map((r) => r.key?.toString())).toEqual(['tienda_01/garbage/1', 'tienda_01/F\u0000BAD/1']);
    expect(dlq[0]!.headers.source_topic).toBe(`${pipeline.prefix}pos.ventas`);
    expect(dlq[0]!.headers.source_offset).toBe('10');
    expect(dlq[0]!.headers.sqlstate).toBeUndefined();
    expect(dlq[1]!.headers.sqlstate).toBe('22021');
    expect(dlq[1]!.value?.equals(ventaCodec.encode(nul))).toBe(true);
    const alertDlq = await pipeline.read('alerts.phantom-zeros.dlq', { raw: true });
    expect(alertDlq.map((r) => r.headers.sqlstate)).toEqual(['23505']);
    expect(alertDlq[0]!.headers.error).toMatch(/alertas_una_abierta/);
    expect(await Promise.race([sink.finished.then(() => 'ended'), Promise.resolve('running')])).toBe('running');
  });

  it('waits while PostgreSQL restarts, then resumes where it was: every row once', { timeout: 180_000 }, async () => {
    const { pipeline, db } = await setUp();
    const stores = ['tienda_01', 'tienda_02', 'tienda_03'];
    const feed = buildSinkFeed({ stores, products: 300, cycles: 6, ventasPerStore: 2_000, alertsPerStore: 3 });
    const group = uniqueId('sink');
    const sink = run(pipeline, db, group, 50);
    const publishing = publishSinkFeed(pipeline, feed, 200);
    // Stop PostgreSQL while records are being written, keep it down a few seconds, start it.
    await new Promise((r) => setTimeout(r, 1_500));
    const services = join(PROJECT_ROOT, 'scripts', 'services');
    execFileSync(services, ['down', 'postgres'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 4_000));
    execFileSync(services, ['up', 'postgres'], { stdio: 'ignore' });
    await publishing;
    await waitForSinkEnd(pipeline, db.pool, group, 120_000);

    const count = async (sql: string) => Number((await db.pool.query(sql)).rows[0].n);
    expect(await count('SELECT count(*) AS n FROM ventas')).toBe(stores.length * 2_000);
    expect(await count('SELECT count(*) AS n FROM ventas WHERE version = 2')).toBe(stores.length * 200);
    expect(await count('SELECT count(*) AS n FROM inventario_historico')).toBe(feed.changes.filter((c) => c.op !== 'd').length);
    expect(await count('SELECT count(*) AS n FROM alertas')).toBe(stores.length * 3 * 2);
    // It did meet the outage (and waited instead of failing).
    expect(await sink.counter('fluxion_sink_retries_total', { reason: 'postgres_unreachable' })).toBeGreaterThan(0);
    expect(await Promise.race([sink.finished.then(() => 'ended'), Promise.resolve('running')])).toBe('running');
  });
});
