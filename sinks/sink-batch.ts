/**
 * The PostgreSQL sink's planning half, pure: one Kafka batch (one partition, records in
 * offset order) of decoded records in, the column arrays of the set-based statements that
 * write it in one transaction out (`unnest($1::text[], ...)`, or COPY into staging tables for
 * large groups, sinks/postgres-writer.ts; docs/pitfalls.md: no per-row round trips, no 65,535-parameter
 * ceiling). PostgreSQL refuses to touch one row twice in one
 * `INSERT ... ON CONFLICT DO UPDATE`, so every plan holds each key at most once per statement.
 *
 * Each `*_COLUMNS` constant is the table's column order (sql/postgres/00[1-4]*.sql, without
 * columns left to their DEFAULT now()); `columnParams(plan.x, X_COLUMNS)` gives the arrays in
 * that order. Numeric columns are exact decimal strings, timestamptz columns Date, jsonb
 * columns JSON text (cast `$n::jsonb[]`), uuid columns strings.
 *
 * What the plans mean depends on how the sink applies them; the unit tests hold executable
 * models of these statements (test/helpers/sink-batch-model.ts), and the SQL must do the same:
 *
 * - inventario_actual: upsert `upserts` (ON CONFLICT (pk) DO UPDATE), delete `deletes`. The
 *   two hold disjoint keys, so their order does not matter.
 * - inventario_historico, in this order:
 *   1. `SELECT inventario_historico_asegurar_mes(m) FROM unnest($months)`;
 *   2. with `closes` (key, t): DELETE the row of the key with `valid_from = t AND valid_to
 *      IS NULL`: a row the previous batch opened at the very instant this batch starts with,
 *      i.e. a duplicate of that instant, superseded by this batch (see planInventory);
 *   3. with `closes` (key, t): UPDATE ... SET valid_to = t WHERE valid_to IS NULL AND
 *      valid_from < t;
 *   4. plain INSERT of `opens`: after 2 and 3 nothing can conflict, and a conflict would
 *      mean a key's taken_at went backwards across batches, which must fail loudly.
 *   (sinks/postgres-writer.ts runs 2 as part of 4, an upsert of the open row at t, for every
 *   key that opens a row at t, and as a DELETE only for keys whose first change is a d.)
 * - productos: upsert with `ON CONFLICT DO UPDATE ... WHERE (productos.visto_en,
 *   productos.ubicacion_id) <= (EXCLUDED.visto_en, EXCLUDED.ubicacion_id)`: an older
 *   description never overwrites a newer one, and of two stores describing a product at the
 *   same instant the greater ubicacion_id wins, whichever partition the sink wrote first.
 *   Rows whose descriptive columns equal the stored ones are left out before the upsert
 *   (most changes are quantities): visto_en is then when the stored description was last
 *   written, and which store's snapshot wrote an unchanged description depends on batching.
 * - ventas: upsert; `version` counts versions (see planVentas and nextVentaVersion).
 * - alertas: `resolved` first, then `open`, each an upsert on alert_id (see planAlertas); a
 *   row an operator dismissed keeps estado DESCARTADA whatever the detector sends for its
 *   alert_id (see mergeAlerta).
 * - etl_runs: upsert on (run_id, ubicacion_id).
 */
import type { InventoryChange, InventoryRow, Venta } from '../core/records.ts';
import type { TopicName } from '../core/topics.ts';
import {
  ETL_RUNS_COLUMNS,
  HISTORICO_CLOSE_COLUMNS,
  INVENTARIO_ACTUAL_COLUMNS,
  INVENTARIO_HISTORICO_COLUMNS,
  INVENTARIO_KEY_COLUMNS,
  PRODUCTOS_COLUMNS,
  SinkBatchError,
  toColumns,
  VENTAS_COLUMNS,
  type Columns,
  type EtlRun,
  type EtlRunRow,
  type HistoricoCloseRow,
  type InventarioActualRow,
  type InventarioHistoricoRow,
  type InventarioKey,
  type ProductoRow,
  type VentaRow,
} from './sink-rows.ts';

// The row types and column lists live in sinks/sink-rows.ts; their names stay importable from here.
export * from './sink-rows.ts';
// Alert planning lives in sinks/sink-plan-alertas.ts; its names stay importable from here.
export * from './sink-plan-alertas.ts';

export interface InventoryPlan {
  actual: { upserts: Columns<InventarioActualRow>; deletes: Columns<InventarioKey> };
  historico: { closes: Columns<HistoricoCloseRow>; opens: Columns<InventarioHistoricoRow> };
  productos: Columns<ProductoRow>;
  /** First instant (UTC) of each month some `opens` row starts in, ascending. */
  months: Date[];
}

const CHANGES: TopicName = 'pos.inventario.changes';
const isInstant = (d: unknown): d is Date => d instanceof Date && !Number.isNaN(d.getTime());

export const inventarioKey = (k: InventarioKey): string => `${k.ubicacion_id}/${k.deposito}/${k.producto_id}`;

export function checkChange(c: InventoryChange, index: number): void {
  const fail = (field: string, problem: string, value?: unknown) =>
    new SinkBatchError(CHANGES, inventarioKey(c), field, index, problem, value);
  if (c.op !== 'c' && c.op !== 'u' && c.op !== 'd') throw fail('op', `"${String(c.op)}" is not c, u or d`, c.op);
  for (const field of ['ubicacion_id', 'deposito', 'producto_id'] as const) {
    if (typeof c[field] !== 'string' || c[field] === '') throw fail(field, 'is empty', c[field]);
  }
  if (!isInstant(c.taken_at)) throw fail('taken_at', 'is not a valid instant', c.taken_at);
  if (c.op === 'd') {
    // A d row with an after would say the product both vanished and has a value.
    if (c.after) throw fail('after', 'op d carries an after row');
    return;
  }
  if (!c.after) throw fail('after', `op ${c.op} without an after row`, null);
  // The row is written under the envelope's key; an after of another product would land there.
  if (c.after.deposito !== c.deposito)
    throw fail('after.deposito', `is ${c.after.deposito}, the key says ${c.deposito}`, c.after.deposito);
  if (c.after.producto_id !== c.producto_id)
    throw fail('after.producto_id', `is ${c.after.producto_id}, the key says ${c.producto_id}`, c.after.producto_id);
}

const monthStart = (d: Date): number => Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);

/**
 * Plans inventario_actual, inventario_historico and productos for a batch of changes.
 *
 * History decisions:
 * - Per key, taken_at must not go backwards (the differ applies only snapshots newer than
 *   the last applied one): a change older than the key's previous change in the batch is a
 *   SinkBatchError on taken_at, because it would make an interval end before it starts.
 * - Changes of one key with the same taken_at are one instant of the store's truth: the last
 *   in offset order wins and the earlier ones leave no history row (an interval [t, t) is
 *   empty and refused by the table's CHECK), exactly as inventario_actual keeps the last.
 *   A duplicate that straddles a batch boundary is superseded by step 2 of the module's
 *   recipe, so batch boundaries never change the history.
 * - A d closes the open interval and opens nothing; a c/u after it reopens the key.
 *
 * productos keeps, per producto_id, the after row with the latest taken_at (on equal
 * taken_at the greater ubicacion_id, then the later record), the same row the table's guard
 * (productoNoNewer) keeps when the changes are applied
 * one by one: in one partition the stores' snapshots interleave, so offset order alone is not
 * time order across stores. d changes describe nothing and leave productos alone, and so does
 * a u whose catalogue fields equal its before's: the store changed a quantity or a price, not
 * the product. Without that rule every change rewrote its product, and where two POS describe
 * one code differently (a KLK store and a Stellar CEDI) productos flipped between them at
 * every change of either (bench/e2e measured 16,000 productos rows for 19,000 changes a cycle).
 */
export function planInventory(changes: readonly InventoryChange[]): InventoryPlan {
  const byKey = new Map<string, InventoryChange[]>();
  const productos = new Map<string, ProductoRow>();
  changes.forEach((c, index) => {
    checkChange(c, index);
    const key = inventarioKey(c);
    let steps = byKey.get(key);
    if (!steps) byKey.set(key, (steps = []));
    const prev = steps.at(-1);
    if (!prev || c.taken_at.getTime() > prev.taken_at.getTime()) steps.push(c);
    else if (c.taken_at.getTime() === prev.taken_at.getTime()) steps[steps.length - 1] = c;
    else {
      throw new SinkBatchError(
        CHANGES,
        key,
        'taken_at',
        index,
        `${c.taken_at.toISOString()} is before ${prev.taken_at.toISOString()}, the key's previous change in this batch`,
        c.taken_at,
      );
    }
    if (c.after && !(c.op === 'u' && c.before && sameCatalogue(c.before, c.after))) {
      const seen = productos.get(c.producto_id);
      if (!seen || productoNoNewer(seen, c.taken_at, c.ubicacion_id)) productos.set(c.producto_id, productoRow(c, c.after));
    }
  });

  const upserts: InventarioActualRow[] = [];
  const deletes: InventarioKey[] = [];
  const closes: HistoricoCloseRow[] = [];
  const opens: InventarioHistoricoRow[] = [];
  const months = new Set<number>();
  for (const steps of byKey.values()) {
    const first = steps[0]!;
    const last = steps.at(-1)!;
    const key = { ubicacion_id: first.ubicacion_id, deposito: first.deposito, producto_id: first.producto_id };
    if (last.after) upserts.push({ ...key, ...values(last.after), snapshot_id: last.snapshot_id, taken_at: last.taken_at });
    else deletes.push(key);
    closes.push({ ...key, valid_to: first.taken_at });
    steps.forEach((c, i) => {
      if (!c.after) return;
      opens.push({
        ...key,
        ...values(c.after),
        op: c.op as 'c' | 'u',
        snapshot_id: c.snapshot_id,
        valid_from: c.taken_at,
        valid_to: steps[i + 1]?.taken_at ?? null,
      });
      months.add(monthStart(c.taken_at));
    });
  }
  return {
    actual: { upserts: toColumns(INVENTARIO_ACTUAL_COLUMNS, upserts), deletes: toColumns(INVENTARIO_KEY_COLUMNS, deletes) },
    historico: { closes: toColumns(HISTORICO_CLOSE_COLUMNS, closes), opens: toColumns(INVENTARIO_HISTORICO_COLUMNS, opens) },
    productos: toColumns(PRODUCTOS_COLUMNS, productos.values()),
    months: [...months].sort((a, b) => a - b).map((ms) => new Date(ms)),
  };
}

/** (visto_en, ubicacion_id) of `seen` <= (t, ubicacion): the productos guard, as the SQL has it. */
export const productoNoNewer = (seen: Pick<ProductoRow, 'visto_en' | 'ubicacion_id'>, t: Date, ubicacion: string): boolean =>
  seen.visto_en.getTime() < t.getTime() || (seen.visto_en.getTime() === t.getTime() && seen.ubicacion_id <= ubicacion);

const values = (r: InventoryRow) => ({ cantidad: r.cantidad, costo: r.costo, precio: r.precio, activo: r.activo });

function productoRow(c: InventoryChange, r: InventoryRow): ProductoRow {
  return { ...catalogueRow(r), producto_id: c.producto_id, visto_en: c.taken_at, ubicacion_id: c.ubicacion_id };
}

/** The two rows describe the product alike (every productos field but where and when). */
function sameCatalogue(a: InventoryRow, b: InventoryRow): boolean {
  return (
    a.descripcion === b.descripcion &&
    a.codigo_barras === b.codigo_barras &&
    a.departamento_codigo === b.departamento_codigo &&
    a.departamento_nombre === b.departamento_nombre &&
    a.grupo_codigo === b.grupo_codigo &&
    a.grupo_nombre === b.grupo_nombre &&
    a.subgrupo_codigo === b.subgrupo_codigo &&
    a.subgrupo_nombre === b.subgrupo_nombre &&
    a.unidad === b.unidad
  );
}

/** What productos keeps of an inventory row, besides where and when it was seen. */
export type CatalogueRow = Omit<ProductoRow, 'visto_en' | 'ubicacion_id'>;

/** The catalogue fields of an inventory row (the sink's productos rows and the productos refresh). */
export function catalogueRow(r: InventoryRow): CatalogueRow {
  return {
    producto_id: r.producto_id,
    descripcion: r.descripcion,
    codigo_barras: r.codigo_barras,
    departamento_codigo: r.departamento_codigo,
    departamento_nombre: r.departamento_nombre,
    grupo_codigo: r.grupo_codigo,
    grupo_nombre: r.grupo_nombre,
    subgrupo_codigo: r.subgrupo_codigo,
    subgrupo_nombre: r.subgrupo_nombre,
    unidad: r.unidad,
  };
}

export interface VentasPlan {
  upserts: Columns<VentaRow>;
  /** Not a column: the fingerprint of each line's first record in the batch, for nextVentaVersion. */
  first_fingerprint: string[];
}

export const ventaKeyOf = (v: Venta): string => `${v.linea.ubicacion_id}/${v.linea.numero_factura}/${v.linea.linea}`;

/**
 * The version a line has after its planned row is applied. `version` counts the line's
 * distinct contents in arrival order: 1 when first written, +1 for each record whose
 * fingerprint differs from the one before it. A record equal to the stored line (re-sent as
 * c once the dedupe's state expired, e.g. by a recovery run) is not a new version. Collapsing
 * a batch loses the records in between, so the plan carries how many versions the batch
 * itself holds and its first fingerprint, which is what makes the result independent of how
 * the records were batched. The sink computes this in SQL (LEFT JOIN ventas in the INSERT's
 * SELECT: `cur.version + v.version - (cur.fingerprint = v.first_fingerprint)::int`).
 */
export function nextVentaVersion(
  stored: { version: number; fingerprint: string } | undefined,
  planned: { version: number; first_fingerprint: string },
): number {
  if (!stored) return planned.version;
  return stored.version + planned.version - (stored.fingerprint === planned.first_fingerprint ? 1 : 0);
}

/** The last record of each sales line in the batch, with its version count (nextVentaVersion). */
export function planVentas(ventas: readonly Venta[]): VentasPlan {
  const lines = new Map<string, { row: VentaRow; first: string }>();
  ventas.forEach((v, index) => {
    const l = v.linea;
    const key = ventaKeyOf(v);
    for (const field of ['ubicacion_id', 'numero_factura', 'producto_id'] as const) {
      if (!l[field]) throw new SinkBatchError('pos.ventas', key, `linea.${field}`, index, 'is empty', l[field]);
    }
    // ventas.linea is an integer column: anything else would abort the whole transaction.
    if (!Number.isInteger(l.linea) || l.linea < -2_147_483_648 || l.linea > 2_147_483_647) {
      throw new SinkBatchError('pos.ventas', key, 'linea.linea', index, 'is not a 32-bit integer', l.linea);
    }
    const seen = lines.get(key);
    const version = !seen ? 1 : seen.row.version + (seen.row.fingerprint === v.fingerprint ? 0 : 1);
    const row: VentaRow = {
      ubicacion_id: l.ubicacion_id,
      numero_factura: l.numero_factura,
      linea: l.linea,
      fecha: l.fecha,
      fecha_hora: l.fecha_hora,
      producto_id: l.producto_id,
      cantidad: l.cantidad,
      precio_unitario: l.precio_unitario,
      descuento: l.descuento,
      total: l.total,
      caja: l.caja,
      anulada: l.anulada,
      fingerprint: v.fingerprint,
      first_seen_at: v.first_seen_at,
      extracted_at: v.extracted_at,
      version,
    };
    lines.set(key, { row, first: seen?.first ?? v.fingerprint });
  });
  const all = [...lines.values()];
  return {
    upserts: toColumns(
      VENTAS_COLUMNS,
      all.map((l) => l.row),
    ),
    first_fingerprint: all.map((l) => l.first),
  };
}

/** The last record of each (run_id, ubicacion_id): a run re-sent for a store replaces its row. */
export function planEtlRuns(runs: readonly EtlRun[]): Columns<EtlRunRow> {
  const last = new Map<string, EtlRunRow>();
  runs.forEach((r, index) => {
    const topicKey = `${r.job}/${r.ubicacion_id}`;
    if (!r.run_id) throw new SinkBatchError('ops.etl-runs', topicKey, 'run_id', index, 'is empty', r.run_id);
    if (!r.ubicacion_id) throw new SinkBatchError('ops.etl-runs', topicKey, 'ubicacion_id', index, 'is empty', r.ubicacion_id);
    last.set(`${r.run_id}/${r.ubicacion_id}`, {
      run_id: r.run_id,
      ubicacion_id: r.ubicacion_id,
      job: r.job,
      status: r.status,
      rows: r.rows,
      started_at: r.started_at,
      finished_at: r.finished_at,
      snapshot_id: r.snapshot_id,
      fecha: r.fecha,
      error_class: r.error_class,
      error_message: r.error_message,
    });
  });
  return toColumns(ETL_RUNS_COLUMNS, last.values());
}
