/**
 * The two ways of writing rows the benches compare the sink against: `COPY` into an empty
 * table (the ceiling) and the replaced system's `INSERT ... ON CONFLICT DO UPDATE` of every
 * column (multi-row VALUES, psycopg2 `execute_values`'s shape, or `unnest` arrays).
 */
import type pg from 'pg';
import { Readable } from 'node:stream';
import { pipeline as streamPipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import { INVENTARIO_ACTUAL_COLUMNS } from '../../sinks/sink-batch.ts';

/** PostgreSQL types of INVENTARIO_ACTUAL_COLUMNS, for unnest. */
export const INVENTARIO_ACTUAL_TYPES = ['text', 'text', 'text', 'numeric', 'numeric', 'numeric', 'boolean', 'uuid', 'timestamptz'];
export const INVENTARIO_KEY = ['ubicacion_id', 'deposito', 'producto_id'];

/** A table with inventario_actual's columns, defaults, primary key and fillfactor (90), empty. */
export async function createActualShapedTable(client: Pick<pg.Client, 'query'>, name: string): Promise<void> {
  await client.query(`DROP TABLE IF EXISTS ${name}`);
  await client.query(`CREATE TABLE ${name} (LIKE inventario_actual INCLUDING ALL) WITH (fillfactor = 90)`);
}

/** COPY (text format) of the chunks into `table`; returns the rows copied. */
export async function copyInto(
  client: pg.Client,
  table: string,
  chunks: Iterable<Buffer>,
  columns: readonly string[] = INVENTARIO_ACTUAL_COLUMNS,
): Promise<number> {
  const stream = client.query(copyFrom(`COPY ${table} (${columns.join(', ')}) FROM STDIN`));
  await streamPipeline(Readable.from(chunks), stream);
  return stream.rowCount;
}

/** One COPY text field (NULL as \N; tabs, newlines and backslashes escaped). */
export function copyField(v: string | number | boolean | Date | null | undefined): string {
  if (v === null || v === undefined) return '\\N';
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'boolean') return v ? 't' : 'f';
  const s = String(v);
  return /[\t\n\r\\]/.test(s) ? s.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r') : s;
}

/** `ON CONFLICT (key) DO UPDATE SET` every other column (no filter: every row is rewritten), plus `extraSet`. */
export function upsertTail(key: readonly string[], columns: readonly string[], extraSet = ''): string {
  const set = columns.filter((c) => !key.includes(c)).map((c) => `${c} = EXCLUDED.${c}`);
  return `ON CONFLICT (${key.join(', ')}) DO UPDATE SET ${[...set, ...(extraSet ? [extraSet] : [])].join(', ')}`;
}

/** Multi-row VALUES upsert of `rows` rows (parameters row by row, column by column). */
export function valuesUpsert(table: string, columns: readonly string[], key: readonly string[], rows: number, extraSet = ''): string {
  const tuples = Array.from({ length: rows }, (_, r) => `(${columns.map((_, c) => `$${r * columns.length + c + 1}`).join(', ')})`);
  return `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${tuples.join(', ')} ${upsertTail(key, columns, extraSet)}`;
}

/** unnest upsert: one array parameter per column. */
export function unnestUpsert(
  table: string,
  columns: readonly string[],
  types: readonly string[],
  key: readonly string[],
  extraSet = '',
): string {
  const arrays = types.map((t, i) => `$${i + 1}::${t}[]`).join(', ');
  return `INSERT INTO ${table} (${columns.join(', ')}) SELECT * FROM unnest(${arrays}) ${upsertTail(key, columns, extraSet)}`;
}
