/**
 * The JavaScript shapes of the shared Avro types in schemas/types/ (as avsc reads and writes
 * them with core/avro/logical-types.ts: decimals as exact strings, instants as Date, dates
 * as "YYYY-MM-DD"). Producers, consumers and the simulators' truth all use these.
 */

/** schemas/types/InventoryRow.avsc */
export interface InventoryRow {
  deposito: string;
  producto_id: string;
  codigo_barras: string | null;
  descripcion: string;
  departamento_codigo: string | null;
  departamento_nombre: string | null;
  grupo_codigo: string | null;
  grupo_nombre: string | null;
  subgrupo_codigo: string | null;
  subgrupo_nombre: string | null;
  unidad: string;
  cantidad: string;
  costo: string | null;
  precio: string | null;
  activo: boolean;
  actualizado_en: Date | null;
}

/** schemas/types/VentaLinea.avsc */
export interface VentaLinea {
  ubicacion_id: string;
  fecha: string;
  numero_factura: string;
  linea: number;
  fecha_hora: Date;
  producto_id: string;
  cantidad: string;
  precio_unitario: string;
  descuento: string;
  total: string;
  caja: string | null;
  anulada: boolean;
}
