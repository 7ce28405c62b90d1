/**
 * The chaos harness of issue 7: the whole pipeline, every Fluxion process a child process
 * (extractor per cycle; differ, dedupe, phantom detector and sink long-running, restarted by a
 * supervisor as a container runtime would), the POS simulators in this process, and faults
 * drawn from a seeded generator while cycles run:
 *
 *   kill      SIGKILL of any Fluxion process at a random instant (the extractor mid-run too)
 *   zombie    SIGSTOP of a long-running process for longer than the session timeout, then
 *             SIGCONT: its group moved on without it, so what it then tries must be fenced
 *   kafka     the broker bounced, cleanly (`scripts/services down kafka`) or hard (SIGKILL)
 *   postgres  PostgreSQL restarted, or every session of the database terminated
 *   failing   a store's POS answers errors (KLK HTTP 500, Stellar drops the connection)
 *   hanging   a store's POS stalls mid-answer (the extractor's store deadline ends it)
 *   mass-zero a store reports most of its products at 0 (the differ must quarantine it)
 *   poison    undecodable records put on the pipeline's topics (they must reach a DLQ)
 *
 * After the last cycle everything runs undisturbed until it settled; `collectOutcome()` then
 * reads PostgreSQL, the DLQs and the quarantine, and the test compares them with what the
 * simulators said (their truth, recorded at every cycle). Replay a run with its seed:
 * CHAOS_SEED=<seed>. Child logs stay in the printed directory.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify as toYaml } from 'yaml';
import type { Ubicacion } from '../../core/config/ubicaciones.ts';
import { PROJECT_ROOT } from '../../core/paths.ts';
import { fechaCaracas } from '../../core/time.ts';
import { waitForPipelineSettled } from '../../ops/pipeline-settled.ts';
import { listQuarantine } from '../../ops/quarantine.ts';
import { syncUbicaciones } from '../../ops/ubicaciones-sync.ts';
import { StoreSimulation } from '../../simulators/data/store-simulation.ts';
import { FaultControl, servedInventario, type StoreFaults } from '../../simulators/faults.ts';
import { startKlkSimulator } from '../../simulators/klk/server.ts';
import { startStellarSimulator } from '../../simulators/stellar/server.ts';
import { seededRandom } from '../helpers/kill-harness.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';
import { serviceEnv, testLogger } from '../../fixtures/services.ts';
import { migratedDatabase, type MigratedDatabase } from '../../fixtures/sink-run.ts';

export const LONG_RUNNING = ['differ', 'dedupe', 'phantom', 'sink'] as const;
type LongRunning = (typeof LONG_RUNNING)[number];
export const FAULT_KINDS = ['kill', 'zombie', 'kafka', 'postgres', 'failing', 'hanging', 'mass-zero', 'poison'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface ChaosOptions {
  seed: number;
  /** Faulty cycles (then one clean cycle). With `minutes`, cycles run until that much time passed. */
  cycles: number;
  minutes?: number;
  klkStores: number;
  stellarStores: number;
  klkProducts: number;
  stellarProducts: number;
  log(line: string): void;
}

/** One store's truth at one cycle: what its POS answered, as comparable lines. */
interface CycleTruth {
  cycle: number;
  /** Extraction window of the cycle (real time): its snapshots' taken_at fall inside. */
  from: number;
  to: number;
  stock: Map<string, string[]>;
  massZero: Set<string>;
  /** Stores with a POS glitch (simulators/data/anomalies.ts) going on at the read: the differ may quarantine those too. */
  glitch: Set<string>;
  failing: Set<string>;
}

export interface PoisonRecord {
  topic: string;
  key: string;
  kind: string;
}

export interface ChaosRun {
  seed: number;
  logDir: string;
  stores: Ubicacion[];
  sims: Map<string, StoreSimulation>;
  truths: CycleTruth[];
  fechas: Set<string>;
  poison: PoisonRecord[];
  events: string[];
  kills: Record<string, number>;
  pipeline: TestPipeline;
  db: MigratedDatabase;
  /** Extractor runs that had to be killed because they did not end within 90 s. */
  hungExtractions: number;
  close(): Promise<void>;
}

/** The comparable columns of an inventory row (PostgreSQL's and the simulator's alike). */
export const stockLine = (r: { deposito: string; producto_id: string; cantidad: string; costo: string | null; precio: string | null; activo: boolean }) =>
  `${r.deposito}/${r.producto_id} ${r.cantidad} ${r.costo} ${r.precio} ${r.activo}`;

const SERVICES = join(PROJECT_ROOT, 'scripts', 'services');
const FLUXION = join(PROJECT_ROOT, 'bin', 'fluxion.ts');

function services(...args: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(SERVICES, args, { timeout: 120_000 }, (err, _out, stderr) => (err ? reject(new Error(`scripts/services ${args.join(' ')}: ${stderr || err.message}`)) : resolve())),
  );
}

interface Child {
  proc: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startFluxion(args: string[], env: NodeJS.ProcessEnv, logFile: string, stdout?: (s: string) => void): Child {
  const log = createWriteStream(logFile, { flags: 'a' });
  const proc = spawn(process.execPath, [FLUXION, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d: Buffer) => stdout?.(d.toString()));
  proc.stdout!.pipe(log);
  proc.stderr!.pipe(log);
  return { proc, exited: new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal }))) };
}

/**
 * Keeps one long-running process up: started again 0.5-1.5 s after it ends, whatever the
 * reason, as `restart: unless-stopped` does.
 */
function supervise(name: LongRunning, args: string[], env: NodeJS.ProcessEnv, logDir: string, random: () => number, log: (l: string) => void) {
  let current: Child | undefined;
  let stopping = false;
  let starts = 0;
  const loop = (async () => {
    while (!stopping) {
      starts++;
      current = startFluxion(args, env, join(logDir, `${name}.log`));
      const { code, signal } = await current.exited;
      if (stopping) break;
      if (signal !== 'SIGKILL') log(`${name} exited by itself (code ${code}, signal ${signal}): restarting`);
      await sleep(500 + Math.floor(random() * 1_000));
    }
  })();
  return {
    name,
    starts: () => starts,
    kill(signal: 'SIGKILL' | 'SIGSTOP' | 'SIGCONT' = 'SIGKILL'): boolean {
      if (!current || current.proc.exitCode !== null || current.proc.signalCode !== null) return false;
      return current.proc.kill(signal);
    },
    async stop(): Promise<void> {
      stopping = true;
      if (current && current.proc.exitCode === null && current.proc.signalCode === null) {
        current.proc.kill('SIGTERM');
        const done = await Promise.race([current.exited.then(() => true), sleep(20_000).then(() => false)]);
        if (!done) current.proc.kill('SIGKILL');
      }
      await loop;
    },
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

/**
 * The faults of each faulty cycle. The first cycle is clean (it loads every store); the
 * others get every kind at least once (CI-sized runs must cover them all), in seeded order,
 * then random ones: one to three a cycle.
 */
function planFaults(random: () => number, cycles: number): FaultKind[][] {
  const plan: FaultKind[][] = Array.from({ length: cycles }, () => []);
  const kinds: FaultKind[] = [...FAULT_KINDS, 'kill', 'kill', 'kill'];
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  if (cycles < 2) return plan;
  kinds.forEach((k, i) => plan[1 + (i % (cycles - 1))]!.push(k));
  for (let c = 1 + kinds.length; c < cycles; c++) {
    const n = 1 + Math.floor(random() * 3);
    for (let i = 0; i < n; i++) plan[c]!.push(pick(random, [...FAULT_KINDS, 'kill', 'kill']));
  }
  return plan;
}

/** Undecodable records: not Avro at all, an unknown schema id, a known id with a cut body. */
async function injectPoison(run: { pipeline: TestPipeline }, random: () => number, n: number, count: number): Promise<PoisonRecord[]> {
  const topics = ['pos.inventario.snapshots', 'pos.ventas.raw', 'pos.inventario.changes', 'pos.ventas', 'alerts.phantom-zeros', 'ops.etl-runs'];
  const records: PoisonRecord[] = [];
  const producer = await run.pipeline.kafka.producer();
  try {
    for (let i = 0; i < count; i++) {
      const topic = pick(random, topics);
      const kind = pick(random, ['not-avro', 'unknown-schema', 'cut-body']);
      let value: Buffer;
      if (kind === 'not-avro') value = Buffer.from(`{"poison":${n}}`);
      else {
        const id = kind === 'unknown-schema' ? 987_654 : (await run.pipeline.registry.latestSchema(`${run.pipeline.prefix}${topic}-value`))!.id;
        const header = Buffer.alloc(5);
        header.writeUInt32BE(id, 1);
        value = Buffer.concat([header, Buffer.from([0x02, 0xff])]);
      }
      const key = `poison-${n}-${i}`;
      await producer.send(run.pipeline.prefix + topic, [{ ubicacionId: key, partition: Math.floor(random() * 3), key: Buffer.from(key), value, headers: {} }]);
      records.push({ topic, key, kind });
    }
  } finally {
    await producer.disconnect();
  }
  return records;
}

export async function startChaosRun(o: ChaosOptions): Promise<ChaosRun> {
  const random = seededRandom(o.seed);
  const logDir = join(PROJECT_ROOT, '.cache', 'chaos', `seed-${o.seed}-${Date.now().toString(36)}`);
  mkdirSync(logDir, { recursive: true });
  const events: string[] = [];
  const event = (line: string) => {
    const l = `${new Date().toISOString().slice(11, 23)} ${line}`;
    events.push(l);
    o.log(l);
  };
  event(`chaos seed ${o.seed} (CHAOS_SEED=${o.seed} replays it); logs in ${logDir}`);

  const pipeline = await createTestPipeline(3);
  const db = await migratedDatabase();
  const closers: Array<() => Promise<unknown>> = [() => pipeline.cleanup(), () => db.drop()];

  // The simulated stores. Their clock starts far enough back that sales never lie in the future.
  const planned = o.minutes ? Math.ceil(o.minutes * 6) : o.cycles;
  const startAt = new Date(Math.floor(Date.now() / 60_000) * 60_000 - (planned + 2) * 30 * 60_000);
  const klkIds = Array.from({ length: o.klkStores }, (_, i) => `tienda_${String(i + 1).padStart(2, '0')}`);
  const stellarIds = Array.from({ length: o.stellarStores }, (_, i) => `cedi_${String(i + 1).padStart(2, '0')}`);
  // Open all day: the clock follows this machine's, and a run at night must sell too.
  const ALL_DAY = { open: 0, close: 24 };
  const sims = new Map<string, StoreSimulation>();
  for (const id of klkIds) sims.set(id, new StoreSimulation({ ubicacionId: id, pos: 'klk', depositos: ['01'], products: o.klkProducts, seed: `chaos:${o.seed}:${id}`, startAt, salesLinesPerHour: 600, openingHours: ALL_DAY }));
  for (const id of stellarIds) sims.set(id, new StoreSimulation({ ubicacionId: id, pos: 'stellar', depositos: ['0101', '0102'], products: o.stellarProducts, seed: `chaos:${o.seed}:${id}`, startAt }));
  const faults = new FaultControl();
  const secrets: Record<string, string> = {};
  for (const id of klkIds) secrets[`KLK_API_KEY_${id.toUpperCase()}`] = `chaos-key-${id}`;
  for (const id of stellarIds) {
    secrets[`STELLAR_USER_${id.toUpperCase()}`] = 'fluxion_chaos';
    secrets[`STELLAR_PASSWORD_${id.toUpperCase()}`] = `chaos-password-${id}`;
  }
  const klk = await startKlkSimulator({ stores: klkIds.map((id) => sims.get(id)!), apiKeys: Object.fromEntries(klkIds.map((id) => [id, secrets[`KLK_API_KEY_${id.toUpperCase()}`]!])), faults });
  closers.push(() => klk.close());
  const stellarPorts = new Map<string, number>();
  for (const id of stellarIds) {
    const s = await startStellarSimulator({ simulation: sims.get(id)!, faults, user: 'fluxion_chaos', password: secrets[`STELLAR_PASSWORD_${id.toUpperCase()}`]!, port: 0 });
    stellarPorts.set(id, s.port);
    closers.push(() => s.close());
  }

  // The store list the children read (FLUXION_UBICACIONES_FILE).
  const yamlStores = [
    ...klkIds.map((id) => ({
      id, nombre: `Chaos ${id}`, tipo: 'tienda', activa: true, pos: 'klk', depositos: ['01'],
      klk: { base_url: { local: klk.baseUrl(id), production: `https://${id}.invalid` }, api_key_env: `KLK_API_KEY_${id.toUpperCase()}`, page_size: 150, timeout_ms: 3_000 },
    })),
    ...stellarIds.map((id) => ({
      id, nombre: `Chaos ${id}`, tipo: 'cedi', activa: true, pos: 'stellar', depositos: ['0101', '0102'],
      stellar: { host: { local: '127.0.0.1', production: `${id}.invalid` }, port: { local: stellarPorts.get(id)!, production: 1433 }, user_env: `STELLAR_USER_${id.toUpperCase()}`, password_env: `STELLAR_PASSWORD_${id.toUpperCase()}`, request_timeout_ms: 10_000, connect_timeout_ms: 3_000 },
    })),
  ];
  const ubicacionesFile = join(logDir, 'ubicaciones.yaml');
  writeFileSync(ubicacionesFile, toYaml({ ubicaciones: yamlStores }));
  const { loadUbicaciones, loadConfig } = await import('../../core/config/environment.ts');
  const stores = loadUbicaciones(loadConfig({ ...process.env, FLUXION_UBICACIONES_FILE: ubicacionesFile, ETL_ENVIRONMENT: 'local' }));
  await syncUbicaciones(db.pool, stores);

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...serviceEnv(),
    ...secrets,
    DATABASE_URL: db.url,
    ETL_ENVIRONMENT: 'local',
    FLUXION_UBICACIONES_FILE: ubicacionesFile,
    FLUXION_TOPIC_PREFIX: pipeline.prefix,
    FLUXION_TOPIC_PARTITIONS: '3',
    FLUXION_SESSION_TIMEOUT_MS: '6000',
    FLUXION_ABC_DEBOUNCE_MS: '1000',
    LOG_LEVEL: 'info',
  };
  const supervised = new Map<LongRunning, ReturnType<typeof supervise>>();
  const commands: Record<LongRunning, string[]> = { differ: ['process', 'differ'], dedupe: ['process', 'dedupe'], phantom: ['process', 'phantom'], sink: ['sink', 'postgres'] };
  for (const name of LONG_RUNNING) supervised.set(name, supervise(name, commands[name], env, logDir, random, event));
  closers.unshift(async () => {
    for (const s of supervised.values()) await s.stop();
  });

  const kills: Record<string, number> = { extractor: 0, differ: 0, dedupe: 0, phantom: 0, sink: 0 };
  const truths: CycleTruth[] = [];
  const fechas = new Set<string>();
  const poison: PoisonRecord[] = [];
  let hungExtractions = 0;
  let extractor: Child | undefined;

  // Long enough for a store's read on a busy machine, short enough that a hanging store costs little.
  const deadlineSeconds = Math.max(4, Math.ceil(Math.max(o.klkProducts, o.stellarProducts * 2) / 400));
  /** One extraction as the scheduler runs it; resolves with its exit (killed ones included). */
  const extract = async (args: string[]): Promise<{ code: number | null; signal: string | null; out: string }> => {
    let out = '';
    const child = startFluxion(['extract', ...args, '--todas', '--deadline-seconds', String(deadlineSeconds)], env, join(logDir, 'extractor.log'), (s) => (out += s));
    extractor = child;
    const timer = setTimeout(() => {
      hungExtractions++;
      event(`extract ${args.join(' ')} still running after 90 s: killed (a store must fail, not hang)`);
      child.proc.kill('SIGKILL');
    }, 90_000);
    const r = await child.exited.finally(() => clearTimeout(timer));
    extractor = undefined;
    return { ...r, out };
  };

  const klkSims = klkIds.map((id) => sims.get(id)!);
  const clockFecha = () => fechaCaracas(new Date(klkSims[0]?.clock ?? Date.now()));

  /**
   * One fault of a service at a time. Two faults of one cycle may pick the same service, and
   * the second must meet it up: the soak of seed 20261129 died twice of overlapping ones, a
   * SIGKILL of a broker the first fault had just killed (`kill ESRCH`), then a session
   * termination sent while the other fault was shutting PostgreSQL down (57P03).
   */
  const serviceFaults = new Map<string, Promise<void>>();
  const exclusive = (service: 'kafka' | 'postgres', fault: () => Promise<void>): Promise<void> => {
    const run = (serviceFaults.get(service) ?? Promise.resolve()).then(fault);
    serviceFaults.set(service, run.catch(() => undefined));
    return run;
  };

  /** A service down for 1-4 s, then started again. */
  const bounce = async (cycle: number, service: 'kafka' | 'postgres', stop: () => Promise<void>, how: string): Promise<void> => {
    const name = service === 'kafka' ? 'Kafka' : 'PostgreSQL';
    await stop();
    event(`cycle ${cycle}: ${name} stopped (${how})`);
    await sleep(1_000 + Math.floor(random() * 3_000));
    await services('up', service);
    event(`cycle ${cycle}: ${name} started again`);
  };

  const runFault = async (kind: FaultKind, cycle: number): Promise<void> => {
    switch (kind) {
      case 'kill': {
        const target = pick(random, ['extractor', ...LONG_RUNNING] as const);
        await sleep(200 + Math.floor(random() * 2_500));
        const killed = target === 'extractor' ? extractor?.proc.kill('SIGKILL') === true : supervised.get(target)!.kill();
        if (killed) kills[target]!++;
        event(`cycle ${cycle}: kill -9 ${target}${killed ? '' : ' (it was not running)'}`);
        return;
      }
      case 'zombie': {
        const target = pick(random, LONG_RUNNING);
        await sleep(200 + Math.floor(random() * 2_500));
        const ms = 7_000 + Math.floor(random() * 3_000);
        if (!supervised.get(target)!.kill('SIGSTOP')) {
          event(`cycle ${cycle}: SIGSTOP ${target} (it was not running)`);
          return;
        }
        event(`cycle ${cycle}: SIGSTOP ${target} for ${ms} ms (session timeout 6 s)`);
        await sleep(ms);
        supervised.get(target)!.kill('SIGCONT');
        event(`cycle ${cycle}: SIGCONT ${target}`);
        return;
      }
      case 'kafka': {
        await sleep(Math.floor(random() * 2_000));
        return exclusive('kafka', () => {
          const hard = random() < 0.5;
          const stop = async () => {
            if (!hard) return services('down', 'kafka');
            const pid = Number(readFileSync(join(process.env.FLUXION_SERVICES_DIR ?? join(PROJECT_ROOT, '.cache', 'services'), 'kafka', 'kafka.pid'), 'utf8'));
            try {
              process.kill(pid, 'SIGKILL');
            } catch (err) {
              // Gone already (it died of the previous fault): down is what this step wants.
              if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
            }
            while (alive(pid)) await sleep(100);
          };
          return bounce(cycle, 'kafka', stop, hard ? 'SIGKILL' : 'clean shutdown');
        });
      }
      case 'postgres': {
        await sleep(Math.floor(random() * 2_000));
        return exclusive('postgres', async () => {
          if (random() < 0.5) {
            const sql = 'SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()';
            // This pool's own idle sessions may be gone since an earlier restart: try again.
            const r = await db.pool.query(sql).catch(() => db.pool.query(sql));
            event(`cycle ${cycle}: PostgreSQL sessions terminated (${r.rows[0].n}: the sink's and the ABC's)`);
            return;
          }
          await bounce(cycle, 'postgres', () => services('down', 'postgres'), 'fast shutdown');
        });
      }
      case 'poison': {
        await sleep(Math.floor(random() * 2_000));
        for (let attempt = 1; ; attempt++) {
          try {
            const records = await injectPoison({ pipeline }, random, poison.length, 3);
            poison.push(...records);
            event(`cycle ${cycle}: poison ${records.map((r) => `${r.key} (${r.kind}) on ${r.topic}`).join(', ')}`);
            return;
          } catch (err) {
            if (attempt >= 10) throw err;
            await sleep(2_000); // Kafka may be restarting in the same cycle
          }
        }
      }
      default:
        return; // store faults are set before the extraction
    }
  };

  const setStoreFault = (kind: FaultKind, cycle: number, truth: CycleTruth): void => {
    const id = pick(random, [...sims.keys()]);
    const pos = sims.get(id)!.pos;
    let f: StoreFaults;
    if (kind === 'failing') f = pos === 'klk' ? { httpError: { status: 500, times: 10_000 } } : { dropConnectionAfterRows: 50 };
    else if (kind === 'hanging') f = pos === 'klk' ? { stallOnPage: 2 } : { stallAfterRows: 100 };
    else f = { massZerosShare: 0.6 };
    faults.set(id, { ...faults.get(id), ...f });
    if (kind === 'mass-zero') truth.massZero.add(id);
    else truth.failing.add(id);
    event(`cycle ${cycle}: ${id} ${kind} ${JSON.stringify(f)}`);
  };

  const plan = planFaults(random, o.cycles);
  const began = Date.now();
  const runCycle = async (cycle: number, kinds: FaultKind[]): Promise<void> => {
    if (cycle > 1) for (const s of sims.values()) s.advance(30);
    faults.clear();
    const truth: CycleTruth = { cycle, from: Date.now(), to: 0, stock: new Map(), massZero: new Set(), glitch: new Set(), failing: new Set() };
    for (const k of kinds) if (k === 'failing' || k === 'hanging' || k === 'mass-zero') setStoreFault(k, cycle, truth);
    for (const [id, sim] of sims) {
      truth.stock.set(id, servedInventario(sim.inventario(), faults.get(id)).map(stockLine).sort());
      if (sim.anomalies().some((a) => a.kind === 'POS_GLITCH' && a.end === null)) truth.glitch.add(id);
    }
    const faultsDone = Promise.all(kinds.map((k) => runFault(k, cycle)));
    // Awaited after the extractions; until then a failed fault must not count as unhandled.
    faultsDone.catch(() => undefined);
    const inv = await extract(['inventario']);
    const fecha = clockFecha();
    fechas.add(fecha);
    const ven = await extract(['ventas', '--fecha', fecha]);
    truth.to = Date.now();
    truths.push(truth);
    event(`cycle ${cycle}: inventario exit ${inv.signal ?? inv.code}, ventas ${fecha} exit ${ven.signal ?? ven.code}${kinds.length ? ` (faults: ${kinds.join(', ')})` : ''}`);
    await faultsDone;
    faults.clear();
  };

  try {
    let cycle = 0;
    for (; cycle < o.cycles || (o.minutes !== undefined && Date.now() - began < o.minutes * 60_000); cycle++) {
      await runCycle(cycle + 1, plan[cycle] ?? plannedRandom(random));
    }
    // The clean cycle: every store must be read, every fecha read again.
    for (const s of sims.values()) s.advance(30);
    faults.clear();
    const truth: CycleTruth = { cycle: cycle + 1, from: Date.now(), to: 0, stock: new Map(), massZero: new Set(), glitch: new Set(), failing: new Set() };
    for (const [id, sim] of sims) {
      truth.stock.set(id, sim.inventario().map(stockLine).sort());
      if (sim.anomalies().some((a) => a.kind === 'POS_GLITCH' && a.end === null)) truth.glitch.add(id);
    }
    fechas.add(clockFecha());
    await retryClean('inventario', () => extract(['inventario']), event);
    for (const fecha of fechas) await retryClean(`ventas ${fecha}`, () => extract(['ventas', '--fecha', fecha]), event);
    truth.to = Date.now();
    truths.push(truth);
    event(`clean cycle ${cycle + 1}: every store read, ventas of ${[...fechas].join(', ')} read again`);
    await waitForPipelineSettled(pipeline.kafka, db.pool, { prefix: pipeline.prefix, partitions: 3, timeoutMs: 240_000, onWait: (b) => event(`settling: ${b}`) });
    event('settled: every group is past the last record of its inputs');
  } catch (err) {
    for (const close of closers) await close().catch(() => undefined);
    throw new Error(`${(err as Error).message}\n(chaos seed ${o.seed}; logs in ${logDir})`, { cause: err });
  }

  return {
    seed: o.seed,
    logDir,
    stores,
    sims,
    truths,
    fechas,
    poison,
    events,
    kills,
    pipeline,
    db,
    hungExtractions,
    async close() {
      for (const close of closers) await close().catch(() => undefined);
    },
  };
}

function plannedRandom(random: () => number): FaultKind[] {
  const n = 1 + Math.floor(random() * 3);
  return Array.from({ length: n }, () => pick(random, [...FAULT_KINDS, 'kill', 'kill']));
}

/** The clean cycle's extractions must succeed; a broker still electing leaders may fail one. */
async function retryClean(what: string, run: () => Promise<{ code: number | null; signal: string | null; out: string }>, event: (l: string) => void): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const r = await run();
    if (r.code === 0) return;
    event(`clean cycle: ${what} exit ${r.signal ?? r.code} (attempt ${attempt}):\n${r.out}`);
    if (attempt >= 3) throw new Error(`the clean cycle's ${what} extraction failed ${attempt} times:\n${r.out}`);
    await sleep(3_000);
  }
}

/** What PostgreSQL, the DLQs and the quarantine hold after the run, next to the truth. */
export interface ChaosOutcome {
  /** Per store: inventario_actual and the last cycle's truth. */
  actual: Map<string, { got: string[]; want: string[] }>;
  /** Per applied snapshot: inventario_al when its run finished and just before the next run started. */
  history: Array<{ store: string; snapshot: string; cycle: number; at: string; got: string[]; before: string[]; want: string[] }>;
  /** Snapshots whose run started in no cycle's window (should be none). */
  unplaced: string[];
  ventas: { got: string[]; want: string[]; rows: number; keys: number };
  abc: { committed: string[]; recalculated: string[] };
  dlqKeys: Map<string, Set<string>>;
  quarantined: Array<{ store: string; snapshot: string; status: string; cycle: number | undefined }>;
  massZeroSnapshots: Array<{ store: string; snapshot: string; cycle: number }>;
  /** Snapshots read while the store's simulator had a POS glitch going on (a department or deposito at 0). */
  glitchSnapshots: Array<{ store: string; snapshot: string; cycle: number }>;
  failedRuns: Array<{ store: string; cycle: number | undefined; errorClass: string }>;
}

const decimal = (s: string | null) => (s === null ? 'null' : s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s);

export async function collectOutcome(run: ChaosRun): Promise<ChaosOutcome> {
  const { pool } = run.db;
  const q = async <T>(sql: string, params: unknown[] = []) => (await pool.query(sql, params)).rows as T[];
  const last = run.truths.at(-1)!;
  // taken_at and started_at are set by the extractor while it runs: inside its cycle's window.
  const cycleOf = (t: Date) => run.truths.find((c) => t.getTime() >= c.from && t.getTime() <= c.to);

  const actual = new Map<string, { got: string[]; want: string[] }>();
  for (const u of run.stores) {
    const rows = await q<Parameters<typeof stockLine>[0]>('SELECT deposito, producto_id, cantidad::text, costo::text, precio::text, activo FROM inventario_actual WHERE ubicacion_id = $1', [u.id]);
    actual.set(u.id, { got: rows.map(stockLine).sort(), want: last.stock.get(u.id)! });
  }

  // Every snapshot the extractors committed: each store's transaction carries its run record
  // (etl_runs, status OK), with started_at <= taken_at <= finished_at. A quarantined snapshot
  // stays listed once a later one superseded it; only a released one was applied.
  const quarantine = await listQuarantine({ kafka: run.pipeline.kafka, registry: run.pipeline.registry, logger: testLogger, topicPrefix: run.pipeline.prefix });
  const quarantinedIds = new Set(quarantine.filter((e) => e.status !== 'RELEASED').map((e) => e.snapshot_id));
  const runs = await q<{ ubicacion_id: string; snapshot_id: string; started_at: Date; finished_at: Date }>(
    "SELECT ubicacion_id, snapshot_id::text, started_at, finished_at FROM etl_runs WHERE job = 'INVENTARIO' AND status = 'OK' ORDER BY started_at",
  );
  const snapshotCycle = new Map(runs.map((r) => [r.snapshot_id, cycleOf(r.started_at)?.cycle]));
  const history: ChaosOutcome['history'] = [];
  const unplaced: string[] = [];
  const massZeroSnapshots: ChaosOutcome['massZeroSnapshots'] = [];
  const glitchSnapshots: ChaosOutcome['glitchSnapshots'] = [];
  const at = (t: Date, store: string) =>
    q<Parameters<typeof stockLine>[0]>('SELECT deposito, producto_id, cantidad::text, costo::text, precio::text, activo FROM inventario_al($1, $2)', [t, store]).then((rows) => rows.map(stockLine).sort());
  for (const u of run.stores) {
    const mine = runs.filter((r) => r.ubicacion_id === u.id);
    for (const r of mine) {
      const c = cycleOf(r.started_at);
      if (c?.massZero.has(u.id)) massZeroSnapshots.push({ store: u.id, snapshot: r.snapshot_id, cycle: c.cycle });
      if (c?.glitch.has(u.id)) glitchSnapshots.push({ store: u.id, snapshot: r.snapshot_id, cycle: c.cycle });
    }
    const applied = mine.filter((r) => !quarantinedIds.has(r.snapshot_id));
    for (const [i, r] of applied.entries()) {
      const c = cycleOf(r.started_at);
      if (!c) {
        unplaced.push(`${u.id} ${r.snapshot_id} ${r.started_at.toISOString()}`);
        continue;
      }
      // Applied from its taken_at (at the latest finished_at) until the next one's (at the earliest its started_at).
      const next = applied[i + 1]?.started_at ?? new Date(Date.now() + 60_000);
      history.push({ store: u.id, snapshot: r.snapshot_id, cycle: c.cycle, at: r.finished_at.toISOString(), got: await at(r.finished_at, u.id), before: await at(new Date(next.getTime() - 1), u.id), want: c.stock.get(u.id)! });
    }
  }

  // ventas: the simulators' lines of every fecha read, once each.
  const ventaLine = (v: { ubicacion_id: string; numero_factura: string; linea: number; producto_id: string; cantidad: string; precio_unitario: string; descuento: string; total: string; anulada: boolean }) =>
    `${v.ubicacion_id}/${v.numero_factura}/${v.linea} ${v.producto_id} ${decimal(v.cantidad)} ${decimal(v.precio_unitario)} ${decimal(v.descuento)} ${decimal(v.total)} ${v.anulada}`;
  const want: string[] = [];
  for (const sim of run.sims.values()) {
    if (sim.pos !== 'klk') continue;
    for (const fecha of run.fechas) for (const v of sim.ventas(fecha)) want.push(ventaLine({ ...v, ubicacion_id: sim.ubicacionId }));
  }
  const got = (await q<Parameters<typeof ventaLine>[0]>('SELECT ubicacion_id, numero_factura, linea, producto_id, cantidad::text, precio_unitario::text, descuento::text, total::text, anulada FROM ventas')).map(ventaLine);
  const keys = Number((await q<{ n: string }>('SELECT count(DISTINCT (ubicacion_id, numero_factura, linea)) AS n FROM ventas'))[0]!.n);

  // ABC: the cache the sink's trigger left must be what a recalculation over these ventas gives.
  const abcRows = (rows: Array<{ alcance: string; producto_id: string; clase: string; ranking: number; valor_ventas: string }>) =>
    rows.map((r) => `${r.alcance} ${r.producto_id} ${r.clase} ${r.ranking} ${decimal(r.valor_ventas)}`).sort();
  const abcSql = 'SELECT alcance, producto_id, clase, ranking, valor_ventas::text FROM productos_abc_cache';
  let abc = { committed: [] as string[], recalculated: [] as string[] };
  for (let attempt = 0; attempt < 30; attempt++) {
    const committed = abcRows(await q(abcSql));
    const client = await pool.connect();
    let recalculated: string[];
    try {
      await client.query('BEGIN');
      await client.query('SELECT productos_abc_recalcular()');
      recalculated = abcRows((await client.query(abcSql)).rows);
    } finally {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release();
    }
    abc = { committed, recalculated };
    if (committed.length > 0 && JSON.stringify(committed) === JSON.stringify(recalculated)) break;
    await sleep(1_000); // the sink's debounced recalculation may still be on its way
  }

  const dlqKeys = new Map<string, Set<string>>();
  for (const topic of new Set(run.poison.map((p) => p.topic))) {
    const keys = new Set<string>();
    await run.pipeline.kafka.readToEnd(`${run.pipeline.prefix}${topic}.dlq`, [0, 1, 2], (r) => void keys.add(r.key?.toString() ?? ''));
    dlqKeys.set(topic, keys);
  }

  const failed = await q<{ ubicacion_id: string; started_at: Date; error_class: string }>("SELECT ubicacion_id, started_at, error_class FROM etl_runs WHERE status = 'FAILED' AND job = 'INVENTARIO'");
  return {
    actual,
    history,
    unplaced,
    ventas: { got: got.sort(), want: want.sort(), rows: got.length, keys },
    abc,
    dlqKeys,
    quarantined: quarantine.map((e) => ({ store: e.ubicacion_id, snapshot: e.snapshot_id, status: e.status, cycle: snapshotCycle.get(e.snapshot_id) })),
    massZeroSnapshots,
    glitchSnapshots,
    failedRuns: failed.map((f) => ({ store: f.ubicacion_id, cycle: cycleOf(f.started_at)?.cycle, errorClass: f.error_class })),
  };
}
