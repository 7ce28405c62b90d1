/**
 * What the Stellar simulator knows of the inventory query beyond running it
 * (simulators/stellar/tsql-translate.ts and vad10-database.ts run it): where it lives, the
 * 13 columns SQL Server describes for it (the contract the translation's typing is tested
 * against), and the data faults of simulators/faults.ts applied to its answer.
 */
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../core/paths.ts';
import type { InventarioTruthRow } from '../data/store-simulation.ts';
import { servedInventario, type StoreFaults } from '../faults.ts';
import { isDecimalText, type CellValue, type ColumnDef } from './tds-protocol.ts';

export const INVENTARIO_SQL_PATH = join(PROJECT_ROOT, 'sql', 'stellar', 'query_inventario_generic.sql');

/** The query's only parameter, bound by the extractor (never formatted into the text). */
export const DEPOSITO_PARAM = '@codigo_deposito';

/** The columns of the inventory query, in its SELECT order, as SQL Server types them. */
export const INVENTARIO_COLUMNS: readonly ColumnDef[] = [
  { name: 'codigo_producto', type: { kind: 'varchar', length: 15 }, nullable: false },
  { name: 'codigo_barras', type: { kind: 'varchar', length: 20 }, nullable: true },
  { name: 'descripcion', type: { kind: 'varchar', length: 100 }, nullable: false },
  { name: 'departamento_codigo', type: { kind: 'varchar', length: 10 }, nullable: false },
  // Outer-joined: SQL Server reports the column nullable although every department exists.
  { name: 'departamento_nombre', type: { kind: 'varchar', length: 100 }, nullable: true },
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

/** True when some fault changes what the POS reports (not how it travels). */
export function hasDataFaults(f: StoreFaults): boolean {
  return Boolean(f.emptyInventory || f.massZerosShare || f.phantomZeros?.length || f.invalidDecimalFor);
}

/** The positions of codigo_producto and cantidad when a result is the inventory's shape. */
export function inventarioShape(columns: readonly ColumnDef[]): { codigo: number; cantidad: number } | undefined {
  const codigo = columns.findIndex((c) => c.name.toLowerCase() === 'codigo_producto');
  const cantidad = columns.findIndex((c) => c.name.toLowerCase() === 'cantidad');
  return codigo === -1 || cantidad === -1 ? undefined : { codigo, cantidad };
}

/**
 * The data faults as a rewrite of an inventory-shaped answer (columns codigo_producto and
 * cantidad): the rows of `truth` that servedInventario changes get its cantidad; null when
 * the POS reports nothing at all. Rows the truth does not hold pass unchanged.
 */
export function inventarioFaultRewrite(
  columns: readonly ColumnDef[],
  truth: InventarioTruthRow[],
  faults: StoreFaults,
): ((row: CellValue[]) => CellValue[]) | null {
  const shape = inventarioShape(columns);
  if (!shape) return (row) => row;
  if (faults.emptyInventory) return null;
  const { codigo, cantidad } = shape;
  const served = servedInventario(truth, faults);
  const changed = new Map<string, string>();
  served.forEach((r, i) => {
    if (r.cantidad !== truth[i]!.cantidad) changed.set(r.producto_id, isDecimalText(r.cantidad) ? r.cantidad : OUT_OF_RANGE_CANTIDAD);
  });
  return (row) => {
    const value = changed.get(String(row[codigo]));
    if (value === undefined) return row;
    const copy = [...row];
    copy[cantidad] = value;
    return copy;
  };
}
