/**
 * One simulated POS: its catalogue, its stock per deposito and its sales, moving forward in
 * simulated time as sales and receipts would. Deterministic from the seed, and the source of
 * truth tests compare Kafka and PostgreSQL against.
 *
 * Memory is a few bytes a row, whatever the catalogue's size: products are drawn on demand
 * from the seed (catalog.ts), a row's initial stock likewise, and what moves is kept in typed
 * arrays (the stock's change since the start and the second of the last change, 8 bytes a
 * (deposito, product)) and sales lines in columns (sales-log.ts). A KLK page is produced from
 * its rows only (klkInventarioPage).
 */
import { fromUnscaled } from '../../core/avro/logical-types.ts';
import type { InventoryRow } from '../../core/records.ts';
import { fechaCaracas } from '../../core/time.ts';
import { Catalog, codigoBarras, PROCURA, type Producto } from './catalog.ts';
import { createRng, hashSeed, mixIndex, SeededRng } from './prng.ts';
import { SalesLog, type VentaTruthLine } from './sales-log.ts';

export interface StoreSimulationOptions {
  ubicacionId: string;
  pos: 'klk' | 'stellar';
  depositos: string[];
  products: number;
  seed?: number | string;
  /** Share of (deposito, product) rows that change per 30 simulated minutes. */
  changeShare?: number;
  /** Sales lines per simulated hour (KLK stores only). */
  salesLinesPerHour?: number;
  /** Simulated time of the first read. */
  startAt?: Date;
}

/** A row as the extractor must publish it. */
export type InventarioTruthRow = InventoryRow;

export type { VentaTruthLine };

export interface StockRow {
  producto: Producto;
  deposito: string;
  /** Thousandths of a unit. */
  cantidad: bigint;
  actualizadoEn: Date;
}

export { fechaCaracas };

/** Told of every (deposito, product) whose stock changed, as it changes. */
export type StockListener = (deposito: string, productoId: string) => void;
/** A product's description changed at the POS (a rename). */
export type RenameListener = (productoId: string, descripcion: string) => void;

/** Marks a row whose delta lives in `wideDelta`. */
const OUT_OF_INT32 = -0x8000_0000;

export class StoreSimulation {
  readonly ubicacionId: string;
  readonly pos: 'klk' | 'stellar';
  readonly depositos: string[];
  /** Every product, drawn on demand (iterable; `size`, `at(i)`). */
  readonly catalog: Catalog;
  /** Increases at every change of stock or sales: a read's version identifies its truth. */
  version = 0;
  clock: Date;

  private readonly rng: SeededRng;
  /** Restarted for each row's initial stock (see Catalog's). */
  private readonly rowRng = new SeededRng();
  private readonly changeShare: number;
  private readonly salesLinesPerHour: number;
  private readonly depositoIndex: Map<string, number>;
  private readonly stockSeed: number;
  private readonly startedAt: Date;
  /** Stock of row d * size + i minus its initial stock, in thousandths; OUT_OF_INT32 sends to `wideDelta`. */
  private readonly delta: Int32Array;
  /** The rare deltas beyond 32 bits (a best-seller sold for simulated years), by row. */
  private readonly wideDelta = new Map<number, number>();
  /** Epoch second of row d * size + i's last change; 0 while it has the initial stock. */
  private readonly changedAt: Uint32Array;
  private readonly sales: SalesLog;
  private readonly stockListeners = new Set<StockListener>();
  private readonly renameListeners = new Set<RenameListener>();
  private invoiceSeq = 0;

  constructor(options: StoreSimulationOptions) {
    this.ubicacionId = options.ubicacionId;
    this.pos = options.pos;
    this.depositos = options.depositos;
    const seed = options.seed ?? options.ubicacionId;
    this.catalog = new Catalog(seed, options.products);
    this.depositoIndex = new Map(this.depositos.map((d, i) => [d, i]));
    this.stockSeed = hashSeed(`stock0:${seed}`);
    this.rng = createRng(`stock:${seed}`);
    this.changeShare = options.changeShare ?? 0.05;
    this.salesLinesPerHour = options.pos === 'klk' ? (options.salesLinesPerHour ?? 2_000) : 0;
    this.clock = options.startAt ?? new Date('2026-11-27T14:00:00Z');
    this.startedAt = this.clock;
    // Zero-filled: the kernel gives these pages only when a row first changes.
    this.delta = new Int32Array(this.depositos.length * this.catalog.size);
    this.changedAt = new Uint32Array(this.depositos.length * this.catalog.size);
    this.sales = new SalesLog(this.catalog);
  }

  /** Number of products in the catalogue. */
  get products(): number {
    return this.catalog.size;
  }

  /** The stock a row starts with: a pure function of (seed, deposito position, product). */
  private initialQuantity(row: number, p: Producto): number {
    const rng = this.rowRng.reset(mixIndex(this.stockSeed, row));
    if (rng.chance(0.05)) return 0;
    if (rng.chance(0.005)) return -rng.int(1, 5) * 1000; // oversold
    return p.unidad === 'KG' ? rng.int(500, 80_000) : rng.int(1, 200) * 1000;
  }

  private depositoAt(deposito: string): number {
    const d = this.depositoIndex.get(deposito);
    if (d === undefined) throw new Error(`${this.ubicacionId}: no deposito ${deposito}`);
    return d;
  }

  /** The row index of (deposito, product code); throws naming what is unknown. */
  private rowOf(deposito: string, productoId: string): number {
    const d = this.depositoIndex.get(deposito);
    const i = this.catalog.indexOf(productoId);
    if (d === undefined || i === undefined) throw new Error(`${this.ubicacionId}: no product ${productoId} in deposito ${deposito}`);
    return d * this.catalog.size + i;
  }

  private deltaAt(row: number): number {
    const d = this.delta[row]!;
    return d === OUT_OF_INT32 ? this.wideDelta.get(row)! : d;
  }

  private quantityAt(row: number, p: Producto): bigint {
    return BigInt(this.initialQuantity(row, p) + this.deltaAt(row));
  }

  private stampAt(row: number): Date {
    const s = this.changedAt[row]!;
    return s === 0 ? this.startedAt : new Date(s * 1000);
  }

  /** Adds `amount` thousandths to a row's stock, changed at `at` (whole seconds). */
  private move(row: number, amount: number, at: Date): void {
    const next = this.deltaAt(row) + amount;
    if (next > OUT_OF_INT32 && next <= 0x7fff_ffff) {
      this.delta[row] = next;
      this.wideDelta.delete(row);
    } else {
      this.delta[row] = OUT_OF_INT32;
      this.wideDelta.set(row, next);
    }
    this.changedAt[row] = Math.floor(at.getTime() / 1000);
  }

  private stockRow(d: number, i: number): StockRow {
    const producto = this.catalog.at(i);
    const row = d * this.catalog.size + i;
    return { producto, deposito: this.depositos[d]!, cantidad: this.quantityAt(row, producto), actualizadoEn: this.stampAt(row) };
  }

  /** Every stocked row of a deposito, in product order. */
  rows(deposito: string): StockRow[] {
    const d = this.depositoAt(deposito);
    return Array.from({ length: this.catalog.size }, (_, i) => this.stockRow(d, i));
  }

  cantidad(deposito: string, productoId: string): bigint {
    const row = this.rowOf(deposito, productoId);
    return this.quantityAt(row, this.catalog.at(row % this.catalog.size));
  }

  /** Sets one row's stock (faults such as phantom zeros, and tests). */
  setCantidad(deposito: string, productoId: string, cantidad: bigint): void {
    const row = this.rowOf(deposito, productoId);
    this.move(row, Number(cantidad - this.cantidad(deposito, productoId)), this.clock);
    this.version++;
    this.stockChanged(deposito, productoId);
  }

  /** Calls `listener` at every later stock change (the Stellar simulator's tables follow); returns the unsubscribe. */
  onStockChange(listener: StockListener): () => void {
    this.stockListeners.add(listener);
    return () => this.stockListeners.delete(listener);
  }

  /**
   * Renames a product at the POS (tests of the catalogue refresh). Goes through here, not by
   * editing the object `producto()` returns, so the Stellar simulator's tables follow.
   */
  renombrar(productoId: string, descripcion: string): void {
    const i = this.catalog.indexOf(productoId);
    if (i === undefined) throw new Error(`${this.ubicacionId}: no product ${productoId}`);
    this.catalog.rename(i, descripcion);
    this.version++;
    for (const listener of this.renameListeners) listener(productoId, descripcion);
  }

  /** Calls `listener` at every later rename; returns the unsubscribe. */
  onRename(listener: RenameListener): () => void {
    this.renameListeners.add(listener);
    return () => this.renameListeners.delete(listener);
  }

  private stockChanged(deposito: string, productoId: string): void {
    for (const listener of this.stockListeners) listener(deposito, productoId);
  }

  /** POS clocks record whole seconds (the KLK API writes no milliseconds). */
  private static second(ms: number): Date {
    return new Date(Math.floor(ms / 1000) * 1000);
  }

  /** Moves simulated time forward: sales (KLK), returns, corrections and receipts. */
  advance(minutes: number): void {
    const from = this.clock.getTime();
    const span = minutes * 60_000;
    const changed = new Set<number>();
    const lines = Math.round((this.salesLinesPerHour * minutes) / 60);
    let made = 0;
    while (made < lines) {
      const at = StoreSimulation.second(from + Math.floor((made / Math.max(1, lines)) * span));
      made += this.sell(at, Math.min(lines - made, this.rng.int(1, 5)), changed);
    }
    if (lines > 0) this.correctSomeLines(StoreSimulation.second(from + span - 1), Math.max(1, Math.round(lines * 0.005)), changed);
    const size = this.catalog.size;
    const target = Math.round(this.changeShare * (minutes / 30) * size * this.depositos.length);
    for (let n = 0; changed.size < target && n < target * 3; n++) {
      const d = this.rng.int(0, this.depositos.length - 1);
      const i = Math.floor(this.rng.next() * size);
      const p = this.catalog.at(i);
      const amount = p.unidad === 'KG' ? this.rng.int(1_000, 20_000) : this.rng.int(6, 48) * 1000;
      this.move(d * size + i, amount, StoreSimulation.second(from + this.rng.int(0, span - 1)));
      changed.add(d * size + i);
      this.stockChanged(this.depositos[d]!, p.producto_id);
    }
    this.clock = new Date(from + span);
    this.version++;
  }

  private sell(at: Date, lineCount: number, changed: Set<number>): number {
    const fecha = fechaCaracas(at);
    const invoice = ++this.invoiceSeq;
    const caja = this.rng.int(1, 8);
    for (let linea = 1; linea <= lineCount; linea++) {
      // Skewed: a few products sell far more than the rest, as in a real store.
      const i = Math.floor(this.catalog.size * this.rng.next() ** 3);
      const p = this.catalog.at(i);
      const isReturn = this.rng.chance(0.02);
      let cantidad = p.unidad === 'KG' ? this.rng.int(100, 3_000) : this.rng.int(1, 6) * 1000;
      if (isReturn) cantidad = -cantidad;
      const descuento = this.rng.chance(0.1);
      this.sales.add(fecha, { producto: i, at, cantidad, invoice, linea, caja, descuento });
      // Sales leave the first deposito: row i.
      this.move(i, -cantidad, at);
      changed.add(i);
      this.stockChanged(this.depositos[0]!, p.producto_id);
    }
    return lineCount;
  }

  /** Voids or corrects a few lines already sold today: the POS changes history. */
  private correctSomeLines(at: Date, count: number, changed: Set<number>): void {
    const fecha = fechaCaracas(at);
    const lines = this.sales.count(fecha);
    if (lines === 0) return;
    for (let n = 0; n < count; n++) {
      const index = this.rng.int(0, lines - 1);
      const voided = this.sales.void(fecha, index);
      if (voided === undefined) continue; // already void
      this.move(voided.producto, voided.cantidad, at); // the goods come back
      changed.add(voided.producto);
      this.stockChanged(this.depositos[0]!, this.catalog.at(voided.producto).producto_id);
    }
  }

  /** The KLK inventory of a deposito: every product, active or not. */
  klkInventario(deposito: string): InventarioTruthRow[] {
    return this.klkInventarioPage(deposito, 0, this.catalog.size);
  }

  /** Rows [start, end) of a deposito's KLK inventory, produced from those rows only; none for an unknown deposito. */
  klkInventarioPage(deposito: string, start: number, end: number): InventarioTruthRow[] {
    return [...this.klkInventarioRows(deposito, start, end)];
  }

  /**
   * The same rows one at a time. A server that serializes each row as it comes keeps no row
   * alive across a young-generation collection; rows kept by the hundred (an array) survive
   * one often enough that V8 starts allocating them straight in the old generation, which then
   * grows by hundreds of MB between full collections.
   */
  *klkInventarioRows(deposito: string, start: number, end: number): Generator<InventarioTruthRow> {
    const d = this.depositoIndex.get(deposito);
    if (d === undefined) return;
    for (let i = Math.max(0, start); i < Math.min(end, this.catalog.size); i++) yield toTruth(this.stockRow(d, i), true);
  }

  /** The Stellar query's answer: active, not PROCURA, with a barcode (the lowest). */
  stellarInventario(deposito: string): InventarioTruthRow[] {
    return this.rows(deposito)
      .filter((r) => r.producto.activo && r.producto.departamento.codigo !== PROCURA && codigoBarras(r.producto) !== null)
      .map((r) => toTruth(r, false));
  }

  /** What the extractor must publish for one snapshot of the whole store. */
  inventario(): InventarioTruthRow[] {
    return this.depositos.flatMap((d) => (this.pos === 'klk' ? this.klkInventario(d) : this.stellarInventario(d)));
  }

  /** Every sales line of a store-local date. */
  ventas(fecha: string): VentaTruthLine[] {
    return this.sales.lines(fecha, 0, Infinity);
  }

  /** Number of sales lines of a date, and lines [start, end) of it (a KLK page). */
  ventasCount(fecha: string): number {
    return this.sales.count(fecha);
  }

  ventasPage(fecha: string, start: number, end: number): VentaTruthLine[] {
    return this.sales.lines(fecha, start, end);
  }

  /** The same lines one at a time (see klkInventarioRows). */
  ventasRows(fecha: string, start: number, end: number): Generator<VentaTruthLine> {
    return this.sales.iterate(fecha, start, end);
  }

  producto(productoId: string): Producto | undefined {
    const i = this.catalog.indexOf(productoId);
    return i === undefined ? undefined : this.catalog.at(i);
  }
}

function toTruth(r: StockRow, withTimestamp: boolean): InventarioTruthRow {
  const p = r.producto;
  return {
    deposito: r.deposito,
    producto_id: p.producto_id,
    codigo_barras: codigoBarras(p),
    descripcion: p.descripcion,
    departamento_codigo: p.departamento.codigo,
    departamento_nombre: p.departamento.nombre,
    grupo_codigo: p.grupo?.codigo ?? null,
    grupo_nombre: p.grupo?.nombre ?? null,
    subgrupo_codigo: p.subgrupo?.codigo ?? null,
    subgrupo_nombre: p.subgrupo?.nombre ?? null,
    unidad: p.unidad,
    cantidad: fromUnscaled(r.cantidad, 3),
    costo: fromUnscaled(p.costo, 4),
    precio: fromUnscaled(p.precio, 4),
    activo: p.activo,
    actualizado_en: withTimestamp ? r.actualizadoEn : null,
  };
}
