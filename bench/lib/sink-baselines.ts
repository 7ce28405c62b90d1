/**
 * bench/sink.ts's baselines and measuring: a cycle's rows and their COPY text, PostgreSQL
 * backend CPU, WAL and peak RSS, the COPY ceiling (a), and the replaced system's UPSERT of every
 * row of every snapshot (c), each timed as one pass.
 */
import { copyInto, createActualShapedTable, INVENTARIO_ACTUAL_TYPES, INVENTARIO_KEY, unnestUpsert, valuesUpsert } from './pg-writes.ts';
import { machineBusySeconds, procCpuSeconds, procStatusKb } from './proc.ts';
import { round } from './stats.ts';
import { INVENTARIO_ACTUAL_COLUMNS, INVENTARIO_HISTORICO_COLUMNS, type InventarioActualRow } from '../../sinks/sink-batch.ts';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createLogger } from '../../core/logger.ts';
import type { InventoryRow } from '../../core/records.ts';
import type { MigratedDatabase } from '../../fixtures/sink-run.ts';

/** The columns of inventario_actual a writer sets (actualizado_en is left to its DEFAULT now()). */
export const ACTUAL_COLUMNS = INVENTARIO_ACTUAL_COLUMNS;
/** inventario_historico's columns as a cycle-1 history row has them (op c, open interval). */
export const HISTORICO_COPY_COLUMNS = INVENTARIO_HISTORICO_COLUMNS;
export const ACTUAL_TYPES = INVENTARIO_ACTUAL_TYPES;
export const log = createLogger({ level: 'warn', destination: 2 });

// ---------------------------------------------------------------------------------------
// What a cycle is: one snapshot of every store (rows of test/helpers/inventory-feed.ts).
// ---------------------------------------------------------------------------------------

export type ActualRow = InventarioActualRow;

export interface Cycle {
  n: number;
  takenAt: Date;
  /** Per store, the snapshot as inventario_actual rows. */
  byStore: ActualRow[][];
}

export function actualRow(store: string, snapshotId: string, takenAt: Date, r: InventoryRow): ActualRow {
  return {
    ubicacion_id: store,
    deposito: r.deposito,
    producto_id: r.producto_id,
    cantidad: r.cantidad,
    costo: r.costo,
    precio: r.precio,
    activo: r.activo,
    snapshot_id: snapshotId,
    taken_at: takenAt,
  };
}

/**
 * COPY text format of `rows`, in chunks of about 1,000 rows: ACTUAL_COLUMNS, or with
 * `history` HISTORICO_COPY_COLUMNS (each row an open interval opened by a c).
 */
export function copyText(rows: Iterable<ActualRow>, history = false): Buffer[] {
  const out: Buffer[] = [];
  let lines: string[] = [];
  const v = (x: string | null) => (x === null ? '\\N' : x);
  for (const r of rows) {
    const head =
      `${r.ubicacion_id}\t${r.deposito}\t${r.producto_id}\t${r.cantidad}\t` + `${v(r.costo)}\t${v(r.precio)}\t${r.activo ? 't' : 'f'}\t`;
    lines.push(
      history
        ? `${head}c\t${r.snapshot_id}\t${r.taken_at.toISOString()}\t\\N\n`
        : `${head}${r.snapshot_id}\t${r.taken_at.toISOString()}\n`,
    );
    if (lines.length === 1_000) {
      out.push(Buffer.from(lines.join('')));
      lines = [];
    }
  }
  if (lines.length) out.push(Buffer.from(lines.join('')));
  return out;
}

// ---------------------------------------------------------------------------------------
// Measuring: PostgreSQL backend CPU, WAL, this process's peak RSS.
// ---------------------------------------------------------------------------------------

export const backendsCpu = (pids: Iterable<number>) => [...pids].reduce((s, p) => s + procCpuSeconds(p), 0);
export const nodeCpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
export const peakRssMb = () => procStatusKb('self', 'VmHWM') / 1024;

export async function walLsn(client: Pick<pg.Pool, 'query'>): Promise<string> {
  return (await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
}
export async function walMbSince(client: Pick<pg.Pool, 'query'>, from: string): Promise<number> {
  const r = await client.query<{ d: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::text AS d', [from]);
  return round(Number(r.rows[0]!.d) / 2 ** 20, 1);
}

// ---------------------------------------------------------------------------------------
// (a) COPY: the ceiling.
// ---------------------------------------------------------------------------------------

export interface SimplePass {
  wall_seconds: number;
  rows: number;
  rows_per_second: number;
  rows_written: number;
  node_cpu_seconds: number;
  pg_cpu_seconds: number;
  /** CPU of everything else on the machine over the pass (Kafka, the registry, other users): noise. */
  other_cpu_seconds: number;
  wal_mb: number;
}

export async function connect(db: MigratedDatabase): Promise<{ client: pg.Client; pid: number }> {
  const client = new pg.Client({ connectionString: db.url, application_name: 'fluxion-bench-sink' });
  await client.connect();
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  return { client, pid };
}

/**
 * COPY of the rows into an empty inventario_actual-shaped table; with `history`, the same
 * rows also into an empty table shaped like inventario_historico (its primary key and both
 * indexes; not partitioned), in one transaction: what the sink's cycle 1 must write at least.
 */
export async function copyPass(db: MigratedDatabase, chunks: Buffer[], historyChunks: Buffer[] | null, rows: number): Promise<SimplePass> {
  const { client, pid } = await connect(db);
  try {
    await createActualShapedTable(client, 'bench_copy_ceiling');
    if (historyChunks) {
      await client.query('DROP TABLE IF EXISTS bench_copy_historico');
      await client.query('CREATE TABLE bench_copy_historico (LIKE inventario_historico INCLUDING ALL)');
    }
    const wal0 = await walLsn(client);
    const cpu0 = nodeCpuSeconds();
    const pg0 = procCpuSeconds(pid);
    const busy0 = machineBusySeconds();
    const t0 = performance.now();
    let copied: number;
    if (historyChunks) {
      await client.query('BEGIN');
      copied = await copyInto(client, 'bench_copy_ceiling', chunks);
      copied += await copyInto(client, 'bench_copy_historico', historyChunks, HISTORICO_COPY_COLUMNS);
      await client.query('COMMIT');
    } else {
      copied = await copyInto(client, 'bench_copy_ceiling', chunks);
    }
    const wall = (performance.now() - t0) / 1000;
    const [nodeCpu, pgCpu] = [nodeCpuSeconds() - cpu0, procCpuSeconds(pid) - pg0];
    const pass = {
      wall_seconds: round(wall, 3),
      rows,
      rows_per_second: Math.round(rows / wall),
      rows_written: copied,
      node_cpu_seconds: round(nodeCpu),
      pg_cpu_seconds: round(pgCpu),
      other_cpu_seconds: round(machineBusySeconds() - busy0 - nodeCpu - pgCpu),
      wal_mb: await walMbSince(client, wal0),
    };
    const expected = historyChunks ? 2 * rows : rows;
    if (copied !== expected) throw new Error(`COPY wrote ${copied} rows, expected ${expected}`);
    await client.query('DROP TABLE IF EXISTS bench_copy_ceiling, bench_copy_historico');
    return pass;
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------------------
// (c) the replaced system: UPSERT every row of every snapshot.
// ---------------------------------------------------------------------------------------

export const ACTUAL_TOUCH = 'actualizado_en = now()';
export const valuesStatement = (table: string, rows: number) => valuesUpsert(table, ACTUAL_COLUMNS, INVENTARIO_KEY, rows, ACTUAL_TOUCH);
export const unnestStatement = (table: string) => unnestUpsert(table, ACTUAL_COLUMNS, ACTUAL_TYPES, INVENTARIO_KEY, ACTUAL_TOUCH);

export interface LegacyPass extends SimplePass {
  statements: number;
  transactions: number;
}

export async function legacyPass(
  db: MigratedDatabase,
  variant: 'values' | 'unnest',
  batch: number,
  cycle1Copy: Buffer[],
  cycle2: Cycle,
): Promise<LegacyPass> {
  const { client, pid } = await connect(db);
  const table = 'bench_legacy_actual';
  try {
    await createActualShapedTable(client, table);
    await copyInto(client, table, cycle1Copy);
    await client.query(`VACUUM ANALYZE ${table}`);
    const fullValues = variant === 'values' ? valuesStatement(table, batch) : '';
    const wal0 = await walLsn(client);
    const cpu0 = nodeCpuSeconds();
    const pg0 = procCpuSeconds(pid);
    const busy0 = machineBusySeconds();
    const t0 = performance.now();
    let written = 0;
    let statements = 0;
    for (const storeRows of cycle2.byStore) {
      await client.query('BEGIN');
      for (let i = 0; i < storeRows.length; i += batch) {
        const slice = storeRows.slice(i, i + batch);
        let r: pg.QueryResult;
        if (variant === 'values') {
          const params: unknown[] = [];
          for (const row of slice) for (const c of ACTUAL_COLUMNS) params.push(row[c]);
          r = await client.query(slice.length === batch ? fullValues : valuesStatement(table, slice.length), params);
        } else {
          r = await client.query(
            unnestStatement(table),
            ACTUAL_COLUMNS.map((c) => slice.map((row) => row[c])),
          );
        }
        written += r.rowCount ?? 0;
        statements++;
      }
      await client.query('COMMIT');
    }
    const wall = (performance.now() - t0) / 1000;
    const [nodeCpu, pgCpu] = [nodeCpuSeconds() - cpu0, procCpuSeconds(pid) - pg0];
    const otherCpu = machineBusySeconds() - busy0 - nodeCpu - pgCpu;
    const rows = cycle2.byStore.reduce((s, r) => s + r.length, 0);
    const pass: LegacyPass = {
      wall_seconds: round(wall, 3),
      rows,
      rows_per_second: Math.round(rows / wall),
      rows_written: written,
      node_cpu_seconds: round(nodeCpu),
      pg_cpu_seconds: round(pgCpu),
      other_cpu_seconds: round(otherCpu),
      wal_mb: await walMbSince(client, wal0),
      statements,
      transactions: cycle2.byStore.length,
    };
    const check = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table} WHERE taken_at = $1`, [cycle2.takenAt]);
    if (Number(check.rows[0]!.n) !== rows)
      throw new Error(`legacy ${variant}: ${check.rows[0]!.n} rows carry cycle ${cycle2.n}, expected ${rows}`);
    await client.query(`DROP TABLE ${table}`);
    return pass;
  } finally {
    await client.end();
  }
}
