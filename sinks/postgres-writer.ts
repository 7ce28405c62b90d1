/**
 * The PostgreSQL sink's writing half: the set-based statements that apply one plan of
 * sinks/sink-batch.ts, on a client already inside a transaction (the caller commits them
 * together with sink_offsets). Each statement reads its rows from one of two sources:
 *
 * - small groups (under `copyMinRows`, a quiet cycle's slice): one array per column
 *   (`unnest($1::text[], ...)`), one round trip whatever the size and no 65,535-parameter
 *   ceiling (docs/pitfalls.md);
 * - large groups (cycle 1 of a store, a full reload, `fluxion replay historico`): `COPY` into
 *   a TEMP staging table of the session, then the same statement `SELECT`s from it. COPY
 *   skips building and parsing array literals, the largest per-row cost of a load
 *   (bench/sink.ts). The staging tables are `ON COMMIT DELETE ROWS` and emptied before each
 *   use, inside the caller's transaction: the rows and sink_offsets still commit together.
 *
 * Both sources feed the same statements, so a plan writes the same rows either way
 * (test/integration/sink-copy.test.ts). The statement order is the one the planner's header
 * prescribes and its unit tests model.
 */
import { FluxionError, type FluxionErrorOptions } from '../core/errors.ts';
import type { PoolClient } from '../core/postgres.ts';
import {
  ALERTAS_COLUMNS,
  columnParams,
  ETL_RUNS_COLUMNS,
  HISTORICO_CLOSE_COLUMNS,
  INVENTARIO_ACTUAL_COLUMNS,
  INVENTARIO_HISTORICO_COLUMNS,
  INVENTARIO_KEY_COLUMNS,
  PRODUCTOS_COLUMNS,
  rowsOf,
  toColumns,
  VENTAS_COLUMNS,
  type AlertasPlan,
  type Columns,
  type EtlRunRow,
  type InventoryPlan,
  type VentasPlan,
} from './sink-batch.ts';
import { prepareStages, type Stage, sourceOf, unnestOf } from './sink-copy-staging.ts';

// Moved to sinks/sink-copy-staging.ts; still importable from here.
export { copyChunks, copyField, unnestOf } from './sink-copy-staging.ts';

/** Rows each statement touched, for logs and metrics. */
export interface WriteCounts {
  actual_upserts: number;
  actual_deletes: number;
  historico_deleted: number;
  historico_closed: number;
  historico_opened: number;
  productos: number;
  ventas: number;
  alertas: number;
  etl_runs: number;
}

export const emptyCounts = (): WriteCounts => ({
  actual_upserts: 0,
  actual_deletes: 0,
  historico_deleted: 0,
  historico_closed: 0,
  historico_opened: 0,
  productos: 0,
  ventas: 0,
  alertas: 0,
  etl_runs: 0,
});

export function addCounts(into: WriteCounts, more: WriteCounts): WriteCounts {
  for (const k of Object.keys(into) as Array<keyof WriteCounts>) into[k] += more[k];
  return into;
}

const length = <Row>(columns: Columns<Row>, names: readonly (keyof Row)[]): number => (columns[names[0]!] as unknown[]).length;
const ident = (name: string): string => `"${name.replace(/"/g, '""')}"`;

export interface InventoryTargets {
  /** Table of current rows; null when only the history is written (replay). */
  actual: string | null;
  historico: string;
  /** Whether productos is written (the live sink) or left alone (replay). */
  productos: boolean;
}

export const LIVE_TARGETS: InventoryTargets = { actual: 'inventario_actual', historico: 'inventario_historico', productos: true };

/**
 * Rows from which a statement's input goes through COPY instead of unnest arrays. Below it
 * the COPY's extra round trips (empty the staging table, COPY, then the statement) cost more
 * than the arrays save; a steady cycle's slices (a few hundred changes a partition) stay on
 * unnest, a load's (thousands) go through COPY.
 */
export const COPY_MIN_ROWS = 1_000;

/**
 * A batch would reopen a closed history interval: a key's taken_at went backwards across
 * batches. The upsert that detects it cannot fail by itself (it updates nothing), so this
 * error stands for the unique violation the plain INSERT raised: the sink refuses the record
 * as it refuses PostgreSQL's own data errors (sinks/postgres-sink.ts), with `sqlstate` in its
 * DLQ header and log line as before.
 */
export class HistoryOrderError extends FluxionError {
  /** The SQLSTATE PostgreSQL gave the same refusal before the upsert (unique_violation). */
  readonly sqlstate = '23505';
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'HISTORY_ORDER', retriable: false, ...options });
  }
}

export interface WriteOptions {
  /** See COPY_MIN_ROWS; 0 sends every group through COPY, Infinity none (tests compare the two). */
  copyMinRows?: number;
}

// ---------------------------------------------------------------------------------------
// inventario_actual, inventario_historico, productos
// ---------------------------------------------------------------------------------------

/** productos' descriptive columns: a row whose values all equal the stored ones is not written. */
const PRODUCTO_CONTENT = PRODUCTOS_COLUMNS.filter((c) => c !== 'producto_id' && c !== 'visto_en' && c !== 'ubicacion_id');
const contentOf = (alias: string) => `(${PRODUCTO_CONTENT.map((c) => `${alias}.${c}`).join(', ')})`;

export async function writeInventory(
  client: PoolClient,
  plan: InventoryPlan,
  targets: InventoryTargets = LIVE_TARGETS,
  options: WriteOptions = {},
): Promise<WriteCounts> {
  const counts = emptyCounts();
  const copyMinRows = options.copyMinRows ?? COPY_MIN_ROWS;
  const { upserts, deletes } = plan.actual;
  const { closes, opens } = plan.historico;
  const sizes: Record<Stage, number> = {
    actual: targets.actual ? length(upserts, INVENTARIO_ACTUAL_COLUMNS) : 0,
    closes: length(closes, HISTORICO_CLOSE_COLUMNS),
    opens: length(opens, INVENTARIO_HISTORICO_COLUMNS),
    productos: targets.productos ? length(plan.productos, PRODUCTOS_COLUMNS) : 0,
  };
  const staged = new Set((Object.keys(sizes) as Stage[]).filter((n) => sizes[n] > 0 && sizes[n] >= copyMinRows));
  if (staged.size > 0) await prepareStages(client, [...staged]);

  if (targets.actual && sizes.actual > 0) {
    const set = INVENTARIO_ACTUAL_COLUMNS.filter((c) => !INVENTARIO_KEY_COLUMNS.includes(c as never)).map((c) => `${c} = EXCLUDED.${c}`);
    const src = await sourceOf(client, 'actual', upserts, 'r', staged);
    const r = await client.query(
      `INSERT INTO ${ident(targets.actual)} (${INVENTARIO_ACTUAL_COLUMNS.join(', ')})
       SELECT * FROM ${src.from}
       ON CONFLICT (ubicacion_id, deposito, producto_id) DO UPDATE SET ${set.join(', ')}, actualizado_en = now()`,
      src.params,
    );
    counts.actual_upserts = r.rowCount ?? 0;
  }
  if (targets.actual && length(deletes, INVENTARIO_KEY_COLUMNS) > 0) {
    const r = await client.query(
      `DELETE FROM ${ident(targets.actual)} a USING ${unnestOf(INVENTARIO_KEY_COLUMNS, 'k')}
       WHERE a.ubicacion_id = k.ubicacion_id AND a.deposito = k.deposito AND a.producto_id = k.producto_id`,
      columnParams(deletes, INVENTARIO_KEY_COLUMNS),
    );
    counts.actual_deletes = r.rowCount ?? 0;
  }

  const h = ident(targets.historico);
  if (plan.months.length > 0) {
    await client.query('SELECT inventario_historico_asegurar_mes(m, $2) FROM unnest($1::timestamptz[]) AS m', [
      plan.months,
      targets.historico,
    ]);
  }
  // Step 2 of the planner's recipe (drop the open row a previous batch started at this
  // batch's first instant of the key) is folded into the INSERT below for keys that open a
  // row at that instant: same primary key, so ON CONFLICT replaces it. Only keys whose first
  // change is a d need the DELETE, and those are rare. (A DELETE for every key cost 22 to 71
  // s of a 300,000-event load, bench/sink.ts: PostgreSQL merged it over every open row.)
  const openedAt = new Set<string>();
  for (let i = 0; i < sizes.opens; i++) {
    openedAt.add(`${opens.ubicacion_id[i]}\u0000${opens.deposito[i]}\u0000${opens.producto_id[i]}\u0000${opens.valid_from[i]!.getTime()}`);
  }
  const dFirst = rowsOf(HISTORICO_CLOSE_COLUMNS, closes).filter(
    (c) => !openedAt.has(`${c.ubicacion_id}\u0000${c.deposito}\u0000${c.producto_id}\u0000${c.valid_to.getTime()}`),
  );
  const match = 'h.ubicacion_id = c.ubicacion_id AND h.deposito = c.deposito AND h.producto_id = c.producto_id AND h.valid_to IS NULL';
  if (dFirst.length > 0) {
    const deleted = await client.query(
      `DELETE FROM ${h} h USING ${unnestOf(HISTORICO_CLOSE_COLUMNS, 'c')} WHERE ${match} AND h.valid_from = c.valid_to`,
      columnParams(toColumns(HISTORICO_CLOSE_COLUMNS, dFirst), HISTORICO_CLOSE_COLUMNS),
    );
    counts.historico_deleted = deleted.rowCount ?? 0;
  }
  if (sizes.closes > 0) {
    // The history is cached, not on a spinning disk: at the default random_page_cost of 4
    // PostgreSQL merges the batch over every open row (32 of 60 s of a 300,000-event load,
    // bench/sink.ts) instead of probing the open-rows index once per key.
    await client.query('SET LOCAL random_page_cost = 1.1');
    const src = await sourceOf(client, 'closes', closes, 'c', staged);
    const closed = await client.query(
      `UPDATE ${h} h SET valid_to = c.valid_to FROM ${src.from} WHERE ${match} AND h.valid_from < c.valid_to`,
      src.params,
    );
    counts.historico_closed = closed.rowCount ?? 0;
  }
  if (sizes.opens > 0) {
    const set = INVENTARIO_HISTORICO_COLUMNS.filter((c) => !['ubicacion_id', 'deposito', 'producto_id', 'valid_from'].includes(c)).map(
      (c) => `${c} = EXCLUDED.${c}`,
    );
    const src = await sourceOf(client, 'opens', opens, 'o', staged);
    const r = await client.query(
      `INSERT INTO ${h} AS h (${INVENTARIO_HISTORICO_COLUMNS.join(', ')}) SELECT * FROM ${src.from}
       ON CONFLICT (ubicacion_id, deposito, producto_id, valid_from) DO UPDATE SET ${set.join(', ')} WHERE h.valid_to IS NULL`,
      src.params,
    );
    // A conflict with a closed interval means a key's taken_at went backwards across
    // batches: refuse it as the plain INSERT did (the sink sets the record aside).
    if ((r.rowCount ?? 0) !== sizes.opens) {
      throw new HistoryOrderError(
        `${sizes.opens - (r.rowCount ?? 0)} history row(s) would reopen a closed interval of ${h}: a key's taken_at went backwards`,
        { context: { table: targets.historico } },
      );
    }
    counts.historico_opened = sizes.opens;
  }

  if (targets.productos && sizes.productos > 0) {
    const set = PRODUCTOS_COLUMNS.filter((c) => c !== 'producto_id').map((c) => `${c} = EXCLUDED.${c}`);
    const src = await sourceOf(client, 'productos', plan.productos, 's', staged);
    // Only descriptions that differ from the stored one are written: ON CONFLICT ... DO
    // UPDATE ... WHERE alone would still lock and WAL-log every conflicting row (docs/pitfalls.md),
    // and most inventory changes are quantities. So visto_en is when the stored description
    // was last written, not last confirmed (as in sinks/productos-refresh.ts), and the guard
    // still keeps an older description from overwriting it. In key order: two partitions
    // writing shared products take their row locks in the same order and cannot deadlock.
    const r = await client.query(
      `INSERT INTO productos AS p (${PRODUCTOS_COLUMNS.join(', ')})
       SELECT s.* FROM ${src.from} LEFT JOIN productos cur ON cur.producto_id = s.producto_id
       WHERE cur.producto_id IS NULL
          OR (${contentOf('cur')} IS DISTINCT FROM ${contentOf('s')} AND (cur.visto_en, cur.ubicacion_id) <= (s.visto_en, s.ubicacion_id))
       ORDER BY s.producto_id
       ON CONFLICT (producto_id) DO UPDATE SET ${set.join(', ')}, actualizado_en = now()
       WHERE (p.visto_en, p.ubicacion_id) <= (EXCLUDED.visto_en, EXCLUDED.ubicacion_id)
         AND ${contentOf('p')} IS DISTINCT FROM ${contentOf('EXCLUDED')}`,
      src.params,
    );
    counts.productos = r.rowCount ?? 0;
  }
  return counts;
}

export async function writeVentas(client: PoolClient, plan: VentasPlan): Promise<WriteCounts> {
  const counts = emptyCounts();
  if (length(plan.upserts, VENTAS_COLUMNS) === 0) return counts;
  const cols = VENTAS_COLUMNS.filter((c) => c !== 'version');
  const set = VENTAS_COLUMNS.filter((c) => !['ubicacion_id', 'numero_factura', 'linea'].includes(c)).map((c) => `${c} = EXCLUDED.${c}`);
  // version is nextVentaVersion, computed against the stored line.
  const r = await client.query(
    `INSERT INTO ventas (${VENTAS_COLUMNS.join(', ')})
     SELECT ${cols.map((c) => `v.${c}`).join(', ')},
            CASE WHEN cur.version IS NULL THEN v.version
                 ELSE cur.version + v.version - (cur.fingerprint = v.first_fingerprint)::int END
     FROM ${unnestOf([...VENTAS_COLUMNS, 'first_fingerprint'], 'v')}
     LEFT JOIN ventas cur ON cur.ubicacion_id = v.ubicacion_id AND cur.numero_factura = v.numero_factura AND cur.linea = v.linea
     ON CONFLICT (ubicacion_id, numero_factura, linea) DO UPDATE SET ${set.join(', ')}`,
    [...columnParams(plan.upserts, VENTAS_COLUMNS), plan.first_fingerprint],
  );
  counts.ventas = r.rowCount ?? 0;
  return counts;
}

export async function writeAlertas(client: PoolClient, plan: AlertasPlan): Promise<WriteCounts> {
  const counts = emptyCounts();
  // mergeAlerta (sinks/sink-batch.ts) is this SET: a dismissed row stays DESCARTADA and keeps
  // the resolution it had; nota and the descartada_* columns are never written here.
  const set = ALERTAS_COLUMNS.filter((c) => c !== 'alert_id').map((c) => {
    if (c === 'estado') return `estado = CASE WHEN alertas.estado = 'DESCARTADA' THEN alertas.estado ELSE EXCLUDED.estado END`;
    if (c === 'resuelta_en')
      return `resuelta_en = CASE WHEN alertas.estado = 'DESCARTADA'
        THEN COALESCE(EXCLUDED.resuelta_en, alertas.resuelta_en) ELSE EXCLUDED.resuelta_en END`;
    return `${c} = EXCLUDED.${c}`;
  });
  // Resolved first: it frees each product's OPEN slot of alertas_una_abierta (see planAlertas).
  for (const part of [plan.resolved, plan.open]) {
    if (length(part, ALERTAS_COLUMNS) === 0) continue;
    const r = await client.query(
      `INSERT INTO alertas (${ALERTAS_COLUMNS.join(', ')}) SELECT * FROM ${unnestOf(ALERTAS_COLUMNS, 'a')}
       ON CONFLICT (alert_id) DO UPDATE SET ${set.join(', ')}`,
      columnParams(part, ALERTAS_COLUMNS),
    );
    counts.alertas += r.rowCount ?? 0;
  }
  return counts;
}

export async function writeEtlRuns(client: PoolClient, runs: Columns<EtlRunRow>): Promise<WriteCounts> {
  const counts = emptyCounts();
  if (length(runs, ETL_RUNS_COLUMNS) === 0) return counts;
  const set = ETL_RUNS_COLUMNS.filter((c) => c !== 'run_id' && c !== 'ubicacion_id').map((c) => `${c} = EXCLUDED.${c}`);
  const r = await client.query(
    `INSERT INTO etl_runs (${ETL_RUNS_COLUMNS.join(', ')}) SELECT * FROM ${unnestOf(ETL_RUNS_COLUMNS, 'r')}
     ON CONFLICT (run_id, ubicacion_id) DO UPDATE SET ${set.join(', ')}`,
    columnParams(runs, ETL_RUNS_COLUMNS),
  );
  counts.etl_runs = r.rowCount ?? 0;
  return counts;
}

/** The next offsets to read, per topic and partition, as stored with the rows. */
export async function readSinkOffsets(client: Pick<PoolClient, 'query'>, group: string): Promise<Map<string, bigint>> {
  const r = await client.query<{ topic: string; partition: number; next_offset: string }>(
    'SELECT topic, partition, next_offset FROM sink_offsets WHERE consumer_group = $1',
    [group],
  );
  return new Map(r.rows.map((row) => [`${row.topic}\u0000${row.partition}`, BigInt(row.next_offset)]));
}

export async function writeSinkOffset(client: PoolClient, group: string, topic: string, partition: number, next: bigint): Promise<void> {
  await client.query(
    `INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset) VALUES ($1, $2, $3, $4)
     ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, actualizado_en = now()`,
    [group, topic, partition, next.toString()],
  );
}
