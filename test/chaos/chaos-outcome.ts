/**
 * What the chaos run left (test/chaos/pipeline-chaos.test.ts compares it with the truth):
 * PostgreSQL's tables, the DLQs and the quarantine, read after the run, beside the truth the
 * simulators kept per cycle.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { listQuarantine } from '../../ops/quarantine.ts';
import { testLogger } from '../../fixtures/services.ts';

import type { ChaosRun } from './chaos-run.ts';

export const stockLine = (r: {
  deposito: string;
  producto_id: string;
  cantidad: string;
  costo: string | null;
  precio: string | null;
  activo: boolean;
}) => `${r.deposito}/${r.producto_id} ${r.cantidad} ${r.costo} ${r.precio} ${r.activo}`;

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
    const rows = await q<Parameters<typeof stockLine>[0]>(
      'SELECT deposito, producto_id, cantidad::text, costo::text, precio::text, activo FROM inventario_actual WHERE ubicacion_id = $1',
      [u.id],
    );
    actual.set(u.id, { got: rows.map(stockLine).sort(), want: last.stock.get(u.id)! });
  }

  // Every snapshot the extractors committed: each store's transaction carries its run record
  // (etl_runs, status OK), with started_at <= taken_at <= finished_at. A quarantined snapshot
  // stays listed once a later one superseded it; only a released one was applied.
  const quarantine = await listQuarantine({
    kafka: run.pipeline.kafka,
    registry: run.pipeline.registry,
    logger: testLogger,
    topicPrefix: run.pipeline.prefix,
  });
  const quarantinedIds = new Set(quarantine.filter((e) => e.status !== 'RELEASED').map((e) => e.snapshot_id));
  const runs = await q<{ ubicacion_id: string; snapshot_id: string; started_at: Date; finished_at: Date }>(
    "SELECT ubicacion_id, snapshot_id::text, started_at, finished_at FROM etl_runs WHERE job = 'INVENTARIO' AND status = 'OK' ORDER " +
      'BY started_at',
  );
  const snapshotCycle = new Map(runs.map((r) => [r.snapshot_id, cycleOf(r.started_at)?.cycle]));
  const history: ChaosOutcome['history'] = [];
  const unplaced: string[] = [];
  const massZeroSnapshots: ChaosOutcome['massZeroSnapshots'] = [];
  const glitchSnapshots: ChaosOutcome['glitchSnapshots'] = [];
  const at = (t: Date, store: string) =>
    q<Parameters<typeof stockLine>[0]>(
      'SELECT deposito, producto_id, cantidad::text, costo::text, precio::text, activo FROM inventario_al($1, $2)',
      [t, store],
    ).then((rows) => rows.map(stockLine).sort());
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
      history.push({
        store: u.id,
        snapshot: r.snapshot_id,
        cycle: c.cycle,
        at: r.finished_at.toISOString(),
        got: await at(r.finished_at, u.id),
        before: await at(new Date(next.getTime() - 1), u.id),
        want: c.stock.get(u.id)!,
      });
    }
  }

  // ventas: the simulators' lines of every fecha read, once each.
  const ventaLine = (v: {
    ubicacion_id: string;
    numero_factura: string;
    linea: number;
    producto_id: string;
    cantidad: string;
    precio_unitario: string;
    descuento: string;
    total: string;
    anulada: boolean;
  }) =>
    `${v.ubicacion_id}/${v.numero_factura}/${v.linea} ${v.producto_id} ${decimal(v.cantidad)} ${decimal(v.precio_unitario)} ` +
    `${decimal(v.descuento)} ${decimal(v.total)} ${v.anulada}`;
  const want: string[] = [];
  for (const sim of run.sims.values()) {
    if (sim.pos !== 'klk') continue;
    for (const fecha of run.fechas) for (const v of sim.ventas(fecha)) want.push(ventaLine({ ...v, ubicacion_id: sim.ubicacionId }));
  }
  const got = (
    await q<Parameters<typeof ventaLine>[0]>(
      'SELECT ubicacion_id, numero_factura, linea, producto_id, cantidad::text, precio_unitario::text, descuento::text, total::text, ' +
        'anulada FROM ventas',
    )
  ).map(ventaLine);
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

  const failed = await q<{ ubicacion_id: string; started_at: Date; error_class: string }>(
    "SELECT ubicacion_id, started_at, error_class FROM etl_runs WHERE status = 'FAILED' AND job = 'INVENTARIO'",
  );
  return {
    actual,
    history,
    unplaced,
    ventas: { got: got.sort(), want: want.sort(), rows: got.length, keys },
    abc,
    dlqKeys,
    quarantined: quarantine.map((e) => ({
      store: e.ubicacion_id,
      snapshot: e.snapshot_id,
      status: e.status,
      cycle: snapshotCycle.get(e.snapshot_id),
    })),
    massZeroSnapshots,
    glitchSnapshots,
    failedRuns: failed.map((f) => ({ store: f.ubicacion_id, cycle: cycleOf(f.started_at)?.cycle, errorClass: f.error_class })),
  };
}
