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
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { loadSubjectSchemas } from '../core/avro/schemas.ts';
import { requireDatabaseUrl } from '../core/config/environment.ts';
import type { Ubicacion } from '../core/config/ubicaciones.ts';
import { ConfigError, errorMessage, UsageError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import { MIGRATIONS_DIR, PROJECT_ROOT } from '../core/paths.ts';
import { fechaCaracas } from '../core/time.ts';
import { topicSpecs } from '../core/topics.ts';
import type { StoreOutcome } from '../core/etl-run.ts';
import { extractInventario, extractVentas } from '../extractors/extract-run.ts';
import { migrate } from '../ops/migrate.ts';
import { waitForPipelineSettled } from '../ops/pipeline-settled.ts';
import { listQuarantine } from '../ops/quarantine.ts';
import { registerSchemas } from '../ops/schemas.ts';
import { ensureTopics } from '../ops/topics-ensure.ts';
import { syncUbicaciones } from '../ops/ubicaciones-sync.ts';
import { describeAbcResult, recalcAbc } from '../sinks/abc-recalc.ts';
import { createContext, type CommandContext } from './context.ts';
import { databaseOf, databaseUrl, isRunning, newScope, removeScope, ScopeList, scopeStateDir, type DemoScope } from './demo-scope.ts';
import { demoProblems, describeFreshness, describePhantomScore } from './demo-summary.ts';
import type { ProgramIo } from './program-io.ts';
// Types only: the simulators are loaded when the demo runs (only cli/, tests and bench import them).
import type { StoreSimulation } from '../simulators/data/store-simulation.ts';
import type { FaultControl } from '../simulators/faults.ts';
import type { PhantomScore } from '../simulators/data/anomaly-score.ts';

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
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${flag} must be a whole number from ${min} to ${max}${why}, got "${value}"`);
  return n;
};

interface Child {
  name: string;
  log: string;
  proc: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `fluxion <args>` as a child whose output goes to `<logDir>/<name>.log` (this run's only). */
function startChild(name: string, args: string[], env: NodeJS.ProcessEnv, logDir: string): Child {
  const log = join(logDir, `${name}.log`);
  const stream = createWriteStream(log, { flags: 'w' });
  const proc = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'fluxion.ts'), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.pipe(stream);
  proc.stderr!.pipe(stream);
  return { name, log, proc, exited: new Promise((done) => proc.once('exit', (code, signal) => done({ code, signal }))) };
}

async function stopChildren(children: Child[], out: (line: string) => void): Promise<void> {
  for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGTERM');
  await Promise.race([Promise.all(children.map((c) => c.exited)), sleep(20_000)]);
  for (const c of children) {
    if (c.proc.exitCode === null && c.proc.signalCode === null) {
      out(`${c.name} did not stop within 20 s of SIGTERM: killed`);
      c.proc.kill('SIGKILL');
    }
  }
}

/** The last lines of a child's log, for the message that it died. */
function tail(file: string, lines: number): string[] {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines);
  } catch {
    return [];
  }
}

const fmt = (n: number) => n.toLocaleString('en-US');

/** Whether something already listens on host:port (a listen attempt that fails with EADDRINUSE). */
function portTaken(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'EADDRINUSE'));
    probe.listen(port, host, () => probe.close(() => done(false)));
  });
}

/** The simulators' and the dashboard's ports must be free: a clear refusal beats a crash half-way. */
async function checkPorts(stores: Ubicacion[], dashboardPort: number | null): Promise<void> {
  const wanted: Array<{ host: string; port: number; what: string }> = [];
  const klk = stores.find((u): u is Extract<Ubicacion, { pos: 'klk' }> => u.pos === 'klk');
  if (klk) wanted.push({ host: new URL(klk.klk.baseUrl).hostname, port: Number(new URL(klk.klk.baseUrl).port), what: 'the KLK simulator' });
  for (const u of stores) if (u.pos === 'stellar') wanted.push({ host: u.stellar.host, port: u.stellar.port, what: `the Stellar simulator of ${u.id}` });
  if (dashboardPort !== null) wanted.push({ host: '127.0.0.1', port: dashboardPort, what: 'the dashboard (--dashboard-port)' });
  const taken: string[] = [];
  for (const w of wanted) if (await portTaken(w.host, w.port)) taken.push(`${w.host}:${w.port} (${w.what})`);
  if (taken.length) throw new UsageError(`in use: ${taken.join(', ')}. Is another demo, or a test running the simulators, still going? \`ss -ltnp\` names the process`);
}

export function registerDemoCommand(program: Command, io: ProgramIo): void {
  program
    .command('demo')
    .description('run the whole pipeline on simulated stores (simulators, processors, sink, notifier, dashboard), in its own topics and database, print a summary, keep it running until Ctrl-C')
    .option('--cycles <n>', 'compressed-time cycles (30 simulated minutes each; at least 2: the quarantine compares a snapshot with the one before)', '4')
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
      if (base.config.environment !== 'local') throw new ConfigError(['ETL_ENVIRONMENT must be local for the demo: it serves the stores from simulators on this machine']);
      const out = io.out;
      const withDashboard = program.commands.some((cmd) => cmd.name() === 'dashboard');
      if (!opts.clean) await checkPorts(base.ubicaciones().filter((u) => u.activa), withDashboard ? dashboardPort : null);
      const workDir = resolve(opts.workDir);
      mkdirSync(workDir, { recursive: true });

      // 0. The earlier runs' data goes (announced); this run gets its own.
      const scopes = new ScopeList(workDir);
      const earlier = scopes.read();
      const live = earlier.filter((s) => isRunning(s));
      if (live.length) {
        throw new UsageError(`a demo from this checkout is still running (pid ${live.map((s) => s.pid).join(', ')}, topics "${live[0]!.prefix}"): stop it first (Ctrl-C), or delete ${scopes.file} if no demo runs`);
      }
      const admin = await base.kafka().admin();
      const kept: DemoScope[] = [];
      try {
        for (const s of earlier) {
          try {
            const gone = await removeScope(s, admin, base.pool(), workDir);
            out(`reset: removed the earlier demo run ${s.runId}: ${gone.topics} topics (prefix "${s.prefix}")${gone.database ? `, database ${s.database}` : ''}`);
          } catch (err) {
            kept.push(s);
            out(`warning: could not remove the earlier demo run ${s.runId} (prefix "${s.prefix}", database ${s.database}): ${errorMessage(err)}; the next run tries again`);
          }
        }
      } finally {
        await admin.disconnect();
      }
      if (opts.clean) {
        scopes.write(kept);
        out(earlier.length ? `clean: ${earlier.length - kept.length} earlier demo run(s) removed` : 'clean: no earlier demo run to remove');
        if (kept.length) io.fail(1);
        return;
      }
      const baseUrl = requireDatabaseUrl(base.config);
      const scope = newScope(base.config.topics.prefix, databaseOf(baseUrl), new Date(), process.pid);
      // Listed before anything is made, so a run that dies half-way is still removed next time.
      scopes.write([...kept, scope]);
      await base.pool().query(`CREATE DATABASE ${scope.database}`);
      out(`scope: this run's own topics (prefix "${scope.prefix}") and database ${scope.database}; the next run removes them, or \`fluxion demo --clean\``);

      // Demo credentials, unless the environment has some: the simulators and the extractors
      // read the same variables.
      const env: NodeJS.ProcessEnv = { ...base.env, FLUXION_TOPIC_PREFIX: scope.prefix, DATABASE_URL: databaseUrl(baseUrl, scope.database), FLUXION_STATE_DIR: scopeStateDir(workDir, scope) };
      for (const u of base.ubicaciones().filter((x) => x.activa)) {
        if (u.pos === 'klk') env[u.klk.apiKeyEnv] ??= `demo-key-${u.id}`;
        else {
          env[u.stellar.userEnv] ??= 'fluxion_demo';
          env[u.stellar.passwordEnv] ??= `demo-password-${u.id}`;
        }
      }
      const c = createContext(env, out);
      try {
        await runDemo(c, io, { cycles, klkProducts, stellarProducts, cycleSeconds, dashboardPort, exit: opts.exit === true, logDir: workDir, withDashboard });
      } finally {
        await c.close();
      }
    });
}

interface RunOptions {
  cycles: number;
  klkProducts: number;
  stellarProducts: number;
  cycleSeconds: number;
  dashboardPort: number;
  exit: boolean;
  logDir: string;
  withDashboard: boolean;
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
  const lastRecorded = (await pool.query<{ t: Date | null }>('SELECT max(greatest(started_at, finished_at)) AS t FROM etl_runs')).rows[0]?.t ?? null;
  const startAt = new Date(Math.max(Math.floor(Date.now() / 1000) * 1000, lastRecorded ? Math.ceil(lastRecorded.getTime() / 1000) * 1000 + 1000 : 0));
  if (lastRecorded && startAt.getTime() > Date.now()) out(`clock: the simulated clock starts at ${startAt.toISOString()}, after the last run this database recorded (${lastRecorded.toISOString()})`);
  const sims = new Map(
    stores.map((u) => [
      u.id,
      // Open all day: the simulated clock is this machine's, and a demo run at night must sell too.
      new StoreSimulation({ ubicacionId: u.id, pos: u.pos, depositos: u.depositos, products: u.pos === 'klk' ? o.klkProducts : o.stellarProducts, seed: `demo:${u.id}`, startAt, salesLinesPerHour: 1_200, openingHours: { open: 0, close: 24 } }),
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
    out(`simulators: ${klkStores.length} KLK stores (${fmt(o.klkProducts)} products) at ${klk.url}, ${stores.length - klkStores.length} Stellar locations (${fmt(o.stellarProducts)} products a deposito)`);

    // 3. Every Fluxion process, as the containers would run them; each one watched.
    mkdirSync(o.logDir, { recursive: true });
    // The children log at info into their files, whatever this terminal's level is.
    const childEnv: NodeJS.ProcessEnv = { ...c.env, FLUXION_SESSION_TIMEOUT_MS: '10000', FLUXION_ABC_DEBOUNCE_MS: '15000', LOG_LEVEL: 'info' };
    children.push(
      startChild('differ', ['process', 'differ'], childEnv, o.logDir),
      startChild('dedupe', ['process', 'dedupe'], childEnv, o.logDir),
      startChild('phantom', ['process', 'phantom'], childEnv, o.logDir),
      startChild('sink', ['sink', 'postgres'], childEnv, o.logDir),
      startChild('notify', ['notify'], childEnv, o.logDir),
    );
    if (o.withDashboard) children.push(startChild('dashboard', ['dashboard', '--port', String(o.dashboardPort)], childEnv, o.logDir));
    out(`processes: ${children.map((ch) => `${ch.name} (pid ${ch.proc.pid})`).join(', ')}; logs in ${o.logDir}/ (the extraction's in extract.log)`);
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

function reportDeath(ch: Child & { code: number | null; signal: NodeJS.Signals | null }, out: (line: string) => void): void {
  out(`error: ${ch.name} ended before the demo did (${ch.signal ? `signal ${ch.signal}` : `exit code ${ch.code}`}); its log: ${ch.log}`);
  const last = tail(ch.log, 10).filter((l) => l.trim());
  if (last.length === 0) out(`  ${ch.name}.log is empty`);
  for (const line of last) out(`  ${ch.name}.log: ${line}`);
}

interface CycleContext extends RunOptions {
  stores: Ubicacion[];
  klkStores: Ubicacion[];
  sims: Map<string, StoreSimulation>;
  clock: () => Date;
  faults: FaultControl;
  signal: AbortSignal;
  started: number;
}

/** The cycles, the wait for PostgreSQL and the summary; fails the run when the summary is not true. */
async function cyclesAndSummary(c: CommandContext, io: ProgramIo, o: CycleContext): Promise<void> {
  // Once the run is aborted (a process died, Ctrl-C) nothing more is said: it would not be true.
  const out = (line: string) => {
    if (!o.signal.aborted) io.out(line);
  };
  const { stores, klkStores, sims, clock, faults, cycles } = o;
  const pool = c.pool();
  const kafka = c.kafka();
  const { prefix, partitions } = c.config.topics;
  // The extraction runs in this process; its log (a failing store's stack included) goes to a
  // file beside the children's, so the terminal shows only the demo's own lines.
  const extractLog = join(o.logDir, 'extract.log');
  writeFileSync(extractLog, ''); // this run's only, as the children's
  const deps = { ...c.extractionDeps(), logger: createLogger({ level: 'info', destination: extractLog }), env: c.env, now: clock };
  const totals = { inventario: 0, ventas: 0, failed: 0 };
  const extractedAt = new Map<string, { snapshotId: string; at: number }>();
  /** Simulated instants of each store's snapshots: a phantom zero none of them saw is left out of recall. */
  const snapshotTimes = new Map<string, Date[]>();
  const faultCycle = { phantom: Math.min(2, cycles), failing: Math.min(2, cycles), massZero: Math.min(3, cycles) };
  const injected = { failing: sims.has('tienda_05') ? 'tienda_05' : undefined, massZero: sims.has('tienda_07') ? 'tienda_07' : undefined };
  const describe = (outcomes: StoreOutcome[]) => {
    const failed = outcomes.filter((x) => x.status === 'FAILED');
    return `${outcomes.length - failed.length}/${outcomes.length} stores OK${failed.length ? ` (${failed.map((f) => `${f.ubicacionId} FAILED: ${f.errorClass}`).join('; ')})` : ''}`;
  };
  const retry = { retries: 2, initialDelayMs: 100, maxDelayMs: 500, factor: 2 };
  for (let cycle = 1; cycle <= cycles; cycle++) {
    o.signal.throwIfAborted();
    if (cycle > 1) for (const s of sims.values()) s.advance(30);
    faults.clear();
    const notes: string[] = [];
    if (cycle === faultCycle.phantom && sims.has('tienda_03')) {
      const sim = sims.get('tienda_03')!;
      const selling: string[] = [];
      // Shelves the detector can tell from a sell-out within two cycles: a drop from at least
      // the UNEXPLAINED_DROP threshold (docs/phantom-zeros.md); smaller ones wait for sales at 0.
      const minimum = Number(c.config.processors.phantom.dropThreshold);
      for (const r of sim.klkInventario('01')) {
        if (selling.length === 5) break;
        if (Number(r.cantidad) >= minimum && sim.injectPhantomZero('01', r.producto_id)) selling.push(r.producto_id);
      }
      notes.push(`tienda_03 records ${selling.length} selling products at 0`);
    }
    if (cycle === faultCycle.failing && injected.failing) {
      faults.set(injected.failing, { httpError: { status: 500, times: 1_000 } });
      notes.push(`${injected.failing} answers HTTP 500`);
    }
    if (cycle === faultCycle.massZero && injected.massZero) {
      faults.set(injected.massZero, { massZerosShare: 0.6 });
      notes.push(`${injected.massZero} reports 60% of its products at 0`);
    }
    if (notes.length) out(`cycle ${cycle}: faults: ${notes.join('; ')}`);
    const t0 = Date.now();
    const inv = await extractInventario(stores, deps, { concurrency: 4, retry });
    for (const x of inv) {
      if (x.status !== 'OK' || !x.snapshotId) continue;
      extractedAt.set(x.ubicacionId, { snapshotId: x.snapshotId, at: Date.now() });
      snapshotTimes.set(x.ubicacionId, [...(snapshotTimes.get(x.ubicacionId) ?? []), clock()]);
    }
    const ven = await extractVentas(klkStores, fechaCaracas(clock()), 'VENTAS', deps, { concurrency: 4, retry });
    const rowsInv = inv.reduce((n, x) => n + x.rows, 0);
    const rowsVen = ven.reduce((n, x) => n + x.rows, 0);
    totals.inventario += rowsInv;
    totals.ventas += rowsVen;
    totals.failed += [...inv, ...ven].filter((x) => x.status === 'FAILED').length;
    out(`cycle ${cycle} (${clock().toISOString()}): inventario ${describe(inv)}, ${fmt(rowsInv)} rows; ventas ${describe(ven)}, ${fmt(rowsVen)} lines; ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    if (cycle < cycles) await sleep(o.cycleSeconds * 1000, undefined, { signal: o.signal });
  }
  faults.clear();
  const recovery = await extractVentas(klkStores, fechaCaracas(clock()), 'VENTAS_RECOVERY', deps, { concurrency: 4 });
  out(`ventas recovery: ${describe(recovery)}, ${fmt(recovery.reduce((n, x) => n + x.rows, 0))} lines re-read (the dedupe drops the repeats)`);

  // Wait for the pipeline, recalculate ABC, summarise.
  const settled = await waitForPipelineSettled(kafka, pool, { prefix, partitions, timeoutMs: 5 * 60_000, signal: o.signal, onWait: (behind) => out(`waiting: ${behind}`) });
  out('pipeline settled: every record is in PostgreSQL');
  const changes = settled.get('pos.inventario.changes') ?? 0;
  const abc = await recalcAbc(pool, { windowDays: c.config.abc.windowDays, logger: c.logger });
  out(`ABC: ${describeAbcResult(abc)}`);
  const count = async (sql: string, params: unknown[] = []) => Number((await pool.query<{ n: string }>(sql, params)).rows[0]!.n);
  const alertas = await pool.query<{ estado: string; n: string }>('SELECT estado, count(*) AS n FROM alertas GROUP BY estado ORDER BY estado');
  const phantomScore = await scoreDemoAlerts(pool, o.sims, snapshotTimes);
  const failedRuns = await pool.query<{ ubicacion_id: string; n: string; errors: string }>(
    "SELECT ubicacion_id, count(*) AS n, string_agg(DISTINCT coalesce(error_class, '?'), ', ') AS errors FROM etl_runs WHERE status = 'FAILED' GROUP BY ubicacion_id ORDER BY ubicacion_id",
  );
  const recorded = await listQuarantine({ kafka, registry: c.registry(), logger: c.logger, topicPrefix: prefix });
  const quarantined = recorded.filter((q) => q.status === 'QUARANTINED');
  const stale = recorded.filter((q) => q.status === 'STALE');
  // Freshness: from the end of a store's last extraction to the commit of its rows.
  const freshness: number[] = [];
  for (const [id, { snapshotId, at }] of extractedAt) {
    const r = await pool.query<{ t: Date | null }>('SELECT max(actualizado_en) AS t FROM inventario_actual WHERE ubicacion_id = $1 AND snapshot_id = $2', [id, snapshotId]);
    if (r.rows[0]?.t) freshness.push(Math.max(0, r.rows[0].t.getTime() - at));
  }
  const missing: string[] = [];
  for (const u of stores) {
    if ((await count('SELECT count(*) AS n FROM inventario_actual WHERE ubicacion_id = $1', [u.id])) === 0) missing.push(`${u.id} (inventario)`);
    if (u.pos === 'klk' && (await count('SELECT count(*) AS n FROM ventas WHERE ubicacion_id = $1', [u.id])) === 0) missing.push(`${u.id} (ventas)`);
  }
  const problems = demoProblems({
    injectedFailing: injected.failing,
    failedStores: failedRuns.rows.map((r) => r.ubicacion_id),
    injectedMassZero: injected.massZero,
    quarantinedStores: quarantined.map((q) => q.ubicacion_id),
    stale: stale.length,
    freshnessMs: freshness,
    missing,
  });
  out('');
  out(`summary after ${cycles} cycles, ${((Date.now() - o.started) / 1000).toFixed(0)} s:`);
  out(`  extracted        ${fmt(totals.inventario)} inventory rows, ${fmt(totals.ventas)} sales lines (${totals.failed} store runs failed)`);
  out(`  changes          ${fmt(changes)} change events on pos.inventario.changes`);
  out(`  PostgreSQL       inventario_actual ${fmt(await count('SELECT count(*) AS n FROM inventario_actual'))}, inventario_historico ${fmt(await count('SELECT count(*) AS n FROM inventario_historico'))}, ventas ${fmt(await count('SELECT count(*) AS n FROM ventas'))}, productos ${fmt(await count('SELECT count(*) AS n FROM productos'))}, etl_runs ${fmt(await count('SELECT count(*) AS n FROM etl_runs'))}, productos_abc_cache ${fmt(abc.filas)}`);
  out(`  failed runs      ${failedRuns.rows.map((r) => `${r.ubicacion_id} ${r.n} FAILED (${r.errors})`).join('; ') || 'none'}`);
  out(`  alerts           ${alertas.rows.map((a) => `${a.n} ${a.estado}`).join(', ') || 'none'}`);
  out(`  phantom zeros    ${describePhantomScore(phantomScore)}`);
  out(`  quarantined      ${quarantined.map((q) => `${q.ubicacion_id} snapshot ${q.snapshot_id} (${q.reason})`).join('; ') || 'none'}`);
  out(`  stale            ${stale.map((q) => `${q.ubicacion_id} snapshot ${q.snapshot_id} (${q.reason})`).join('; ') || 'none'}`);
  out(`  freshness        extraction end to rows committed: ${describeFreshness(freshness)}`);
  if (problems.length === 0) out(`  every store      ${stores.length} stores have their data in PostgreSQL; every injected fault shows`);
  else {
    for (const p of problems) out(`  NOT AS EXPECTED  ${p}`);
    io.fail(1);
  }
}

/**
 * The run's phantom-zero alerts (table alertas) scored against what the simulators know went
 * wrong (their anomaly labels, simulators/data/anomalies.ts): the demo says how far to trust
 * its alerts instead of only counting them.
 */
async function scoreDemoAlerts(pool: ReturnType<CommandContext["pool"]>, sims: Map<string, StoreSimulation>, snapshotTimes: Map<string, Date[]>): Promise<PhantomScore> {
  const { scorePhantomAlerts } = await import('../simulators/data/anomaly-score.ts');
  const rows = await pool.query<{ alert_id: string; ubicacion_id: string; deposito: string; producto_id: string; regla: string; confianza: number; abierta_en: Date; cerrada: Date | null }>(
    'SELECT alert_id, ubicacion_id, deposito, producto_id, regla, confianza, abierta_en, resuelta_en AS cerrada FROM alertas',
  );
  const alerts = rows.rows.map((r) => ({ alert_id: r.alert_id, ubicacion_id: r.ubicacion_id, deposito: r.deposito, producto_id: r.producto_id, rule: r.regla, confidence: r.confianza, opened_at: r.abierta_en, resolved_at: r.cerrada }));
  const labels = [...sims.values()].flatMap((s) => s.anomalies());
  const departmentOf = (ubicacionId: string, productoId: string) => sims.get(ubicacionId)?.producto(productoId)?.departamento.codigo ?? null;
  return scorePhantomAlerts(labels, alerts, { graceMs: 30 * 60_000, departmentOf, snapshotTimes });
}
