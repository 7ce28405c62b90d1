/**
 * Exactly-once, proven per processor: `fluxion process <kind>` is killed with SIGKILL at
 * random instants (20 times) while its input arrives, restarted each time, and its
 * read_committed output and compacted state must equal an undisturbed run's on the same
 * input. Seeds are printed; rerun one with KILL_SEED=<seed>.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createTopicCodec } from '../../core/avro/topic-codec.ts';
import type { OutgoingRecord } from '../../core/kafka/types.ts';
import type { InventoryChange, InventoryRow, Venta, VentaLinea } from '../../core/records.ts';
import { createDedupeSpec } from '../../processors/ventas-dedupe.ts';
import { createDifferSpec } from '../../processors/snapshot-differ.ts';
import { createPhantomSpec } from '../../processors/phantom-detector.ts';
import type { SnapshotChunk } from '../../processors/snapshot-diff.ts';
import { ventaFingerprint } from '../../processors/ventas-dedupe-rules.ts';
import { chunkRecords, cycleRows, inventoryRow, uuidFrom } from '../../fixtures/inventory-feed.ts';
import { killRun, seededRandom, type FeedStep, type KillRunOptions } from '../helpers/kill-harness.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';

const KILLS = Number(process.env.KILLS_PER_PROCESSOR ?? 20);
const STORES = ['tienda_01', 'tienda_02', 'tienda_03', 'tienda_04', 'tienda_05', 'tienda_06'];
const T0 = Date.UTC(2026, 10, 27, 12, 0, 0);
const pipelines: TestPipeline[] = [];

afterAll(async () => {
  for (const p of pipelines) await p.cleanup();
});

// The proofs run concurrently, but their set-ups one at a time: the local Apicurio registry
// answers concurrent registrations with "artifact already exists" conflicts.
let setups: Promise<unknown> = Promise.resolve();
function serially<T>(work: () => Promise<T>): Promise<T> {
  const next = setups.then(work);
  setups = next.catch(() => undefined);
  return next;
}

async function prove(kind: KillRunOptions['kind'], options: Omit<KillRunOptions, 'kind' | 'kills' | 'seed' | 'log'>): Promise<void> {
  const seed = Number(process.env.KILL_SEED ?? Date.now() % 1_000_000);
  console.log(`${kind} exactly-once test: kill seed ${seed} (rerun with KILL_SEED=${seed})`);
  const killed = await serially(() => createTestPipeline(3));
  const reference = await serially(() => createTestPipeline(3));
  pipelines.push(killed, reference);
  const started = Date.now();
  const result = await killRun(killed, reference, { ...options, kind, kills: KILLS, seed, log: (l) => console.log(l) });
  console.log(`${kind}: ${((Date.now() - started) / 1000).toFixed(0)} s`);
  expect(result.kills).toBe(KILLS);
  expect(result.killedWhileProcessing).toBeGreaterThan(KILLS / 2);
  expect(result.finalExit).toBe(0);
  expect(result.dlq).toBe(0);
  for (const [topic, { killed: got, reference: want }] of Object.entries(result.outputs)) {
    expect(want.length, `${topic}: the reference produced nothing, so the comparison would prove nothing`).toBeGreaterThan(0);
    expect(got, `${topic} differs from the undisturbed run`).toEqual(want);
  }
  for (const [topic, { killed: got, reference: want }] of Object.entries(result.states)) {
    expect(Object.keys(want).length).toBeGreaterThan(0);
    expect(got, `${topic} (compacted view) differs from the undisturbed run`).toEqual(want);
  }
}

/** 6 stores x 6 cycles of 300 rows in chunks of 50; an incomplete snapshot and a mass-zero one. */
async function differSteps(p: TestPipeline): Promise<FeedStep[]> {
  const codec = await createTopicCodec<SnapshotChunk>(p.registry, 'pos.inventario.snapshots', `${p.prefix}pos.inventario.snapshots`);
  const steps: FeedStep[] = [];
  for (let cycle = 1; cycle <= 6; cycle++) {
    for (const store of STORES) {
      let rows = cycleRows(store, cycle, 300, 0.1);
      if (store === 'tienda_03' && cycle === 4) rows = rows.map((r, i) => (i % 4 === 0 ? r : { ...r, cantidad: '0.000' }));
      if (store === 'tienda_05' && cycle === 3) rows = rows.filter((r) => r.producto_id !== '000010').concat(inventoryRow(777, '3.000'));
      const snapshot = {
        ubicacion: store,
        snapshotId: uuidFrom(`${store}/${cycle}`),
        takenAt: new Date(T0 + cycle * 1_800_000),
        rows,
        chunkSize: 50,
      };
      const records: OutgoingRecord[] = [];
      if (store === 'tienda_02' && cycle === 3) {
        // One chunk of a snapshot whose extractor died, then the next run's full snapshot.
        records.push(
          ...chunkRecords(codec, {
            ...snapshot,
            snapshotId: uuidFrom('broken'),
            takenAt: new Date(snapshot.takenAt.getTime() - 60_000),
            only: [0],
          }),
        );
      }
      records.push(...chunkRecords(codec, snapshot));
      steps.push({ topic: 'pos.inventario.snapshots', records });
    }
  }
  return steps;
}

function linea(store: string, factura: number, n: number, read: number): VentaLinea {
  const anulada = factura % 7 === 0 && read >= 4;
  return {
    ubicacion_id: store,
    fecha: '2026-11-27',
    numero_factura: `F-${String(factura).padStart(8, '0')}`,
    linea: n,
    fecha_hora: new Date(T0 + factura * 60_000),
    producto_id: String((factura * 3 + n) % 40).padStart(6, '0'),
    cantidad: `${1 + (n % 3)}.000`,
    precio_unitario: '2.5000',
    descuento: factura % 11 === 0 && read >= 5 ? '0.5000' : '0.0000',
    total: `${(1 + (n % 3)) * 2.5}000`,
    caja: '01',
    anulada,
  };
}

/** Hourly re-reads of one day (each read holds every line so far; voids and corrections in later reads), then a read 8 days later. */
async function dedupeSteps(p: TestPipeline): Promise<FeedStep[]> {
  const codec = await createTopicCodec<unknown>(p.registry, 'pos.ventas.raw', `${p.prefix}pos.ventas.raw`);
  const steps: FeedStep[] = [];
  const read = (store: string, r: number, facturas: number, extractedAt: Date, day = '2026-11-27'): FeedStep => {
    const records: OutgoingRecord[] = [];
    for (let f = 1; f <= facturas; f++) {
      for (let n = 1; n <= 2; n++) {
        const l = { ...linea(store, f, n, r), fecha: day };
        records.push({
          ubicacionId: store,
          key: `${store}/${l.numero_factura}`,
          value: codec.encode({ linea: l, extracted_at: extractedAt, run_id: uuidFrom(`run${r}`) }),
        });
      }
    }
    return { topic: 'pos.ventas.raw', records };
  };
  for (let r = 1; r <= 6; r++) for (const store of STORES) steps.push(read(store, r, 20 * r, new Date(T0 + r * 3_600_000)));
  for (const store of STORES) steps.push(read(store, 7, 5, new Date(T0 + 8 * 86_400_000), '2026-12-05'));
  return steps;
}

/** Inventory changes and sales of 6 stores x 15 products over 8 cycles, from a fixed seed. */
async function phantomSteps(p: TestPipeline): Promise<FeedStep[]> {
  const changeCodec = await createTopicCodec<InventoryChange>(p.registry, 'pos.inventario.changes', `${p.prefix}pos.inventario.changes`);
  const ventaCodec = await createTopicCodec<Venta>(p.registry, 'pos.ventas', `${p.prefix}pos.ventas`);
  const random = seededRandom(424_242);
  const steps: FeedStep[] = [];
  const last = new Map<string, InventoryRow>();
  let factura = 0;
  for (let cycle = 1; cycle <= 8; cycle++) {
    const takenAt = new Date(T0 + cycle * 1_800_000);
    const changes: OutgoingRecord[] = [];
    const ventas: OutgoingRecord[] = [];
    for (const store of STORES) {
      for (let prod = 1; prod <= 15; prod++) {
        const r = random();
        const qty = r < 0.2 ? 0 : r < 0.3 ? 12 + prod : 40 + prod;
        const row = inventoryRow(prod, `${qty}.000`);
        const key = `${store}/01/${row.producto_id}`;
        const before = last.get(key) ?? null;
        if (!before || before.cantidad !== row.cantidad) {
          last.set(key, row);
          const change: InventoryChange = {
            op: before ? 'u' : 'c',
            ubicacion_id: store,
            deposito: '01',
            producto_id: row.producto_id,
            before,
            after: row,
            snapshot_id: uuidFrom(`${store}/${cycle}`),
            taken_at: takenAt,
            source: 'KLK',
          };
          changes.push({ ubicacionId: store, key, value: changeCodec.encode(change) });
        }
        if (random() < 0.5) {
          factura++;
          const l: VentaLinea = {
            ...linea(store, factura, 1, 1),
            producto_id: row.producto_id,
            fecha_hora: new Date(takenAt.getTime() + 600_000),
            anulada: false,
            cantidad: `${1 + Math.floor(random() * 3)}.000`,
          };
          const v: Venta = {
            op: 'c',
            linea: l,
            fingerprint: ventaFingerprint(l),
            first_seen_at: takenAt,
            extracted_at: new Date(takenAt.getTime() + 900_000),
          };
          ventas.push({ ubicacionId: store, key: `${store}/${l.numero_factura}/${l.linea}`, value: ventaCodec.encode(v) });
        }
      }
    }
    steps.push({ topic: 'pos.inventario.changes', records: changes });
    steps.push({ topic: 'pos.ventas', records: ventas });
  }
  return steps;
}

// Concurrent: each proof has its own topics and group, and spends most of its time waiting for
// children to start and groups to rebalance; in sequence the three took five minutes of CI.
describe.concurrent('exactly-once under kill -9 (output and state equal an undisturbed run)', () => {
  it('differ', { timeout: 600_000 }, async () => {
    await prove('differ', {
      factory: createDifferSpec,
      inputs: ['pos.inventario.snapshots'],
      steps: differSteps,
      outputs: ['pos.inventario.changes', 'pos.inventario.quarantine'],
      states: ['pos.inventario.state'],
      maxBatch: 4,
    });
  });

  it('dedupe', { timeout: 600_000 }, async () => {
    await prove('dedupe', {
      factory: createDedupeSpec,
      inputs: ['pos.ventas.raw'],
      steps: dedupeSteps,
      outputs: ['pos.ventas'],
      states: ['pos.ventas.state'],
      maxBatch: 25,
    });
  });

  it('phantom', { timeout: 600_000 }, async () => {
    await prove('phantom', {
      factory: createPhantomSpec,
      inputs: ['pos.inventario.changes', 'pos.ventas'],
      steps: phantomSteps,
      outputs: ['alerts.phantom-zeros'],
      states: ['alerts.phantom-zeros.state'],
      maxBatch: 10,
    });
  });
});
