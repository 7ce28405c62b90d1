/**
 * The T-SQL the Stellar simulator runs, translated into SQLite: a parser for the SELECTs the
 * checked-in inventory query (sql/stellar/query_inventario_generic.sql) is written in, a
 * resolver that checks every table, column and parameter against the VAD10 catalogue and
 * types every result column as SQL Server would describe it on the wire, and an emitter of
 * the equivalent SQLite text.
 *
 * What it knows: SELECT [DISTINCT] [TOP n] with derived tables, INNER and LEFT [OUTER] JOIN,
 * WHERE, GROUP BY, HAVING, ORDER BY; =, <>, !=, <, <=, >, >=, AND, OR, NOT, IS [NOT] NULL,
 * [NOT] IN (list), + - * on numbers, + on strings; MIN, MAX, SUM, COUNT, ISNULL; [brackets]
 * and "quoted" identifiers, N'...' literals, dbo. prefixes, WITH (NOLOCK) hints, comments,
 * @parameters declared by sp_executesql. Anything else is a TsqlError naming the construct
 * (number 50000: not a SQL Server message, so nobody mistakes it for one), never a silent
 * different answer. Where SQLite would answer differently from SQL Server the translation
 * either adapts or refuses:
 * - comparisons between strings ignore trailing spaces and case (the server's CI collation):
 *   they are made COLLATE NOCASE (ASCII case only) and literals and parameters compared to
 *   strings are right-trimmed (the data itself has no trailing spaces);
 * - strings are ordered (ORDER BY, MIN, MAX, <, >) only while they are ASCII: unless the
 *   catalogue vouches for a column, the executing database's ORDER_GUARD function fails the
 *   statement on accented text, which SQL Server would sort by its collation and SQLite by
 *   bytes; equality on such text folds case beyond ASCII (FOLD);
 * - a string compared with a number (SQL Server converts the string, SQLite the number) is
 *   refused, as are + between a string and a number, / and %, and a condition that is not a
 *   predicate (SQLite accepts `WHERE n_Activo`, SQL Server does not);
 * - columns outside aggregates must be grouped (SQLite would silently pick a row).
 * Pure: no I/O; the caller supplies the catalogue and the declared parameters.
 */
import type { ColumnDef, ColumnType } from './tds-protocol.ts';

/** SQL Server's answer to a statement it cannot run; number 50000 is the translation's own. */
export class TsqlError extends Error {
  readonly number: number;
  readonly state: number;
  readonly class: number;
  readonly lineNumber: number;

  constructor(number: number, message: string, line = 1, severity = 16) {
    super(message);
    this.name = 'TsqlError';
    this.number = number;
    this.state = 1;
    this.class = severity;
    this.lineNumber = line;
  }
}

export const UNSUPPORTED = 50000;

function unsupported(construct: string, line: number): TsqlError {
  return new TsqlError(
    UNSUPPORTED,
    `T-SQL construct not supported by the Stellar simulator's translation: ${construct} (line ${line}).`,
    line,
  );
}

export interface CatalogColumn {
  name: string;
  type: ColumnType;
  nullable: boolean;
  /** Every value is printable ASCII, so SQLite compares and orders it as SQL Server does. */
  ascii?: boolean;
}

export interface CatalogTable {
  name: string;
  columns: readonly CatalogColumn[];
}

/** The database's tables, looked up case-insensitively (the server's collation). */
export interface Catalog {
  table(name: string): CatalogTable | undefined;
}

export interface ParamDeclaration {
  /** Lower case, with the '@'. */
  name: string;
  type: ColumnType;
}

export interface Translation {
  /** SQLite text; parameters appear as :p0, :p1... (the index of their declaration). */
  sql: string;
  /** The result's columns as SQL Server describes them (COLMETADATA). */
  columns: ColumnDef[];
  /** The declared parameters the text uses, with their SQLite names and declared types. */
  bindings: Array<{ key: string; param: string; type: ColumnType }>;
}

// ---------------------------------------------------------------------------------------
// Tokens

type TokenKind = 'word' | 'quoted' | 'string' | 'number' | 'param' | 'op' | 'eof';

export interface Token {
  kind: TokenKind;
  /** The source text ('word', 'op') or the unescaped value ('quoted', 'string'). */
  text: string;
  line: number;
  /** N'...' */
  national?: boolean;
}

const OPERATORS = ['<>', '!=', '<=', '>=', '=', '<', '>', '+', '-', '*', '/', '%', '(', ')', ',', '.', ';'];

/** Splits T-SQL into tokens, dropping comments (`--` to the end of the line, nestable block comments). */
export function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let i = 0;
  const advanceTo = (end: number) => {
    for (let j = i; j < end; j++) if (sql.charCodeAt(j) === 10) line++;
    i = end;
  };
  while (i < sql.length) {
    const c = sql[i]!;
    const next = sql[i + 1];
    if (/\s/.test(c)) {
      advanceTo(i + 1);
      continue;
    }
    if (c === '-' && next === '-') {
      const end = sql.indexOf('\n', i);
      advanceTo(end === -1 ? sql.length : end);
      continue;
    }
    if (c === '/' && next === '*') {
      let depth = 1;
      let j = i + 2;
      while (j < sql.length && depth > 0) {
        if (sql[j] === '/' && sql[j + 1] === '*') {
          depth++;
          j += 2;
        } else if (sql[j] === '*' && sql[j + 1] === '/') {
          depth--;
          j += 2;
        } else j++;
      }
      if (depth > 0) throw new TsqlError(113, "Missing end comment mark '*/'.", line, 15);
      advanceTo(j);
      continue;
    }
    const national = (c === 'N' || c === 'n') && next === "'";
    if (c === "'" || c === '"' || c === '[' || national) {
      const start = national ? i + 1 : i;
      const open = sql[start]!;
      const close = open === '[' ? ']' : open;
      let j = start + 1;
      let text = '';
      for (;;) {
        if (j >= sql.length) {
          if (open === "'")
            throw new TsqlError(
              105,
              `Unclosed quotation mark after the character string '${sql.slice(start + 1, start + 41)}'.`,
              line,
              15,
            );
          throw new TsqlError(102, `Incorrect syntax near '${sql.slice(start, start + 40)}'.`, line, 15);
        }
        if (sql[j] === close) {
          if (sql[j + 1] === close) {
            text += close;
            j += 2;
            continue;
          }
          break;
        }
        text += sql[j];
        j++;
      }
      tokens.push({ kind: open === "'" ? 'string' : 'quoted', text, line, ...(national ? { national: true } : {}) });
      advanceTo(j + 1);
      continue;
    }
    const word = /^(?:@@?|#{1,2})?[\p{L}_][\p{L}\p{N}_@$#]*/u.exec(sql.slice(i, i + 256));
    if (word) {
      const text = word[0];
      if (text.startsWith('#')) throw unsupported(`temporary table ${text}`, line);
      if (text.startsWith('@@')) throw unsupported(`system function ${text}`, line);
      tokens.push({ kind: text.startsWith('@') ? 'param' : 'word', text, line });
      advanceTo(i + text.length);
      continue;
    }
    const number = /^\d+(?:\.\d*)?|^\.\d+/.exec(sql.slice(i, i + 64));
    if (number) {
      if (/^[eE]/.test(sql.slice(i + number[0].length))) throw unsupported(`float literal ${number[0]}e...`, line);
      tokens.push({ kind: 'number', text: number[0], line });
      advanceTo(i + number[0].length);
      continue;
    }
    const op = OPERATORS.find((o) => sql.startsWith(o, i));
    if (!op) throw new TsqlError(102, `Incorrect syntax near '${c}'.`, line, 15);
    tokens.push({ kind: 'op', text: op, line });
    advanceTo(i + op.length);
  }
  tokens.push({ kind: 'eof', text: '', line });
  return tokens;
}

// ---------------------------------------------------------------------------------------
// Syntax

type Expr =
  | { k: 'col'; qualifier?: string; name: string; line: number }
  | { k: 'lit'; kind: 'string' | 'number' | 'null'; value: string; national?: boolean }
  | { k: 'param'; name: string; line: number }
  | { k: 'call'; fn: string; args: Expr[]; star: boolean; line: number }
  | { k: 'arith'; op: '+' | '-' | '*'; l: Expr; r: Expr; line: number }
  | { k: 'neg'; e: Expr; line: number }
  | { k: 'cmp'; op: string; l: Expr; r: Expr; line: number }
  | { k: 'logic'; op: 'AND' | 'OR'; l: Expr; r: Expr; line: number }
  | { k: 'not'; e: Expr; line: number }
  | { k: 'isnull'; e: Expr; not: boolean }
  | { k: 'in'; e: Expr; list: Expr[]; not: boolean; line: number };

type SelectItem = { k: 'star'; qualifier?: string; line: number } | { k: 'expr'; e: Expr; alias?: string; line: number };

type Source =
  | { k: 'table'; parts: string[]; alias?: string; line: number }
  | { k: 'derived'; select: Select; alias: string; line: number };

interface Join {
  kind: 'inner' | 'left';
  source: Source;
  on: Expr;
}

interface Select {
  distinct: boolean;
  top?: number;
  items: SelectItem[];
  from?: { first: Source; joins: Join[] };
  where?: Expr;
  groupBy: Expr[];
  having?: Expr;
  orderBy: Array<{ e: Expr; desc: boolean }>;
  line: number;
}

/** Keywords that end an expression or a source: never taken as an alias. */
const RESERVED = new Set(
  (
    'SELECT FROM WHERE GROUP BY HAVING ORDER ON JOIN INNER LEFT RIGHT FULL OUTER CROSS APPLY AND OR NOT IS NULL IN AS UNION EXCEPT ' +
    'INTERSECT WITH TOP DISTINCT ASC DESC CASE WHEN THEN ELSE END LIKE BETWEEN EXISTS OPTION FOR INTO OFFSET FETCH PIVOT UNPIVOT ' +
    'COLLATE OVER ALL ANY SOME ESCAPE'
  ).split(' '),
);

/** Keywords of T-SQL the translation does not know: named in the error. */
const UNSUPPORTED_KEYWORDS: Record<string, string> = {
  UNION: 'UNION',
  EXCEPT: 'EXCEPT',
  INTERSECT: 'INTERSECT',
  CASE: 'CASE',
  LIKE: 'LIKE',
  BETWEEN: 'BETWEEN',
  EXISTS: 'EXISTS',
  OPTION: 'OPTION (query hints)',
  FOR: 'FOR XML/JSON/BROWSE',
  INTO: 'SELECT INTO',
  OFFSET: 'OFFSET/FETCH',
  FETCH: 'OFFSET/FETCH',
  PIVOT: 'PIVOT',
  UNPIVOT: 'UNPIVOT',
  COLLATE: 'COLLATE',
  OVER: 'window functions (OVER)',
  ALL: 'ALL',
  ANY: 'ANY',
  SOME: 'SOME',
  WITH: 'WITH (common table expressions or hints other than NOLOCK)',
  RIGHT: 'RIGHT JOIN',
  FULL: 'FULL JOIN',
  CROSS: 'CROSS JOIN / CROSS APPLY',
  APPLY: 'APPLY',
  ESCAPE: 'ESCAPE',
  WHEN: 'CASE',
  THEN: 'CASE',
  ELSE: 'CASE',
  END: 'CASE',
};

const FUNCTIONS = new Set(['MIN', 'MAX', 'SUM', 'COUNT', 'ISNULL']);
const AGGREGATES = new Set(['MIN', 'MAX', 'SUM', 'COUNT']);
const WRITE_STATEMENTS = new Set(['DELETE', 'INSERT', 'UPDATE', 'MERGE']);

class Parser {
  private readonly tokens: Token[];
  private pos = 0;

  constructor(tokens: Token[]) {
    this.tokens = tokens;
  }

  get peek(): Token {
    return this.tokens[this.pos]!;
  }

  private at(offset: number): Token {
    return this.tokens[Math.min(this.pos + offset, this.tokens.length - 1)]!;
  }

  private next(): Token {
    const t = this.peek;
    if (t.kind !== 'eof') this.pos++;
    return t;
  }

  isWord(word: string, t: Token = this.peek): boolean {
    return t.kind === 'word' && t.text.toUpperCase() === word;
  }

  private isOp(op: string, t: Token = this.peek): boolean {
    return t.kind === 'op' && t.text === op;
  }

  private acceptWord(word: string): boolean {
    if (!this.isWord(word)) return false;
    this.pos++;
    return true;
  }

  private acceptOp(op: string): boolean {
    if (!this.isOp(op)) return false;
    this.pos++;
    return true;
  }

  /** The error for the token where parsing cannot go on. */
  fail(t: Token = this.peek): TsqlError {
    if (t.kind === 'word') {
      const construct = UNSUPPORTED_KEYWORDS[t.text.toUpperCase()];
      if (construct) return unsupported(construct, t.line);
    }
    if (t.kind === 'eof') return new TsqlError(102, 'Incorrect syntax near the end of the statement.', t.line, 15);
    const shown = t.kind === 'string' ? `'${t.text}'` : t.text;
    return new TsqlError(102, `Incorrect syntax near '${shown}'.`, t.line, 15);
  }

  private expectWord(word: string): void {
    if (!this.acceptWord(word)) throw this.fail();
  }

  private expectOp(op: string): void {
    if (!this.acceptOp(op)) throw this.fail();
  }

  private identifier(): string {
    const t = this.peek;
    if (t.kind === 'quoted' || (t.kind === 'word' && !RESERVED.has(t.text.toUpperCase()))) {
      this.pos++;
      return t.text;
    }
    throw this.fail();
  }

  private optionalAlias(): string | undefined {
    if (this.acceptWord('AS')) {
      if (this.peek.kind === 'string') return this.next().text;
      return this.identifier();
    }
    const t = this.peek;
    if (t.kind === 'quoted' || (t.kind === 'word' && !RESERVED.has(t.text.toUpperCase()))) return this.identifier();
    return undefined;
  }

  /** The whole batch: one SELECT, an optional semicolon. */
  statement(): Select {
    const first = this.peek;
    if (first.kind === 'word' && WRITE_STATEMENTS.has(first.text.toUpperCase())) throw this.writeRefused();
    if (!this.isWord('SELECT')) throw this.fail();
    const select = this.select();
    this.acceptOp(';');
    if (this.peek.kind !== 'eof') {
      if (this.isWord('SELECT') || this.isWord('SET') || this.isWord('DECLARE'))
        throw unsupported('several statements in one request', this.peek.line);
      throw this.fail();
    }
    return select;
  }

  /** A read-only login's answer to a write: SQL Server checks the permission on the object. */
  private writeRefused(): TsqlError {
    const verb = this.next().text.toUpperCase();
    const line = this.peek.line;
    if (!this.acceptWord('FROM')) this.acceptWord('INTO');
    const name = this.peek.kind === 'word' || this.peek.kind === 'quoted' ? this.peek.text : '?';
    return new TsqlError(229, `The ${verb} permission was denied on the object '${name}', database 'VAD10', schema 'dbo'.`, line, 14);
  }

  private select(): Select {
    const line = this.peek.line;
    this.expectWord('SELECT');
    const distinct = this.acceptWord('DISTINCT');
    if (this.isWord('ALL')) this.pos++;
    let top: number | undefined;
    if (this.acceptWord('TOP')) {
      const paren = this.acceptOp('(');
      const t = this.next();
      if (t.kind !== 'number' || !/^\d+$/.test(t.text)) {
        if (t.kind === 'param') throw unsupported('TOP with a variable', t.line);
        throw this.fail(t);
      }
      top = Number(t.text);
      if (paren) this.expectOp(')');
      if (this.isWord('PERCENT')) throw unsupported('TOP ... PERCENT', this.peek.line);
      if (this.isWord('WITH')) throw unsupported('TOP ... WITH TIES', this.peek.line);
    }
    const items: SelectItem[] = [];
    do items.push(this.selectItem());
    while (this.acceptOp(','));
    const select: Select = { distinct, items, groupBy: [], orderBy: [], line, ...(top === undefined ? {} : { top }) };
    if (this.isWord('INTO')) throw this.fail();
    if (this.acceptWord('FROM')) select.from = this.fromClause();
    if (this.acceptWord('WHERE')) select.where = this.expr();
    if (this.acceptWord('GROUP')) {
      this.expectWord('BY');
      do select.groupBy.push(this.expr());
      while (this.acceptOp(','));
    }
    if (this.acceptWord('HAVING')) select.having = this.expr();
    if (this.acceptWord('ORDER')) {
      this.expectWord('BY');
      do {
        const e = this.expr();
        const desc = this.acceptWord('DESC');
        if (!desc) this.acceptWord('ASC');
        select.orderBy.push({ e, desc });
      } while (this.acceptOp(','));
    }
    return select;
  }

  private selectItem(): SelectItem {
    const line = this.peek.line;
    if (this.acceptOp('*')) return { k: 'star', line };
    if ((this.peek.kind === 'word' || this.peek.kind === 'quoted') && this.isOp('.', this.at(1)) && this.isOp('*', this.at(2))) {
      const qualifier = this.identifier();
      this.pos += 2;
      return { k: 'star', qualifier, line };
    }
    if ((this.peek.kind === 'word' || this.peek.kind === 'quoted') && this.isOp('=', this.at(1)))
      throw unsupported('the "alias = expression" form in the select list', line);
    const e = this.expr();
    const alias = this.optionalAlias();
    return { k: 'expr', e, line, ...(alias === undefined ? {} : { alias }) };
  }

  private fromClause(): { first: Source; joins: Join[] } {
    const first = this.source();
    const joins: Join[] = [];
    for (;;) {
      const t = this.peek;
      if ((this.isWord('CROSS') || this.isWord('OUTER')) && this.isWord('APPLY', this.at(1)))
        throw unsupported(`${t.text.toUpperCase()} APPLY`, t.line);
      if (this.isOp(',')) throw unsupported('comma-separated tables in FROM (use JOIN ... ON)', t.line);
      let kind: Join['kind'];
      if (this.acceptWord('JOIN')) kind = 'inner';
      else if (this.acceptWord('INNER')) {
        this.expectWord('JOIN');
        kind = 'inner';
      } else if (this.acceptWord('LEFT')) {
        this.acceptWord('OUTER');
        this.expectWord('JOIN');
        kind = 'left';
      } else if (this.isWord('RIGHT') || this.isWord('FULL') || this.isWord('CROSS')) {
        throw unsupported(`${t.text.toUpperCase()} JOIN`, t.line);
      } else break;
      if (this.isWord('LOOP') || this.isWord('HASH') || this.isWord('MERGE') || this.isWord('REMOTE'))
        throw unsupported('join hints', this.peek.line);
      const source = this.source();
      this.expectWord('ON');
      joins.push({ kind, source, on: this.expr() });
    }
    return { first, joins };
  }

  private source(): Source {
    const line = this.peek.line;
    if (this.acceptOp('(')) {
      if (!this.isWord('SELECT')) throw this.fail();
      const select = this.select();
      this.expectOp(')');
      const alias = this.optionalAlias();
      if (alias === undefined) throw new TsqlError(102, `Incorrect syntax near ')': a derived table needs an alias.`, line, 15);
      return { k: 'derived', select, alias, line };
    }
    const parts = [this.identifier()];
    while (this.acceptOp('.')) parts.push(this.identifier());
    if (this.isOp('(')) throw unsupported(`table-valued function ${parts.join('.')}()`, line);
    const alias = this.optionalAlias();
    this.tableHints();
    return { k: 'table', parts, line, ...(alias === undefined ? {} : { alias }) };
  }

  /** WITH (NOLOCK): a read without shared locks; the simulator has no concurrent writers. */
  private tableHints(): void {
    if (!this.isWord('WITH') || !this.isOp('(', this.at(1))) return;
    this.pos += 2;
    do {
      const t = this.next();
      if (!this.isWord('NOLOCK', t) && !this.isWord('READUNCOMMITTED', t)) throw unsupported(`table hint ${t.text}`, t.line);
    } while (this.acceptOp(','));
    this.expectOp(')');
  }

  expr(): Expr {
    let l = this.andExpr();
    while (this.isWord('OR')) {
      const line = this.next().line;
      l = { k: 'logic', op: 'OR', l, r: this.andExpr(), line };
    }
    return l;
  }

  private andExpr(): Expr {
    let l = this.notExpr();
    while (this.isWord('AND')) {
      const line = this.next().line;
      l = { k: 'logic', op: 'AND', l, r: this.notExpr(), line };
    }
    return l;
  }

  private notExpr(): Expr {
    if (this.isWord('NOT')) {
      const line = this.next().line;
      return { k: 'not', e: this.notExpr(), line };
    }
    return this.predicate();
  }

  private predicate(): Expr {
    const l = this.additive();
    const t = this.peek;
    if (t.kind === 'op' && ['=', '<>', '!=', '<', '<=', '>', '>='].includes(t.text)) {
      this.pos++;
      if (this.isWord('ALL') || this.isWord('ANY') || this.isWord('SOME')) throw this.fail();
      return { k: 'cmp', op: t.text === '!=' ? '<>' : t.text, l, r: this.additive(), line: t.line };
    }
    if (this.acceptWord('IS')) {
      const not = this.acceptWord('NOT');
      this.expectWord('NULL');
      return { k: 'isnull', e: l, not };
    }
    const not =
      this.isWord('NOT') && (this.isWord('IN', this.at(1)) || this.isWord('LIKE', this.at(1)) || this.isWord('BETWEEN', this.at(1)));
    if (not) this.pos++;
    if (this.acceptWord('IN')) {
      this.expectOp('(');
      if (this.isWord('SELECT')) throw unsupported('IN (subquery)', this.peek.line);
      const list: Expr[] = [];
      do list.push(this.additive());
      while (this.acceptOp(','));
      this.expectOp(')');
      return { k: 'in', e: l, list, not, line: t.line };
    }
    if (not) throw this.fail();
    return l;
  }

  private additive(): Expr {
    let l = this.multiplicative();
    while (this.isOp('+') || this.isOp('-')) {
      const t = this.next();
      l = { k: 'arith', op: t.text as '+' | '-', l, r: this.multiplicative(), line: t.line };
    }
    return l;
  }

  private multiplicative(): Expr {
    let l = this.unary();
    for (;;) {
      const t = this.peek;
      if (this.isOp('/', t) || this.isOp('%', t))
        throw unsupported(`operator ${t.text} (integer and decimal division differ between SQL Server and SQLite)`, t.line);
      if (!this.isOp('*', t)) return l;
      this.pos++;
      l = { k: 'arith', op: '*', l, r: this.unary(), line: t.line };
    }
  }

  private unary(): Expr {
    const t = this.peek;
    if (this.acceptOp('-')) return { k: 'neg', e: this.unary(), line: t.line };
    if (this.acceptOp('+')) return this.unary();
    return this.primary();
  }

  private primary(): Expr {
    const t = this.next();
    switch (t.kind) {
      case 'string':
        return { k: 'lit', kind: 'string', value: t.text, ...(t.national ? { national: true } : {}) };
      case 'number':
        return { k: 'lit', kind: 'number', value: t.text };
      case 'param':
        return { k: 'param', name: t.text.toLowerCase(), line: t.line };
      case 'op':
        if (t.text === '(') {
          if (this.isWord('SELECT')) throw unsupported('subquery in an expression', t.line);
          const e = this.expr();
          this.expectOp(')');
          return e;
        }
        throw this.fail(t);
      case 'quoted':
      case 'word': {
        const upper = t.text.toUpperCase();
        if (t.kind === 'word' && upper === 'NULL') return { k: 'lit', kind: 'null', value: 'NULL' };
        if (this.isOp('(')) {
          if (t.kind === 'quoted' || !FUNCTIONS.has(upper)) throw unsupported(`function ${t.text}()`, t.line);
          return this.call(upper, t.line);
        }
        if (t.kind === 'word' && RESERVED.has(upper)) throw this.fail(t);
        const parts = [t.text];
        while (this.acceptOp('.')) parts.push(this.identifier());
        if (parts.length > 2) throw unsupported(`column name with ${parts.length} parts (${parts.join('.')})`, t.line);
        return parts.length === 2
          ? { k: 'col', qualifier: parts[0]!, name: parts[1]!, line: t.line }
          : { k: 'col', name: parts[0]!, line: t.line };
      }
      default:
        throw this.fail(t);
    }
  }

  private call(fn: string, line: number): Expr {
    this.expectOp('(');
    if (this.isWord('DISTINCT')) throw unsupported(`${fn}(DISTINCT ...)`, line);
    if (fn === 'COUNT' && this.acceptOp('*')) {
      this.expectOp(')');
      return { k: 'call', fn, args: [], star: true, line };
    }
    const args: Expr[] = [];
    if (!this.isOp(')')) {
      do args.push(this.expr());
      while (this.acceptOp(','));
    }
    this.expectOp(')');
    const arity = fn === 'ISNULL' ? 2 : 1;
    if (args.length !== arity) throw new TsqlError(174, `The ${fn.toLowerCase()} function requires ${arity} argument(s).`, line, 15);
    if (this.isWord('OVER')) throw this.fail();
    return { k: 'call', fn, args, star: false, line };
  }
}

// ---------------------------------------------------------------------------------------
// Parameter declarations (sp_executesql's @params)

/** A T-SQL type name as a wire type: the few types a parameter of this database can have. */
function parseType(p: { name: string; args: string[] }, line: number): ColumnType {
  const name = p.name.toUpperCase();
  const length = (dflt: number, max: number) =>
    p.args[0] === undefined ? dflt : p.args[0].toUpperCase() === 'MAX' ? max : Number(p.args[0]);
  switch (name) {
    case 'VARCHAR':
    case 'CHAR':
      return { kind: 'varchar', length: length(1, 8000) };
    case 'NVARCHAR':
    case 'NCHAR':
      return { kind: 'nvarchar', length: length(1, 4000) };
    case 'INT':
    case 'SMALLINT':
    case 'TINYINT':
      return { kind: 'int' };
    case 'BIT':
      return { kind: 'bit' };
    case 'DECIMAL':
    case 'NUMERIC':
      return { kind: 'decimal', precision: Number(p.args[0] ?? 18), scale: Number(p.args[1] ?? 0) };
    default:
      throw unsupported(`parameter type ${p.name}`, line);
  }
}

/** `@a varchar(10), @b int` as the declarations sp_executesql receives in @params. */
export function parseParamDeclarations(text: string): ParamDeclaration[] {
  const tokens = tokenize(text);
  const out: ParamDeclaration[] = [];
  let i = 0;
  const at = () => tokens[i]!;
  while (at().kind !== 'eof') {
    const name = at();
    const typeName = tokens[i + 1]!;
    if (name.kind !== 'param' || typeName.kind !== 'word')
      throw new TsqlError(102, `Incorrect syntax near '${name.text}' in the parameter declarations.`, name.line, 15);
    i += 2;
    const args: string[] = [];
    if (at().kind === 'op' && at().text === '(') {
      i++;
      while (at().kind === 'number' || (at().kind === 'word' && at().text.toUpperCase() === 'MAX')) {
        args.push(at().text);
        i++;
        if (at().kind === 'op' && at().text === ',') i++;
      }
      if (at().kind !== 'op' || at().text !== ')')
        throw new TsqlError(102, `Incorrect syntax near '${at().text}' in the parameter declarations.`, at().line, 15);
      i++;
    }
    if (at().kind === 'word' && /^OUT(PUT)?$/i.test(at().text)) throw unsupported('OUTPUT parameters', at().line);
    out.push({ name: name.text.toLowerCase(), type: parseType({ name: typeName.text, args }, name.line) });
    if (at().kind === 'op' && at().text === ',') i++;
    else if (at().kind !== 'eof')
      throw new TsqlError(102, `Incorrect syntax near '${at().text}' in the parameter declarations.`, at().line, 15);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Resolution, typing and emission

type ValueType = ColumnType | 'null';
interface Typed {
  sql: string;
  /** 'bool' for predicates: allowed only as conditions. */
  type: ValueType | 'bool';
  nullable: boolean;
  aggregate: boolean;
  /** Columns referenced outside an aggregate ("source.column", lower case). */
  bare: string[];
  /** A parameter or literal: right-trimmed when compared with a string. */
  constant?: 'param' | 'string';
  /** Known to hold printable ASCII only (see CatalogColumn.ascii). */
  ascii?: boolean;
}

interface ScopeSource {
  /** Name it is referenced by (alias or table name), lower case. */
  ref: string;
  /** Emitted qualifier. */
  emit: string;
  /** As SQL Server names it in messages. */
  display: string;
  columns: CatalogColumn[];
  /** On the outer side of a LEFT JOIN: any of its columns can be NULL. */
  outer: boolean;
}

interface Context {
  sources: ScopeSource[];
  /** Where aggregates may appear. */
  aggregates: boolean;
  clause: string;
  /** Select-list aliases ORDER BY may name. */
  aliases?: Map<string, Typed>;
  inAggregate?: boolean;
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;
const sqlString = (value: string) => `'${value.replace(/'/g, "''")}'`;
const isString = (t: Typed['type']) => t !== 'bool' && t !== 'null' && (t.kind === 'varchar' || t.kind === 'nvarchar');
const isNumeric = (t: Typed['type']) => t !== 'bool' && t !== 'null' && (t.kind === 'int' || t.kind === 'bit' || t.kind === 'decimal');
const typeName = (t: Typed['type']): string =>
  t === 'bool'
    ? 'a condition'
    : t === 'null'
      ? 'NULL'
      : t.kind === 'decimal'
        ? `decimal(${t.precision},${t.scale})`
        : t.kind === 'varchar' || t.kind === 'nvarchar'
          ? `${t.kind}(${t.length})`
          : t.kind;

class Compiler {
  private readonly catalog: Catalog;
  private readonly params: readonly ParamDeclaration[];
  readonly used = new Map<string, string>();

  constructor(catalog: Catalog, params: readonly ParamDeclaration[]) {
    this.catalog = catalog;
    this.params = params;
  }

  select(s: Select): { sql: string; columns: CatalogColumn[] } {
    const sources: ScopeSource[] = [];
    let from = '';
    if (s.from) {
      from = ` FROM ${this.source(s.from.first, sources, false)}`;
      for (const join of s.from.joins) {
        const emitted = this.source(join.source, sources, join.kind === 'left');
        const on = this.condition(join.on, { sources, aggregates: false, clause: 'an ON clause' });
        from += ` ${join.kind === 'left' ? 'LEFT JOIN' : 'INNER JOIN'} ${emitted} ON ${on.sql}`;
      }
    }
    const ctx: Context = { sources, aggregates: true, clause: 'the select list' };
    const items: Array<{ name: string; t: Typed; line: number }> = [];
    for (const item of s.items) {
      if (item.k === 'star') {
        const chosen = item.qualifier === undefined ? sources : sources.filter((x) => x.ref === item.qualifier!.toLowerCase());
        if (item.qualifier !== undefined && chosen.length === 0)
          throw new TsqlError(4104, `The multi-part identifier "${item.qualifier}" could not be bound.`, item.line);
        if (chosen.length === 0) throw new TsqlError(263, 'Must specify table to select from.', item.line);
        for (const src of chosen) for (const c of src.columns) items.push({ name: c.name, t: this.columnOf(src, c), line: item.line });
        continue;
      }
      const t = this.value(item.e, ctx);
      if (t.type === 'bool') throw unsupported('a comparison in the select list (the T-SQL "alias = expression" form)', item.line);
      items.push({ name: item.alias ?? (item.e.k === 'col' ? this.columnName(item.e, sources) : ''), t, line: item.line });
    }
    const where = s.where ? ` WHERE ${this.condition(s.where, { sources, aggregates: false, clause: 'the WHERE clause' }).sql}` : '';
    const groups = s.groupBy.map((g) => this.value(g, { sources, aggregates: false, clause: 'the GROUP BY clause' }));
    const having = s.having ? this.condition(s.having, { sources, aggregates: true, clause: 'the HAVING clause' }) : undefined;
    const aliases = new Map(items.filter((i) => i.name !== '').map((i) => [i.name.toLowerCase(), i.t]));
    const orders = s.orderBy.map((o) => ({
      t: this.value(o.e, { sources, aggregates: true, clause: 'the ORDER BY clause', aliases }),
      desc: o.desc,
      e: o.e,
    }));

    // SQL Server refuses a column that is neither grouped nor aggregated; SQLite would pick a row.
    const grouped = groups.length > 0 || items.some((i) => i.t.aggregate) || having !== undefined;
    if (grouped) {
      const groupSql = new Set(groups.map((g) => g.sql));
      const groupCols = new Set(groups.flatMap((g) => (g.bare.length === 1 && g.sql === this.bareSql(g.bare[0]!, sources) ? g.bare : [])));
      const check = (t: Typed, line: number) => {
        if (groupSql.has(t.sql)) return;
        const loose = t.bare.find((b) => !groupCols.has(b));
        if (loose)
          throw new TsqlError(
            8120,
            `Column '${this.displayName(loose, sources)}' is invalid in the select list because it is not contained in either an ` +
              `aggregate function or the GROUP BY clause.`,
            line,
          );
      };
      for (const i of items) check(i.t, i.line);
      if (having) check(having, s.line);
      for (const o of orders)
        if (!(o.e.k === 'col' && o.e.qualifier === undefined && aliases.has(o.e.name.toLowerCase()))) check(o.t, s.line);
    }
    if (s.distinct) {
      for (const o of orders) {
        if (
          !items.some(
            (i) =>
              i.t.sql === o.t.sql || (o.e.k === 'col' && o.e.qualifier === undefined && i.name.toLowerCase() === o.e.name.toLowerCase()),
          )
        ) {
          throw new TsqlError(145, 'ORDER BY items must appear in the select list if SELECT DISTINCT is specified.', s.line);
        }
      }
    }
    const list = items.map((i, n) => `${i.t.sql} AS ${quote(i.name === '' ? `c${n}` : i.name)}`).join(', ');
    let sql = `SELECT ${s.distinct ? 'DISTINCT ' : ''}${list}${from}${where}`;
    if (groups.length > 0) sql += ` GROUP BY ${groups.map((g) => g.sql).join(', ')}`;
    if (having) sql += ` HAVING ${having.sql}`;
    if (orders.length > 0)
      sql += ` ORDER BY ${orders.map((o) => `${isString(o.t.type) ? ordered(o.t) : o.t.sql}${o.desc ? ' DESC' : ''}`).join(', ')}`;
    if (s.top !== undefined) sql += ` LIMIT ${s.top}`;
    const columns = items.map((i) => ({
      name: i.name,
      type: i.t.type === 'null' ? ({ kind: 'int' } as const) : (i.t.type as ColumnType),
      nullable: i.t.nullable,
      ...(i.t.ascii ? { ascii: true } : {}),
    }));
    return { sql, columns };
  }

  private source(src: Source, sources: ScopeSource[], outer: boolean): string {
    let entry: ScopeSource;
    let emitted: string;
    if (src.k === 'table') {
      const name = src.parts[src.parts.length - 1]!;
      const schema = src.parts.length >= 2 ? src.parts[src.parts.length - 2]!.toLowerCase() : 'dbo';
      if (src.parts.length > 3) throw unsupported(`object name with ${src.parts.length} parts (${src.parts.join('.')})`, src.line);
      const table = schema === 'dbo' ? this.catalog.table(name) : undefined;
      if (!table) throw new TsqlError(208, `Invalid object name '${src.parts.join('.')}'.`, src.line);
      const ref = src.alias ?? table.name;
      entry = { ref: ref.toLowerCase(), emit: quote(ref), display: ref, columns: [...table.columns], outer };
      emitted = src.alias === undefined ? quote(table.name) : `${quote(table.name)} AS ${quote(src.alias)}`;
    } else {
      if (src.select.orderBy.length > 0 && src.select.top === undefined) {
        throw new TsqlError(
          1033,
          'The ORDER BY clause is invalid in views, inline functions, derived tables, subqueries, and common table expressions, ' +
            'unless TOP, OFFSET or FOR XML is also specified.',
          src.line,
          15,
        );
      }
      const inner = new Compiler(this.catalog, this.params);
      const compiled = inner.select(src.select);
      for (const [k, v] of inner.used) this.used.set(k, v);
      const seen = new Set<string>();
      compiled.columns.forEach((c, n) => {
        if (c.name === '') throw new TsqlError(8155, `No column name was specified for column ${n + 1} of '${src.alias}'.`, src.line);
        if (seen.has(c.name.toLowerCase()))
          throw new TsqlError(8156, `The column '${c.name}' was specified multiple times for '${src.alias}'.`, src.line);
        seen.add(c.name.toLowerCase());
      });
      entry = { ref: src.alias.toLowerCase(), emit: quote(src.alias), display: src.alias, columns: compiled.columns, outer };
      emitted = `(${compiled.sql}) AS ${quote(src.alias)}`;
    }
    if (sources.some((s) => s.ref === entry.ref))
      throw new TsqlError(
        1011,
        `The correlation name '${src.alias ?? entry.ref}' is specified multiple times in a FROM clause.`,
        src.line,
      );
    sources.push(entry);
    return emitted;
  }

  private columnOf(src: ScopeSource, c: CatalogColumn): Typed {
    return {
      sql: `${src.emit}.${quote(c.name)}`,
      type: c.type,
      nullable: c.nullable || src.outer,
      aggregate: false,
      bare: [`${src.ref}.${c.name.toLowerCase()}`],
      ascii: c.ascii === true,
    };
  }

  private displayName(bare: string, sources: ScopeSource[]): string {
    const [ref, col] = bare.split('.') as [string, string];
    const src = sources.find((s) => s.ref === ref)!;
    return `${src.display}.${src.columns.find((c) => c.name.toLowerCase() === col)!.name}`;
  }

  private bareSql(bare: string, sources: ScopeSource[]): string {
    const [ref, col] = bare.split('.') as [string, string];
    const src = sources.find((s) => s.ref === ref)!;
    return this.columnOf(src, src.columns.find((c) => c.name.toLowerCase() === col)!).sql;
  }

  private resolve(e: Extract<Expr, { k: 'col' }>, sources: ScopeSource[]): { src: ScopeSource; column: CatalogColumn } {
    const name = e.name.toLowerCase();
    if (e.qualifier !== undefined) {
      const src = sources.find((s) => s.ref === e.qualifier!.toLowerCase());
      const column = src?.columns.find((c) => c.name.toLowerCase() === name);
      if (!src || !column) throw new TsqlError(4104, `The multi-part identifier "${e.qualifier}.${e.name}" could not be bound.`, e.line);
      return { src, column };
    }
    const found = sources.flatMap((src) => src.columns.filter((c) => c.name.toLowerCase() === name).map((column) => ({ src, column })));
    if (found.length === 0) throw new TsqlError(207, `Invalid column name '${e.name}'.`, e.line);
    if (found.length > 1) throw new TsqlError(209, `Ambiguous column name '${e.name}'.`, e.line);
    return found[0]!;
  }

  private columnName(e: Extract<Expr, { k: 'col' }>, sources: ScopeSource[]): string {
    return this.resolve(e, sources).column.name;
  }

  private condition(e: Expr, ctx: Context): Typed {
    const t = this.value(e, ctx);
    if (t.type !== 'bool')
      throw new TsqlError(
        4145,
        `An expression of non-boolean type specified in a context where a condition is expected, near ${ctx.clause}.`,
        'line' in e ? e.line : 1,
      );
    return t;
  }

  private value(e: Expr, ctx: Context): Typed {
    switch (e.k) {
      case 'col': {
        if (e.qualifier === undefined && ctx.aliases?.has(e.name.toLowerCase())) {
          const t = ctx.aliases.get(e.name.toLowerCase())!;
          return { ...t, sql: quote(e.name), bare: t.aggregate ? [] : t.bare };
        }
        const { src, column } = this.resolve(e, ctx.sources);
        return this.columnOf(src, column);
      }
      case 'lit':
        if (e.kind === 'null') return { sql: 'NULL', type: 'null', nullable: true, aggregate: false, bare: [] };
        if (e.kind === 'string') {
          const length = Math.max(1, e.value.length);
          const type: ColumnType = e.national ? { kind: 'nvarchar', length } : { kind: 'varchar', length };
          return {
            sql: sqlString(e.value),
            type,
            nullable: false,
            aggregate: false,
            bare: [],
            constant: 'string',
            ascii: PRINTABLE_ASCII.test(e.value),
          };
        }
        return { sql: e.value, type: numberType(e.value), nullable: false, aggregate: false, bare: [] };
      case 'param': {
        const index = this.params.findIndex((p) => p.name === e.name);
        if (index === -1) throw new TsqlError(137, `Must declare the scalar variable "${e.name}".`, e.line, 15);
        const key = `p${index}`;
        this.used.set(key, e.name);
        return { sql: `:${key}`, type: this.params[index]!.type, nullable: true, aggregate: false, bare: [], constant: 'param' };
      }
      case 'call':
        return this.call(e, ctx);
      case 'neg': {
        const t = this.value(e.e, ctx);
        if (!isNumeric(t.type)) throw unsupported(`unary minus on ${typeName(t.type)}`, e.line);
        return { ...t, sql: `(-${t.sql})`, constant: undefined };
      }
      case 'arith':
        return this.arith(e, ctx);
      case 'cmp': {
        const [l, r] = this.comparable(this.value(e.l, ctx), this.value(e.r, ctx), e.line);
        if (!isString(l.type) || !isString(r.type)) return predicate(`${l.sql} ${e.op} ${r.sql}`, [l, r]);
        if (e.op === '=' || e.op === '<>') {
          // A known-ASCII side cannot equal accented text: NOCASE is then exact.
          if (l.ascii || r.ascii) return predicate(`${l.sql} ${e.op} ${r.sql} COLLATE NOCASE`, [l, r]);
          return predicate(`${FOLD}(${l.sql}) ${e.op} ${FOLD}(${r.sql})`, [l, r]);
        }
        return predicate(`${ordered(l)} ${e.op} ${ordered(r)}`, [l, r]);
      }
      case 'logic': {
        const l = this.condition(e.l, ctx);
        const r = this.condition(e.r, ctx);
        return predicate(`(${l.sql} ${e.op} ${r.sql})`, [l, r]);
      }
      case 'not': {
        const t = this.condition(e.e, ctx);
        return predicate(`(NOT ${t.sql})`, [t]);
      }
      case 'isnull': {
        const t = this.value(e.e, ctx);
        if (t.type === 'bool') throw unsupported('IS NULL on a condition', 1);
        return predicate(`${t.sql} IS ${e.not ? 'NOT ' : ''}NULL`, [t]);
      }
      case 'in': {
        const probe = this.value(e.e, ctx);
        const list = e.list.map((x) => this.comparable(probe, this.value(x, ctx), e.line));
        const probeSql = list[0]![0].sql;
        const keyword = e.not ? 'NOT IN' : 'IN';
        if (!isString(probe.type))
          return predicate(`${probeSql} ${keyword} (${list.map(([, r]) => r.sql).join(', ')})`, [probe, ...list.map(([, r]) => r)]);
        if (probe.ascii || list.every(([, r]) => r.ascii))
          return predicate(`${probeSql} COLLATE NOCASE ${keyword} (${list.map(([, r]) => r.sql).join(', ')})`, [
            probe,
            ...list.map(([, r]) => r),
          ]);
        return predicate(`${FOLD}(${probeSql}) ${keyword} (${list.map(([, r]) => `${FOLD}(${r.sql})`).join(', ')})`, [
          probe,
          ...list.map(([, r]) => r),
        ]);
      }
    }
  }

  /** Both sides of a comparison, adapted to SQL Server's rules or refused. */
  private comparable(l: Typed, r: Typed, line: number): [Typed, Typed] {
    if (l.type === 'bool' || r.type === 'bool') throw new TsqlError(102, "Incorrect syntax near '='.", line, 15);
    if (l.type === 'null' || r.type === 'null') return [l, r];
    if (isString(l.type) && isString(r.type)) return [rtrimmed(l), rtrimmed(r)];
    if (isNumeric(l.type) && isNumeric(r.type)) return [l, r];
    throw unsupported(
      `comparison of ${typeName(l.type)} with ${typeName(r.type)} (SQL Server converts the string to a number, SQLite the number to a ` +
        `string)`,
      line,
    );
  }

  private arith(e: Extract<Expr, { k: 'arith' }>, ctx: Context): Typed {
    const l = this.value(e.l, ctx);
    const r = this.value(e.r, ctx);
    const merged = { nullable: l.nullable || r.nullable, aggregate: l.aggregate || r.aggregate, bare: [...l.bare, ...r.bare] };
    if (e.op === '+' && isString(l.type) && isString(r.type)) {
      const lt = l.type as Extract<ColumnType, { length: number }>;
      const rt = r.type as Extract<ColumnType, { length: number }>;
      const kind = lt.kind === 'nvarchar' || rt.kind === 'nvarchar' ? 'nvarchar' : 'varchar';
      return {
        sql: `(${l.sql} || ${r.sql})`,
        type: { kind, length: Math.min(kind === 'nvarchar' ? 4000 : 8000, lt.length + rt.length) },
        ...merged,
        ascii: l.ascii === true && r.ascii === true,
      };
    }
    if (l.type === 'null' || r.type === 'null') return { sql: 'NULL', type: 'null', ...merged, nullable: true };
    if (!isNumeric(l.type) || !isNumeric(r.type))
      throw unsupported(`operator ${e.op} between ${typeName(l.type)} and ${typeName(r.type)}`, e.line);
    return { sql: `(${l.sql} ${e.op} ${r.sql})`, type: arithType(e.op, l.type as ColumnType, r.type as ColumnType), ...merged };
  }

  private call(e: Extract<Expr, { k: 'call' }>, ctx: Context): Typed {
    if (AGGREGATES.has(e.fn)) {
      if (!ctx.aggregates) throw new TsqlError(147, `An aggregate may not appear in ${ctx.clause}.`, e.line);
      if (ctx.inAggregate)
        throw new TsqlError(130, 'Cannot perform an aggregate function on an expression containing an aggregate or a subquery.', e.line);
      if (e.star) return { sql: 'count(*)', type: { kind: 'int' }, nullable: false, aggregate: true, bare: [] };
      const arg = this.value(e.args[0]!, { ...ctx, inAggregate: true, aliases: undefined });
      if (arg.type === 'bool') throw this.noCondition(e);
      const base = { aggregate: true, bare: [] as string[] };
      switch (e.fn) {
        case 'COUNT':
          return { sql: `count(${arg.sql})`, type: { kind: 'int' }, nullable: false, ...base };
        case 'SUM': {
          if (arg.type === 'null' || !isNumeric(arg.type))
            throw new TsqlError(8117, `Operand data type ${typeName(arg.type)} is invalid for sum operator.`, e.line);
          const t = arg.type as ColumnType;
          return {
            sql: `sum(${arg.sql})`,
            type: t.kind === 'decimal' ? { kind: 'decimal', precision: 38, scale: t.scale } : { kind: 'int' },
            nullable: true,
            ...base,
          };
        }
        default:
          if (arg.type !== 'null' && arg.type.kind === 'bit')
            throw new TsqlError(8117, `Operand data type bit is invalid for ${e.fn.toLowerCase()} operator.`, e.line);
          return {
            sql: `${e.fn.toLowerCase()}(${isString(arg.type) ? ordered(arg) : arg.sql})`,
            type: arg.type,
            nullable: true,
            ...base,
            ascii: arg.ascii === true,
          };
      }
    }
    // ISNULL: the first argument's type (SQL Server's rule), the second must be comparable.
    const a = this.value(e.args[0]!, ctx);
    const b = this.value(e.args[1]!, ctx);
    if (a.type === 'bool' || b.type === 'bool') throw this.noCondition(e);
    if (a.type !== 'null' && b.type !== 'null' && isString(a.type) !== isString(b.type))
      throw unsupported(`ISNULL of ${typeName(a.type)} and ${typeName(b.type)}`, e.line);
    return {
      sql: `ifnull(${a.sql}, ${b.sql})`,
      type: a.type === 'null' ? b.type : a.type,
      nullable: a.nullable && b.nullable,
      aggregate: a.aggregate || b.aggregate,
      bare: [...a.bare, ...b.bare],
      ascii: a.ascii === true && b.ascii === true,
    };
  }

  private noCondition(e: Extract<Expr, { k: 'call' }>): TsqlError {
    return new TsqlError(102, `Incorrect syntax near '${e.fn}': a condition is not a value.`, e.line, 15);
  }
}

/**
 * The SQLite function a string not known to be ASCII passes through where it is ordered
 * (ORDER BY, MIN/MAX, <, >): SQL Server's collation sorts accented letters with their base
 * letter, SQLite by bytes, so the executing database defines it to fail the statement on
 * accented text rather than sort it differently.
 */
export const ORDER_GUARD = 'tsql_ascii_order';
/**
 * The SQLite function both sides of an equality pass through when neither is known to be
 * ASCII: case folding beyond ASCII (NOCASE folds only A-Z), accents kept (the collation is
 * accent-sensitive).
 */
export const FOLD = 'tsql_ci_fold';
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

function ordered(t: Typed): string {
  return t.ascii ? `${t.sql} COLLATE NOCASE` : `${ORDER_GUARD}(${t.sql}) COLLATE NOCASE`;
}

function predicate(sql: string, parts: Typed[]): Typed {
  return { sql, type: 'bool', nullable: true, aggregate: parts.some((p) => p.aggregate), bare: parts.flatMap((p) => p.bare) };
}

/** SQL Server compares strings ignoring trailing spaces: a constant loses them. */
function rtrimmed(t: Typed): Typed {
  if (t.constant === 'param') return { ...t, sql: `rtrim(${t.sql}, ' ')` };
  if (t.constant === 'string') return { ...t, sql: t.sql.replace(/ +'$/, "'") };
  return t;
}

function numberType(text: string): ColumnType {
  if (!text.includes('.')) {
    const n = Number(text);
    return n <= 2_147_483_647 ? { kind: 'int' } : { kind: 'decimal', precision: Math.max(text.length, 1), scale: 0 };
  }
  const [int = '', frac = ''] = text.split('.');
  const digits = int.replace(/^0+/, '').length + frac.length;
  return { kind: 'decimal', precision: Math.max(digits, frac.length, 1), scale: frac.length };
}

function asDecimal(t: ColumnType): { precision: number; scale: number } {
  if (t.kind === 'decimal') return t;
  return { precision: 10, scale: 0 }; // int (and bit) as SQL Server promotes them
}

/** SQL Server's result type of + - * (precision capped at 38). */
function arithType(op: '+' | '-' | '*', l: ColumnType, r: ColumnType): ColumnType {
  if (l.kind !== 'decimal' && r.kind !== 'decimal') return { kind: 'int' };
  const a = asDecimal(l);
  const b = asDecimal(r);
  if (op === '*')
    return { kind: 'decimal', precision: Math.min(38, a.precision + b.precision + 1), scale: Math.min(38, a.scale + b.scale) };
  const scale = Math.max(a.scale, b.scale);
  return { kind: 'decimal', precision: Math.min(38, Math.max(a.precision - a.scale, b.precision - b.scale) + scale + 1), scale };
}

/**
 * Translates one T-SQL statement for SQLite. `params` are the sp_executesql declarations
 * (none for a plain batch: any @variable is then undeclared, error 137).
 */
export function translateTsql(sql: string, catalog: Catalog, params: readonly ParamDeclaration[] = []): Translation {
  const parser = new Parser(tokenize(sql));
  const tree = parser.statement();
  const compiler = new Compiler(catalog, params);
  const { sql: text, columns } = compiler.select(tree);
  const bindings = [...compiler.used]
    .map(([key, param]) => ({ key, param, type: params.find((p) => p.name === param)!.type }))
    .sort((a, b) => a.key.localeCompare(b.key));
  return { sql: text, columns: columns.map(({ name, type, nullable }) => ({ name, type, nullable })), bindings };
}

/**
 * True for a batch of `SET option ...` statements only (what tedious sends after the login),
 * one per line or separated by semicolons.
 */
export function isSessionSettings(sql: string): boolean {
  let tokens: Token[];
  try {
    tokens = tokenize(sql);
  } catch {
    return false;
  }
  if (tokens.length <= 1) return false;
  let statementStart = true;
  let line = -1;
  for (const t of tokens) {
    if (t.kind === 'eof') break;
    if (t.kind === 'op' && t.text === ';') {
      statementStart = true;
      continue;
    }
    if (statementStart || t.line !== line) {
      if (!(t.kind === 'word' && t.text.toUpperCase() === 'SET')) return false;
      statementStart = false;
      line = t.line;
    }
  }
  return true;
}
