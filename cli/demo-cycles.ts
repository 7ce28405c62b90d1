/**
 * `fluxion demo`'s compressed-time cycles (cli/demo.ts starts everything first): inventario,
 * ventas and the injected faults each cycle, one ventas recovery, one ABC recalculation, the
 * wait until every record reached PostgreSQL, and the summary that fails the run when it does
 * not show what was injected (cli/demo-summary.ts).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Ubicacion } from '../core/config/ubicaciones.ts';
import { createLogger } from '../core/logger.ts';
import { fechaCaracas } from '../core/time.ts';
import type { StoreOutcome } from '../core/etl-run.ts';
import { extractInventario, extractVentas } from '../extractors/extract-run.ts';
import { waitForPipelineSettled } from '../ops/pipeline-settled.ts';
import { listQuarantine } from '../ops/quarantine.ts';
import { describeAbcResult, recalcAbc } from '../sinks/abc-recalc.ts';
import type { CommandContext } from './context.ts';
import { demoProblems, describeFreshness, describePhantomScore } from './demo-summary.ts';
import type { ProgramIo } from './program-io.ts';
// Types only: the simulators are loaded when the demo runs (only cli/, tests and bench import them).
import type { StoreSimulation } from '../simulators/data/store-simulation.ts';
import type { FaultControl } from '../simulators/faults.ts';
import type { PhantomScore } from '../simulators/data/anomaly-score.ts';

const fmt = (n: number) => n.toLocaleString('en-US');

export interface RunOptions {
  cycles: number;
  klkProducts: number;
  stellarProducts: number;
  cycleSeconds: number;
  dashboardPort: number;
  exit: boolean;
  logDir: string;
  withDashboard: boolean;
}

export interface CycleContext extends RunOptions {
  stores: Ubicacion[];
  klkStores: Ubicacion[];
  sims: Map<string, StoreSimulation>;
  clock: () => Date;
  faults: FaultControl;
  signal: AbortSignal;
  started: number;
}

/** The cycles, the wait for PostgreSQL and the summary; fails the run when the summary is not true. */
export async function cyclesAndSummary(c: CommandContext, io: ProgramIo, o: CycleContext): Promise<void> {
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
    const failures = failed.map((f) => `${f.ubicacionId} FAILED: ${f.errorClass}`).join('; ');
    return `${outcomes.length - failed.length}/${outcomes.length} stores OK${failed.length ? ` (${failures})` : ''}`;
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
    out(
      `cycle ${cycle} (${clock().toISOString()}): inventario ${describe(inv)}, ${fmt(rowsInv)} rows; ventas ${describe(ven)}, ` +
        `${fmt(rowsVen)} lines; ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    if (cycle < cycles) await sleep(o.cycleSeconds * 1000, undefined, { signal: o.signal });
  }
  faults.clear();
  const recovery = await extractVentas(klkStores, fechaCaracas(clock()), 'VENTAS_RECOVERY', deps, { concurrency: 4 });
  out(
    `ventas recovery: ${describe(recovery)}, ${fmt(recovery.reduce((n, x) => n + x.rows, 0))} lines re-read (the dedupe drops the ` +
      `repeats)`,
  );

  // Wait for the pipeline, recalculate ABC, summarise.
  const settled = await waitForPipelineSettled(kafka, pool, {
    prefix,
    partitions,
    timeoutMs: 5 * 60_000,
    signal: o.signal,
    onWait: (behind) => out(`waiting: ${behind}`),
  });
  out('pipeline settled: every record is in PostgreSQL');
  const changes = settled.get('pos.inventario.changes') ?? 0;
  const abc = await recalcAbc(pool, { windowDays: c.config.abc.windowDays, logger: c.logger });
  out(`ABC: ${describeAbcResult(abc)}`);
  const count = async (sql: string, params: unknown[] = []) => Number((await pool.query<{ n: string }>(sql, params)).rows[0]!.n);
  const alertas = await pool.query<{ estado: string; n: string }>(
    'SELECT estado, count(*) AS n FROM alertas GROUP BY estado ORDER BY estado',
  );
  const phantomScore = await scoreDemoAlerts(pool, o.sims, snapshotTimes);
  const failedRuns = await pool.query<{ ubicacion_id: string; n: string; errors: string }>(
    "SELECT ubicacion_id, count(*) AS n, string_agg(DISTINCT coalesce(error_class, '?'), ', ') AS errors FROM etl_runs WHERE status = " +
      "'FAILED' GROUP BY ubicacion_id ORDER BY ubicacion_id",
  );
  const recorded = await listQuarantine({ kafka, registry: c.registry(), logger: c.logger, topicPrefix: prefix });
  const quarantined = recorded.filter((q) => q.status === 'QUARANTINED');
  const stale = recorded.filter((q) => q.status === 'STALE');
  // Freshness: from the end of a store's last extraction to the commit of its rows.
  const freshness: number[] = [];
  for (const [id, { snapshotId, at }] of extractedAt) {
    const r = await pool.query<{ t: Date | null }>(
      'SELECT max(actualizado_en) AS t FROM inventario_actual WHERE ubicacion_id = $1 AND snapshot_id = $2',
      [id, snapshotId],
    );
    if (r.rows[0]?.t) freshness.push(Math.max(0, r.rows[0].t.getTime() - at));
  }
  const missing: string[] = [];
  for (const u of stores) {
    if ((await count('SELECT count(*) AS n FROM inventario_actual WHERE ubicacion_id = $1', [u.id])) === 0)
      missing.push(`${u.id} (inventario)`);
    if (u.pos === 'klk' && (await count('SELECT count(*) AS n FROM ventas WHERE ubicacion_id = $1', [u.id])) === 0)
      missing.push(`${u.id} (ventas)`);
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
  out(
    `  extracted        ${fmt(totals.inventario)} inventory rows, ${fmt(totals.ventas)} sales lines (${totals.failed} store runs failed)`,
  );
  out(`  changes          ${fmt(changes)} change events on pos.inventario.changes`);
  out(
    `  PostgreSQL       inventario_actual ${fmt(await count('SELECT count(*) AS n FROM inventario_actual'))}, inventario_historico ` +
      `${fmt(await count('SELECT count(*) AS n FROM inventario_historico'))}, ventas ` +
      `${fmt(await count('SELECT count(*) AS n FROM ventas'))}, productos ${fmt(await count('SELECT count(*) AS n FROM productos'))}, ` +
      `etl_runs ${fmt(await count('SELECT count(*) AS n FROM etl_runs'))}, productos_abc_cache ${fmt(abc.filas)}`,
  );
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
export async function scoreDemoAlerts(
  pool: ReturnType<CommandContext['pool']>,
  sims: Map<string, StoreSimulation>,
  snapshotTimes: Map<string, Date[]>,
): Promise<PhantomScore> {
  const { scorePhantomAlerts } = await import('../simulators/data/anomaly-score.ts');
  const rows = await pool.query<{
    alert_id: string;
    ubicacion_id: string;
    deposito: string;
    producto_id: string;
    regla: string;
    confianza: number;
    abierta_en: Date;
    cerrada: Date | null;
  }>('SELECT alert_id, ubicacion_id, deposito, producto_id, regla, confianza, abierta_en, resuelta_en AS cerrada FROM alertas');
  const alerts = rows.rows.map((r) => ({
    alert_id: r.alert_id,
    ubicacion_id: r.ubicacion_id,
    deposito: r.deposito,
    producto_id: r.producto_id,
    rule: r.regla,
    confidence: r.confianza,
    opened_at: r.abierta_en,
    resolved_at: r.cerrada,
  }));
  const labels = [...sims.values()].flatMap((s) => s.anomalies());
  const departmentOf = (ubicacionId: string, productoId: string) =>
    sims.get(ubicacionId)?.producto(productoId)?.departamento.codigo ?? null;
  return scorePhantomAlerts(labels, alerts, { graceMs: 30 * 60_000, departmentOf, snapshotTimes });
}
