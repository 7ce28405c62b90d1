/**
 * The dashboard's store figures from PostgreSQL (ops/dashboard/sampler.ts takes them each
 * sample): one read of etl_runs, inventario_historico, alertas and the table statistics, and
 * the pure step that turns those rows into each active store's freshness and the row counts.
 */
import type pg from 'pg';
import type { Ubicacion } from '../../core/config/ubicaciones.ts';
import type { Locale } from '../../core/i18n.ts';
import type { Pool } from '../../core/postgres.ts';
import type { ScheduledJob } from '../schedule-config.ts';
import { storeFreshness, type FreshnessRules, type PolledJob, type RunInfo, type StoreInputs } from './freshness.ts';
import { storeQuarantine, type DashboardSample, type QuarantineCount } from './sample.ts';

export type StoreFigures = Pick<DashboardSample, 'stores' | 'rowsExtracted' | 'changes24h' | 'rowsWritten'>;

export interface StoreQueries {
  lastRuns: Array<{
    ubicacion_id: string;
    job: string;
    status: string;
    run_id: string;
    started_at: Date;
    finished_at: Date;
    rows: string;
    snapshot_id: string | null;
    error_class: string | null;
    error_message: string | null;
  }>;
  okStarts: Array<{ ubicacion_id: string; job: string; started_at: Date }>;
  firstRuns: Array<{ job: string; first: Date }>;
  applied: Array<{ ubicacion_id: string; snapshot_id: string; valid_from: Date }>;
  alerts: Array<{ ubicacion_id: string; open: string }>;
  extracted: Array<{ ubicacion_id: string; job: string; rows: string }>;
  changes: Array<{ ubicacion_id: string; changes: string }>;
  written: Array<{ relname: string; ins: string; upd: string; del: string }>;
}

export async function queryStores(pool: Pool, stores: Ubicacion[], nowDate: Date, lookbackMs: number): Promise<StoreQueries> {
  const ids = stores.map((u) => u.id);
  const since = new Date(nowDate.getTime() - lookbackMs);
  const day = new Date(nowDate.getTime() - 86_400_000);
  const q = async <T extends object>(text: string, values: unknown[] = []) =>
    (await pool.query<T & pg.QueryResultRow>(text, values)).rows as T[];
  return {
    lastRuns: await q(
      `SELECT DISTINCT ON (ubicacion_id, job, status)
         ubicacion_id, job, status, run_id, started_at, finished_at, rows, snapshot_id, error_class, error_message
         FROM etl_runs WHERE ubicacion_id = ANY($1) AND job IN ('INVENTARIO', 'VENTAS')
        ORDER BY ubicacion_id, job, status, finished_at DESC`,
      [ids],
    ),
    okStarts: await q(
      `SELECT ubicacion_id, job, started_at FROM etl_runs WHERE status = 'OK' AND started_at >= $1 AND job IN ('INVENTARIO', 'VENTAS')`,
      [since],
    ),
    firstRuns: await q(`SELECT job, min(started_at) AS first FROM etl_runs WHERE job IN ('INVENTARIO', 'VENTAS') GROUP BY job`),
    applied: await q(
      `SELECT u.id AS ubicacion_id, h.snapshot_id, h.valid_from
         FROM unnest($1::text[]) AS u(id)
         CROSS JOIN LATERAL (
           SELECT snapshot_id, valid_from FROM inventario_historico WHERE ubicacion_id = u.id ORDER BY valid_from DESC LIMIT 1
         ) h`,
      [ids],
    ),
    alerts: await q(`SELECT ubicacion_id, count(*) AS open FROM alertas WHERE estado = 'OPEN' GROUP BY ubicacion_id`),
    extracted: await q(`SELECT ubicacion_id, job, sum(rows) AS rows FROM etl_runs WHERE status = 'OK' GROUP BY ubicacion_id, job`),
    changes: await q(`SELECT ubicacion_id, count(*) AS changes FROM inventario_historico WHERE valid_from >= $1 GROUP BY ubicacion_id`, [
      day,
    ]),
    written: await q(
      `SELECT relname, n_tup_ins AS ins, n_tup_upd AS upd, n_tup_del AS del FROM pg_stat_user_tables
        WHERE relname IN ('inventario_actual', 'ventas', 'alertas', 'etl_runs', 'productos') OR relname LIKE 'inventario\\_historico%'`,
    ),
  };
}

function toRun(r: StoreQueries['lastRuns'][number]): RunInfo {
  return {
    runId: r.run_id,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    rows: Number(r.rows),
    snapshotId: r.snapshot_id,
    errorClass: r.error_class,
    errorMessage: r.error_message,
  };
}

export interface StoreFiguresContext {
  stores: Ubicacion[];
  schedule: ScheduledJob[];
  nowDate: Date;
  freshnessRules: FreshnessRules;
  locale: Locale;
  quarantineCounts: readonly QuarantineCount[];
}

/** The sample's store figures from what queryStores read (pure). */
export function storeFigures(data: StoreQueries, c: StoreFiguresContext): StoreFigures {
  const stores = c.stores
    .filter((u) => u.activa)
    .map((u) => {
      const monitoredSince: StoreInputs['monitoredSince'] = {};
      for (const job of ['INVENTARIO', 'VENTAS'] as const) monitoredSince[job] = data.firstRuns.find((r) => r.job === job)?.first ?? null;
      const input: StoreInputs = {
        id: u.id,
        nombre: u.nombre,
        pos: u.pos,
        lastOk: {},
        lastFailed: {},
        okStarts: {},
        monitoredSince,
        lastApplied: null,
        quarantined: 0,
        openAlerts: 0,
      };
      for (const r of data.lastRuns.filter((x) => x.ubicacion_id === u.id)) {
        (r.status === 'OK' ? input.lastOk : input.lastFailed)[r.job as PolledJob] = toRun(r);
      }
      for (const r of data.okStarts.filter((x) => x.ubicacion_id === u.id)) (input.okStarts[r.job as PolledJob] ??= []).push(r.started_at);
      const applied = data.applied.find((x) => x.ubicacion_id === u.id);
      if (applied) input.lastApplied = { snapshotId: applied.snapshot_id, takenAt: applied.valid_from };
      ({ quarantined: input.quarantined, stale: input.stale } = storeQuarantine(c.quarantineCounts, u.id));
      input.openAlerts = Number(data.alerts.find((x) => x.ubicacion_id === u.id)?.open ?? 0);
      return storeFreshness(input, c.schedule, c.nowDate, c.freshnessRules, c.locale);
    });
  const written = new Map<string, { insert: number; update: number; delete: number }>();
  for (const r of data.written) {
    const table = r.relname.startsWith('inventario_historico') ? 'inventario_historico' : r.relname;
    const w = written.get(table) ?? { insert: 0, update: 0, delete: 0 };
    w.insert += Number(r.ins);
    w.update += Number(r.upd);
    w.delete += Number(r.del);
    written.set(table, w);
  }
  return {
    stores,
    rowsExtracted: data.extracted.map((r) => ({ ubicacion: r.ubicacion_id, job: r.job, rows: Number(r.rows) })),
    changes24h: Object.fromEntries(data.changes.map((r) => [r.ubicacion_id, Number(r.changes)])),
    rowsWritten: [...written].flatMap(([table, w]) =>
      (['insert', 'update', 'delete'] as const).map((operation) => ({ table, operation, rows: w[operation] })),
    ),
  };
}
