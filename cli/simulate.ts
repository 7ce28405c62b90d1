/**
 * `fluxion simulate klk|stellar`: the POS stand-ins for the demo and for people trying the
 * pipeline, serving every active store of that POS on the store list's local addresses.
 * Credentials come from the same environment variables the extractors read.
 *
 * The anomaly labels (simulators/data/anomalies.ts) are the truth a phantom-zero detector is
 * scored against: the KLK simulator serves them at /_control/anomalias; `--anomalias-file`
 * writes them (every store's, as JSON) at the start and after every advance, for Stellar too.
 */
import { renameSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { readSecret, type Ubicacion } from '../core/config/ubicaciones.ts';
import { ConfigError, UsageError } from '../core/errors.ts';
import type { AnomalyRates } from '../simulators/data/anomalies.ts';
import type { StoreSimulation } from '../simulators/data/store-simulation.ts';
import type { StoreFaults } from '../simulators/faults.ts';
import type { ProgramIo } from './program-io.ts';

interface SimulateOptions {
  fault?: string[];
  products?: string;
  seed: string;
  tickSeconds?: string;
  changeShare: string;
  anomalyRates?: string;
  openingHours?: string;
  anomaliasFile?: string;
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
    if (eq < 1 || !known.includes(id))
      throw new UsageError(`--fault must be <ubicacion_id>=<json> for one of ${known.join(', ')}, got "${spec}"`);
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

/** `--anomaly-rates '{"phantomZeroPerDay":3}'`: rates of simulators/data/anomalies.ts, the rest default. */
function parseRates(value: string | undefined): Partial<AnomalyRates> | undefined {
  if (value === undefined) return undefined;
  let rates: unknown;
  try {
    rates = JSON.parse(value);
  } catch (cause) {
    throw new UsageError(`--anomaly-rates: not JSON: ${(cause as Error).message}`);
  }
  const known = ['phantomZeroPerDay', 'posGlitchPerDay', 'countCorrectionPerDay', 'lateSalesShare'];
  if (typeof rates !== 'object' || rates === null || Array.isArray(rates))
    throw new UsageError(`--anomaly-rates must be a JSON object of ${known.join(', ')}`);
  const unknown = Object.keys(rates).filter((k) => !known.includes(k));
  if (unknown.length) throw new UsageError(`--anomaly-rates: unknown rate ${unknown.join(', ')} (known: ${known.join(', ')})`);
  return rates as Partial<AnomalyRates>;
}

/** `--opening-hours 8-20`: Caracas hours the stores sell. */
function parseHours(value: string | undefined): { open: number; close: number } | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,2}(?:\.\d+)?)-(\d{1,2}(?:\.\d+)?)$/.exec(value);
  const [open, close] = m ? [Number(m[1]), Number(m[2])] : [NaN, NaN];
  if (!(open >= 0 && close <= 24 && open < close))
    throw new UsageError(`--opening-hours must be <open>-<close> in Caracas hours, 0 <= open < close <= 24 (e.g. 8-20), got "${value}"`);
  return { open, close };
}

async function simulations(stores: Ubicacion[], opts: SimulateOptions, defaultProducts: number): Promise<StoreSimulation[]> {
  const { StoreSimulation } = await loadSimulators();
  const products = numberOption(opts.products, '--products', defaultProducts);
  const changeShare = numberOption(opts.changeShare, '--change-share', 0.05);
  const anomalies = parseRates(opts.anomalyRates);
  const openingHours = parseHours(opts.openingHours);
  try {
    return stores.map(
      (u) =>
        new StoreSimulation({
          ubicacionId: u.id,
          pos: u.pos,
          depositos: u.depositos,
          products,
          seed: `${opts.seed}:${u.id}`,
          changeShare,
          anomalies,
          openingHours,
        }),
    );
  } catch (err) {
    if (err instanceof RangeError) throw new UsageError(err.message);
    throw err;
  }
}

/** Writes every store's anomaly labels to `file` (JSON, dates as ISO strings), replacing it whole. */
function writeLabels(sims: StoreSimulation[], file: string | undefined): void {
  if (!file) return;
  const body = {
    written_at: new Date().toISOString(),
    clocks: Object.fromEntries(sims.map((s) => [s.ubicacionId, s.clock.toISOString()])),
    labels: sims.flatMap((s) => s.anomalies()),
  };
  writeFileSync(`${file}.tmp`, `${JSON.stringify(body)}\n`);
  renameSync(`${file}.tmp`, file);
}

/**
 * Moves simulated time: every --tick-seconds, and on SIGUSR2 (`kill -USR2 <pid>`) whenever an
 * operator or a benchmark wants the next 30 minutes now. Each move prints one "advanced" line.
 */
function ticker(sims: StoreSimulation[], opts: SimulateOptions, log: (line: string) => void): () => void {
  const advance = (why: string) => {
    for (const s of sims) s.advance(30);
    writeLabels(sims, opts.anomaliasFile);
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
  const simulate = program
    .command('simulate')
    .description('run a POS simulator for the active stores of the store list (ETL_ENVIRONMENT=local addresses)');
  const common = (c: Command, products: number) =>
    c
      .option('--products <n>', `products per store (default ${products})`)
      .option('--seed <seed>', 'data seed: the same seed gives the same data', 'fluxion')
      .option('--change-share <share>', 'share of rows that change per 30 simulated minutes', '0.05')
      .option(
        '--anomaly-rates <json>',
        'anomalies per store per simulated day, e.g. ' +
          '\'{"phantomZeroPerDay":2,"posGlitchPerDay":0.1,"countCorrectionPerDay":1,"lateSalesShare":0.01}\' (those are the defaults; 0 ' +
          'turns one off)',
      )
      .option('--opening-hours <open-close>', 'Caracas hours the stores sell (default 8-20)')
      .option('--anomalias-file <path>', "write every store's anomaly labels (JSON) there at the start and after every advance")
      .option('--tick-seconds <n>', 'advance 30 simulated minutes every N real seconds (SIGUSR2 advances them at once)')
      .option(
        '--fault <id=json>',
        'faults of one store, e.g. tienda_01=\'{"latencyMs":500}\' (repeatable)',
        (v: string, prev: string[] = []) => [...prev, v],
      );

  common(simulate.command('klk').description('the KLK HTTP API, one base path per store'), 15_000).action(
    async (opts: SimulateOptions) => {
      const c = io.context();
      if (c.config.environment !== 'local')
        throw new ConfigError(['ETL_ENVIRONMENT must be local to simulate: the simulator serves the local addresses']);
      const stores = c.ubicaciones().filter((u) => u.activa && u.pos === 'klk');
      const urls = stores.map((u) => (u.pos === 'klk' ? new URL(u.klk.baseUrl) : null)!);
      const ports = new Set(urls.map((u) => u.port));
      if (ports.size !== 1)
        throw new ConfigError([
          `the KLK stores' local base_url must share one port to be simulated together (found ${[...ports].join(', ')})`,
        ]);
      const apiKeys = Object.fromEntries(
        stores.map((u) => [u.id, readSecret(process.env, u.pos === 'klk' ? u.klk.apiKeyEnv : '', `KLK API key of ${u.id}`)]),
      );
      const sims = await simulations(stores, opts, 15_000);
      const { startKlkSimulator, FaultControl } = await loadSimulators();
      const faults = new FaultControl();
      for (const [id, f] of parseFaults(
        opts.fault,
        stores.map((u) => u.id),
      ))
        faults.set(id, f);
      const server = await startKlkSimulator({ stores: sims, apiKeys, faults, port: Number([...ports][0]), logger: c.logger });
      io.out(`KLK simulator: ${stores.length} stores at ${server.url}/<ubicacion_id>/api/v1 (control: ${server.url}/_control/...)`);
      writeLabels(sims, opts.anomaliasFile);
      const stopTicks = ticker(sims, opts, io.out);
      io.out(`stopped by ${await until(['SIGINT', 'SIGTERM'])}`);
      stopTicks();
      await server.close();
    },
  );

  common(simulate.command('stellar').description('the Stellar SQL Server (TDS), one port per store'), 40_000).action(
    async (opts: SimulateOptions) => {
      const c = io.context();
      if (c.config.environment !== 'local')
        throw new ConfigError(['ETL_ENVIRONMENT must be local to simulate: the simulator serves the local addresses']);
      const stores = c.ubicaciones().filter((u) => u.activa && u.pos === 'stellar');
      const sims = await simulations(stores, opts, 40_000);
      const { startStellarSimulator, FaultControl } = await loadSimulators();
      const faults = new FaultControl();
      for (const [id, f] of parseFaults(
        opts.fault,
        stores.map((u) => u.id),
      ))
        faults.set(id, f);
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
        io.out(
          `Stellar simulator: ${u.id} at ${u.stellar.host}:${u.stellar.port}/${u.stellar.database} (depositos ${u.depositos.join(', ')})`,
        );
      }
      writeLabels(sims, opts.anomaliasFile);
      const stopTicks = ticker(sims, opts, io.out);
      io.out(`stopped by ${await until(['SIGINT', 'SIGTERM'])}`);
      stopTicks();
      await Promise.all(servers.map((s) => s.close()));
    },
  );
}
