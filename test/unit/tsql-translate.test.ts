/**
 * The T-SQL translation of the Stellar simulator (simulators/stellar/tsql-translate.ts): the
 * checked-in inventory query is typed exactly as SQL Server describes it, what it does not
 * know is an error naming the construct, catalogue mistakes carry SQL Server's numbers, and
 * the SQLite it emits answers as SQL Server would (run here on vad10-database.ts, in memory).
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { StoreSimulation } from '../../simulators/data/store-simulation.ts';
import { INVENTARIO_COLUMNS, INVENTARIO_SQL_PATH } from '../../simulators/stellar/statements.ts';
import {
  isSessionSettings,
  parseParamDeclarations,
  translateTsql,
  TsqlError,
  UNSUPPORTED,
  type Translation,
} from '../../simulators/stellar/tsql-translate.ts';
import { MERMAS_DEPOSITO, Vad10Database, VAD10_TABLES } from '../../simulators/stellar/vad10-database.ts';

const QUERY = readFileSync(INVENTARIO_SQL_PATH, 'utf8');
const DEPOSITO = parseParamDeclarations('@codigo_deposito varchar(10)');
const sim = new StoreSimulation({ ubicacionId: 'tienda_unit', pos: 'stellar', depositos: ['01', 'CEDI02'], products: 600 });
const db = new Vad10Database(sim);
afterAll(() => db.close());

function translate(sql: string, params = DEPOSITO): Translation {
  return translateTsql(sql, db, params);
}

/** The TsqlError a statement is refused with. */
function refusal(sql: string, params = DEPOSITO): TsqlError {
  try {
    translate(sql, params);
  } catch (err) {
    if (err instanceof TsqlError) return err;
    throw err;
  }
  throw new Error(`translated without error: ${sql}`);
}

function run(sql: string, values: Record<string, unknown> = {}, params = DEPOSITO): unknown[][] {
  return [...db.rows(translateTsql(sql, db, params), new Map(Object.entries(values)))];
}

describe('the checked-in inventory query', () => {
  it('is typed as SQL Server describes it (the 13 columns the extractor reads)', () => {
    const t = translate(QUERY);
    expect(t.columns).toEqual(INVENTARIO_COLUMNS);
    expect(t.bindings).toEqual([{ key: 'p0', param: '@codigo_deposito', type: { kind: 'varchar', length: 10 } }]);
    expect(t.sql).toContain(`"dp"."c_CodDeposito" = rtrim(:p0, ' ')`);
    // Codes are ASCII (the database checked): joins and the order keep SQLite's indexes.
    expect(t.sql).toMatch(/ORDER BY "p"."c_Codigo" COLLATE NOCASE$/);
    expect(t.sql).toContain(`INNER JOIN "MA_PRODUCTOS" AS "p" ON "p"."c_Codigo" = "dp"."c_CodArticulo" COLLATE NOCASE`);
    // Without that knowledge every ordered or compared string goes through the guards.
    const unchecked = translateTsql(
      QUERY,
      { table: (name) => VAD10_TABLES.find((x) => x.name.toLowerCase() === name.toLowerCase()) },
      DEPOSITO,
    );
    expect(unchecked.columns).toEqual(INVENTARIO_COLUMNS);
    expect(unchecked.sql).toContain(`min(tsql_ascii_order("MA_CODIGOS"."c_Codigo") COLLATE NOCASE)`);
    expect(unchecked.sql).toContain(`tsql_ci_fold("p"."c_Codigo") = tsql_ci_fold("dp"."c_CodArticulo")`);
  });

  it('translates the same however it is written: case, brackets, dbo., N literals, NOLOCK hints, comments', () => {
    const relaid = QUERY.replace(/--[^\n]*/g, '')
      .replace('FROM MA_DEPOPROD dp', 'FROM [dbo].[MA_DEPOPROD] AS [dp] WITH (NOLOCK) /* no locks */')
      .replace("'BARRA'", "N'BARRA'")
      .toLowerCase()
      .replace(/\s+/g, '\n  ');
    const a = translate(QUERY);
    const b = translate(relaid);
    expect(b.columns.map((c) => [c.type, c.nullable])).toEqual(a.columns.map((c) => [c.type, c.nullable]));
    const rows = (t: Translation) => [...db.rows(t, new Map([['@codigo_deposito', '01']]))];
    expect(rows(b)).toEqual(rows(a));
  });

  it('answers a deposito as a CI collation compares varchar: case and trailing spaces ignored', () => {
    const t = translate(QUERY);
    const count = (v: unknown) => [...db.rows(t, new Map([['@codigo_deposito', v]]))].length;
    expect(count('CEDI02')).toBe(sim.stellarInventario('CEDI02').length);
    expect(count('cedi02  ')).toBe(count('CEDI02'));
    expect(count(' CEDI02')).toBe(0);
    expect(count('CEDI2')).toBe(0);
    expect(count(null)).toBe(0);
    expect(count(MERMAS_DEPOSITO)).toBeGreaterThan(0); // the deposito the store does not extract is there
  });
});

describe('constructs the translation does not know', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['OUTER APPLY', 'SELECT p.c_Codigo FROM MA_PRODUCTOS p OUTER APPLY (SELECT TOP 1 c_Codigo FROM MA_CODIGOS) x', /OUTER APPLY/],
    ['CROSS APPLY', 'SELECT p.c_Codigo FROM MA_PRODUCTOS p CROSS APPLY (SELECT 1 AS a) x', /CROSS APPLY/],
    ['RIGHT JOIN', 'SELECT p.c_Codigo FROM MA_PRODUCTOS p RIGHT JOIN MA_CODIGOS c ON c.c_CodNasa = p.c_Codigo', /RIGHT JOIN/],
    ['CASE', 'SELECT CASE WHEN n_Activo = 1 THEN 1 ELSE 0 END AS a FROM MA_PRODUCTOS', /CASE/],
    ['LIKE', "SELECT c_Codigo FROM MA_PRODUCTOS WHERE c_Descri LIKE 'PAN%'", /LIKE/],
    ['CAST', 'SELECT CAST(n_Precio1 AS int) AS a FROM MA_PRODUCTOS', /function CAST\(\)/],
    ['CONVERT', 'SELECT CONVERT(varchar(10), n_Precio1) AS a FROM MA_PRODUCTOS', /function CONVERT\(\)/],
    ['UPPER (SQLite folds ASCII only)', 'SELECT UPPER(c_Descri) AS a FROM MA_PRODUCTOS', /function UPPER\(\)/],
    ['a subquery in an expression', 'SELECT (SELECT 1) AS a FROM MA_PRODUCTOS', /subquery in an expression/],
    ['IN (subquery)', 'SELECT c_Codigo FROM MA_PRODUCTOS WHERE c_Codigo IN (SELECT c_CodNasa FROM MA_CODIGOS)', /IN \(subquery\)/],
    ['UNION', 'SELECT c_Codigo FROM MA_PRODUCTOS UNION SELECT c_CodNasa FROM MA_CODIGOS', /UNION/],
    ['division', 'SELECT n_Precio1 / 2 AS a FROM MA_PRODUCTOS', /operator \//],
    [
      'a string compared with a number',
      'SELECT c_Codigo FROM MA_PRODUCTOS WHERE c_Departamento = 17',
      /comparison of varchar\(10\) with int/,
    ],
    ['+ between a string and a number', 'SELECT c_Codigo + 1 AS a FROM MA_PRODUCTOS', /operator \+ between varchar\(15\) and int/],
    ['a table hint other than NOLOCK', 'SELECT c_Codigo FROM MA_PRODUCTOS WITH (TABLOCK)', /table hint TABLOCK/],
    ['TOP PERCENT', 'SELECT TOP 10 PERCENT c_Codigo FROM MA_PRODUCTOS', /TOP \.\.\. PERCENT/],
    ['the alias = expression form', 'SELECT codigo = c_Codigo FROM MA_PRODUCTOS', /alias = expression/],
    ['several statements', 'SELECT 1; SELECT 2', /several statements/],
    ['a temporary table', 'SELECT a FROM #tmp', /temporary table #tmp/],
    ['OFFSET/FETCH', 'SELECT c_Codigo FROM MA_PRODUCTOS ORDER BY c_Codigo OFFSET 10 ROWS', /OFFSET/],
  ];
  it.each(cases)('%s: error 50000 naming it', (_name, sql, construct) => {
    const e = refusal(sql);
    expect(e.number).toBe(UNSUPPORTED);
    expect(e.message).toMatch(/not supported by the Stellar simulator's translation/);
    expect(e.message).toMatch(construct);
  });
});

describe("SQL Server's errors", () => {
  it('names unknown tables and columns, ambiguous and unbound names', () => {
    expect(refusal('SELECT * FROM MA_VENTAS')).toMatchObject({ number: 208, message: "Invalid object name 'MA_VENTAS'." });
    expect(refusal('SELECT * FROM ventas.MA_PRODUCTOS')).toMatchObject({ number: 208 });
    expect(refusal('SELECT c_Nada FROM MA_PRODUCTOS')).toMatchObject({ number: 207, message: "Invalid column name 'c_Nada'." });
    expect(refusal('SELECT c_Codigo FROM MA_PRODUCTOS p INNER JOIN MA_CODIGOS c ON c.c_CodNasa = p.c_Codigo')).toMatchObject({
      number: 209,
      message: "Ambiguous column name 'c_Codigo'.",
    });
    expect(refusal('SELECT x.c_Codigo FROM MA_PRODUCTOS p')).toMatchObject({ number: 4104 });
    // ON may only name the tables joined so far.
    expect(
      refusal(
        'SELECT p.c_Codigo FROM MA_PRODUCTOS p INNER JOIN MA_CODIGOS c ON c.c_CodNasa = d.c_CodArticulo INNER JOIN MA_DEPOPROD d ON 1 = 1',
      ),
    ).toMatchObject({ number: 4104 });
  });

  it('refuses what SQLite would answer silently: ungrouped columns, aggregates in WHERE, non-boolean conditions', () => {
    expect(refusal('SELECT c_CodNasa, MIN(c_Codigo) AS m FROM MA_CODIGOS')).toMatchObject({
      number: 8120,
      message: expect.stringMatching(/^Column 'MA_CODIGOS.c_CodNasa' is invalid in the select list/),
    });
    expect(refusal('SELECT c_CodNasa, c_Codigo FROM MA_CODIGOS GROUP BY c_CodNasa')).toMatchObject({ number: 8120 });
    expect(refusal('SELECT c_CodNasa FROM MA_CODIGOS WHERE MIN(c_Codigo) = 1 GROUP BY c_CodNasa')).toMatchObject({ number: 147 });
    expect(refusal('SELECT c_Codigo FROM MA_PRODUCTOS WHERE n_Activo')).toMatchObject({ number: 4145 });
    expect(refusal('SELECT MIN(MAX(n_Precio1)) AS a FROM MA_PRODUCTOS')).toMatchObject({ number: 130 });
    expect(refusal('SELECT c_CodNasa FROM (SELECT c_CodNasa, c_CodNasa FROM MA_CODIGOS) x')).toMatchObject({ number: 8156 });
    expect(refusal('SELECT a FROM (SELECT MIN(c_Codigo) FROM MA_CODIGOS) x')).toMatchObject({ number: 8155 });
    expect(refusal('SELECT c_Codigo FROM (SELECT c_Codigo FROM MA_PRODUCTOS ORDER BY c_Codigo) x')).toMatchObject({ number: 1033 });
  });

  it('undeclared variables (a batch has none), writes by a read-only login, syntax', () => {
    expect(refusal(QUERY, [])).toMatchObject({ number: 137, message: 'Must declare the scalar variable "@codigo_deposito".' });
    expect(refusal('DELETE FROM MA_PRODUCTOS')).toMatchObject({
      number: 229,
      message: expect.stringContaining("DELETE permission was denied on the object 'MA_PRODUCTOS'"),
    });
    expect(refusal('TRUNCATE TABLE x')).toMatchObject({ number: 102, message: "Incorrect syntax near 'TRUNCATE'." });
    expect(refusal("SELECT 'oops")).toMatchObject({ number: 105 });
    expect(refusal('SELECT 1 /* open')).toMatchObject({ number: 113 });
    expect(refusal('SELECT c_Codigo FROM MA_PRODUCTOS WHERE')).toMatchObject({
      number: 102,
      message: expect.stringContaining('end of the statement'),
    });
    expect(refusal('SELECT p.c_Codigo FROM MA_PRODUCTOS p INNER JOIN (SELECT c_CodNasa FROM MA_CODIGOS) ON 1 = 1')).toMatchObject({
      number: 102,
    });
  });
});

describe('what the emitted SQLite answers', () => {
  it('SELECT 1 and literals, typed as SQL Server types them', () => {
    expect(translate('SELECT 1;').columns).toEqual([{ name: '', type: { kind: 'int' }, nullable: false }]);
    expect(run('SELECT 1')).toEqual([[1]]);
    const t = translate("SELECT 'ab' + N'c' AS s, 2.50 * 3 AS d, NULL AS n");
    expect(t.columns.map((c) => c.type)).toEqual([
      { kind: 'nvarchar', length: 3 },
      { kind: 'decimal', precision: 14, scale: 2 },
      { kind: 'int' },
    ]);
    expect(run("SELECT 'ab' + N'c' AS s, 2.50 * 3 AS d, NULL AS n")).toEqual([['abc', '7.50', null]]);
  });

  it('TOP n, ISNULL, IN, IS NULL, ORDER BY an alias DESC, COUNT and SUM over groups', () => {
    const top = run('SELECT TOP (3) c_Codigo FROM MA_PRODUCTOS ORDER BY c_Codigo DESC');
    expect(top).toEqual(
      [...sim.catalog]
        .slice(-3)
        .reverse()
        .map((p) => [p.producto_id]),
    );
    const sinGrupo = [...sim.catalog].filter((p) => p.grupo === null).length;
    expect(run("SELECT COUNT(*) AS n FROM MA_PRODUCTOS WHERE ISNULL(c_Grupo, 'NINGUNO') = 'ninguno  '")).toEqual([[sinGrupo]]);
    expect(run('SELECT COUNT(*) AS n FROM MA_PRODUCTOS WHERE c_Grupo IS NULL')).toEqual([[sinGrupo]]);
    const barras = new Map<string, number>();
    for (const p of sim.catalog) for (const c of p.codigos) barras.set(c.tipo, (barras.get(c.tipo) ?? 0) + 1);
    expect(
      run(
        "SELECT c_TipoCodigo, COUNT(c_Codigo) AS n FROM MA_CODIGOS WHERE c_TipoCodigo IN ('barra', 'INTERNO') GROUP BY c_TipoCodigo " +
          'ORDER BY n DESC',
      ),
    ).toEqual([...barras].sort((a, b) => b[1] - a[1]));
    const stock = [...sim.catalog].reduce((sum, p) => sum + sim.cantidad('01', p.producto_id), 0n);
    const t = translate("SELECT SUM(n_Cantidad) AS total FROM MA_DEPOPROD WHERE c_CodDeposito = '01'");
    expect(t.columns[0]).toEqual({ name: 'total', type: { kind: 'decimal', precision: 38, scale: 3 }, nullable: true });
    const [[total]] = run("SELECT SUM(n_Cantidad) AS total FROM MA_DEPOPROD WHERE c_CodDeposito = '01'") as [[string]];
    expect(total).toBe(
      `${stock < 0n ? '-' : ''}${(stock < 0n ? -stock : stock) / 1000n}.${String((stock < 0n ? -stock : stock) % 1000n).padStart(3, '0')}`,
    );
  });

  it('orders strings only while they are ASCII: accented text fails the statement instead of sorting differently', () => {
    expect(run('SELECT TOP 2 c_Codigo FROM MA_PRODUCTOS ORDER BY c_Codigo')).toEqual([['000001'], ['000002']]);
    expect(() => run('SELECT c_Descri FROM MA_PRODUCTOS ORDER BY c_Descri')).toThrow(/ordering text that is not ASCII .* not supported/);
    expect(() => run('SELECT MAX(c_Descripcio) AS m FROM MA_DEPARTAMENTOS')).toThrow(/not ASCII/);
    // Equality needs no order: accented text compares (and ASCII letters case-insensitively).
    expect(run("SELECT c_Codigo FROM MA_DEPARTAMENTOS WHERE c_Descripcio = 'víveres'")).toEqual([['000003']]);
  });

  it('binds parameter values as their declared types', () => {
    const params = parseParamDeclarations('@desde decimal(18,4), @activo bit, @codigo varchar(15)');
    const sql = 'SELECT COUNT(*) AS n FROM MA_PRODUCTOS WHERE n_Precio1 >= @desde AND n_Activo = @activo AND c_Codigo <> @codigo';
    const expected = [...sim.catalog].filter((p) => p.precio >= 100_000n && p.activo && p.producto_id !== '000001').length;
    expect(run(sql, { '@desde': '10.0000', '@activo': true, '@codigo': '000001 ' }, params)).toEqual([[expected]]);
    expect(() => run(sql, { '@desde': 'diez', '@activo': true, '@codigo': 'x' }, params)).toThrow(/converting/);
  });

  it("follows the simulation's stock: a change is in the next answer", () => {
    const producto = sim.stellarInventario('01')[5]!.producto_id;
    const read = () =>
      run(`SELECT n_Cantidad FROM MA_DEPOPROD WHERE c_CodDeposito = @codigo_deposito AND c_CodArticulo = '${producto}'`, {
        '@codigo_deposito': '01',
      });
    sim.setCantidad('01', producto, 12_345n);
    expect(read()).toEqual([['12.345']]);
    sim.advance(60);
    expect(read()).toEqual([[sim.stellarInventario('01')[5]!.cantidad]]);
  });
});

describe('parameter declarations and session batches', () => {
  it("reads sp_executesql's @params", () => {
    expect(parseParamDeclarations('@codigo_deposito varchar(10), @N int, @d decimal(18,3), @s nvarchar(max)')).toEqual([
      { name: '@codigo_deposito', type: { kind: 'varchar', length: 10 } },
      { name: '@n', type: { kind: 'int' } },
      { name: '@d', type: { kind: 'decimal', precision: 18, scale: 3 } },
      { name: '@s', type: { kind: 'nvarchar', length: 4000 } },
    ]);
    expect(() => parseParamDeclarations('@x datetime2')).toThrow(/parameter type datetime2/);
    expect(() => parseParamDeclarations('@x int OUTPUT')).toThrow(/OUTPUT parameters/);
  });

  it("tells tedious's SET batch from anything else", () => {
    expect(
      isSessionSettings('set textsize 2147483647\nset quoted_identifier on\nset arithabort off\nset language us_english\nset datefirst 7'),
    ).toBe(true);
    expect(isSessionSettings('SET NOCOUNT ON; SET XACT_ABORT ON;')).toBe(true);
    expect(isSessionSettings('set nocount on; DELETE FROM MA_PRODUCTOS')).toBe(false);
    expect(isSessionSettings('set nocount on\nSELECT 1')).toBe(false);
    expect(isSessionSettings('')).toBe(false);
  });
});
