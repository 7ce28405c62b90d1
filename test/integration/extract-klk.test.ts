/**
 * KLK extraction against the KLK simulator and the real Kafka and registry: what lands on
 * the topics is exactly the simulator's truth, one transaction per store, and each fault
 * fails (or is retried past) with a clear message without touching the other stores.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Ubicacion } from '../../core/config/ubicaciones.ts';
import type { StoreOutcome } from '../../core/etl-run.ts';
import { extractInventario, extractVentas, type ExtractionDeps } from '../../extractors/extract-run.ts';
import { fechaCaracas, StoreSimulation, type InventarioTruthRow } from '../../simulators/data/store-simulation.ts';
import { labelsFromJson } from '../../simulators/data/anomalies.ts';
import { servedInventario } from '../../simulators/faults.ts';
import { startKlkSimulator, type KlkSimulator } from '../../simulators/klk/server.ts';
import { pipelineSupply, type TestPipeline } from '../../fixtures/pipeline.ts';
import { testLogger } from '../../fixtures/services.ts';

const IDS = ['tienda_01', 'tienda_02', 'tienda_03'];
const KEYS: Record<string, string> = Object.fromEntries(IDS.map((id) => [id, `key-${id}-not-a-real-secret`]));
const env = Object.fromEntries(IDS.map((id) => [`KLK_API_KEY_${id.toUpperCase()}`, KEYS[id]!]));
const FAST_RETRY = { retries: 3, initialDelayMs: 20, maxDelayMs: 200, factor: 2 };

let sims: StoreSimulation[];
let klk: KlkSimulator;
let pipeline: TestPipeline;
// A clean pipeline per test, each set up while the test before runs.
const pipelines = pipelineSupply();
let deps: ExtractionDeps;
let stores: Ubicacion[];

function klkStore(id: string, baseUrl: string): Ubicacion {
  return {
    id,
    nombre: id,
    tipo: 'tienda',
    activa: true,
    pos: 'klk',
    depositos: ['01'],
    klk: { baseUrl, apiKeyEnv: `KLK_API_KEY_${id.toUpperCase()}`, pageSize: 1000, timeoutMs: 5_000 },
  };
}

beforeAll(async () => {
  sims = IDS.map(
    (id, i) => new StoreSimulation({ ubicacionId: id, pos: 'klk', depositos: ['01'], products: 2_300 + i * 100, salesLinesPerHour: 400 }),
  );
  for (const s of sims) s.advance(60);
  klk = await startKlkSimulator({ stores: sims, apiKeys: KEYS });
  stores = IDS.map((id) => klkStore(id, klk.baseUrl(id)));
});

afterAll(async () => {
  await klk?.close();
  await pipelines.close();
});

afterEach(async () => {
  klk.faults.clear();
  await pipeline?.cleanup();
});

async function fresh(): Promise<void> {
  pipeline = await pipelines.next();
  deps = { kafka: pipeline.kafka, registry: pipeline.registry, logger: testLogger, env, topicPrefix: pipeline.prefix };
}

interface Chunk {
  snapshot_id: string;
  ubicacion_id: string;
  source: string;
  chunk_index: number;
  chunk_count: number;
  row_count: number;
  rows: InventarioTruthRow[];
}

async function snapshotsByStore(): Promise<Map<string, Chunk[]>> {
  const records = await pipeline.read<Chunk>('pos.inventario.snapshots');
  const by = new Map<string, Chunk[]>();
  for (const r of records) by.set(r.decoded.ubicacion_id, [...(by.get(r.decoded.ubicacion_id) ?? []), r.decoded]);
  return by;
}

const byOutcome = (outcomes: StoreOutcome[], id: string) => outcomes.find((o) => o.ubicacionId === id)!;

describe('fluxion extract inventario (KLK)', () => {
  it("publishes exactly the simulator's truth, one complete snapshot per store, with its run record", async () => {
    await fresh();
    const outcomes = await extractInventario(stores, deps, { retry: FAST_RETRY });
    expect(outcomes.map((o) => o.status)).toEqual(['OK', 'OK', 'OK']);

    const snapshots = await snapshotsByStore();
    for (const sim of sims) {
      const chunks = snapshots.get(sim.ubicacionId)!;
      const truth = sim.klkInventario('01');
      expect(chunks.length).toBe(Math.ceil(truth.length / 1000));
      expect(new Set(chunks.map((c) => c.snapshot_id)).size).toBe(1);
      expect(chunks.map((c) => c.chunk_index)).toEqual([...chunks.keys()]);
      expect(chunks.every((c) => c.chunk_count === chunks.length && c.row_count === truth.length && c.source === 'KLK')).toBe(true);
      expect(chunks.flatMap((c) => c.rows)).toEqual(truth);
      expect(byOutcome(outcomes, sim.ubicacionId)).toMatchObject({ rows: truth.length, snapshotId: chunks[0]!.snapshot_id });
    }

    const runs = await pipeline.read<{ ubicacion_id: string; status: string; rows: number; job: string; snapshot_id: string }>(
      'ops.etl-runs',
    );
    expect(runs.map((r) => r.decoded.ubicacion_id).sort()).toEqual(IDS);
    for (const r of runs) {
      expect(r.decoded).toMatchObject({
        job: 'INVENTARIO',
        status: 'OK',
        snapshot_id: byOutcome(outcomes, r.decoded.ubicacion_id).snapshotId,
      });
    }
  });

  it('fails only the store whose API key is refused, publishing nothing of it but its FAILED run', async () => {
    await fresh();
    const outcomes = await extractInventario(
      stores,
      { ...deps, env: { ...env, KLK_API_KEY_TIENDA_02: 'wrong-key' } },
      { retry: FAST_RETRY },
    );
    expect(byOutcome(outcomes, 'tienda_02')).toMatchObject({ status: 'FAILED', errorClass: 'POS_AUTH' });
    expect(byOutcome(outcomes, 'tienda_02').errorMessage).toMatch(
      /tienda_02: KLK refused the API key \(HTTP 401\).*check KLK_API_KEY_TIENDA_02/,
    );
    expect(byOutcome(outcomes, 'tienda_02').errorMessage).not.toContain('wrong-key');
    expect(byOutcome(outcomes, 'tienda_01').status).toBe('OK');
    expect(byOutcome(outcomes, 'tienda_03').status).toBe('OK');
    const snapshots = await snapshotsByStore();
    expect([...snapshots.keys()].sort()).toEqual(['tienda_01', 'tienda_03']);
    const runs = await pipeline.read<{ ubicacion_id: string; status: string; error_class: string | null; rows: number }>('ops.etl-runs');
    expect(runs.find((r) => r.decoded.ubicacion_id === 'tienda_02')?.decoded).toMatchObject({
      status: 'FAILED',
      error_class: 'POS_AUTH',
      rows: 0,
    });
  });

  it('retries 5xx and 429 (honouring Retry-After) and then succeeds', async () => {
    await fresh();
    klk.faults.set('tienda_01', { httpError: { status: 503, times: 2 } });
    klk.faults.set('tienda_03', { httpError: { status: 429, times: 1, retryAfterSeconds: 1 } });
    const before = { t1: klk.requests('tienda_01'), t3: klk.requests('tienda_03') };
    const started = Date.now();
    const outcomes = await extractInventario(stores, deps, { retry: FAST_RETRY });
    expect(outcomes.map((o) => o.status)).toEqual(['OK', 'OK', 'OK']);
    expect(klk.requests('tienda_01') - before.t1).toBe(3 + 2); // 3 pages + 2 refused attempts
    expect(klk.requests('tienda_03') - before.t3).toBe(3 + 1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000); // waited as Retry-After said
    const snapshots = await snapshotsByStore();
    expect(snapshots.get('tienda_01')!.flatMap((c) => c.rows)).toEqual(sims[0]!.klkInventario('01'));
  });

  it.each([
    ['a connection reset mid-page', { resetOnPage: 2 }, /tienda_02: KLK GET \/api\/v1\/inventario\?.*page=2.* failed/],
    ['a truncated body', { truncateOnPage: 2 }, /tienda_02: KLK GET .*page 2: the body is not JSON/],
    ['a malformed body', { malformedOnPage: 1 }, /tienda_02: KLK GET .*page 1: the body is not JSON .*502 Bad Gateway/],
    [
      'an invalid decimal',
      { invalidDecimalFor: '000042' },
      /tienda_02: page 1, item 42 \(producto 000042\): field cantidad: "[-\d]+,\d{3}" is not an exact decimal\(18,3\)/,
    ],
  ])('fails the store on %s with a clear message, publishing none of its rows', async (_label, fault, message) => {
    await fresh();
    klk.faults.set('tienda_02', fault);
    const outcomes = await extractInventario(stores, deps, { retry: FAST_RETRY });
    const failed = byOutcome(outcomes, 'tienda_02');
    expect(failed.status).toBe('FAILED');
    expect(failed.errorMessage).toMatch(message);
    expect(outcomes.filter((o) => o.status === 'OK').map((o) => o.ubicacionId)).toEqual(['tienda_01', 'tienda_03']);
    expect([...(await snapshotsByStore()).keys()].sort()).toEqual(['tienda_01', 'tienda_03']);
  });

  it('waits for a slow POS within the request timeout, and fails one slower than it after retries', async () => {
    await fresh();
    klk.faults.set('tienda_01', { latencyMs: 150 });
    klk.faults.set('tienda_02', { latencyMs: 800 });
    const outcomes = await extractInventario(stores, deps, { retry: { ...FAST_RETRY, retries: 1 }, requestTimeoutMs: 400 });
    expect(byOutcome(outcomes, 'tienda_01').status).toBe('OK');
    expect(byOutcome(outcomes, 'tienda_02')).toMatchObject({ status: 'FAILED', errorClass: 'POS_UNAVAILABLE' });
    expect(byOutcome(outcomes, 'tienda_02').errorMessage).toMatch(
      /tienda_02: KLK GET \/api\/v1\/inventario\?.*page=1.* failed: no answer in 400 ms/,
    );
    expect([...(await snapshotsByStore()).keys()].sort()).toEqual(['tienda_01', 'tienda_03']);
  });

  it('stops a stalled store at its deadline while the others finish', async () => {
    await fresh();
    klk.faults.set('tienda_01', { stallOnPage: 2 });
    const outcomes = await extractInventario(stores, deps, { retry: FAST_RETRY, requestTimeoutMs: 60_000, storeDeadlineMs: 1_500 });
    expect(byOutcome(outcomes, 'tienda_01')).toMatchObject({ status: 'FAILED', errorClass: 'DEADLINE' });
    expect(byOutcome(outcomes, 'tienda_01').errorMessage).toMatch(/tienda_01: the KLK read did not finish within its deadline of 1500 ms/);
    expect(byOutcome(outcomes, 'tienda_02').status).toBe('OK');
  });

  it('publishes an empty inventory and mass zeros as the POS reported them (the differ decides)', async () => {
    await fresh();
    klk.faults.set('tienda_01', { emptyInventory: true });
    klk.faults.set('tienda_02', { massZerosShare: 0.5 });
    klk.faults.set('tienda_03', { phantomZeros: ['000010', '000011'] });
    const outcomes = await extractInventario(stores, deps, { retry: FAST_RETRY });
    expect(outcomes.map((o) => o.status)).toEqual(['OK', 'OK', 'OK']);
    const snapshots = await snapshotsByStore();
    const t3 = snapshots.get('tienda_03')!.flatMap((c) => c.rows);
    expect(t3.filter((r) => r.cantidad === '0.000').map((r) => r.producto_id)).toEqual(expect.arrayContaining(['000010', '000011']));
    expect(t3).toEqual(servedInventario(sims[2]!.klkInventario('01'), { phantomZeros: ['000010', '000011'] }));
    expect(snapshots.get('tienda_01')).toMatchObject([{ chunk_count: 1, row_count: 0, rows: [] }]);
    expect(snapshots.get('tienda_02')!.flatMap((c) => c.rows)).toEqual(
      servedInventario(sims[1]!.klkInventario('01'), { massZerosShare: 0.5 }),
    );
  });

  it('a phantom zero started via the control endpoint is extracted as 0, served by GET /_control/anomalias with its label', async () => {
    await fresh();
    const sim = sims[0]!;
    const producto = sim
      .klkInventario('01')
      .find((r) => Number(r.cantidad) >= 10 && !sim.anomalies().some((l) => l.producto_id === r.producto_id))!.producto_id;
    const post = (body: unknown) =>
      fetch(`${klk.url}/_control/phantom-zero/tienda_01`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const started = await post({ deposito: '01', producto_id: producto, minutes: 90 });
    expect(started.status).toBe(201);
    expect((await post({ deposito: '01', producto_id: producto })).status).toBe(409);
    expect((await post({ deposito: '09', producto_id: producto })).status).toBe(404);
    const outcomes = await extractInventario([stores[0]!], deps, { retry: FAST_RETRY });
    expect(outcomes[0]!.status).toBe('OK');
    const rows = (await snapshotsByStore()).get('tienda_01')!.flatMap((c) => c.rows);
    expect(rows.find((r) => r.producto_id === producto)!.cantidad).toBe('0.000');
    expect(sim.cantidadFisica('01', producto)).toBeGreaterThan(0n);

    const res = await fetch(`${klk.url}/_control/anomalias?ubicacion_id=tienda_01`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { clocks: Record<string, string>; labels: Array<Record<string, unknown>> };
    expect(body.clocks).toEqual({ tienda_01: sim.clock.toISOString() });
    expect(body.labels).toContainEqual({
      id: `PHANTOM_ZERO:tienda_01:01:${producto}:${sim.clock.toISOString().slice(0, 19)}Z`,
      kind: 'PHANTOM_ZERO',
      ubicacion_id: 'tienda_01',
      deposito: '01',
      producto_id: producto,
      departamento_codigo: null,
      start: sim.clock.toISOString(),
      end: null,
      shouldAlert: true,
    });
    expect(labelsFromJson(body.labels)).toEqual(sim.anomalies());
    const all = (await (await fetch(`${klk.url}/_control/anomalias`)).json()) as { labels: Array<{ ubicacion_id: string }> };
    expect(new Set(all.labels.map((l) => l.ubicacion_id))).toEqual(
      new Set(sims.filter((x) => x.anomalies().length > 0).map((x) => x.ubicacionId)),
    );
    expect((await fetch(`${klk.url}/_control/anomalias?ubicacion_id=tienda_99`)).status).toBe(404);
  });
});

describe('fluxion extract ventas (KLK)', () => {
  it("publishes the day's lines exactly, keyed by store and invoice", async () => {
    await fresh();
    const fecha = fechaCaracas(sims[0]!.clock);
    const outcomes = await extractVentas(stores, fecha, 'VENTAS', deps, { retry: FAST_RETRY });
    expect(outcomes.map((o) => o.status)).toEqual(['OK', 'OK', 'OK']);
    const lines = await pipeline.read<{ linea: Record<string, unknown>; run_id: string }>('pos.ventas.raw');
    for (const sim of sims) {
      const truth = sim.ventas(fecha).map((v) => ({ ubicacion_id: sim.ubicacionId, ...v }));
      const got = lines.filter((l) => l.decoded.linea.ubicacion_id === sim.ubicacionId);
      expect(got.length).toBe(truth.length);
      expect(got.map((l) => l.key?.toString())).toEqual(truth.map((t) => `${sim.ubicacionId}/${t.numero_factura}`));
      expect(got.map((l) => l.decoded.linea)).toEqual(truth.map((t) => ({ ...t })));
    }
  });
});
