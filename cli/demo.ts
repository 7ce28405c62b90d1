/**
 * `fluxion demo`: the whole pipeline on simulated stores, on this machine's services.
 *
 * Sets up PostgreSQL, topics and schemas; starts the simulators (every active store of the
 * store list, KLK and Stellar) in this process and every Fluxion process as a child (the
 * three processors, the sink, the notifier, the dashboard when built); runs compressed-time
 * cycles (30 simulated minutes each, a few real seconds apart: inventario, ventas, faults),
 * one ventas recovery and one ABC recalculation; waits until every record reached
 * PostgreSQL; prints a summary; then keeps everything running (dashboard URL printed) until
 * Ctrl-C, or exits with `--exit`. Exit 1 when a store ends without data in PostgreSQL.
 *
 * Faults injected (on the last cycle when there are fewer than three):
 *   cycle 2: a phantom zero (tienda_03 reports five selling products at 0) and a failing
 *            store (tienda_05 answers HTTP 500 to every request of that cycle);
 *   cycle 3: a mass-zero snapshot (tienda_07 reports 60% of its products at 0): quarantined.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { loadSubjectSchemas } from '../core/avro/schemas.ts';
import type { Ubicacion } from '../core/config/ubicaciones.ts';
import { ConfigError, UsageError } from '../core/errors.ts';
import { MIGRATIONS_DIR, PROJECT_ROOT } from '../core/paths.ts';
import { fechaCaracas } from '../core/time.ts';
import { topicSpecs } from '../core/topics.ts';
import { extractInventario, extractVentas, type StoreOutcome } from '../extractors/extract-run.ts';
import { migrate } from '../ops/migrate.ts';
import { waitForPipelineSettled } from '../ops/pipeline-settled.ts';
import { listQuarantine } from '../ops/quarantine.ts';
import { registerSchemas } from '../ops/schemas.ts';
import { ensureTopics } from '../ops/topics-ensure.ts';
import { syncUbicaciones } from '../ops/ubicaciones-sync.ts';
import { describeAbcResult, recalcAbc } from '../sinks/abc-recalc.ts';
import type { ProgramIo } from './program-io.ts';

interface DemoOptions {
  cycles: string;
  klkProducts: string;
  stellarProducts: string;
  cycleSeconds: string;
  dashboardPort: string;
  exit?: boolean;
}

const positive = (value: string, flag: string, max: number): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`${flag} must be a whole number from 1 to ${max}, got "${value}"`);
  return n;
};

interface Child {
  name: string;
  proc: ChildProcess;
  exited: Promise<number | null>;
}

/** Starts `fluxion <args>` as a child whose output goes to `<logDir>/<name>.log`. */
function startChild(name: string, args: string[], env: NodeJS.ProcessEnv, logDir: string): Child {
  const log = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' });
  const proc = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'fluxion.ts'), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.pipe(log);
  proc.stderr!.pipe(log);
  return { name, proc, exited: new Promise((resolve) => proc.once('exit', (code) => resolve(code))) };
}

async function stopChildren(children: Child[], out: (line: string) => void): Promise<void> {
  for (const c of children) if (c.proc.exitCode === null) c.proc.kill('SIGTERM');
  await Promise.race([Promise.all(children.map((c) => c.exited)), sleep(20_000)]);
  for (const c of children) {
    if (c.proc.exitCode === null && c.proc.signalCode === null) {
      out(`${c.name} did not stop within 20 s of SIGTERM: killed`);
      c.proc.kill('SIGKILL');
    }
  }
}

const fmt = (n: number) => n.toLocaleString('en-US');

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function registerDemoCommand(program: Command, io: ProgramIo): void {
  program
    .command('demo')
    .description('run the whole pipeline on simulated stores (simulators, processors, sink, notifier, dashboard), print a summary, keep it running until Ctrl-C')
    .option('--cycles <n>', 'compressed-time cycles (30 simulated minutes each)', '4')
    .option('--klk-products <n>', 'products per KLK store', '3000')
    .option('--stellar-products <n>', 'products per Stellar location and deposito', '8000')
    .option('--cycle-seconds <n>', 'real seconds between cycles', '5')
    .option('--dashboard-port <port>', 'port of the dashboard', '8080')
    .option('--exit', 'stop everything after the summary instead of waiting for Ctrl-C')
    .action(async (opts: DemoOptions) => {
      const cycles = positive(opts.cycles, '--cycles', 1000);
      const klkProducts = positive(opts.klkProducts, '--klk-products', 100_000);
      const stellarProducts = positive(opts.stellarProducts, '--stellar-products', 200_000);
      const cycleSeconds = positive(opts.cycleSeconds, '--cycle-seconds', 3600);
      const dashboardPort = positive(opts.dashboardPort, '--dashboard-port', 65_535);
      const c = io.context();
      if (c.config.environment !== 'local') throw new ConfigError(['ETL_ENVIRONMENT must be local for the demo: it serves the stores from simulators on this machine']);
      const out = io.out;
      const started = Date.now();
      const stores = c.ubicaciones().filter((u) => u.activa);
      const klkStores = stores.filter((u) => u.pos === 'klk');

      // Demo credentials, unless the environment has some: the simulators and the extractors
      // read the same variables.
      for (const u of stores) {
        if (u.pos === 'klk') process.env[u.klk.apiKeyEnv] ??= `demo-key-${u.id}`;
        else {
          process.env[u.stellar.userEnv] ??= 'fluxion_demo';
          process.env[u.stellar.passwordEnv] ??= `demo-password-${u.id}`;
        }
      }

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

      // 2. The simulators, in this process.
      const { StoreSimulation } = await import('../simulators/data/store-simulation.ts');
      const { FaultControl } = await import('../simulators/faults.ts');
      const { startKlkSimulator } = await import('../simulators/klk/server.ts');
      const { startStellarSimulator } = await import('../simulators/stellar/server.ts');
      const startAt = new Date(Math.floor(Date.now() / 1000) * 1000);
      const sims = new Map(
        stores.map((u) => [
          u.id,
          new StoreSimulation({ ubicacionId: u.id, pos: u.pos, depositos: u.depositos, products: u.pos === 'klk' ? klkProducts : stellarProducts, seed: `demo:${u.id}`, startAt, salesLinesPerHour: 1_200 }),
        ]),
      );
      const clock = () => new Date(sims.values().next().value!.clock);
      const faults = new FaultControl();
      const klkPort = Number(new URL((klkStores[0] as Extract<Ubicacion, { pos: 'klk' }>).klk.baseUrl).port);
      const closers: Array<() => Promise<void>> = [];
      const klk = await startKlkSimulator({
        stores: klkStores.map((u) => sims.get(u.id)!),
        apiKeys: Object.fromEntries(klkStores.map((u) => [u.id, process.env[(u as Extract<Ubicacion, { pos: 'klk' }>).klk.apiKeyEnv]!])),
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
          user: process.env[u.stellar.userEnv]!,
          password: process.env[u.stellar.passwordEnv]!,
          database: u.stellar.database,
          port: u.stellar.port,
          host: u.stellar.host,
          logger: c.logger,
        });
        closers.push(() => s.close());
      }
      out(`simulators: ${klkStores.length} KLK stores (${fmt(klkProducts)} products) at ${klk.url}, ${stores.length - klkStores.length} Stellar locations (${fmt(stellarProducts)} products a deposito)`);

      // 3. Every Fluxion process, as the containers would run them.
      const logDir = join(PROJECT_ROOT, '.cache', 'demo');
      mkdirSync(logDir, { recursive: true });
      // The children log at info into their files, whatever this terminal's level is.
      const childEnv: NodeJS.ProcessEnv = { ...process.env, FLUXION_SESSION_TIMEOUT_MS: '10000', FLUXION_ABC_DEBOUNCE_MS: '15000', LOG_LEVEL: 'info' };
      const children: Child[] = [
        startChild('differ', ['process', 'differ'], childEnv, logDir),
        startChild('dedupe', ['process', 'dedupe'], childEnv, logDir),
        startChild('phantom', ['process', 'phantom'], childEnv, logDir),
        startChild('sink', ['sink', 'postgres'], childEnv, logDir),
        startChild('notify', ['notify'], childEnv, logDir),
      ];
      const hasDashboard = program.commands.some((cmd) => cmd.name() === 'dashboard');
      if (hasDashboard) children.push(startChild('dashboard', ['dashboard', '--port', String(dashboardPort)], childEnv, logDir));
      out(`processes: ${children.map((ch) => ch.name).join(', ')} (logs in ${logDir}/)`);
      let stopping = false;
      for (const ch of children) {
        void ch.exited.then((code) => {
          if (!stopping) out(`warning: ${ch.name} exited with code ${code} (see ${join(logDir, `${ch.name}.log`)})`);
        });
      }
      const shutdown = async () => {
        stopping = true;
        await stopChildren(children, out);
        for (const close of closers) await close().catch(() => undefined);
      };
      const interrupted = new Promise<string>((resolve) => {
        process.once('SIGINT', () => resolve('SIGINT'));
        process.once('SIGTERM', () => resolve('SIGTERM'));
      });

      try {
        // 4. The cycles.
        const deps = { ...c.extractionDeps(), env: process.env, now: clock };
        const totals = { inventario: 0, ventas: 0, failed: 0 };
        const extractedAt = new Map<string, { snapshotId: string; at: number }>();
        const faultCycle = { phantom: Math.min(2, cycles), failing: Math.min(2, cycles), massZero: Math.min(3, cycles) };
        const describe = (o: StoreOutcome[]) => {
          const failed = o.filter((x) => x.status === 'FAILED');
          return `${o.length - failed.length}/${o.length} stores OK${failed.length ? ` (${failed.map((f) => `${f.ubicacionId} FAILED: ${f.errorClass}`).join('; ')})` : ''}`;
        };
        for (let cycle = 1; cycle <= cycles; cycle++) {
          if (cycle > 1) for (const s of sims.values()) s.advance(30);
          faults.clear();
          const notes: string[] = [];
          if (cycle === faultCycle.phantom && sims.has('tienda_03')) {
            const selling = sims.get('tienda_03')!.klkInventario('01').filter((r) => Number(r.cantidad) >= 10).slice(0, 5).map((r) => r.producto_id);
            faults.set('tienda_03', { phantomZeros: selling });
            notes.push(`tienda_03 reports ${selling.length} selling products at 0`);
          }
          if (cycle === faultCycle.failing && sims.has('tienda_05')) {
            faults.set('tienda_05', { httpError: { status: 500, times: 1_000 } });
            notes.push('tienda_05 answers HTTP 500');
          }
          if (cycle === faultCycle.massZero && sims.has('tienda_07')) {
            faults.set('tienda_07', { massZerosShare: 0.6 });
            notes.push('tienda_07 reports 60% of its products at 0');
          }
          if (notes.length) out(`cycle ${cycle}: faults: ${notes.join('; ')}`);
          const t0 = Date.now();
          const inv = await extractInventario(stores, deps, { concurrency: 4, retry: { retries: 2, initialDelayMs: 100, maxDelayMs: 500, factor: 2 } });
          for (const o of inv) if (o.status === 'OK' && o.snapshotId) extractedAt.set(o.ubicacionId, { snapshotId: o.snapshotId, at: Date.now() });
          const ven = await extractVentas(klkStores, fechaCaracas(clock()), 'VENTAS', deps, { concurrency: 4, retry: { retries: 2, initialDelayMs: 100, maxDelayMs: 500, factor: 2 } });
          const rowsInv = inv.reduce((n, o) => n + o.rows, 0);
          const rowsVen = ven.reduce((n, o) => n + o.rows, 0);
          totals.inventario += rowsInv;
          totals.ventas += rowsVen;
          totals.failed += [...inv, ...ven].filter((o) => o.status === 'FAILED').length;
          out(`cycle ${cycle} (${clock().toISOString()}): inventario ${describe(inv)}, ${fmt(rowsInv)} rows; ventas ${describe(ven)}, ${fmt(rowsVen)} lines; ${((Date.now() - t0) / 1000).toFixed(1)} s`);
          if (cycle < cycles) await Promise.race([sleep(cycleSeconds * 1000), interrupted]);
        }
        faults.clear();
        const recovery = await extractVentas(klkStores, fechaCaracas(clock()), 'VENTAS_RECOVERY', deps, { concurrency: 4 });
        out(`ventas recovery: ${describe(recovery)}, ${fmt(recovery.reduce((n, o) => n + o.rows, 0))} lines re-read (the dedupe drops the repeats)`);

        // 5. Wait for the pipeline, recalculate ABC, summarise.
        const settled = await waitForPipelineSettled(kafka, pool, { prefix, partitions, timeoutMs: 5 * 60_000, onWait: (behind) => out(`waiting: ${behind}`) });
        out('pipeline settled: every record is in PostgreSQL');
        const changes = settled.get('pos.inventario.changes') ?? 0;
        const abc = await recalcAbc(pool, { windowDays: c.config.abc.windowDays, logger: c.logger });
        out(`ABC: ${describeAbcResult(abc)}`);
        const count = async (sql: string, params: unknown[] = []) => Number((await pool.query<{ n: string }>(sql, params)).rows[0]!.n);
        const alertas = await pool.query<{ estado: string; n: string }>('SELECT estado, count(*) AS n FROM alertas GROUP BY estado ORDER BY estado');
        const quarantined = (await listQuarantine({ kafka, registry: c.registry(), logger: c.logger, topicPrefix: prefix })).filter((q) => q.status === 'QUARANTINED');
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
        out('');
        out(`summary after ${cycles} cycles, ${((Date.now() - started) / 1000).toFixed(0)} s:`);
        out(`  extracted        ${fmt(totals.inventario)} inventory rows, ${fmt(totals.ventas)} sales lines (${totals.failed} store runs failed)`);
        out(`  changes          ${fmt(changes)} change events on pos.inventario.changes`);
        out(`  PostgreSQL       inventario_actual ${fmt(await count('SELECT count(*) AS n FROM inventario_actual'))}, inventario_historico ${fmt(await count('SELECT count(*) AS n FROM inventario_historico'))}, ventas ${fmt(await count('SELECT count(*) AS n FROM ventas'))}, productos ${fmt(await count('SELECT count(*) AS n FROM productos'))}, etl_runs ${fmt(await count('SELECT count(*) AS n FROM etl_runs'))}, productos_abc_cache ${fmt(abc.filas)}`);
        out(`  alerts           ${alertas.rows.map((a) => `${a.n} ${a.estado}`).join(', ') || 'none'}`);
        out(`  quarantined      ${quarantined.map((q) => `${q.ubicacion_id} snapshot ${q.snapshot_id} (${q.reason})`).join('; ') || 'none'}`);
        out(`  freshness        extraction end to rows committed: p50 ${(percentile(freshness, 50) / 1000).toFixed(1)} s, p95 ${(percentile(freshness, 95) / 1000).toFixed(1)} s, max ${(Math.max(...freshness) / 1000).toFixed(1)} s over ${freshness.length} stores`);
        if (missing.length) {
          out(`  MISSING          no data in PostgreSQL for ${missing.join(', ')}`);
          process.exitCode = 1;
        } else out(`  every store       ${stores.length} stores have their data in PostgreSQL`);
        if (hasDashboard) out(`dashboard: http://127.0.0.1:${dashboardPort}/`);
        if (!opts.exit && !missing.length) {
          out('running until Ctrl-C (stops every process cleanly)');
          out(`stopped by ${await interrupted}`);
        }
      } finally {
        await shutdown();
      }
    });
}
