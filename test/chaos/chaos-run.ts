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
 * After the last cycle everything runs undisturbed until it settled; `collectOutcome()`
 * (test/chaos/chaos-outcome.ts) then reads PostgreSQL, the DLQs and the quarantine, and the
 * test compares them with what the simulators said (their truth, recorded at every cycle).
 * Replay a run with its seed: CHAOS_SEED=<seed>. Child logs stay in the printed directory.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Ubicacion } from '../../core/config/ubicaciones.ts';
import { PROJECT_ROOT } from '../../core/paths.ts';
import { fechaCaracas } from '../../core/time.ts';
import { waitForPipelineSettled } from '../../ops/pipeline-settled.ts';
import { syncUbicaciones } from '../../ops/ubicaciones-sync.ts';
import type { StoreSimulation } from '../../simulators/data/store-simulation.ts';
import { servedInventario, type StoreFaults } from '../../simulators/faults.ts';
import { seededRandom } from '../helpers/kill-harness.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';
import { serviceEnv } from '../../fixtures/services.ts';
import { migratedDatabase, type MigratedDatabase } from '../../fixtures/sink-run.ts';

import {
  injectPoison,
  pick,
  plannedRandom,
  planFaults,
  retryClean,
  LONG_RUNNING,
  type FaultKind,
  type LongRunning,
} from './chaos-faults.ts';
import { stockLine } from './chaos-outcome.ts';
import { alive, services, startFluxion, supervise, type Child } from './chaos-processes.ts';
import { startChaosStores } from './chaos-stores.ts';

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

function emptyTruth(cycle: number): CycleTruth {
  return { cycle, from: Date.now(), to: 0, stock: new Map(), massZero: new Set(), glitch: new Set(), failing: new Set() };
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

  // The simulated stores, their POS simulators and the store list the children read.
  const { sims, klkIds, secrets, faults, ubicacionesFile } = await startChaosStores(o, logDir, closers);
  const { loadUbicaciones, loadConfig } = await import('../../cli/config.ts');
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
  const commands: Record<LongRunning, string[]> = {
    differ: ['process', 'differ'],
    dedupe: ['process', 'dedupe'],
    phantom: ['process', 'phantom'],
    sink: ['sink', 'postgres'],
  };
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
    const child = startFluxion(
      ['extract', ...args, '--todas', '--deadline-seconds', String(deadlineSeconds)],
      env,
      join(logDir, 'extractor.log'),
      (s) => (out += s),
    );
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
    serviceFaults.set(
      service,
      run.catch(() => undefined),
    );
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
            const pid = Number(
              readFileSync(
                join(process.env.FLUXION_SERVICES_DIR ?? join(PROJECT_ROOT, '.cache', 'services'), 'kafka', 'kafka.pid'),
                'utf8',
              ),
            );
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
            const sql =
              'SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> ' +
              'pg_backend_pid()';
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
    const truth = emptyTruth(cycle);
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
    event(
      `cycle ${cycle}: inventario exit ${inv.signal ?? inv.code}, ventas ${fecha} exit ` +
        `${ven.signal ?? ven.code}${kinds.length ? ` (faults: ${kinds.join(', ')})` : ''}`,
    );
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
    const truth = emptyTruth(cycle + 1);
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
    await waitForPipelineSettled(pipeline.kafka, db.pool, {
      prefix: pipeline.prefix,
      partitions: 3,
      timeoutMs: 240_000,
      onWait: (b) => event(`settling: ${b}`),
    });
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
