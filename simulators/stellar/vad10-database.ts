/**
 * The simulated store's VAD10 database: the seven tables the Stellar inventory query reads
 * (MA_PRODUCTOS, MA_CODIGOS, MA_DEPARTAMENTOS, MA_GRUPOS, MA_SUBGRUPOS, MA_DEPOSITO,
 * MA_DEPOPROD), held in an in-memory SQLite database (node:sqlite) and loaded from a
 * StoreSimulation: its catalogue as generated (several codes per product, several BARRA
 * codes, none, inactive products, PROCURA, missing groups and subgroups) and its stock.
 *
 * Beside the store's own depositos the database holds what a real VAD10 holds and the query
 * must leave out: a damaged-goods deposito (MERMAS) with stock of every product, and a
 * discontinued department (DESCONTINUADOS) whose groups and subgroups reuse the live codes,
 * so a join that forgets the deposito or the department returns more rows.
 *
 * Stock follows the simulation: changes are noted as they happen and written before the
 * next statement runs. Decimals are stored as SQLite numbers (exact while the unscaled value
 * stays below 2^52, checked at load) and leave as exact text of their column's scale.
 */
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import type { StoreSimulation } from '../data/store-simulation.ts';
import type { CellValue, ColumnType } from './tds-protocol.ts';
import { FOLD, ORDER_GUARD, TsqlError, UNSUPPORTED, type Catalog, type CatalogTable, type Translation } from './tsql-translate.ts';

const varchar = (length: number): ColumnType => ({ kind: 'varchar', length });
const decimal = (precision: number, scale: number): ColumnType => ({ kind: 'decimal', precision, scale });
const BIT: ColumnType = { kind: 'bit' };

/** The tables and columns the inventory query reads, typed as SQL Server reports them. */
export const VAD10_TABLES: readonly CatalogTable[] = [
  {
    name: 'MA_PRODUCTOS',
    columns: [
      { name: 'c_Codigo', type: varchar(15), nullable: false },
      { name: 'c_Descri', type: varchar(100), nullable: false },
      { name: 'c_Departamento', type: varchar(10), nullable: false },
      { name: 'c_Grupo', type: varchar(10), nullable: true },
      { name: 'c_Subgrupo', type: varchar(10), nullable: true },
      { name: 'n_Activo', type: BIT, nullable: false },
      { name: 'n_CostoAct', type: decimal(18, 4), nullable: true },
      { name: 'n_Precio1', type: decimal(18, 4), nullable: true },
      { name: 'c_Unidad', type: varchar(5), nullable: false },
    ],
  },
  {
    name: 'MA_CODIGOS',
    columns: [
      { name: 'c_CodNasa', type: varchar(15), nullable: false },
      { name: 'c_Codigo', type: varchar(20), nullable: false },
      { name: 'c_TipoCodigo', type: varchar(10), nullable: false },
    ],
  },
  {
    name: 'MA_DEPARTAMENTOS',
    columns: [
      { name: 'c_Codigo', type: varchar(10), nullable: false },
      { name: 'c_Descripcio', type: varchar(100), nullable: false },
    ],
  },
  {
    name: 'MA_GRUPOS',
    columns: [
      { name: 'c_Codigo', type: varchar(10), nullable: false },
      { name: 'c_Departamento', type: varchar(10), nullable: false },
      { name: 'c_Descripcio', type: varchar(100), nullable: false },
    ],
  },
  {
    name: 'MA_SUBGRUPOS',
    columns: [
      { name: 'c_Codigo', type: varchar(10), nullable: false },
      { name: 'c_Grupo', type: varchar(10), nullable: false },
      { name: 'c_Departamento', type: varchar(10), nullable: false },
      { name: 'c_Descripcio', type: varchar(100), nullable: false },
    ],
  },
  {
    name: 'MA_DEPOSITO',
    columns: [
      { name: 'c_CodDeposito', type: varchar(10), nullable: false },
      { name: 'c_Descripcion', type: varchar(100), nullable: false },
    ],
  },
  {
    name: 'MA_DEPOPROD',
    columns: [
      { name: 'c_CodDeposito', type: varchar(10), nullable: false },
      { name: 'c_CodArticulo', type: varchar(15), nullable: false },
      { name: 'n_Cantidad', type: decimal(18, 3), nullable: false },
    ],
  },
];

const KEYS: Record<string, string> = {
  MA_PRODUCTOS: 'c_Codigo',
  MA_CODIGOS: 'c_TipoCodigo, c_CodNasa, c_Codigo',
  MA_DEPARTAMENTOS: 'c_Codigo',
  MA_GRUPOS: 'c_Codigo, c_Departamento',
  MA_SUBGRUPOS: 'c_Codigo, c_Grupo, c_Departamento',
  MA_DEPOSITO: 'c_CodDeposito',
  MA_DEPOPROD: 'c_CodDeposito, c_CodArticulo',
};

/** The deposito the store does not extract (damaged goods) and the department nobody sells from. */
export const MERMAS_DEPOSITO = 'MERMAS';
export const DESCONTINUADOS = '000099';

const NOT_ASCII = /[\x80-\uffff]/;

/** Unscaled values beyond this would not survive the trip through a double. */
const EXACT_LIMIT = 2n ** 52n;

function sqliteType(t: ColumnType): string {
  switch (t.kind) {
    case 'varchar':
    case 'nvarchar':
      // The server's collation is case-insensitive (SQLite's NOCASE folds ASCII only).
      return 'TEXT COLLATE NOCASE';
    case 'decimal':
      return 'NUMERIC';
    case 'bit':
    case 'int':
      return 'INTEGER';
  }
}

function ddl(table: CatalogTable): string {
  const columns = table.columns.map((c) => `"${c.name}" ${sqliteType(c.type)}${c.nullable ? '' : ' NOT NULL'}`);
  return `CREATE TABLE "${table.name}" (${columns.join(', ')}, PRIMARY KEY (${KEYS[table.name]})) WITHOUT ROWID`;
}

function unscaledToNumber(value: bigint, scale: number, what: string): number {
  if (value >= EXACT_LIMIT || value <= -EXACT_LIMIT)
    throw new RangeError(`${what}: ${value} (scale ${scale}) is beyond what the simulator stores exactly`);
  return Number(value) / 10 ** scale;
}

/** A stored value as the TDS cell of its column's type. */
function cell(value: unknown, type: ColumnType, column: string): CellValue {
  if (value === null || value === undefined) return null;
  switch (type.kind) {
    case 'decimal': {
      const n = typeof value === 'bigint' ? Number(value) : Number(value);
      if (
        !Number.isFinite(n) ||
        Math.abs(n) * 10 ** type.scale >= Number(EXACT_LIMIT) ||
        Math.abs(n) >= 10 ** (type.precision - type.scale)
      ) {
        throw new TsqlError(8115, `Arithmetic overflow error converting ${String(value)} to data type numeric (column ${column}).`);
      }
      return n.toFixed(type.scale);
    }
    case 'bit':
      return Number(value) !== 0;
    case 'int':
      return Number(value);
    case 'varchar':
    case 'nvarchar':
      return String(value);
  }
}

/**
 * A parameter's value as SQLite takes it, converted to its declared type as SQL Server does
 * on the call (a number declared varchar is text, a decimal sent as text is a number).
 */
function bindValue(value: unknown, name: string, type: ColumnType): SQLInputValue {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') {
    if (type.kind === 'varchar' || type.kind === 'nvarchar') return typeof value === 'boolean' ? (value ? '1' : '0') : String(value);
    const n = typeof value === 'boolean' ? (value ? 1 : 0) : Number(value);
    if (!Number.isFinite(n)) throw new TsqlError(8114, `Error converting data type ${typeof value} to ${type.kind} for ${name}.`);
    return type.kind === 'bit' ? (n !== 0 ? 1 : 0) : n;
  }
  throw new TsqlError(
    UNSUPPORTED,
    `T-SQL construct not supported by the Stellar simulator's translation: a value of type ` +
      `${value?.constructor?.name ?? typeof value} for ${name}.`,
  );
}

export class Vad10Database implements Catalog {
  private readonly db = new DatabaseSync(':memory:');
  private readonly simulation: StoreSimulation;
  private readonly tables = new Map<string, CatalogTable>();
  private readonly dirty = new Set<string>();
  private readonly updateStock: StatementSync;
  private readonly unsubscribe: () => void;

  constructor(simulation: StoreSimulation) {
    this.simulation = simulation;
    for (const table of VAD10_TABLES) this.db.exec(ddl(table));
    this.db.function(ORDER_GUARD, { deterministic: true }, (value) => {
      if (typeof value === 'string' && NOT_ASCII.test(value)) {
        throw new Error(
          `ordering text that is not ASCII ("${value.slice(0, 40)}") is not supported by the Stellar simulator's translation: SQL ` +
            `Server's collation and SQLite would sort it differently`,
        );
      }
      return value;
    });
    this.db.function(FOLD, { deterministic: true }, (value) => (typeof value === 'string' ? value.toUpperCase() : value));
    this.load();
    // Text never changes after the load: which columns are plain ASCII is known once.
    for (const table of VAD10_TABLES) {
      const columns = table.columns.map((c) =>
        c.type.kind === 'varchar' || c.type.kind === 'nvarchar' ? { ...c, ascii: this.isAscii(table.name, c.name) } : c,
      );
      this.tables.set(table.name.toLowerCase(), { name: table.name, columns });
    }
    this.updateStock = this.db.prepare('UPDATE MA_DEPOPROD SET n_Cantidad = ? WHERE c_CodDeposito = ? AND c_CodArticulo = ?');
    const renameProducto = this.db.prepare('UPDATE MA_PRODUCTOS SET c_Descri = ? WHERE c_Codigo = ?');
    const stopStock = simulation.onStockChange((deposito, productoId) => this.dirty.add(`${deposito}\u0000${productoId}`));
    const stopRename = simulation.onRename((productoId, descripcion) => {
      // The ASCII flags above were computed once from the loaded text; a rename must keep them true.
      if (
        /[^ -~]/.test(descripcion) &&
        this.tables.get('ma_productos')?.columns.find((c) => c.name === 'c_Descri' && 'ascii' in c && c.ascii)
      ) {
        throw new Error(`rename of ${productoId}: the simulator's MA_PRODUCTOS.c_Descri holds ASCII only, got "${descripcion}"`);
      }
      renameProducto.run(descripcion, productoId);
    });
    this.unsubscribe = () => {
      stopStock();
      stopRename();
    };
  }

  table(name: string): CatalogTable | undefined {
    return this.tables.get(name.toLowerCase());
  }

  /**
   * The rows of a translated statement, one at a time (SQLite steps as the caller pulls;
   * closing the generator early resets the statement). Values are keyed by parameter name.
   */
  *rows(translation: Translation, values: ReadonlyMap<string, unknown>): Generator<CellValue[]> {
    this.flush();
    const bound: Record<string, SQLInputValue> = {};
    for (const { key, param, type } of translation.bindings) bound[key] = bindValue(values.get(param), param, type);
    const statement = this.db.prepare(translation.sql);
    statement.setReturnArrays(true);
    const { columns } = translation;
    for (const row of statement.iterate(bound) as Iterable<unknown[]>) {
      const out = new Array<CellValue>(columns.length);
      for (let i = 0; i < columns.length; i++) out[i] = cell(row[i], columns[i]!.type, columns[i]!.name);
      yield out;
    }
  }

  /** The stored code of a deposito a value designates (SQL Server's comparison), if any. */
  deposito(value: unknown): string | undefined {
    if (typeof value !== 'string') return undefined;
    const row = this.db.prepare("SELECT c_CodDeposito FROM MA_DEPOSITO WHERE c_CodDeposito = rtrim(?, ' ')").get(value);
    return row ? String(row.c_CodDeposito) : undefined;
  }

  private isAscii(table: string, column: string): boolean {
    return this.db.prepare(`SELECT 1 AS found FROM "${table}" WHERE "${column}" GLOB '*[^ -~]*' LIMIT 1`).get() === undefined;
  }

  close(): void {
    this.unsubscribe();
    this.db.close();
  }

  /** Writes the stock changes noted since the last statement. */
  private flush(): void {
    if (this.dirty.size === 0) return;
    this.db.exec('BEGIN');
    try {
      for (const k of this.dirty) {
        const [deposito, productoId] = k.split('\u0000') as [string, string];
        const cantidad = unscaledToNumber(this.simulation.cantidad(deposito, productoId), 3, `${deposito}/${productoId} n_Cantidad`);
        this.updateStock.run(cantidad, deposito, productoId);
      }
      this.db.exec('COMMIT');
    } catch (err) {
      this.db.exec('ROLLBACK');
      throw err;
    }
    this.dirty.clear();
  }

  private load(): void {
    const sim = this.simulation;
    const insert = (table: string, columns: number) =>
      this.db.prepare(`INSERT INTO ${table} VALUES (${Array(columns).fill('?').join(', ')})`);
    const producto = insert('MA_PRODUCTOS', 9);
    const codigo = this.db.prepare('INSERT OR IGNORE INTO MA_CODIGOS VALUES (?, ?, ?)'); // a code drawn twice for one product is one code
    const departamento = insert('MA_DEPARTAMENTOS', 2);
    const grupo = insert('MA_GRUPOS', 3);
    const subgrupo = insert('MA_SUBGRUPOS', 4);
    const depositoRow = insert('MA_DEPOSITO', 2);
    const stock = insert('MA_DEPOPROD', 3);
    if (sim.depositos.some((d) => d.toUpperCase() === MERMAS_DEPOSITO))
      throw new Error(`${sim.ubicacionId}: deposito ${MERMAS_DEPOSITO} is the simulator's own damaged-goods deposito`);

    const departamentos = new Map<string, string>([[DESCONTINUADOS, 'DESCONTINUADOS']]);
    const grupos = new Map<string, [string, string, string]>();
    const subgrupos = new Map<string, [string, string, string, string]>();
    this.db.exec('BEGIN');
    for (const p of sim.catalog) {
      const dep = p.departamento.codigo;
      departamentos.set(dep, p.departamento.nombre);
      if (p.grupo) {
        grupos.set(`${p.grupo.codigo}|${dep}`, [p.grupo.codigo, dep, p.grupo.nombre]);
        grupos.set(`${p.grupo.codigo}|${DESCONTINUADOS}`, [p.grupo.codigo, DESCONTINUADOS, `${p.grupo.nombre} (DESCONTINUADO)`]);
      }
      if (p.grupo && p.subgrupo) {
        subgrupos.set(`${p.subgrupo.codigo}|${p.grupo.codigo}|${dep}`, [p.subgrupo.codigo, p.grupo.codigo, dep, p.subgrupo.nombre]);
        subgrupos.set(`${p.subgrupo.codigo}|${p.grupo.codigo}|${DESCONTINUADOS}`, [
          p.subgrupo.codigo,
          p.grupo.codigo,
          DESCONTINUADOS,
          `${p.subgrupo.nombre} (DESCONTINUADO)`,
        ]);
      }
      const what = `${sim.ubicacionId}/${p.producto_id}`;
      producto.run(
        p.producto_id,
        p.descripcion,
        dep,
        p.grupo?.codigo ?? null,
        p.subgrupo?.codigo ?? null,
        p.activo ? 1 : 0,
        unscaledToNumber(p.costo, 4, `${what} n_CostoAct`),
        unscaledToNumber(p.precio, 4, `${what} n_Precio1`),
        p.unidad,
      );
      for (const c of p.codigos) codigo.run(p.producto_id, c.codigo, c.tipo);
    }
    for (const [code, name] of departamentos) departamento.run(code, name);
    for (const g of grupos.values()) grupo.run(...g);
    for (const s of subgrupos.values()) subgrupo.run(...s);
    for (const d of sim.depositos) {
      depositoRow.run(d, `DEPOSITO ${d}`);
      for (const p of sim.catalog)
        stock.run(d, p.producto_id, unscaledToNumber(sim.cantidad(d, p.producto_id), 3, `${d}/${p.producto_id} n_Cantidad`));
    }
    depositoRow.run(MERMAS_DEPOSITO, 'MERMAS Y AVERÍAS');
    let i = 0;
    for (const p of sim.catalog) stock.run(MERMAS_DEPOSITO, p.producto_id, (i++ % 7) + 1);
    this.db.exec('COMMIT');
  }
}
