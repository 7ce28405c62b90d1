/**
 * How the PostgreSQL sink's statements read their rows (sinks/postgres-writer.ts): unnest
 * arrays for small groups, COPY into a TEMP staging table for large ones. The module header
 * of sinks/postgres-writer.ts says when each applies and why.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import type { PoolClient } from '../core/postgres.ts';
import {
  columnParams,
  HISTORICO_CLOSE_COLUMNS,
  INVENTARIO_ACTUAL_COLUMNS,
  INVENTARIO_HISTORICO_COLUMNS,
  PRODUCTOS_COLUMNS,
  type Columns,
} from './sink-batch.ts';
// The SQL array type of every column the sink writes.
const SQL_TYPES: Record<string, string> = {
  ubicacion_id: 'text',
  deposito: 'text',
  producto_id: 'text',
  cantidad: 'numeric',
  costo: 'numeric',
  precio: 'numeric',
  activo: 'boolean',
  snapshot_id: 'uuid',
  taken_at: 'timestamptz',
  valid_from: 'timestamptz',
  valid_to: 'timestamptz',
  op: 'text',
  descripcion: 'text',
  codigo_barras: 'text',
  departamento_codigo: 'text',
  departamento_nombre: 'text',
  grupo_codigo: 'text',
  grupo_nombre: 'text',
  subgrupo_codigo: 'text',
  subgrupo_nombre: 'text',
  unidad: 'text',
  visto_en: 'timestamptz',
  numero_factura: 'text',
  linea: 'integer',
  fecha: 'date',
  fecha_hora: 'timestamptz',
  precio_unitario: 'numeric',
  descuento: 'numeric',
  total: 'numeric',
  caja: 'text',
  anulada: 'boolean',
  fingerprint: 'text',
  first_fingerprint: 'text',
  first_seen_at: 'timestamptz',
  extracted_at: 'timestamptz',
  version: 'integer',
  alert_id: 'uuid',
  regla: 'text',
  confianza: 'float8',
  estado: 'text',
  resumen: 'text',
  evidencia: 'jsonb',
  abierta_en: 'timestamptz',
  actualizada_en: 'timestamptz',
  resuelta_en: 'timestamptz',
  run_id: 'uuid',
  job: 'text',
  status: 'text',
  rows: 'bigint',
  started_at: 'timestamptz',
  finished_at: 'timestamptz',
  error_class: 'text',
  error_message: 'text',
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

// ---------------------------------------------------------------------------------------
// COPY staging
// ---------------------------------------------------------------------------------------

/** TEMP staging tables, one per statement input, with the columns of its plan group in order. */
const STAGES = {
  actual: { table: 'pg_temp.sink_stage_actual', columns: INVENTARIO_ACTUAL_COLUMNS },
  closes: { table: 'pg_temp.sink_stage_closes', columns: HISTORICO_CLOSE_COLUMNS },
  opens: { table: 'pg_temp.sink_stage_opens', columns: INVENTARIO_HISTORICO_COLUMNS },
  productos: { table: 'pg_temp.sink_stage_productos', columns: PRODUCTOS_COLUMNS },
} as const;

export type Stage = keyof typeof STAGES;

const stageDdl = (name: Stage): string => {
  const { table, columns } = STAGES[name];
  // A bare name: CREATE TEMP TABLE refuses a schema-qualified one.
  const definitions = (columns as readonly string[]).map((c) => `${c} ${SQL_TYPES[c]}`).join(', ');
  return `CREATE TEMP TABLE IF NOT EXISTS ${table.slice('pg_temp.'.length)} (${definitions}) ON COMMIT DELETE ROWS`;
};

/**
 * Creates the staging tables a session lacks and empties those `stages` use: one round trip.
 * Emptying matters within one transaction (the replay's swap writes many slices in one);
 * ON COMMIT DELETE ROWS leaves nothing behind in a pooled session afterwards.
 */
export async function prepareStages(client: PoolClient, stages: readonly Stage[]): Promise<void> {
  // client_min_messages: no "relation already exists, skipping" NOTICE on every transaction.
  await client.query(
    [`SET LOCAL client_min_messages = warning`, ...stages.map(stageDdl), `TRUNCATE ${stages.map((n) => STAGES[n].table).join(', ')}`].join(
      ';\n',
    ),
  );
}

/** One COPY text field: NULL as \\N; backslash, tab, newline and carriage return escaped. */
export function copyField(v: unknown): string {
  if (v === null || v === undefined) return '\\N';
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'boolean') return v ? 't' : 'f';
  const s = String(v);
  return /[\\\t\n\r]/.test(s) ? s.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r') : s;
}

/** COPY text of the column arrays, in chunks of about 64 KB. */
export function* copyChunks(arrays: readonly unknown[][], rows: number): Generator<Buffer> {
  let text = '';
  for (let i = 0; i < rows; i++) {
    let line = copyField(arrays[0]![i]);
    for (let c = 1; c < arrays.length; c++) line += `\t${copyField(arrays[c]![i])}`;
    text += `${line}\n`;
    if (text.length >= 65_536) {
      yield Buffer.from(text);
      text = '';
    }
  }
  if (text) yield Buffer.from(text);
}

/** COPY (text) of column arrays, given in `columns` order, into `table`; returns the rows copied. */
async function copyRows(client: PoolClient, table: string, columns: readonly string[], arrays: readonly unknown[][]): Promise<number> {
  const rows = arrays[0]?.length ?? 0;
  const stream = client.query(copyFrom(`COPY ${table} (${columns.join(', ')}) FROM STDIN`));
  await pipeline(Readable.from(copyChunks(arrays, rows)), stream);
  if (stream.rowCount !== rows) throw new Error(`COPY into ${table} wrote ${stream.rowCount} rows of ${rows}`);
  return rows;
}

/** COPY of a plan group into its (emptied) staging table; returns the rows copied. */
async function copyStage<Row>(client: PoolClient, name: Stage, data: Columns<Row>): Promise<number> {
  const { table, columns } = STAGES[name];
  return copyRows(
    client,
    table,
    columns,
    (columns as readonly string[]).map((c) => (data as Record<string, unknown[]>)[c]!),
  );
}

/**
 * The row source of a statement: `FROM <staging table> AS alias` after a COPY, or
 * `FROM unnest(...) AS alias(columns)` with its arrays as parameters from `first`.
 */
interface Source {
  from: string;
  params: unknown[];
}

export async function sourceOf<Row>(
  client: PoolClient,
  name: Stage,
  data: Columns<Row>,
  alias: string,
  staged: ReadonlySet<Stage>,
  first = 1,
): Promise<Source> {
  const { table, columns } = STAGES[name];
  if (!staged.has(name))
    return {
      from: unnestOf(columns as readonly string[], alias, first),
      params: columnParams(data, columns as readonly string[] as unknown as readonly (keyof Row)[]),
    };
  await copyStage(client, name, data);
  return { from: `${table} AS ${alias}`, params: [] };
}
