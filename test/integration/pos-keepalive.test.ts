/**
 * A POS that dies silently (its VPN tunnel vanishes: no FIN, no RST, nothing more arrives) is
 * detected by TCP keepalive within 90 s, on a Stellar SQL connection stalled mid-result and on
 * a KLK request waiting for its page, with the POS timeouts set beyond that so only keepalive
 * can notice. The peer lives in a network namespace (test/helpers/netns.ts) whose link is cut.
 *
 * The detection time also tells the policy apart: 30 s idle + 5 probes every 10 s gives about
 * 80 s; tedious's own keepalive (30 s, then 10 probes 1 s apart) would give 40 s, and the
 * host's sysctls over two hours.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PosUnavailableError } from '../../core/errors.ts';
import { createKlkApi } from '../../extractors/klk-api.ts';
import { stellarInventario } from '../../extractors/stellar-inventario.ts';
import { deadPeerDetectionMs } from '../../extractors/tcp-keepalive.ts';
import { StoreSimulation } from '../../simulators/data/store-simulation.ts';
import { FaultControl } from '../../simulators/faults.ts';
import { startKlkSimulator, type KlkSimulator } from '../../simulators/klk/server.ts';
import { startStellarSimulator, type StellarSimulator } from '../../simulators/stellar/server.ts';
import { createNetnsPeer, type NetnsPeer } from '../helpers/netns.ts';
import { testLogger } from '../../fixtures/services.ts';

const STELLAR_RELAY_PORT = 21433;
const KLK_RELAY_PORT = 28080;
/** The bound; the policy's own figure is deadPeerDetectionMs() (80 s). */
const REQUIRED_MS = 90_000;

let peer: NetnsPeer | undefined;
let stellar: StellarSimulator | undefined;
let klk: KlkSimulator | undefined;
const faults = new FaultControl();

beforeAll(async () => {
  peer = createNetnsPeer();
  const cedi = new StoreSimulation({ ubicacionId: 'cedi_frio', pos: 'stellar', depositos: ['0101'], products: 2_000 });
  const tienda = new StoreSimulation({ ubicacionId: 'tienda_01', pos: 'klk', depositos: ['01'], products: 2_000 });
  stellar = await startStellarSimulator({
    simulation: cedi,
    faults,
    user: 'fluxion',
    password: 'cedi-pass',
    host: peer.hostAddress,
    port: 0,
  });
  klk = await startKlkSimulator({ stores: [tienda], apiKeys: { tienda_01: 'k1' }, faults, host: peer.hostAddress });
  await peer.relay([
    [STELLAR_RELAY_PORT, stellar.port],
    [KLK_RELAY_PORT, klk.port],
  ]);
});

afterAll(async () => {
  await stellar?.close();
  await klk?.close();
  peer?.close();
});

interface Ending {
  error: unknown;
  at: number;
  rows: number;
}

async function drain(rows: AsyncIterable<unknown>, onFirst: () => void): Promise<Ending> {
  let n = 0;
  try {
    for await (const _ of rows) if (++n === 1) onFirst();
  } catch (error) {
    return { error, at: Date.now(), rows: n };
  }
  return { error: undefined, at: Date.now(), rows: n };
}

describe('a POS that dies silently', () => {
  it('is detected by TCP keepalive within 90 s on a stalled Stellar result and a waiting KLK request', async () => {
    // Stellar sends 500 rows and goes quiet; KLK answers page 1 and never page 2.
    faults.set('cedi_frio', { stallAfterRows: 500 });
    faults.set('tienda_01', { stallOnPage: 2 });
    const guard = new AbortController();
    const safety = setTimeout(() => guard.abort(new Error('not detected in 120 s')), 120_000);
    let stellarStarted!: () => void;
    const stellarRows = new Promise<void>((resolve) => (stellarStarted = resolve));

    const stellarRun = drain(
      stellarInventario(
        {
          ubicacionId: 'cedi_frio',
          host: peer!.peerAddress,
          port: STELLAR_RELAY_PORT,
          database: 'VAD10',
          user: 'fluxion',
          password: 'cedi-pass',
          passwordEnv: 'STELLAR_PASSWORD_CEDI_FRIO',
          tls: { encrypt: false, trustServerCertificate: false },
          connectTimeoutMs: 10_000,
          requestTimeoutMs: 300_000,
          signal: guard.signal,
          logger: testLogger,
        },
        '0101',
      ),
      stellarStarted,
    );
    const klkRun = drain(
      createKlkApi({
        ubicacionId: 'tienda_01',
        baseUrl: `http://${peer!.peerAddress}:${KLK_RELAY_PORT}/tienda_01`,
        apiKey: 'k1',
        apiKeyEnv: 'KLK_API_KEY_TIENDA_01',
        pageSize: 1_000,
        requestTimeoutMs: 300_000,
        retry: { retries: 0, initialDelayMs: 1, maxDelayMs: 1, factor: 1 },
        signal: guard.signal,
        logger: testLogger,
      }).inventario('01'),
      () => undefined,
    );

    // Both are waiting on a quiet connection (every byte sent was acknowledged): cut the link.
    await stellarRows;
    while (klk!.requests('tienda_01') < 2) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 1_000));
    peer!.cut();
    const cutAt = Date.now();
    const [s, k] = await Promise.all([stellarRun, klkRun]);
    clearTimeout(safety);

    for (const [name, end] of [
      ['Stellar', s],
      ['KLK', k],
    ] as const) {
      const elapsed = end.at - cutAt;
      expect(end.error, `${name}: ended without an error`).toBeInstanceOf(PosUnavailableError);
      expect((end.error as Error).message, name).toMatch(/ETIMEDOUT/);
      expect(elapsed, `${name}: detected ${elapsed} ms after the cut`).toBeLessThan(REQUIRED_MS);
      // Not sooner than the policy allows (less the second waited before the cut): 40 s would be tedious's own keepalive.
      expect(elapsed, `${name}: detected ${elapsed} ms after the cut`).toBeGreaterThan(deadPeerDetectionMs() - 10_000);
    }
    expect(s.rows).toBeGreaterThan(0);
    expect(k.rows).toBe(1_000);
    console.log(`dead peer detected after the cut: Stellar ${s.at - cutAt} ms, KLK ${k.at - cutAt} ms`);
  }, 150_000);
});
