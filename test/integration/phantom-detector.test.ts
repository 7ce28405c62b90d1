/**
 * The phantom-zero detector against the real broker and registry: each rule opens exactly
 * one alert with its evidence and resolves it under the same id, poison records on both
 * inputs go to their DLQs while the stream continues, and a new instance continues from the
 * state topic. Inputs are fed in phases, each read to its end before the next, so the order
 * between the two input topics is fixed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createTopicCodec, type TopicCodec } from '../../core/avro/topic-codec.ts';
import { confluentFrame } from '../../core/avro/wire.ts';
import type { KafkaClient } from '../../core/kafka/types.ts';
import { partitionForUbicacion } from '../../core/kafka/partitioning.ts';
import type { InventoryRow, VentaLinea } from '../../core/records.ts';
import { dlqTopic } from '../../core/topics.ts';
import {
  alertId,
  createPhantomSpec,
  phantomKey,
  type InventoryChange,
  type PhantomAlert,
  type PhantomStateRecord,
  type Venta,
} from '../../processors/phantom-detector.ts';
import type { PhantomRule } from '../../processors/phantom-rules.ts';
import { counterValue, type RuntimeMetrics } from '../../processors/runtime/metrics.ts';
import { uuidFrom } from '../../fixtures/inventory-feed.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';
import { startProcessor, waitForGroupEnd, type RunningProcessor } from '../../fixtures/processor-run.ts';
import { uniqueId } from '../../fixtures/services.ts';

const PARTITIONS = 3;
/** One store on each partition (murmur2 placement). */
const STORES = ['tienda_01', 'tienda_04', 'tienda_06'];
const DEPOSITO = '01';
const T0 = Date.UTC(2026, 10, 27, 12, 0, 0);
const at = (minutes: number) => new Date(T0 + minutes * 60_000);

const snapshotId = (store: string, s: number) => uuidFrom(`${store}/S${s}`);
/** Snapshot S<n> of every store is taken at minute 30 * n. */
const snapshotAt = (s: number) => at(30 * s);

const row = (producto: string, cantidad: string): InventoryRow => ({
  deposito: DEPOSITO,
  producto_id: producto,
  codigo_barras: null,
  descripcion: `PRODUCTO ${producto}`,
  departamento_codigo: null,
  departamento_nombre: null,
  grupo_codigo: null,
  grupo_nombre: null,
  subgrupo_codigo: null,
  subgrupo_nombre: null,
  unidad: 'UND',
  cantidad,
  costo: null,
  precio: null,
  activo: true,
  actualizado_en: null,
});

function change(store: string, producto: string, before: string | null, after: string | null, s: number): InventoryChange {
  return {
    op: before === null ? 'c' : after === null ? 'd' : 'u',
    ubicacion_id: store,
    deposito: DEPOSITO,
    producto_id: producto,
    before: before === null ? null : row(producto, before),
    after: after === null ? null : row(producto, after),
    snapshot_id: snapshotId(store, s),
    taken_at: snapshotAt(s),
    source: 'KLK',
  };
}

function venta(store: string, producto: string, numero: string, cantidad: string, minute: number): Venta {
  const linea: VentaLinea = {
    ubicacion_id: store,
    fecha: '2026-11-27',
    numero_factura: numero,
    linea: 1,
    fecha_hora: at(minute),
    producto_id: producto,
    cantidad,
    precio_unitario: '1.0000',
    descuento: '0.0000',
    total: `${cantidad}0`,
    caja: '01',
    anulada: false,
  };
  return { op: 'c', linea, fingerprint: `${numero}:${cantidad}`, first_seen_at: at(minute), extracted_at: at(minute) };
}

// One scenario per store. P1 sells at 0, P2 drops from 50 to 0 with 1 sold, P3 flip-flops
// 8 -> 0 -> 8 (under the drop threshold, so only FLIP_FLOP fires); P4 sells normally, P5
// sells out and is restocked, P6 vanishes: no alert for those.
const PHASES: Array<(store: string) => { changes?: InventoryChange[]; ventas?: Venta[] }> = [
  (t) => ({
    changes: [
      ['000001', '5.000'],
      ['000002', '50.000'],
      ['000003', '8.000'],
      ['000004', '100.000'],
      ['000005', '10.000'],
      ['000006', '3.000'],
    ].map(([p, q]) => change(t, p!, null, q!, 0)),
  }),
  (t) => ({
    ventas: [
      venta(t, '000001', 'F-1', '5.000', 5),
      venta(t, '000002', 'F-2', '1.000', 5),
      venta(t, '000004', 'F-3', '30.000', 10),
      venta(t, '000005', 'F-4', '10.000', 12),
    ],
  }),
  (t) => ({
    changes: [
      change(t, '000001', '5.000', '0.000', 1),
      change(t, '000002', '50.000', '0.000', 1),
      change(t, '000003', '8.000', '0.000', 1),
      change(t, '000004', '100.000', '70.000', 1),
      change(t, '000005', '10.000', '0.000', 1),
      change(t, '000006', '3.000', null, 1),
    ],
  }),
  // A sale of a product whose stock was never seen is ignored.
  (t) => ({ ventas: [venta(t, '000001', 'F-5', '2.000', 40), venta(t, '000099', 'F-6', '4.000', 41)] }),
  (t) => ({
    changes: [
      change(t, '000001', '0.000', '20.000', 2),
      change(t, '000002', '0.000', '5.000', 2),
      change(t, '000003', '0.000', '8.000', 2),
      change(t, '000005', '0.000', '12.000', 2),
    ],
  }),
  (t) => ({ changes: [change(t, '000003', '8.000', '7.000', 3)] }),
];

interface Expected {
  producto: string;
  rule: PhantomRule;
  openedAt: Date;
  openedSnapshot: number;
  evidence: Record<string, string>;
  resolvedAt: Date;
  reason: string;
}

const EXPECTED: Expected[] = [
  {
    producto: '000001',
    rule: 'SELLING_AT_ZERO',
    openedAt: at(40),
    openedSnapshot: 1,
    evidence: { quantity_at_zero: '0.000', units_sold_since_zero: '2.000', sale_events_since_zero: '1' },
    resolvedAt: snapshotAt(2),
    reason: 'stock_back',
  },
  {
    producto: '000002',
    rule: 'UNEXPLAINED_DROP',
    openedAt: snapshotAt(1),
    openedSnapshot: 1,
    evidence: { from_quantity: '50.000', quantity_at_zero: '0.000', units_sold_between: '1.000' },
    resolvedAt: snapshotAt(2),
    reason: 'stock_back',
  },
  {
    producto: '000003',
    rule: 'FLIP_FLOP',
    openedAt: snapshotAt(2),
    openedSnapshot: 2,
    evidence: { from_quantity: '8.000', quantity_at_zero: '0.000', recovered_quantity: '8.000', units_sold: '0.000' },
    resolvedAt: snapshotAt(3),
    reason: 'stock_normal',
  },
];

interface Harness {
  pipeline: TestPipeline;
  group: string;
  changeCodec: TopicCodec<InventoryChange>;
  ventaCodec: TopicCodec<Venta>;
  topics: { changes: string; ventas: string };
}

const pipelines: TestPipeline[] = [];
afterEach(async () => {
  for (const p of pipelines.splice(0)) await p.cleanup();
});

async function harness(): Promise<Harness> {
  const pipeline = await createTestPipeline(PARTITIONS);
  pipelines.push(pipeline);
  const topics = { changes: `${pipeline.prefix}pos.inventario.changes`, ventas: `${pipeline.prefix}pos.ventas` };
  return {
    pipeline,
    group: uniqueId('phantom'),
    topics,
    changeCodec: await createTopicCodec<InventoryChange>(pipeline.registry, 'pos.inventario.changes', topics.changes),
    ventaCodec: await createTopicCodec<Venta>(pipeline.registry, 'pos.ventas', topics.ventas),
  };
}

const start = (h: Harness): Promise<RunningProcessor> =>
  startProcessor(createPhantomSpec, h.pipeline, h.group, { partitions: PARTITIONS });

async function send(
  kafka: KafkaClient,
  topic: string,
  records: Array<{ ubicacionId: string; key: string; value: Buffer }>,
): Promise<void> {
  if (records.length === 0) return;
  const producer = await kafka.producer();
  await producer.send(topic, records);
  await producer.disconnect();
}

/** Feeds one phase for every store and waits until the processor committed all of it. */
async function feed(h: Harness, phase: number, poison: { changes?: Buffer[]; ventas?: Buffer[] } = {}): Promise<void> {
  const changes = STORES.flatMap((s) => PHASES[phase]!(s).changes ?? []);
  const ventas = STORES.flatMap((s) => PHASES[phase]!(s).ventas ?? []);
  await send(h.pipeline.kafka, h.topics.changes, [
    ...changes.map((c) => ({ ubicacionId: c.ubicacion_id, key: phantomKey(c), value: h.changeCodec.encode(c) })),
    ...(poison.changes ?? []).map((value) => ({ ubicacionId: STORES[0]!, key: `${STORES[0]}/${DEPOSITO}/poison`, value })),
  ]);
  await send(h.pipeline.kafka, h.topics.ventas, [
    ...ventas.map((v) => ({
      ubicacionId: v.linea.ubicacion_id,
      key: `${v.linea.ubicacion_id}/${v.linea.numero_factura}/${v.linea.linea}`,
      value: h.ventaCodec.encode(v),
    })),
    ...(poison.ventas ?? []).map((value) => ({ ubicacionId: STORES[1]!, key: `${STORES[1]}/poison/1`, value })),
  ]);
  // Written without transactions: the group's committed offsets reach the very end.
  await waitForGroupEnd(h.pipeline.kafka, h.group, [h.topics.changes, h.topics.ventas], 30_000, false);
}

const alertCounter = (m: RuntimeMetrics) => m.registry.getSingleMetric('fluxion_phantom_alerts_total') as never;
const openGauge = async (m: RuntimeMetrics) => (await m.registry.getSingleMetric('fluxion_phantom_open_alerts')!.get()).values[0]?.value;

/** Exactly one OPEN and one RESOLVED per expected alert and store, with the deterministic id, evidence and event times. */
async function expectScenarioAlerts(pipeline: TestPipeline): Promise<void> {
  const records = await pipeline.read<PhantomAlert>('alerts.phantom-zeros', { idleMs: 1_500 });
  expect(records).toHaveLength(STORES.length * EXPECTED.length * 2);
  for (const store of STORES) {
    for (const e of EXPECTED) {
      const ref = { ubicacion_id: store, deposito: DEPOSITO, producto_id: e.producto };
      const key = phantomKey(ref);
      const mine = records.filter((r) => r.key?.toString() === key);
      expect(
        mine.map((r) => r.decoded.status),
        key,
      ).toEqual(['OPEN', 'RESOLVED']);
      const id = alertId(key, { rule: e.rule, openedAtMs: e.openedAt.getTime(), snapshotId: snapshotId(store, e.openedSnapshot) }, 0);
      const [open, resolved] = mine.map((r) => r.decoded) as [PhantomAlert, PhantomAlert];
      expect(open).toMatchObject({ ...ref, alert_id: id, rule: e.rule, status: 'OPEN', opened_at: e.openedAt, updated_at: e.openedAt });
      expect(open.evidence).toMatchObject(e.evidence);
      expect(open.confidence).toBeGreaterThan(0.5);
      expect(open.summary).toContain(`${store} deposito ${DEPOSITO} producto ${e.producto}:`);
      expect(resolved).toMatchObject({
        ...ref,
        alert_id: id,
        rule: e.rule,
        status: 'RESOLVED',
        confidence: open.confidence,
        opened_at: e.openedAt,
        updated_at: e.resolvedAt,
      });
      expect(resolved.evidence).toMatchObject({
        reason: e.reason,
        opened_at: e.openedAt.toISOString(),
        resolved_at: e.resolvedAt.toISOString(),
      });
      for (const r of mine) expect(r.partition).toBe(partitionForUbicacion(store, PARTITIONS));
    }
  }
}

describe('fluxion process phantom', () => {
  it('opens one alert per rule with its evidence, resolves it under the same id, and sends poison on either input to its DLQ', {
    timeout: 90_000,
  }, async () => {
    const h = await harness();
    const run = await start(h);
    const unknownSchema = confluentFrame(987_654, Buffer.from([2, 4, 6]));
    const withoutAfter = h.changeCodec.encode({ ...change(STORES[0]!, '000007', '1.000', '2.000', 1), after: null });
    await feed(h, 0);
    await feed(h, 1, { ventas: [Buffer.from('not avro at all'), unknownSchema] });
    await feed(h, 2, { changes: [Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0x01]), withoutAfter] });
    await feed(h, 3);
    // P1 (selling at zero) and P2 (unexplained drop) of every store are open now.
    expect(await counterValue(alertCounter(run.metrics), { status: 'OPEN' })).toBe(2 * STORES.length);
    expect(await openGauge(run.metrics)).toBe(2 * STORES.length);
    await feed(h, 4);
    await feed(h, 5);
    await run.stop();
    expect(await run.finished).toBeUndefined();

    await expectScenarioAlerts(h.pipeline);
    for (const e of EXPECTED) {
      expect(await counterValue(alertCounter(run.metrics), { rule: e.rule, status: 'OPEN' })).toBe(STORES.length);
      expect(await counterValue(alertCounter(run.metrics), { rule: e.rule, status: 'RESOLVED' })).toBe(STORES.length);
    }
    expect(await openGauge(run.metrics)).toBe(0);

    const changesDlq = await h.pipeline.read(dlqTopic('pos.inventario.changes'), { raw: true, idleMs: 1_000 });
    expect(changesDlq.map((r) => [r.headers.error_class, r.headers.source_topic])).toEqual([
      ['ValidationError', h.topics.changes],
      ['ValidationError', h.topics.changes],
    ]);
    expect(changesDlq.map((r) => r.headers.error)).toEqual([
      expect.stringMatching(/magic byte 255/),
      expect.stringMatching(/000007 .*op u without after/),
    ]);
    expect(changesDlq[1]!.value).toEqual(withoutAfter);
    const ventasDlq = await h.pipeline.read(dlqTopic('pos.ventas'), { raw: true, idleMs: 1_000 });
    expect(ventasDlq.map((r) => [r.headers.error_class, r.headers.source_topic])).toEqual([
      ['ValidationError', h.topics.ventas],
      ['SchemaError', h.topics.ventas],
    ]);
    expect(ventasDlq[1]!.value).toEqual(unknownSchema);
    expect(
      ventasDlq.every((r) => r.headers.source_offset !== undefined && r.partition === partitionForUbicacion(STORES[1]!, PARTITIONS)),
    ).toBe(true);

    // The state topic: the vanished product is a tombstone, the others have no open alert left.
    const state = await h.pipeline.read<PhantomStateRecord | null>('alerts.phantom-zeros.state', { idleMs: 1_000 });
    const last = new Map(state.map((r) => [r.key!.toString(), r.decoded]));
    for (const store of STORES) {
      expect(last.has(`${store}/${DEPOSITO}/000006`)).toBe(true);
      expect(last.get(`${store}/${DEPOSITO}/000006`)).toBeNull();
      expect(last.has(`${store}/${DEPOSITO}/000099`)).toBe(false);
      for (const p of ['000001', '000002', '000003', '000004', '000005']) {
        const s = last.get(`${store}/${DEPOSITO}/${p}`)!;
        expect(s.open_alert_id).toBeNull();
        expect(JSON.parse(s.state_json)).toMatchObject({ v: 1, open: null });
      }
    }
  });

  it('a new instance of the group continues from the state topic: the alerts are those of an uninterrupted run', {
    timeout: 90_000,
  }, async () => {
    const h = await harness();
    const first = await start(h);
    for (const phase of [0, 1, 2, 3]) await feed(h, phase);
    await first.stop();
    expect(await first.finished).toBeUndefined();
    expect(await counterValue(alertCounter(first.metrics), { status: 'RESOLVED' })).toBe(0);

    const second = await start(h);
    await feed(h, 4);
    // Stock back: the second instance resolves what the first opened, and opens FLIP_FLOP.
    expect(await counterValue(alertCounter(second.metrics), { status: 'RESOLVED' })).toBe(2 * STORES.length);
    expect(await counterValue(alertCounter(second.metrics), { rule: 'FLIP_FLOP', status: 'OPEN' })).toBe(STORES.length);
    expect(await openGauge(second.metrics)).toBe(STORES.length);
    await feed(h, 5);
    await second.stop();
    expect(await second.finished).toBeUndefined();
    expect(await counterValue(alertCounter(second.metrics), { status: 'OPEN' })).toBe(STORES.length);

    await expectScenarioAlerts(h.pipeline);
  });
});
