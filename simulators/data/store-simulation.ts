/**
 * One simulated POS: its catalogue, its stock per deposito and its sales, moving forward in
 * simulated time as sales and receipts would. Deterministic from the seed, and the source of
 * truth tests compare Kafka and PostgreSQL against.
 */
import { fromUnscaled } from '../../core/avro/logical-types.ts';
import type { InventoryRow, VentaLinea } from '../../core/records.ts';
import { fechaCaracas } from '../../core/time.ts';
import { codigoBarras, generateCatalog, PROCURA, type Producto } from './catalog.ts';
import { createRng, type Rng } from './prng.ts';

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

/** A sales line as the POS reports it (the store is the simulation's). */
export type VentaTruthLine = Omit<VentaLinea, 'ubicacion_id' | 'caja'> & { caja: string };

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

const key = (deposito: string, productoId: string) => `${deposito}\u0000${productoId}`;

export class StoreSimulation {
  readonly ubicacionId: string;
  readonly pos: 'klk' | 'stellar';
  readonly depositos: string[];
  readonly catalog: Producto[];
  /** Increases at every change of stock or sales: a read's version identifies its truth. */
  version = 0;
  clock: Date;

  private readonly rng: Rng;
  private readonly changeShare: number;
  private readonly salesLinesPerHour: number;
  private readonly byId: Map<string, Producto>;
  private readonly stock = new Map<string, { cantidad: bigint; actualizadoEn: Date }>();
  private readonly ventasByFecha = new Map<string, VentaTruthLine[]>();
  private readonly stockListeners = new Set<StockListener>();
  private readonly renameListeners = new Set<RenameListener>();
  private invoiceSeq = 0;

  constructor(options: StoreSimulationOptions) {
    this.ubicacionId = options.ubicacionId;
    this.pos = options.pos;
    this.depositos = options.depositos;
    const seed = options.seed ?? options.ubicacionId;
    this.catalog = generateCatalog(seed, options.products);
    this.byId = new Map(this.catalog.map((p) => [p.producto_id, p]));
    this.rng = createRng(`stock:${seed}`);
    this.changeShare = options.changeShare ?? 0.05;
    this.salesLinesPerHour = options.pos === 'klk' ? (options.salesLinesPerHour ?? 2_000) : 0;
    this.clock = options.startAt ?? new Date('2026-11-27T14:00:00Z');
    for (const deposito of this.depositos) {
      for (const p of this.catalog) {
        this.stock.set(key(deposito, p.producto_id), { cantidad: this.initialQuantity(p), actualizadoEn: this.clock });
      }
    }
  }

  private initialQuantity(p: Producto): bigint {
    if (this.rng.chance(0.05)) return 0n;
    if (this.rng.chance(0.005)) return -BigInt(this.rng.int(1, 5)) * 1000n; // oversold
    return p.unidad === 'KG' ? BigInt(this.rng.int(500, 80_000)) : BigInt(this.rng.int(1, 200)) * 1000n;
  }

  /** Every stocked row of a deposito, in product order. */
  rows(deposito: string): StockRow[] {
    return this.catalog.map((producto) => {
      const s = this.stock.get(key(deposito, producto.producto_id))!;
      return { producto, deposito, cantidad: s.cantidad, actualizadoEn: s.actualizadoEn };
    });
  }

  cantidad(deposito: string, productoId: string): bigint {
    const s = this.stock.get(key(deposito, productoId));
    if (!s) throw new Error(`${this.ubicacionId}: no product ${productoId} in deposito ${deposito}`);
    return s.cantidad;
  }

  /** Sets one row's stock (faults such as phantom zeros, and tests). */
  setCantidad(deposito: string, productoId: string, cantidad: bigint): void {
    const s = this.stock.get(key(deposito, productoId));
    if (!s) throw new Error(`${this.ubicacionId}: no product ${productoId} in deposito ${deposito}`);
    s.cantidad = cantidad;
    s.actualizadoEn = this.clock;
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
    const p = this.byId.get(productoId);
    if (!p) throw new Error(`${this.ubicacionId}: no product ${productoId}`);
    p.descripcion = descripcion;
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
    const changed = new Set<string>();
    const lines = Math.round((this.salesLinesPerHour * minutes) / 60);
    let made = 0;
    while (made < lines) {
      const at = StoreSimulation.second(from + Math.floor((made / Math.max(1, lines)) * span));
      made += this.sell(at, Math.min(lines - made, this.rng.int(1, 5)), changed);
    }
    if (lines > 0) this.correctSomeLines(StoreSimulation.second(from + span - 1), Math.max(1, Math.round(lines * 0.005)), changed);
    const target = Math.round(this.changeShare * (minutes / 30) * this.catalog.length * this.depositos.length);
    for (let i = 0; changed.size < target && i < target * 3; i++) {
      const deposito = this.rng.pick(this.depositos);
      const p = this.rng.pick(this.catalog);
      const s = this.stock.get(key(deposito, p.producto_id))!;
      s.cantidad += p.unidad === 'KG' ? BigInt(this.rng.int(1_000, 20_000)) : BigInt(this.rng.int(6, 48)) * 1000n;
      s.actualizadoEn = StoreSimulation.second(from + this.rng.int(0, span - 1));
      changed.add(key(deposito, p.producto_id));
      this.stockChanged(deposito, p.producto_id);
    }
    this.clock = new Date(from + span);
    this.version++;
  }

  private sell(at: Date, lineCount: number, changed: Set<string>): number {
    const fecha = fechaCaracas(at);
    const numero = `F-${String(++this.invoiceSeq).padStart(8, '0')}`;
    const caja = String(this.rng.int(1, 8)).padStart(2, '0');
    const deposito = this.depositos[0]!;
    const day = this.ventasByFecha.get(fecha) ?? [];
    this.ventasByFecha.set(fecha, day);
    for (let linea = 1; linea <= lineCount; linea++) {
      // Skewed: a few products sell far more than the rest, as in a real store.
      const p = this.catalog[Math.floor(this.catalog.length * this.rng.next() ** 3)]!;
      const isReturn = this.rng.chance(0.02);
      let cantidad = p.unidad === 'KG' ? BigInt(this.rng.int(100, 3_000)) : BigInt(this.rng.int(1, 6)) * 1000n;
      if (isReturn) cantidad = -cantidad;
      const descuento = this.rng.chance(0.1) ? (p.precio * 5n) / 100n : 0n;
      day.push(this.line(fecha, numero, linea, at, p, cantidad, descuento, caja));
      const s = this.stock.get(key(deposito, p.producto_id))!;
      s.cantidad -= cantidad;
      s.actualizadoEn = at;
      changed.add(key(deposito, p.producto_id));
      this.stockChanged(deposito, p.producto_id);
    }
    return lineCount;
  }

  private line(fecha: string, numero: string, linea: number, at: Date, p: Producto, cantidad: bigint, descuento: bigint, caja: string): VentaTruthLine {
    // cantidad (scale 3) x precio (scale 4) = scale 7; round half away from zero to scale 4.
    const raw = cantidad * p.precio;
    const bruto = (raw + (raw >= 0n ? 500n : -500n)) / 1000n;
    const total = bruto - (cantidad < 0n ? -descuento : descuento);
    return {
      fecha,
      numero_factura: numero,
      linea,
      fecha_hora: at,
      producto_id: p.producto_id,
      cantidad: fromUnscaled(cantidad, 3),
      precio_unitario: fromUnscaled(p.precio, 4),
      descuento: fromUnscaled(descuento, 4),
      total: fromUnscaled(total, 4),
      caja,
      anulada: false,
    };
  }

  /** Voids or corrects a few lines already sold today: the POS changes history. */
  private correctSomeLines(at: Date, count: number, changed: Set<string>): void {
    const day = this.ventasByFecha.get(fechaCaracas(at));
    if (!day || day.length === 0) return;
    for (let i = 0; i < count; i++) {
      const index = this.rng.int(0, day.length - 1);
      const old = day[index]!;
      if (old.anulada) continue;
      const deposito = this.depositos[0]!;
      const s = this.stock.get(key(deposito, old.producto_id))!;
      s.cantidad += BigInt(old.cantidad.replace('.', '')); // the goods come back
      s.actualizadoEn = at;
      changed.add(key(deposito, old.producto_id));
      this.stockChanged(deposito, old.producto_id);
      day[index] = { ...old, anulada: true };
    }
  }

  /** The KLK inventory of a deposito: every product, active or not. */
  klkInventario(deposito: string): InventarioTruthRow[] {
    return this.rows(deposito).map((r) => toTruth(r, true));
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

  ventas(fecha: string): VentaTruthLine[] {
    return [...(this.ventasByFecha.get(fecha) ?? [])];
  }

  producto(productoId: string): Producto | undefined {
    return this.byId.get(productoId);
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
