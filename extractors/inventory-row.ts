/**
 * The boundary check every inventory row passes before it may be published: both sources
 * map their fields into `PosInventoryItem`, and this turns it into an exact `InventoryRow`
 * or fails naming the store, the place, the field and the value.
 */
import type { InventoryRow } from '../core/records.ts';
import { booleanValue, codeValue, decimalValue, fail, instantValue, textValue, type RowPlace } from './pos-values.ts';

export type { InventoryRow };

/** A row as a source read it, before checking: values are whatever the POS sent. */
export type PosInventoryItem = { [K in keyof InventoryRow]: unknown };

/** Checks and normalises one row (decimals padded to their scale); throws PosDataError. */
export function toInventoryRow(item: PosInventoryItem, where: RowPlace): InventoryRow {
  const productoId = codeValue(where, 'producto_id', item.producto_id);
  const at = { ...where, productoId };
  const unidad = textValue(at, 'unidad', item.unidad, false)!;
  if (unidad.length === 0 || unidad.length > 10) fail(at, 'unidad', unidad, 'is not a unit (1-10 characters)');
  return {
    deposito: codeValue(at, 'deposito', item.deposito),
    producto_id: productoId,
    codigo_barras: textValue(at, 'codigo_barras', item.codigo_barras, true),
    descripcion: textValue(at, 'descripcion', item.descripcion, false)!,
    departamento_codigo: textValue(at, 'departamento_codigo', item.departamento_codigo, true),
    departamento_nombre: textValue(at, 'departamento_nombre', item.departamento_nombre, true),
    grupo_codigo: textValue(at, 'grupo_codigo', item.grupo_codigo, true),
    grupo_nombre: textValue(at, 'grupo_nombre', item.grupo_nombre, true),
    subgrupo_codigo: textValue(at, 'subgrupo_codigo', item.subgrupo_codigo, true),
    subgrupo_nombre: textValue(at, 'subgrupo_nombre', item.subgrupo_nombre, true),
    unidad,
    cantidad: decimalValue(at, 'cantidad', item.cantidad, 3, false)!,
    costo: decimalValue(at, 'costo', item.costo, 4, true),
    precio: decimalValue(at, 'precio', item.precio, 4, true),
    activo: booleanValue(at, 'activo', item.activo),
    actualizado_en: instantValue(at, 'actualizado_en', item.actualizado_en, true),
  };
}
