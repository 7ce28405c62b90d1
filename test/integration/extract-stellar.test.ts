/**
 * Stellar extraction against the TDS simulator, through the unmodified mssql driver, and the
 * real Kafka and registry: a CEDI's inventory arrives exactly, streamed; faults fail that
 * store only, with nothing of it published.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Ubicacion } from '../../core/config/ubicaciones.ts';
import type { StoreOutcome } from '../../core/etl-run.ts';
import { extractInventario, type ExtractionDeps } from '../../extractors/extract-run.ts';
import { StoreSimulation, type InventarioTruthRow } from '../../simulators/data/store-simulation.ts';
import { FaultControl } from '../../simulators/faults.ts';
import { startKlkSimulator, type KlkSimulator } from '../../simulators/klk/server.ts';
import { startStellarSimulator, type StellarSimulator } from '../../simulators/stellar/server.ts';
import { pipelineSupply, type TestPipeline } from '../../fixtures/pipeline.ts';
import { testLogger } from '../../fixtures/services.ts';

const FAST_RETRY = { retries: 2, initialDelayMs: 20, maxDelayMs: 100, factor: 2 };
const env = {
  STELLAR_USER_CEDI_FRIO: 'fluxion',
  STELLAR_PASSWORD_CEDI_FRIO: 'cedi-frio-pass',
  KLK_API_KEY_TIENDA_01: 'k1',
  KLK_API_KEY_TIENDA_02: 'k2',
  KLK_API_KEY_TIENDA_03: 'k3',
};

let cedi: StoreSimulation;
let klkSims: StoreSimulation[];
let stellar: StellarSimulator;
let klk: KlkSimulator;
const faults = new FaultControl();
let pipeline: TestPipeline;
// A clean pipeline per test, each set up while the test before runs.
const pipelines = pipelineSupply();
let deps: ExtractionDeps;
let stores: Ubicacion[];

beforeAll(async () => {
  cedi = new StoreSimulation({ ubicacionId: 'cedi_frio', pos: 'stellar', depositos: ['0101', '0102'], products: 6_000 });
  klkSims = ['tienda_01', 'tienda_02', 'tienda_03'].map(
    (id) => new StoreSimulation({ ubicacionId: id, pos: 'klk', depositos: ['01'], products: 1_500 }),
  );
  stellar = await startStellarSimulator({ simulation: cedi, faults, user: 'fluxion', password: 'cedi-frio-pass', port: 0 });
  klk = await startKlkSimulator({ stores: klkSims, apiKeys: { tienda_01: 'k1', tienda_02: 'k2', tienda_03: 'k3' } });
  stores = [
    ...klkSims.map(
      (s): Ubicacion => ({
        id: s.ubicacionId,
        nombre: s.ubicacionId,
        tipo: 'tienda',
        activa: true,
        pos: 'klk',
        depositos: ['01'],
        klk: {
          baseUrl: klk.baseUrl(s.ubicacionId),
          apiKeyEnv: `KLK_API_KEY_${s.ubicacionId.toUpperCase()}`,
          pageSize: 1000,
          timeoutMs: 5_000,
        },
      }),
    ),
    {
      id: 'cedi_frio',
      nombre: 'CEDI Frio',
      tipo: 'cedi',
      activa: true,
      pos: 'stellar',
      depositos: ['0101', '0102'],
      stellar: {
        host: '127.0.0.1',
        port: stellar.port,
        database: 'VAD10',
        userEnv: 'STELLAR_USER_CEDI_FRIO',
        passwordEnv: 'STELLAR_PASSWORD_CEDI_FRIO',
        encrypt: false,
        connectTimeoutMs: 5_000,
        requestTimeoutMs: 30_000,
      },
    },
  ];
});

afterAll(async () => {
  await stellar?.close();
  await klk?.close();
  await pipelines.close();
});

afterEach(async () => {
  faults.clear();
  await pipeline?.cleanup();
});

async function fresh(): Promise<void> {
  pipeline = await pipelines.next();
  deps = { kafka: pipeline.kafka, registry: pipeline.registry, logger: testLogger, env, topicPrefix: pipeline.prefix };
}

async function rowsOf(id: string): Promise<{ rows: InventarioTruthRow[]; chunks: number; snapshots: number } | undefined> {
  const chunks = (
    await pipeline.read<{ ubicacion_id: string; snapshot_id: string; rows: InventarioTruthRow[]; source: string }>(
      'pos.inventario.snapshots',
    )
  ).filter((c) => c.decoded.ubicacion_id === id);
  if (chunks.length === 0) return undefined;
  return {
    rows: chunks.flatMap((c) => c.decoded.rows),
    chunks: chunks.length,
    snapshots: new Set(chunks.map((c) => c.decoded.snapshot_id)).size,
  };
}

const outcomeOf = (o: StoreOutcome[], id: string) => o.find((x) => x.ubicacionId === id)!;

describe('fluxion extract inventario (3 KLK stores and 1 Stellar CEDI)', () => {
  it("puts exactly the simulators' truth on the topic, one snapshot per store", async () => {
    await fresh();
    const outcomes = await extractInventario(stores, deps, { retry: FAST_RETRY });
    expect(outcomes.map((o) => `${o.ubicacionId}:${o.status}${o.errorMessage ? ` ${o.errorMessage}` : ''}`)).toEqual([
      'tienda_01:OK',
      'tienda_02:OK',
      'tienda_03:OK',
      'cedi_frio:OK',
    ]);
    const got = (await rowsOf('cedi_frio'))!;
    const truth = cedi.inventario();
    expect(truth.length).toBeGreaterThan(10_000);
    expect(got.snapshots).toBe(1);
    expect(got.rows).toEqual(truth);
    for (const s of klkSims) expect((await rowsOf(s.ubicacionId))!.rows).toEqual(s.inventario());
  });

  it('fails the CEDI whose connection drops mid-result; the KLK stores are unaffected and nothing of it is published', async () => {
    await fresh();
    faults.set('cedi_frio', { dropConnectionAfterRows: 2_500 });
    const outcomes = await extractInventario(stores, deps, { retry: FAST_RETRY });
    const failed = outcomeOf(outcomes, 'cedi_frio');
    expect(failed.status).toBe('FAILED');
    expect(failed.errorMessage).toMatch(
      /cedi_frio: Stellar 127\.0\.0\.1:\d+\/VAD10 failed while reading deposito 0101 \(after \d+ rows\)/,
    );
    expect(outcomes.filter((o) => o.status === 'OK')).toHaveLength(3);
    expect(await rowsOf('cedi_frio')).toBeUndefined();
  });

  it("stops a stalled result stream at the store's deadline (the driver never times it out)", async () => {
    await fresh();
    faults.set('cedi_frio', { stallAfterRows: 1_000 });
    const outcomes = await extractInventario(stores, deps, { retry: FAST_RETRY, storeDeadlineMs: 2_000 });
    expect(outcomeOf(outcomes, 'cedi_frio')).toMatchObject({ status: 'FAILED', errorClass: 'DEADLINE' });
    expect(await rowsOf('cedi_frio')).toBeUndefined();
  });

  it('refuses a wrong SQL password with a message naming the variable, never the password', async () => {
    await fresh();
    const outcomes = await extractInventario(
      stores,
      { ...deps, env: { ...env, STELLAR_PASSWORD_CEDI_FRIO: 'not-the-password' } },
      { retry: FAST_RETRY },
    );
    const failed = outcomeOf(outcomes, 'cedi_frio');
    expect(failed).toMatchObject({ status: 'FAILED', errorClass: 'POS_AUTH' });
    expect(failed.errorMessage).toMatch(/cedi_frio: Stellar .* refused the login of fluxion: check STELLAR_PASSWORD_CEDI_FRIO/);
    expect(failed.errorMessage).not.toContain('not-the-password');
  });

  it('fails the store on a value outside decimal(18,3), naming row, field and value', async () => {
    await fresh();
    const victim = cedi.inventario()[10]!.producto_id;
    faults.set('cedi_frio', { invalidDecimalFor: victim });
    const outcomes = await extractInventario(stores, deps, { retry: FAST_RETRY });
    const failed = outcomeOf(outcomes, 'cedi_frio');
    expect(failed.status).toBe('FAILED');
    expect(failed.errorMessage).toMatch(
      new RegExp(`cedi_frio: deposito 0101, row \\d+ \\(producto ${victim}\\): field cantidad: .* is not an exact decimal\\(18,3\\)`),
    );
  });
});
