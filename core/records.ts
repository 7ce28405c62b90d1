/**
 * The JavaScript shapes of the shared Avro types in schemas/types/ (as avsc reads and writes
 * them with core/avro/logical-types.ts: decimals as exact strings, instants as Date, dates
 * as "YYYY-MM-DD"). Producers, consumers and the simulators' truth all use these.
 * test/unit/record-types.test.ts checks them, and every other hand-written record type, against
 * the schemas.
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

/** schemas/pos.inventario.changes-value.avsc */
export interface InventoryChange {
  op: 'c' | 'u' | 'd';
  ubicacion_id: string;
  deposito: string;
  producto_id: string;
  before: InventoryRow | null;
  after: InventoryRow | null;
  snapshot_id: string;
  taken_at: Date;
  source: 'KLK' | 'STELLAR';
}

/** schemas/pos.ventas-value.avsc */
export interface Venta {
  op: 'c' | 'u';
  linea: VentaLinea;
  fingerprint: string;
  first_seen_at: Date;
  extracted_at: Date;
}

/** schemas/alerts.phantom-zeros-value.avsc */
export interface PhantomAlert {
  alert_id: string;
  ubicacion_id: string;
  deposito: string;
  producto_id: string;
  rule: 'SELLING_AT_ZERO' | 'FLIP_FLOP' | 'UNEXPLAINED_DROP';
  confidence: number;
  status: 'OPEN' | 'RESOLVED';
  summary: string;
  evidence: Record<string, string>;
  opened_at: Date;
  updated_at: Date;
}

export type QuarantineStatus = 'QUARANTINED' | 'RELEASE_REQUESTED' | 'RELEASED' | 'SUPERSEDED' | 'STALE';

/** schemas/pos.inventario.quarantine-value.avsc */
export interface QuarantineRecord {
  snapshot_id: string;
  ubicacion_id: string;
  source: 'KLK' | 'STELLAR';
  taken_at: Date;
  status: QuarantineStatus;
  reason: string;
  row_count: number;
  chunk_count: number;
  partition: number;
  first_offset: number;
  updated_at: Date;
  note: string | null;
}
