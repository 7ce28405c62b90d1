/**
 * The chaos run's stores: KLK and Stellar simulations open all day, their POS simulators in
 * this process (faults set through one FaultControl), and the store list (ubicaciones.yaml)
 * the Fluxion child processes read, with the secrets they need in their environment.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { StoreSimulation } from '../../simulators/data/store-simulation.ts';
import { FaultControl } from '../../simulators/faults.ts';
import { startKlkSimulator } from '../../simulators/klk/server.ts';
import { startStellarSimulator } from '../../simulators/stellar/server.ts';
import type { ChaosOptions } from './chaos-run.ts';

export interface ChaosStores {
  sims: Map<string, StoreSimulation>;
  klkIds: string[];
  stellarIds: string[];
  /** The POS credentials, as the children's environment names them. */
  secrets: Record<string, string>;
  faults: FaultControl;
  ubicacionesFile: string;
}

/** Starts the simulators (their closers pushed onto `closers`) and writes the store list under logDir. */
export async function startChaosStores(o: ChaosOptions, logDir: string, closers: Array<() => Promise<unknown>>): Promise<ChaosStores> {
  // Their clock starts far enough back that sales never lie in the future.
  const planned = o.minutes ? Math.ceil(o.minutes * 6) : o.cycles;
  const startAt = new Date(Math.floor(Date.now() / 60_000) * 60_000 - (planned + 2) * 30 * 60_000);
  const klkIds = Array.from({ length: o.klkStores }, (_, i) => `tienda_${String(i + 1).padStart(2, '0')}`);
  const stellarIds = Array.from({ length: o.stellarStores }, (_, i) => `cedi_${String(i + 1).padStart(2, '0')}`);
  // Open all day: the clock follows this machine's, and a run at night must sell too.
  const ALL_DAY = { open: 0, close: 24 };
  const sims = new Map<string, StoreSimulation>();
  for (const id of klkIds)
    sims.set(
      id,
      new StoreSimulation({
        ubicacionId: id,
        pos: 'klk',
        depositos: ['01'],
        products: o.klkProducts,
        seed: `chaos:${o.seed}:${id}`,
        startAt,
        salesLinesPerHour: 600,
        openingHours: ALL_DAY,
      }),
    );
  for (const id of stellarIds)
    sims.set(
      id,
      new StoreSimulation({
        ubicacionId: id,
        pos: 'stellar',
        depositos: ['0101', '0102'],
        products: o.stellarProducts,
        seed: `chaos:${o.seed}:${id}`,
        startAt,
      }),
    );
  const faults = new FaultControl();
  const secrets: Record<string, string> = {};
  for (const id of klkIds) secrets[`KLK_API_KEY_${id.toUpperCase()}`] = `chaos-key-${id}`;
  for (const id of stellarIds) {
    secrets[`STELLAR_USER_${id.toUpperCase()}`] = 'fluxion_chaos';
    secrets[`STELLAR_PASSWORD_${id.toUpperCase()}`] = `chaos-password-${id}`;
  }
  const klk = await startKlkSimulator({
    stores: klkIds.map((id) => sims.get(id)!),
    apiKeys: Object.fromEntries(klkIds.map((id) => [id, secrets[`KLK_API_KEY_${id.toUpperCase()}`]!])),
    faults,
  });
  closers.push(() => klk.close());
  const stellarPorts = new Map<string, number>();
  for (const id of stellarIds) {
    const s = await startStellarSimulator({
      simulation: sims.get(id)!,
      faults,
      user: 'fluxion_chaos',
      password: secrets[`STELLAR_PASSWORD_${id.toUpperCase()}`]!,
      port: 0,
    });
    stellarPorts.set(id, s.port);
    closers.push(() => s.close());
  }

  // The store list the children read (FLUXION_UBICACIONES_FILE).
  const yamlStores = [
    ...klkIds.map((id) => ({
      id,
      nombre: `Chaos ${id}`,
      tipo: 'tienda',
      activa: true,
      pos: 'klk',
      depositos: ['01'],
      klk: {
        base_url: { local: klk.baseUrl(id), production: `https://${id}.invalid` },
        api_key_env: `KLK_API_KEY_${id.toUpperCase()}`,
        page_size: 150,
        timeout_ms: 3_000,
      },
    })),
    ...stellarIds.map((id) => ({
      id,
      nombre: `Chaos ${id}`,
      tipo: 'cedi',
      activa: true,
      pos: 'stellar',
      depositos: ['0101', '0102'],
      stellar: {
        host: { local: '127.0.0.1', production: `${id}.invalid` },
        port: { local: stellarPorts.get(id)!, production: 1433 },
        user_env: `STELLAR_USER_${id.toUpperCase()}`,
        password_env: `STELLAR_PASSWORD_${id.toUpperCase()}`,
        request_timeout_ms: 10_000,
        connect_timeout_ms: 3_000,
      },
    })),
  ];
  const ubicacionesFile = join(logDir, 'ubicaciones.yaml');
  writeFileSync(ubicacionesFile, toYaml({ ubicaciones: yamlStores }));
  return { sims, klkIds, stellarIds, secrets, faults, ubicacionesFile };
}
