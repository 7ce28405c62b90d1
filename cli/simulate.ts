/**
 * `fluxion simulate klk|stellar`: the POS stand-ins for the demo and for people trying the
 * pipeline, serving every active store of that POS on the store list's local addresses.
 * Credentials come from the same environment variables the extractors read.
 */
import type { Command } from 'commander';
import { readSecret, type Ubicacion } from '../core/config/ubicaciones.ts';
import { ConfigError, UsageError } from '../core/errors.ts';
import type { StoreSimulation } from '../simulators/data/store-simulation.ts';
import type { StoreFaults } from '../simulators/faults.ts';
import type { ProgramIo } from './program-io.ts';

interface SimulateOptions {
  fault?: string[];
  products?: string;
  seed: string;
  tickSeconds?: string;
  changeShare: string;
}

function until(signals: NodeJS.Signals[]): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    for (const s of signals) process.once(s, () => resolve(s));
  });
}

/** `--fault tienda_01='{"latencyMs":500}'`: a store's faults from the command line. */
function parseFaults(specs: string[] | undefined, known: string[]): Array<[string, StoreFaults]> {
  return (specs ?? []).map((spec) => {
    const eq = spec.indexOf('=');
    const id = spec.slice(0, eq);
    if (eq < 1 || !known.includes(id)) throw new UsageError(`--fault must be <ubicacion_id>=<json> for one of ${known.join(', ')}, got "${spec}"`);
    try {
      return [id, JSON.parse(spec.slice(eq + 1)) as StoreFaults];
    } catch (cause) {
      throw new UsageError(`--fault ${id}: not JSON: ${(cause as Error).message}`);
    }
  });
}

function numberOption(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} must be a positive number, got "${value}"`);
  return n;
}

// The simulators are loaded only by these commands: the other commands never pay for them.
const loadSimulators = async () => ({
  ...(await import('../simulators/data/store-simulation.ts')),
  ...(await import('../simulators/faults.ts')),
  ...(await import('../simulators/klk/server.ts')),
  ...(await import('../simulators/stellar/server.ts')),
});

async function simulations(stores: Ubicacion[], opts: SimulateOptions, defaultProducts: number): Promise<StoreSimulation[]> {
  const { StoreSimulation } = await loadSimulators();
  const products = numberOption(opts.products, '--products', defaultProducts);
  const changeShare = numberOption(opts.changeShare, '--change-share', 0.05);
  return stores.map((u) => new StoreSimulation({ ubicacionId: u.id, pos: u.pos, depositos: u.depositos, products, seed: `${opts.seed}:${u.id}`, changeShare }));
}

/**
 * Moves simulated time: every --tick-seconds, and on SIGUSR2 (`kill -USR2 <pid>`) whenever an
 * operator or a benchmark wants the next 30 minutes now. Each move prints one "advanced" line.
 */
function ticker(sims: StoreSimulation[], opts: SimulateOptions, log: (line: string) => void): () => void {
  const advance = (why: string) => {
    for (const s of sims) s.advance(30);
    log(`advanced every store by 30 simulated minutes (${why}; now ${sims[0]?.clock.toISOString()})`);
  };
  const onSignal = () => advance('SIGUSR2');
  process.on('SIGUSR2', onSignal);
  const every = opts.tickSeconds ? numberOption(opts.tickSeconds, '--tick-seconds', 60) : undefined;
  const timer = every ? setInterval(() => advance(`every ${every} s`), every * 1000) : undefined;
  return () => {
    process.off('SIGUSR2', onSignal);
    if (timer) clearInterval(timer);
  };
}

export function registerSimulateCommands(program: Command, io: ProgramIo): void {
  const simulate = program.command('simulate').description('run a POS simulator for the active stores of the store list (ETL_ENVIRONMENT=local addresses)');
  const common = (c: Command, products: number) =>
    c
      .option('--products <n>', `products per store (default ${products})`)
      .option('--seed <seed>', 'data seed: the same seed gives the same data', 'fluxion')
      .option('--change-share <share>', 'share of rows that change per 30 simulated minutes', '0.05')
      .option('--tick-seconds <n>', 'advance 30 simulated minutes every N real seconds (SIGUSR2 advances them at once)')
      .option('--fault <id=json>', 'faults of one store, e.g. tienda_01=\'{"latencyMs":500}\' (repeatable)', (v: string, prev: string[] = []) => [...prev, v]);

  common(simulate.command('klk').description('the KLK HTTP API, one base path per store'), 15_000).action(async (opts: SimulateOptions) => {
    const c = io.context();
    if (c.config.environment !== 'local') throw new ConfigError(['ETL_ENVIRONMENT must be local to simulate: the simulator serves the local addresses']);
    const stores = c.ubicaciones().filter((u) => u.activa && u.pos === 'klk');
    const urls = stores.map((u) => (u.pos === 'klk' ? new URL(u.klk.baseUrl) : null)!);
    const ports = new Set(urls.map((u) => u.port));
    if (ports.size !== 1) throw new ConfigError([`the KLK stores' local base_url must share one port to be simulated together (found ${[...ports].join(', ')})`]);
    const apiKeys = Object.fromEntries(stores.map((u) => [u.id, readSecret(process.env, u.pos === 'klk' ? u.klk.apiKeyEnv : '', `KLK API key of ${u.id}`)]));
    const sims = await simulations(stores, opts, 15_000);
    const { startKlkSimulator, FaultControl } = await loadSimulators();
    const faults = new FaultControl();
    for (const [id, f] of parseFaults(opts.fault, stores.map((u) => u.id))) faults.set(id, f);
    const server = await startKlkSimulator({ stores: sims, apiKeys, faults, port: Number([...ports][0]), logger: c.logger });
    io.out(`KLK simulator: ${stores.length} stores at ${server.url}/<ubicacion_id>/api/v1 (control: ${server.url}/_control/...)`);
    const stopTicks = ticker(sims, opts, io.out);
    io.out(`stopped by ${await until(['SIGINT', 'SIGTERM'])}`);
    stopTicks();
    await server.close();
  });

  common(simulate.command('stellar').description('the Stellar SQL Server (TDS), one port per store'), 40_000).action(async (opts: SimulateOptions) => {
    const c = io.context();
    if (c.config.environment !== 'local') throw new ConfigError(['ETL_ENVIRONMENT must be local to simulate: the simulator serves the local addresses']);
    const stores = c.ubicaciones().filter((u) => u.activa && u.pos === 'stellar');
    const sims = await simulations(stores, opts, 40_000);
    const { startStellarSimulator, FaultControl } = await loadSimulators();
    const faults = new FaultControl();
    for (const [id, f] of parseFaults(opts.fault, stores.map((u) => u.id))) faults.set(id, f);
    const servers = [];
    for (const [i, u] of stores.entries()) {
      if (u.pos !== 'stellar') continue;
      servers.push(
        await startStellarSimulator({
          simulation: sims[i]!,
          faults,
          user: readSecret(process.env, u.stellar.userEnv, `SQL user of ${u.id}`),
          password: readSecret(process.env, u.stellar.passwordEnv, `SQL password of ${u.id}`),
          database: u.stellar.database,
          port: u.stellar.port,
          host: u.stellar.host,
          logger: c.logger,
        }),
      );
      io.out(`Stellar simulator: ${u.id} at ${u.stellar.host}:${u.stellar.port}/${u.stellar.database} (depositos ${u.depositos.join(', ')})`);
    }
    const stopTicks = ticker(sims, opts, io.out);
    io.out(`stopped by ${await until(['SIGINT', 'SIGTERM'])}`);
    stopTicks();
    await Promise.all(servers.map((s) => s.close()));
  });
}
