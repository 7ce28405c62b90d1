/**
 * What the simulated VAD10 database understands: the session `set` batch tedious sends after
 * login, the pool's `SELECT 1;`, and the inventory query of sql/stellar/query_inventario_generic.sql
 * (recognised by its text, comments stripped and whitespace normalised). Anything else is
 * answered with a SQL Server-style error, never with an empty result. Also the shape of the
 * inventory answer: its 13 columns and how a truth row becomes their values.
 */
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../core/paths.ts';
import type { InventarioTruthRow } from '../data/store-simulation.ts';
import { isDecimalText, type CellValue, type ColumnDef, type ServerMessage } from './tds-protocol.ts';

export const INVENTARIO_SQL_PATH = join(PROJECT_ROOT, 'sql', 'stellar', 'query_inventario_generic.sql');

/** The query's only parameter, bound by the extractor (never formatted into the text). */
export const DEPOSITO_PARAM = '@codigo_deposito';

export type Recognized =
  | { kind: 'session-settings' }
  | { kind: 'select-one' }
  | { kind: 'inventario' }
  | { kind: 'error'; error: ServerMessage };

interface Segment {
  quoted: boolean;
  text: string;
}

/**
 * Splits T-SQL into code and quoted parts ('strings', "identifiers", [identifiers]) and drops
 * comments (`-- ...` up to the end of the line, nestable `/* ... *\/`). A line comment leaves
 * its newline behind, a block comment a space, so statements stay apart.
 */
function lex(sql: string): Segment[] | ServerMessage {
  const segments: Segment[] = [];
  let code = '';
  let i = 0;
  const pushCode = () => {
    if (code) segments.push({ quoted: false, text: code });
    code = '';
  };
  while (i < sql.length) {
    const c = sql[i]!;
    const next = sql[i + 1];
    if (c === '-' && next === '-') {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? sql.length : end;
      continue;
    }
    if (c === '/' && next === '*') {
      let depth = 1;
      i += 2;
      while (i < sql.length && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--;
          i += 2;
        } else {
          i++;
        }
      }
      if (depth > 0) return { number: 113, state: 1, class: 15, message: "Missing end comment mark '*/'." };
      code += ' ';
      continue;
    }
    if (c === "'" || c === '"' || c === '[') {
      const close = c === '[' ? ']' : c;
      let j = i + 1;
      for (;;) {
        if (j >= sql.length) {
          if (c === "'") return { number: 105, state: 1, class: 15, message: `Unclosed quotation mark after the character string '${sql.slice(i + 1, i + 41)}'.` };
          return { number: 102, state: 1, class: 15, message: `Incorrect syntax near '${sql.slice(i, i + 40)}'.` };
        }
        if (sql[j] === close) {
          if (sql[j + 1] === close) {
            j += 2; // doubled quote: an escaped one
            continue;
          }
          break;
        }
        j++;
      }
      pushCode();
      segments.push({ quoted: true, text: sql.slice(i, j + 1) });
      i = j + 1;
      continue;
    }
    code += c;
    i++;
  }
  pushCode();
  return segments;
}

function isError(x: Segment[] | ServerMessage): x is ServerMessage {
  return !Array.isArray(x);
}

function normalizeSegments(segments: Segment[]): string {
  return segments
    .map((s) => (s.quoted ? s.text : s.text.replace(/\s+/g, ' ')))
    .join('')
    .trim()
    .replace(/(\s*;)+$/, '')
    .trim();
}

/**
 * Comments stripped, runs of whitespace outside quotes turned into one space, trimmed, and
 * trailing semicolons dropped. Two texts SQL Server would run identically compare equal;
 * quoted literals are kept byte for byte.
 */
export function normalizeSql(sql: string): string {
  const segments = lex(sql);
  return isError(segments) ? sql.replace(/\s+/g, ' ').trim() : normalizeSegments(segments);
}

/** The error SQL Server would give a statement this database does not have. */
function unknownStatement(normalized: string): ServerMessage {
  const from = /\bfrom\s+((?:\[[^\]]+\]|[\w#@$]+)(?:\.(?:\[[^\]]+\]|[\w#@$]+))*)/i.exec(normalized);
  if (from) return { number: 208, state: 1, class: 16, message: `Invalid object name '${from[1]}'.` };
  const word = normalized.split(' ')[0] ?? '';
  return { number: 102, state: 1, class: 15, message: `Incorrect syntax near '${word.slice(0, 40)}'.` };
}

/** `set <option> ...` statements only, one per line or separated by semicolons. */
function isSessionSettings(segments: Segment[]): boolean {
  const text = segments.map((s) => s.text).join('');
  const statements = text
    .split(/[\r\n;]+/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  return statements.length > 0 && statements.every((s) => /^set\s+\w+/i.test(s));
}

export interface StatementRecognizer {
  /** A SQL_BATCH's text. */
  batch(sql: string): Recognized;
  /** The @statement of an sp_executesql RPC. */
  executeSql(sql: string): Recognized;
}

export function createStatementRecognizer(inventarioSql: string): StatementRecognizer {
  const inventario = normalizeSql(inventarioSql).toLowerCase();
  const recognize = (sql: string, batch: boolean): Recognized => {
    const segments = lex(sql);
    if (isError(segments)) return { kind: 'error', error: segments };
    if (isSessionSettings(segments)) return { kind: 'session-settings' };
    const normalized = normalizeSegments(segments);
    // The server's collation is case-insensitive: so is the comparison (quoted text included,
    // as the query's literals 'BARRA' and '000017' compare under that collation too).
    if (/^select 1$/i.test(normalized)) return { kind: 'select-one' };
    if (normalized.toLowerCase() === inventario) {
      // Sent as a batch the parameter cannot exist: SQL Server reports the undeclared variable.
      if (batch) return { kind: 'error', error: { number: 137, state: 2, class: 15, message: `Must declare the scalar variable "${DEPOSITO_PARAM}".` } };
      return { kind: 'inventario' };
    }
    return { kind: 'error', error: unknownStatement(normalized) };
  };
  return { batch: (sql) => recognize(sql, true), executeSql: (sql) => recognize(sql, false) };
}

// ---------------------------------------------------------------------------------------
// The inventory answer

/** The columns of the inventory query, in its SELECT order, with VAD10's types. */
export const INVENTARIO_COLUMNS: readonly ColumnDef[] = [
  { name: 'codigo_producto', type: { kind: 'varchar', length: 15 }, nullable: false },
  { name: 'codigo_barras', type: { kind: 'varchar', length: 20 }, nullable: true },
  { name: 'descripcion', type: { kind: 'varchar', length: 100 }, nullable: false },
  { name: 'departamento_codigo', type: { kind: 'varchar', length: 10 }, nullable: false },
  { name: 'departamento_nombre', type: { kind: 'varchar', length: 100 }, nullable: false },
  { name: 'grupo_codigo', type: { kind: 'varchar', length: 10 }, nullable: true },
  { name: 'grupo_nombre', type: { kind: 'varchar', length: 100 }, nullable: true },
  { name: 'subgrupo_codigo', type: { kind: 'varchar', length: 10 }, nullable: true },
  { name: 'subgrupo_nombre', type: { kind: 'varchar', length: 100 }, nullable: true },
  { name: 'unidad', type: { kind: 'varchar', length: 5 }, nullable: false },
  { name: 'cantidad', type: { kind: 'decimal', precision: 18, scale: 3 }, nullable: false },
  { name: 'costo', type: { kind: 'decimal', precision: 18, scale: 4 }, nullable: true },
  { name: 'precio', type: { kind: 'decimal', precision: 18, scale: 4 }, nullable: true },
];

/**
 * What travels for a cantidad that is not a decimal (the `invalidDecimalFor` fault makes it
 * "12,5"). A DECIMAL column cannot carry such text in real SQL Server either, so the fault
 * shows as the largest decimal(18,3): far beyond any stock, and beyond the 2^53 a JS number
 * holds exactly, so a careful extractor must refuse it rather than publish it.
 */
export const OUT_OF_RANGE_CANTIDAD = '999999999999999.999';

/** A truth row as the 13 values of the query's columns. */
export function inventarioCells(row: InventarioTruthRow): CellValue[] {
  return [
    row.producto_id,
    row.codigo_barras,
    row.descripcion,
    row.departamento_codigo,
    row.departamento_nombre,
    row.grupo_codigo,
    row.grupo_nombre,
    row.subgrupo_codigo,
    row.subgrupo_nombre,
    row.unidad,
    isDecimalText(row.cantidad) ? row.cantidad : OUT_OF_RANGE_CANTIDAD,
    row.costo,
    row.precio,
  ];
}

/**
 * The deposito a parameter value designates, compared as SQL Server compares varchar under a
 * CI collation: case-insensitive, trailing spaces ignored. Undefined when none matches (the
 * query then returns no rows, as a WHERE on an unknown code does).
 */
export function matchDeposito(depositos: readonly string[], value: unknown): string | undefined {
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  const wanted = String(value).replace(/ +$/, '').toLowerCase();
  return depositos.find((d) => d.replace(/ +$/, '').toLowerCase() === wanted);
}
