/**
 * `fluxion demo`: the whole pipeline on simulated stores, on this machine's services.
 *
 * Each run has its own topic prefix and its own PostgreSQL database (cli/demo-scope.ts): it
 * removes the earlier runs' ones first, and says so. It sets up that database, its topics
 * and schemas; starts the simulators (every active store of the store list, KLK and
 * Stellar) in this process and every Fluxion process as a child (the three processors, the
 * sink, the notifier, the dashboard when built); runs compressed-time cycles (30 simulated
 * minutes each, a few real seconds apart: inventario, ventas, faults), one ventas recovery
 * and one ABC recalculation; waits until every record reached PostgreSQL; prints a summary;
 * then keeps everything running (dashboard URL printed) until Ctrl-C, or exits with `--exit`.
 *
 * Exit 1 when the run did not show what it injected (cli/demo-summary.ts: the failed store,
 * the quarantined snapshot, freshness figures, every store's data, no stale snapshot), or
 * when a child process ended before the demo did (named, with its log).
 *
 * Faults injected (on the last cycle when there are fewer than three):
 *   cycle 2: a phantom zero (tienda_03 records five selling products at 0 while they keep
 *            selling: labelled PHANTOM_ZERO in the simulation, sim.anomalies()) and a failing
 *            store (tienda_05 answers HTTP 500 to every request of that cycle);
 *   cycle 3: a mass-zero snapshot (tienda_07 reports 60% of its products at 0): quarantined.
 *
 * Here the command and the start; the child processes are cli/demo-children.ts's, the cycles
 * and the summary cli/demo-cycles.ts's.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { loadSubjectSchemas } from '../core/avro/schemas.ts';
import { requireDatabaseUrl } from '../core/config/environment.ts';
import type { Ubicacion } from '../core/config/ubicaciones.ts';
import { ConfigError, errorMessage, UsageError } from '../core/errors.ts';
import { MIGRATIONS_DIR, PROJECT_ROOT } from '../core/paths.ts';
import { topicSpecs } from '../core/topics.ts';
import { migrate } from '../ops/migrate.ts';
import { registerSchemas } from '../ops/schemas.ts';
import { ensureTopics } from '../ops/topics-ensure.ts';
import { syncUbicaciones } from '../ops/ubicaciones-sync.ts';
import { createContext, type CommandContext } from './context.ts';
import { databaseOf, databaseUrl, isRunning, newScope, removeScope, ScopeList, scopeStateDir, type DemoScope } from './demo-scope.ts';
import type { ProgramIo } from './program-io.ts';
import { checkPorts, reportDeath, startChild, stopChildren, type Child } from './demo-children.ts';
import { cyclesAndSummary, type RunOptions } from './demo-cycles.ts';
interface DemoOptions {
  cycles: string;
  klkProducts: string;
  stellarProducts: string;
  cycleSeconds: string;
  dashboardPort: string;
  workDir: string;
  exit?: boolean;
  clean?: boolean;
}

const whole = (value: string, flag: string, min: number, max: number, why = ''): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`${flag} must be a whole number from ${min} to ${max}${why}, got "${value}"`);
  return n;
};

const fmt = (n: number) => n.toLocaleString('en-US');

export function registerDemoCommand(program: Command, io: ProgramIo): void {
  program
    .command('demo')
    .description(
      'run the whole pipeline on simulated stores (simulators, processors, sink, notifier, dashboard), in its own topics and ' +
        'database, print a summary, keep it running until Ctrl-C',
    )
    .option(
      '--cycles <n>',
      'compressed-time cycles (30 simulated minutes each; at least 2: the quarantine compares a snapshot with the one before)',
      '4',
    )
    .option('--klk-products <n>', 'products per KLK store', '3000')
    .option('--stellar-products <n>', 'products per Stellar location and deposito', '8000')
    .option('--cycle-seconds <n>', 'real seconds between cycles', '5')
    .option('--dashboard-port <port>', 'port of the dashboard', '8080')
    .option('--work-dir <dir>', "the processes' logs and the list of this checkout's demo runs", join(PROJECT_ROOT, '.cache', 'demo'))
    .option('--exit', 'stop everything after the summary instead of waiting for Ctrl-C')
    .option('--clean', "remove the earlier demo runs' topics and databases, then exit")
    .action(async (opts: DemoOptions) => {
      const cycles = whole(opts.cycles, '--cycles', 2, 1000, ' (the quarantine needs a snapshot before the mass-zero one)');
      const klkProducts = whole(opts.klkProducts, '--klk-products', 1, 100_000);
      const stellarProducts = whole(opts.stellarProducts, '--stellar-products', 1, 200_000);
      const cycleSeconds = whole(opts.cycleSeconds, '--cycle-seconds', 1, 3600);
      const dashboardPort = whole(opts.dashboardPort, '--dashboard-port', 1, 65_535);
      const base = io.context();
      if (base.config.environment !== 'local')
        throw new ConfigError(['ETL_ENVIRONMENT must be local for the demo: it serves the stores from simulators on this machine']);
      const out = io.out;
      const withDashboard = program.commands.some((cmd) => cmd.name() === 'dashboard');
      if (!opts.clean)
        await checkPorts(
          base.ubicaciones().filter((u) => u.activa),
          withDashboard ? dashboardPort : null,
        );
      const workDir = resolve(opts.workDir);
      mkdirSync(workDir, { recursive: true });

      // 0. The earlier runs' data goes (announced); this run gets its own.
      const scopes = new ScopeList(workDir);
      const earlier = scopes.read();
      const live = earlier.filter((s) => isRunning(s));
      if (live.length) {
        throw new UsageError(
          `a demo from this checkout is still running (pid ${live.map((s) => s.pid).join(', ')}, topics "${live[0]!.prefix}"): stop ` +
            `it first (Ctrl-C), or delete ${scopes.file} if no demo runs`,
        );
      }
      const admin = await base.kafka().admin();
      const kept: DemoScope[] = [];
      try {
        for (const s of earlier) {
          try {
            const gone = await removeScope(s, admin, base.pool(), workDir);
            out(
              `reset: removed the earlier demo run ${s.runId}: ${gone.topics} topics (prefix ` +
                `"${s.prefix}")${gone.database ? `, database ${s.database}` : ''}`,
            );
          } catch (err) {
            kept.push(s);
            out(
              `warning: could not remove the earlier demo run ${s.runId} (prefix "${s.prefix}", database ${s.database}): ` +
                `${errorMessage(err)}; the next run tries again`,
            );
          }
        }
      } finally {
        await admin.disconnect();
      }
      if (opts.clean) {
        scopes.write(kept);
        out(
          earlier.length ? `clean: ${earlier.length - kept.length} earlier demo run(s) removed` : 'clean: no earlier demo run to remove',
        );
        if (kept.length) io.fail(1);
        return;
      }
      const baseUrl = requireDatabaseUrl(base.config);
      const scope = newScope(base.config.topics.prefix, databaseOf(baseUrl), new Date(), process.pid);
      // Listed before anything is made, so a run that dies half-way is still removed next time.
      scopes.write([...kept, scope]);
      await base.pool().query(`CREATE DATABASE ${scope.database}`);
      out(
        `scope: this run's own topics (prefix "${scope.prefix}") and database ${scope.database}; the next run removes them, or ` +
          `\`fluxion demo --clean\``,
      );

      // Demo credentials, unless the environment has some: the simulators and the extractors
      // read the same variables.
      const env: NodeJS.ProcessEnv = {
        ...base.env,
        FLUXION_TOPIC_PREFIX: scope.prefix,
        DATABASE_URL: databaseUrl(baseUrl, scope.database),
        FLUXION_STATE_DIR: scopeStateDir(workDir, scope),
      };
      for (const u of base.ubicaciones().filter((x) => x.activa)) {
        if (u.pos === 'klk') env[u.klk.apiKeyEnv] ??= `demo-key-${u.id}`;
        else {
          env[u.stellar.userEnv] ??= 'fluxion_demo';
          env[u.stellar.passwordEnv] ??= `demo-password-${u.id}`;
        }
      }
      const c = createContext(env, out);
      try {
        await runDemo(c, io, {
          cycles,
          klkProducts,
          stellarProducts,
          cycleSeconds,
          dashboardPort,
          exit: opts.exit === true,
          logDir: workDir,
          withDashboard,
        });
      } finally {
        await c.close();
      }
    });
}

async function runDemo(c: CommandContext, io: ProgramIo, o: RunOptions): Promise<void> {
  const out = io.out;
  const started = Date.now();
  const stores = c.ubicaciones().filter((u) => u.activa);
  const klkStores = stores.filter((u) => u.pos === 'klk');

  // 1. PostgreSQL, topics, schemas.
  const pool = c.pool();
  const kafka = c.kafka();
  const { prefix, partitions } = c.config.topics;
  const migrated = await migrate(pool, MIGRATIONS_DIR, c.logger);
  await syncUbicaciones(pool, c.ubicaciones());
  const admin = await kafka.admin();
  await ensureTopics(admin, topicSpecs(prefix), partitions, c.logger);
  await admin.disconnect();
  await registerSchemas(c.registry(), loadSubjectSchemas(), prefix, c.logger);
  out(`set-up: ${migrated.applied.length} migrations applied, topics and schemas in place (prefix "${prefix}")`);

  // 2. The simulators, in this process. Their clock starts after anything the database
  // recorded: a snapshot older than one applied would be stale, and the summary a lie. The
  // run's own database makes this moot; the guard keeps it true if that ever changes.
  const { StoreSimulation } = await import('../simulators/data/store-simulation.ts');
  const { FaultControl } = await import('../simulators/faults.ts');
  const { startKlkSimulator } = await import('../simulators/klk/server.ts');
  const { startStellarSimulator } = await import('../simulators/stellar/server.ts');
  const lastRecorded =
    (await pool.query<{ t: Date | null }>('SELECT max(greatest(started_at, finished_at)) AS t FROM etl_runs')).rows[0]?.t ?? null;
  const startAt = new Date(
    Math.max(Math.floor(Date.now() / 1000) * 1000, lastRecorded ? Math.ceil(lastRecorded.getTime() / 1000) * 1000 + 1000 : 0),
  );
  if (lastRecorded && startAt.getTime() > Date.now())
    out(
      `clock: the simulated clock starts at ${startAt.toISOString()}, after the last run this database recorded ` +
        `(${lastRecorded.toISOString()})`,
    );
  const sims = new Map(
    stores.map((u) => [
      u.id,
      // Open all day: the simulated clock is this machine's, and a demo run at night must sell too.
      new StoreSimulation({
        ubicacionId: u.id,
        pos: u.pos,
        depositos: u.depositos,
        products: u.pos === 'klk' ? o.klkProducts : o.stellarProducts,
        seed: `demo:${u.id}`,
        startAt,
        salesLinesPerHour: 1_200,
        openingHours: { open: 0, close: 24 },
      }),
    ]),
  );
  const clock = () => new Date(sims.values().next().value!.clock);
  const faults = new FaultControl();
  const klkPort = Number(new URL((klkStores[0] as Extract<Ubicacion, { pos: 'klk' }>).klk.baseUrl).port);
  const closers: Array<() => Promise<void>> = [];
  const children: Child[] = [];
  let stopping = false;
  const shutdown = async () => {
    stopping = true;
    await stopChildren(children, out);
    for (const close of closers) await close().catch(() => undefined);
  };
  const interrupted = new Promise<string>((done) => {
    process.once('SIGINT', () => done('SIGINT'));
    process.once('SIGTERM', () => done('SIGTERM'));
  });
  const abort = new AbortController();

  try {
    const klk = await startKlkSimulator({
      stores: klkStores.map((u) => sims.get(u.id)!),
      apiKeys: Object.fromEntries(klkStores.map((u) => [u.id, c.env[(u as Extract<Ubicacion, { pos: 'klk' }>).klk.apiKeyEnv]!])),
      faults,
      port: klkPort,
      logger: c.logger,
    });
    closers.push(() => klk.close());
    for (const u of stores) {
      if (u.pos !== 'stellar') continue;
      const s = await startStellarSimulator({
        simulation: sims.get(u.id)!,
        faults,
        user: c.env[u.stellar.userEnv]!,
        password: c.env[u.stellar.passwordEnv]!,
        database: u.stellar.database,
        port: u.stellar.port,
        host: u.stellar.host,
        logger: c.logger,
      });
      closers.push(() => s.close());
    }
    out(
      `simulators: ${klkStores.length} KLK stores (${fmt(o.klkProducts)} products) at ${klk.url}, ${stores.length - klkStores.length} ` +
        `Stellar locations (${fmt(o.stellarProducts)} products a deposito)`,
    );

    // 3. Every Fluxion process, as the containers would run them; each one watched.
    mkdirSync(o.logDir, { recursive: true });
    // The children log at info into their files, whatever this terminal's level is.
    const childEnv: NodeJS.ProcessEnv = {
      ...c.env,
      FLUXION_SESSION_TIMEOUT_MS: '10000',
      FLUXION_ABC_DEBOUNCE_MS: '15000',
      LOG_LEVEL: 'info',
    };
    children.push(
      startChild('differ', ['process', 'differ'], childEnv, o.logDir),
      startChild('dedupe', ['process', 'dedupe'], childEnv, o.logDir),
      startChild('phantom', ['process', 'phantom'], childEnv, o.logDir),
      startChild('sink', ['sink', 'postgres'], childEnv, o.logDir),
      startChild('notify', ['notify'], childEnv, o.logDir),
    );
    if (o.withDashboard) children.push(startChild('dashboard', ['dashboard', '--port', String(o.dashboardPort)], childEnv, o.logDir));
    out(
      `processes: ${children.map((ch) => `${ch.name} (pid ${ch.proc.pid})`).join(', ')}; logs in ${o.logDir}/ (the extraction's in ` +
        `extract.log)`,
    );
    const died = new Promise<Child & { code: number | null; signal: NodeJS.Signals | null }>((done) => {
      for (const ch of children) void ch.exited.then((how) => !stopping && done({ ...ch, ...how }));
    });

    const work = cyclesAndSummary(c, io, { ...o, stores, klkStores, sims, clock, faults, signal: abort.signal, started });
    work.catch(() => undefined);
    const first = await Promise.race([work.then(() => 'done' as const), died, interrupted]);
    if (first !== 'done') {
      if (typeof first === 'string') out(`stopped by ${first} before the summary`);
      else reportDeath(first, out);
      io.fail(typeof first === 'string' ? 130 : 1);
      // An extraction in flight cannot be aborted: it ends (silently) before the simulators close.
      out('stopping: every process and the simulators, once the extraction in flight ends');
      abort.abort();
      await work.catch(() => undefined);
      return;
    }
    await work;
    if (o.withDashboard) out(`dashboard: http://127.0.0.1:${o.dashboardPort}/`);
    if (!o.exit) {
      out('running until Ctrl-C (stops every process cleanly)');
      const end = await Promise.race([died, interrupted]);
      if (typeof end === 'string') out(`stopped by ${end}`);
      else {
        reportDeath(end, out);
        io.fail(1);
      }
    }
  } finally {
    abort.abort();
    await shutdown();
  }
}
