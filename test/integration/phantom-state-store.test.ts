/**
 * The phantom detector's state store across restarts (processors/runtime/state-store.ts): a
 * restart of the same group on the same FLUXION_STATE_DIR reads only the tail of
 * alerts.phantom-zeros.state past its checkpoint, and alerts exactly as the detector's pure
 * steps folded over the same inputs without any restart; so does a start on a new directory,
 * which reads the whole changelog.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTopicCodec, type TopicCodec } from '../../core/avro/topic-codec.ts';
import { DEFAULT_PHANTOM_CONFIG } from '../../processors/phantom-rules.ts';
import {
  createPhantomSpec,
  phantomKey,
  stepChange,
  stepSale,
  type DetectorEntry,
  type InventoryChange,
  type PhantomAlert,
  type Venta,
} from '../../processors/phantom-detector.ts';
import { createRuntimeMetrics } from '../../processors/runtime/metrics.ts';
import { inventoryRow, uuidFrom } from '../../fixtures/inventory-feed.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';
import { processorConfig, runCountingLoads, waitForGroupEnd } from '../../fixtures/processor-run.ts';
import { testLogger, uniqueId } from '../../fixtures/services.ts';

/** One store on each of the 3 partitions (murmur2 placement). */
const STORES = ['tienda_01', 'tienda_04', 'tienda_06'];
const PRODUCTS = 60;
const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);
const at = (minutes: number) => new Date(T0 + minutes * 60_000);

let pipeline: TestPipeline;
let changeCodec: TopicCodec<InventoryChange>;
let ventaCodec: TopicCodec<Venta>;
const dirs: string[] = [];

beforeAll(async () => {
  pipeline = await createTestPipeline(3);
  changeCodec = await createTopicCodec<InventoryChange>(
    pipeline.registry,
    'pos.inventario.changes',
    `${pipeline.prefix}pos.inventario.changes`,
  );
  ventaCodec = await createTopicCodec<Venta>(pipeline.registry, 'pos.ventas', `${pipeline.prefix}pos.ventas`);
});

afterAll(async () => {
  await pipeline?.cleanup();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

type Input = { kind: 'change'; change: InventoryChange } | { kind: 'venta'; venta: Venta };

type Quantity = (p: number) => string | null;

/** Snapshot `s` (at minute 30 s) moves products `from`..`to` of every store from `before` to `after` (null: none, vanished). */
function snapshot(s: number, from: number, to: number, before: Quantity, after: Quantity): Input[] {
  const out: Input[] = [];
  for (const store of STORES) {
    for (let p = from; p <= to; p++) {
      const [b, a] = [before(p), after(p)];
      const row = (q: string | null) => (q === null ? null : inventoryRow(p, q));
      out.push({
        kind: 'change',
        change: {
          op: b === null ? 'c' : a === null ? 'd' : 'u',
          ubicacion_id: store,
          deposito: '01',
          producto_id: inventoryRow(p, '0.000').producto_id,
          before: row(b),
          after: row(a),
          snapshot_id: uuidFrom(`${store}/S${s}`),
          taken_at: at(30 * s),
          source: 'KLK',
        },
      });
    }
  }
  return out;
}

/** One sales line per store and product `from`..`to`, at `minute`. */
function sales(tag: string, from: number, to: number, cantidad: string, minute: number): Input[] {
  const out: Input[] = [];
  for (const store of STORES) {
    for (let p = from; p <= to; p++) {
      out.push({
        kind: 'venta',
        venta: {
          op: 'c',
          linea: {
            ubicacion_id: store,
            fecha: '2026-12-03',
            numero_factura: `${tag}-${p}`,
            linea: 1,
            fecha_hora: at(minute),
            producto_id: inventoryRow(p, '0.000').producto_id,
            cantidad,
            precio_unitario: '2.0000',
            descuento: '0.0000',
            total: '2.0000',
            caja: '01',
            anulada: false,
          },
          fingerprint: `${tag}-${p}`,
          first_seen_at: at(minute),
          extracted_at: at(minute),
        },
      });
    }
  }
  return out;
}

const stock: Quantity = (p) => `${20 + (p % 5)}.000`; // at or above the UNEXPLAINED_DROP threshold (20)
const fixed =
  (q: string | null): Quantity =>
  () =>
    q;
/** Each phase's inputs all go to one topic, fed and committed before the next phase. */
const PHASES: Input[][] = [
  snapshot(0, 1, PRODUCTS, fixed(null), stock),
  // Drops to zero without sales (UNEXPLAINED_DROP), then sales at zero and in stock.
  snapshot(1, 1, 20, stock, fixed('0.000')),
  sales('A', 1, 5, '2.000', 40).concat(sales('B', 21, 30, '1.000', 41)),
  // The first restart comes here: stock back, new drops, a product vanishing and sold after.
  snapshot(2, 1, 10, fixed('0.000'), fixed('12.000')).concat(
    snapshot(2, 31, 40, stock, fixed('0.000')),
    snapshot(2, 50, 50, stock, fixed(null)),
  ),
  sales('C', 11, 15, '3.000', 70).concat(sales('D', 31, 35, '1.000', 71), sales('E', 50, 50, '1.000', 72)),
  // The start on a new directory comes here: everything back in stock.
  snapshot(3, 1, 10, fixed('12.000'), fixed('15.000')).concat(
    snapshot(3, 11, 40, (p) => (p <= 20 || p > 30 ? '0.000' : stock(p)), fixed('15.000')),
  ),
];

/** The alerts and open products of the detector's pure steps over `phases`, without any restart. */
function reference(phases: Input[][]): { alerts: PhantomAlert[]; open: number } {
  const entries = new Map<string, DetectorEntry>();
  const alerts: PhantomAlert[] = [];
  for (const input of phases.flat()) {
    if (input.kind === 'change') {
      const c = input.change;
      const ref = { ubicacion_id: c.ubicacion_id, deposito: c.deposito, producto_id: c.producto_id };
      const step = stepChange(ref, entries.get(phantomKey(ref)), c, DEFAULT_PHANTOM_CONFIG);
      if (step.entry) entries.set(phantomKey(ref), step.entry);
      else entries.delete(phantomKey(ref));
      alerts.push(...step.alerts);
    } else {
      // Every product here has one deposito.
      const l = input.venta.linea;
      const key = phantomKey({ ubicacion_id: l.ubicacion_id, deposito: '01', producto_id: l.producto_id });
      const prev = entries.get(key);
      if (!prev) continue;
      const step = stepSale(prev, input.venta, DEFAULT_PHANTOM_CONFIG);
      entries.set(key, step.entry!);
      alerts.push(...step.alerts);
    }
  }
  const open = [...entries.values()].filter((e) => e.openAlertId !== null || e.state.open !== null).length;
  return { alerts, open };
}

/** Comparable lines: per product, its n-th alert with everything it says. */
function alertLines(alerts: PhantomAlert[]): string[] {
  const seen = new Map<string, number>();
  return alerts
    .map((a) => {
      const key = phantomKey(a);
      const n = (seen.get(key) ?? 0) + 1;
      seen.set(key, n);
      const evidence = JSON.stringify(Object.entries(a.evidence).sort());
      const times = `${a.opened_at.toISOString()} ${a.updated_at.toISOString()}`;
      return `${key} #${n} ${a.status} ${a.rule} ${a.alert_id} ${a.confidence} ${times} ${evidence}`;
    })
    .sort();
}

async function feed(group: string, phase: Input[]): Promise<void> {
  const changes = phase.flatMap((i) =>
    i.kind === 'change' ? [{ ubicacionId: i.change.ubicacion_id, key: phantomKey(i.change), value: changeCodec.encode(i.change) }] : [],
  );
  const ventas = phase.flatMap((i) =>
    i.kind === 'venta'
      ? [
          {
            ubicacionId: i.venta.linea.ubicacion_id,
            key: `${i.venta.linea.ubicacion_id}/${i.venta.linea.numero_factura}/1`,
            value: ventaCodec.encode(i.venta),
          },
        ]
      : [],
  );
  const producer = await pipeline.kafka.producer();
  try {
    if (changes.length > 0) await producer.send(`${pipeline.prefix}pos.inventario.changes`, changes);
    if (ventas.length > 0) await producer.send(`${pipeline.prefix}pos.ventas`, ventas);
  } finally {
    await producer.disconnect();
  }
  // Written without transactions: the group's committed offsets reach the very end.
  await waitForGroupEnd(
    pipeline.kafka,
    group,
    [`${pipeline.prefix}pos.inventario.changes`, `${pipeline.prefix}pos.ventas`],
    60_000,
    false,
  );
}

/** A detector whose state loads are counted (records of the state topic handed to `load`). */
async function startCounted(group: string, stateDir: string) {
  const metrics = createRuntimeMetrics();
  const spec = await createPhantomSpec({
    kafka: pipeline.kafka,
    registry: pipeline.registry,
    logger: testLogger,
    topicPrefix: pipeline.prefix,
    partitions: 3,
    config: processorConfig({ stateDir }),
    metrics,
  });
  const run = runCountingLoads(spec, pipeline, metrics, group);
  const openGauge = async () => (await metrics.registry.getSingleMetric('fluxion_phantom_open_alerts')!.get()).values[0]?.value;
  return { ...run, openGauge };
}

async function alertsOnTopic(): Promise<PhantomAlert[]> {
  return (await pipeline.read<PhantomAlert>('alerts.phantom-zeros', { idleMs: 1_500 })).map((r) => r.decoded);
}

describe('phantom detector state store', () => {
  it('a restart on the same state directory loads only the changelog tail, and alerts as an uninterrupted run does', {
    timeout: 240_000,
  }, async () => {
    const group = uniqueId('phantom-store');
    const stateDir = mkdtempSync(join(tmpdir(), 'phantom-state-'));
    dirs.push(stateDir);

    let running = await startCounted(group, stateDir);
    for (const phase of PHASES.slice(0, 3)) await feed(group, phase);
    expect(await running.openGauge()).toBe(reference(PHASES.slice(0, 3)).open);
    await running.stop();
    expect(await running.finished).toBeUndefined();
    const stateRecords = (await pipeline.read('alerts.phantom-zeros.state', { raw: true, idleMs: 1_000 })).length;
    // Phase 0 wrote every product (60 a store), and the later phases their changes.
    expect(stateRecords).toBeGreaterThan(STORES.length * PRODUCTS);
    expect(reference(PHASES.slice(0, 3)).open).toBeGreaterThanOrEqual(STORES.length * 20);

    // The restart reads only what came after the last checkpoint: the state records of the
    // last transaction of each partition (phase 2's sales: 15 products a store).
    running = await startCounted(group, stateDir);
    for (const phase of PHASES.slice(3, 5)) await feed(group, phase);
    const afterRestart = reference(PHASES.slice(0, 5));
    expect(await running.openGauge()).toBe(afterRestart.open);
    await running.stop();
    expect(await running.finished).toBeUndefined();
    expect(running.loaded()).toBeGreaterThan(0);
    expect(running.loaded()).toBeLessThanOrEqual(STORES.length * 15);
    // The second run resolved alerts the first opened, and opened its own.
    expect(afterRestart.alerts.length - reference(PHASES.slice(0, 3)).alerts.length).toBeGreaterThanOrEqual(STORES.length * 20);
    expect(alertLines(await alertsOnTopic())).toEqual(alertLines(afterRestart.alerts));

    // The same group on a new directory: no checkpoint, so the whole changelog is read, and
    // the next phase alerts the same.
    const stateNow = (await pipeline.read('alerts.phantom-zeros.state', { raw: true, idleMs: 1_000 })).length;
    const freshDir = mkdtempSync(join(tmpdir(), 'phantom-state-fresh-'));
    dirs.push(freshDir);
    running = await startCounted(group, freshDir);
    await feed(group, PHASES[5]!);
    const all = reference(PHASES);
    expect(await running.openGauge()).toBe(all.open);
    await running.stop();
    expect(await running.finished).toBeUndefined();
    expect(running.loaded()).toBe(stateNow);
    expect(all.alerts.length).toBeGreaterThan(afterRestart.alerts.length);
    expect(alertLines(await alertsOnTopic())).toEqual(alertLines(all.alerts));
  });
});
