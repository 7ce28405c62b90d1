/**
 * The PostgreSQL sink's writing half: the set-based statements that apply one plan of
 * sinks/sink-batch.ts, on a client already inside a transaction (the caller commits them
 * together with sink_offsets). Every statement binds one array per column
 * (`unnest($1::text[], ...)`): one round trip per statement whatever the batch size, and no
 * 65,535-parameter ceiling (PITFALLS.md).
 *
 * The statement order is the one the planner's header prescribes and its unit tests model.
 */
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
  actual_upserts: 0, actual_deletes: 0, historico_deleted: 0, historico_closed: 0, historico_opened: 0, productos: 0, ventas: 0, alertas: 0, etl_runs: 0,
});

export function addCounts(into: WriteCounts, more: WriteCounts): WriteCounts {
  for (const k of Object.keys(into) as Array<keyof WriteCounts>) into[k] += more[k];
  return into;
}

// The SQL array type of every column the sink writes.
const SQL_TYPES: Record<string, string> = {
  ubicacion_id: 'text', deposito: 'text', producto_id: 'text', cantidad: 'numeric', costo: 'numeric', precio: 'numeric', activo: 'boolean',
  snapshot_id: 'uuid', taken_at: 'timestamptz', valid_from: 'timestamptz', valid_to: 'timestamptz', op: 'text',
  descripcion: 'text', codigo_barras: 'text', departamento_codigo: 'text', departamento_nombre: 'text', grupo_codigo: 'text', grupo_nombre: 'text',
  subgrupo_codigo: 'text', subgrupo_nombre: 'text', unidad: 'text', visto_en: 'timestamptz',
  numero_factura: 'text', linea: 'integer', fecha: 'date', fecha_hora: 'timestamptz', precio_unitario: 'numeric', descuento: 'numeric', total: 'numeric',
  caja: 'text', anulada: 'boolean', fingerprint: 'text', first_fingerprint: 'text', first_seen_at: 'timestamptz', extracted_at: 'timestamptz', version: 'integer',
  alert_id: 'uuid', regla: 'text', confianza: 'float8', estado: 'text', resumen: 'text', evidencia: 'jsonb', abierta_en: 'timestamptz', actualizada_en: 'timestamptz',
  run_id: 'uuid', job: 'text', status: 'text', rows: 'bigint', started_at: 'timestamptz', finished_at: 'timestamptz', error_class: 'text', error_message: 'text',
};

/** `unnest($1::text[], $2::numeric[], ...) AS alias(col1, col2, ...)`, parameters from `first`. */
export function unnestOf(names: readonly string[], alias: string, first = 1): string {
  const args = names.map((n, i) => {
    const type = SQL_TYPES[n];
    if (!type) throw new Error(`no SQL type for column ${n}`);
    return `$${first + i}::${type}[]`;
  });
  return `unnest(${args.join(', ')}) AS ${alias}(${names.join(', ')})`;
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

export async function writeInventory(client: PoolClient, plan: InventoryPlan, targets: InventoryTargets = LIVE_TARGETS): Promise<WriteCounts> {
  const counts = emptyCounts();
  const { upserts, deletes } = plan.actual;
  if (targets.actual && length(upserts, INVENTARIO_ACTUAL_COLUMNS) > 0) {
    const set = INVENTARIO_ACTUAL_COLUMNS.filter((c) => !INVENTARIO_KEY_COLUMNS.includes(c as never)).map((c) => `${c} = EXCLUDED.${c}`);
    const r = await client.query(
      `INSERT INTO ${ident(targets.actual)} (${INVENTARIO_ACTUAL_COLUMNS.join(', ')})
       SELECT * FROM ${unnestOf(INVENTARIO_ACTUAL_COLUMNS, 'r')}
       ON CONFLICT (ubicacion_id, deposito, producto_id) DO UPDATE SET ${set.join(', ')}, actualizado_en = now()`,
      columnParams(upserts, INVENTARIO_ACTUAL_COLUMNS),
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

  const { closes, opens } = plan.historico;
  const h = ident(targets.historico);
  if (plan.months.length > 0) {
    await client.query('SELECT inventario_historico_asegurar_mes(m, $2) FROM unnest($1::timestamptz[]) AS m', [plan.months, targets.historico]);
  }
  // Step 2 of the planner's recipe (drop the open row a previous batch started at this
  // batch's first instant of the key) is folded into the INSERT below for keys that open a
  // row at that instant: same primary key, so ON CONFLICT replaces it. Only keys whose first
  // change is a d need the DELETE, and those are rare. (A DELETE for every key cost 22 to 71
  // s of a 300,000-event load, bench/sink.ts: PostgreSQL merged it over every open row.)
  const openedAt = new Set<string>();
  for (let i = 0; i < length(opens, INVENTARIO_HISTORICO_COLUMNS); i++) {
    openedAt.add(`${opens.ubicacion_id[i]}\u0000${opens.deposito[i]}\u0000${opens.producto_id[i]}\u0000${opens.valid_from[i]!.getTime()}`);
  }
  const dFirst = rowsOf(HISTORICO_CLOSE_COLUMNS, closes).filter((c) => !openedAt.has(`${c.ubicacion_id}\u0000${c.deposito}\u0000${c.producto_id}\u0000${c.valid_to.getTime()}`));
  const match = 'h.ubicacion_id = c.ubicacion_id AND h.deposito = c.deposito AND h.producto_id = c.producto_id AND h.valid_to IS NULL';
  if (dFirst.length > 0) {
    const deleted = await client.query(
      `DELETE FROM ${h} h USING ${unnestOf(HISTORICO_CLOSE_COLUMNS, 'c')} WHERE ${match} AND h.valid_from = c.valid_to`,
      columnParams(toColumns(HISTORICO_CLOSE_COLUMNS, dFirst), HISTORICO_CLOSE_COLUMNS),
    );
    counts.historico_deleted = deleted.rowCount ?? 0;
  }
  if (length(closes, HISTORICO_CLOSE_COLUMNS) > 0) {
    // The history is cached, not on a spinning disk: at the default random_page_cost of 4
    // PostgreSQL merges the batch over every open row (32 of 60 s of a 300,000-event load,
    // bench/sink.ts) instead of probing the open-rows index once per key.
    await client.query('SET LOCAL random_page_cost = 1.1');
    const closed = await client.query(
      `UPDATE ${h} h SET valid_to = c.valid_to FROM ${unnestOf(HISTORICO_CLOSE_COLUMNS, 'c')} WHERE ${match} AND h.valid_from < c.valid_to`,
      columnParams(closes, HISTORICO_CLOSE_COLUMNS),
    );
    counts.historico_closed = closed.rowCount ?? 0;
  }
  const nOpens = length(opens, INVENTARIO_HISTORICO_COLUMNS);
  if (nOpens > 0) {
    const set = INVENTARIO_HISTORICO_COLUMNS.filter((c) => !['ubicacion_id', 'deposito', 'producto_id', 'valid_from'].includes(c)).map((c) => `${c} = EXCLUDED.${c}`);
    const r = await client.query(
      `INSERT INTO ${h} AS h (${INVENTARIO_HISTORICO_COLUMNS.join(', ')}) SELECT * FROM ${unnestOf(INVENTARIO_HISTORICO_COLUMNS, 'o')}
       ON CONFLICT (ubicacion_id, deposito, producto_id, valid_from) DO UPDATE SET ${set.join(', ')} WHERE h.valid_to IS NULL`,
      columnParams(opens, INVENTARIO_HISTORICO_COLUMNS),
    );
    // A conflict with a closed interval means a key's taken_at went backwards across
    // batches: refuse it as the plain INSERT did (the sink sets the record aside).
    if ((r.rowCount ?? 0) !== nOpens) {
      throw Object.assign(new Error(`${nOpens - (r.rowCount ?? 0)} history row(s) would reopen a closed interval of ${h}: a key's taken_at went backwards`), { code: '23505' });
    }
    counts.historico_opened = nOpens;
  }

  if (targets.productos && length(plan.productos, PRODUCTOS_COLUMNS) > 0) {
    const set = PRODUCTOS_COLUMNS.filter((c) => c !== 'producto_id').map((c) => `${c} = EXCLUDED.${c}`);
    const r = await client.query(
      `INSERT INTO productos (${PRODUCTOS_COLUMNS.join(', ')}) SELECT * FROM ${unnestOf(PRODUCTOS_COLUMNS, 'p')}
       ON CONFLICT (producto_id) DO UPDATE SET ${set.join(', ')}, actualizado_en = now()
       WHERE (productos.visto_en, productos.ubicacion_id) <= (EXCLUDED.visto_en, EXCLUDED.ubicacion_id)`,
      columnParams(plan.productos, PRODUCTOS_COLUMNS),
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
  const set = ALERTAS_COLUMNS.filter((c) => c !== 'alert_id').map((c) => `${c} = EXCLUDED.${c}`);
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
