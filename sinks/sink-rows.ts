/**
 * The rows the PostgreSQL sink writes, as column arrays (pure): the row types of its tables,
 * each table's column order (`*_COLUMNS`, sql/postgres/00[1-4]*.sql without the columns left
 * to their DEFAULT now()), the conversions between rows and columns, the ops.etl-runs record
 * and the error a planner raises for a record it cannot write (sinks/sink-batch.ts plans,
 * sinks/postgres-writer.ts writes).
 */
import { FluxionError, type FluxionErrorOptions } from '../core/errors.ts';
import type { InventoryRow, PhantomAlert, VentaLinea } from '../core/records.ts';
import type { TopicName } from '../core/topics.ts';
import type { EtlRun } from '../core/etl-run.ts';

/** The ops.etl-runs record: one definition for the extractors, the sink and the notifier (core/etl-run.ts). */
export type { EtlRun };

/**
 * A batch the sink cannot write as it is: a record contradicts its own envelope or the
 * history already planned. Not retriable: the same records give the same error, so the sink
 * must set the record at `index` aside (its DLQ) and plan the batch again without it.
 */
export class SinkBatchError extends FluxionError {
  readonly topic: TopicName;
  /** The record's topic key, as docs/architecture.md (Topics) writes it. */
  readonly key: string;
  readonly field: string;
  /** Position of the offending record in the batch given to the planner. */
  readonly index: number;

  constructor(
    topic: TopicName,
    key: string,
    field: string,
    index: number,
    problem: string,
    value?: unknown,
    options: FluxionErrorOptions = {},
  ) {
    super(`${topic} key ${key} (record ${index} of the batch): ${field}: ${problem}`, {
      code: 'SINK_BATCH',
      retriable: false,
      ...options,
      context: { topic, key, field, index, ...(value === undefined ? {} : { value }), ...options.context },
    });
    this.topic = topic;
    this.key = key;
    this.field = field;
    this.index = index;
  }
}

/** One array per column, all of one length. */
export type Columns<Row> = { [K in keyof Row]: Array<Row[K]> };

// Makes the compiler reject a column list that forgets a field of its row type.
type Covers<Row, N extends readonly (keyof Row)[]> = Exclude<keyof Row, N[number]> extends never ? N : never;
const columnList =
  <Row>() =>
  <const N extends readonly (keyof Row & string)[]>(names: Covers<Row, N>): N =>
    names;

export interface InventarioKey {
  ubicacion_id: string;
  deposito: string;
  producto_id: string;
}

export interface InventarioActualRow extends InventarioKey {
  cantidad: string;
  costo: string | null;
  precio: string | null;
  activo: boolean;
  snapshot_id: string;
  taken_at: Date;
}

/** Closes the key's open interval at `valid_to` (the key's first instant in the batch). */
export interface HistoricoCloseRow extends InventarioKey {
  valid_to: Date;
}

export interface InventarioHistoricoRow extends InventarioKey {
  cantidad: string;
  costo: string | null;
  precio: string | null;
  activo: boolean;
  op: 'c' | 'u';
  snapshot_id: string;
  valid_from: Date;
  valid_to: Date | null;
}

/** productos: the catalogue fields of an inventory row, with where and when it was last seen. */
export type ProductoRow = Pick<
  InventoryRow,
  | 'producto_id'
  | 'descripcion'
  | 'codigo_barras'
  | 'departamento_codigo'
  | 'departamento_nombre'
  | 'grupo_codigo'
  | 'grupo_nombre'
  | 'subgrupo_codigo'
  | 'subgrupo_nombre'
  | 'unidad'
> & { visto_en: Date; ubicacion_id: string };

/** ventas: the line's fields plus what the dedupe added (the column order is VENTAS_COLUMNS). */
export type VentaRow = VentaLinea & {
  fingerprint: string;
  first_seen_at: Date;
  extracted_at: Date;
  /** In a plan: versions of the line within the batch (what an insert writes). */
  version: number;
};

export interface AlertaRow {
  alert_id: string;
  ubicacion_id: string;
  deposito: string;
  producto_id: string;
  regla: PhantomAlert['rule'];
  confianza: number;
  estado: PhantomAlert['status'];
  resumen: string;
  /** JSON text of the evidence map. */
  evidencia: string;
  abierta_en: Date;
  actualizada_en: Date;
  /** updated_at of a RESOLVED record; null while the detector holds the alert open. */
  resuelta_en: Date | null;
}

/**
 * alertas.estado (sql/postgres/008_alertas_descartadas.sql): the detector's two states plus
 * DESCARTADA, which only an operator sets (`fluxion alertas descartar`) and only the sink keeps.
 */
export type AlertaEstado = PhantomAlert['status'] | 'DESCARTADA';
export const ALERTA_ESTADOS: readonly AlertaEstado[] = ['OPEN', 'RESOLVED', 'DESCARTADA'];

/** etl_runs: the record's own fields (the column order is ETL_RUNS_COLUMNS). */
export type EtlRunRow = EtlRun;

export const INVENTARIO_KEY_COLUMNS = columnList<InventarioKey>()(['ubicacion_id', 'deposito', 'producto_id']);
export const INVENTARIO_ACTUAL_COLUMNS = columnList<InventarioActualRow>()([
  'ubicacion_id',
  'deposito',
  'producto_id',
  'cantidad',
  'costo',
  'precio',
  'activo',
  'snapshot_id',
  'taken_at',
]);
export const HISTORICO_CLOSE_COLUMNS = columnList<HistoricoCloseRow>()(['ubicacion_id', 'deposito', 'producto_id', 'valid_to']);
export const INVENTARIO_HISTORICO_COLUMNS = columnList<InventarioHistoricoRow>()([
  'ubicacion_id',
  'deposito',
  'producto_id',
  'cantidad',
  'costo',
  'precio',
  'activo',
  'op',
  'snapshot_id',
  'valid_from',
  'valid_to',
]);
export const PRODUCTOS_COLUMNS = columnList<ProductoRow>()([
  'producto_id',
  'descripcion',
  'codigo_barras',
  'departamento_codigo',
  'departamento_nombre',
  'grupo_codigo',
  'grupo_nombre',
  'subgrupo_codigo',
  'subgrupo_nombre',
  'unidad',
  'visto_en',
  'ubicacion_id',
]);
export const VENTAS_COLUMNS = columnList<VentaRow>()([
  'ubicacion_id',
  'numero_factura',
  'linea',
  'fecha',
  'fecha_hora',
  'producto_id',
  'cantidad',
  'precio_unitario',
  'descuento',
  'total',
  'caja',
  'anulada',
  'fingerprint',
  'first_seen_at',
  'extracted_at',
  'version',
]);
export const ALERTAS_COLUMNS = columnList<AlertaRow>()([
  'alert_id',
  'ubicacion_id',
  'deposito',
  'producto_id',
  'regla',
  'confianza',
  'estado',
  'resumen',
  'evidencia',
  'abierta_en',
  'actualizada_en',
  'resuelta_en',
]);
/** alertas columns the sink never writes: only `fluxion alertas descartar` does (a dismissal survives every upsert). */
export const ALERTAS_OPERATOR_COLUMNS = ['nota', 'descartada_por', 'descartada_en'] as const;
export const ETL_RUNS_COLUMNS = columnList<EtlRunRow>()([
  'run_id',
  'ubicacion_id',
  'job',
  'status',
  'rows',
  'started_at',
  'finished_at',
  'snapshot_id',
  'fecha',
  'error_class',
  'error_message',
]);

export function toColumns<Row>(names: readonly (keyof Row)[], rows: Iterable<Row>): Columns<Row> {
  const out = {} as Columns<Row>;
  for (const n of names) out[n] = [];
  for (const row of rows) for (const n of names) out[n].push(row[n]);
  return out;
}

/** The inverse of toColumns: for tests, logs and DLQ messages. */
export function rowsOf<Row>(names: readonly (keyof Row)[], columns: Columns<Row>): Row[] {
  const length = columns[names[0]!].length;
  return Array.from({ length }, (_, i) => {
    const row = {} as Row;
    for (const n of names) row[n] = columns[n][i]!;
    return row;
  });
}

/** The arrays in `names` order: the bind parameters of an `unnest($1::t1[], $2::t2[], ...)`. */
export function columnParams<Row>(columns: Columns<Row>, names: readonly (keyof Row)[]): unknown[] {
  return names.map((n) => columns[n]);
}
