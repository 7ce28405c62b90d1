/**
 * One simulated POS: its catalogue, its books and its sales, moving forward in simulated time.
 * Deterministic from the seed, and the source of truth tests compare Kafka and PostgreSQL
 * against.
 *
 * The books add up: a row's physical stock (deposito, product) moves only by sales (never
 * below 0: a product at 0 does not sell), returns, receipts (each department on its
 * cadence, store-calendar.ts, back to the row's reorder level), shrinkage, and at a Stellar
 * location (a CEDI: no sales) dispatches to the stores. The POS's recorded stock, what
 * `cantidad()`, `klkInventario()` and the Stellar tables report, equals the physical stock
 * except where an anomaly is going on (anomalies.ts), each one labelled: `anomalies()`.
 * Sales happen during opening hours only (08:00-20:00 Caracas by default).
 *
 * Memory is a few bytes a row, whatever the catalogue's size: products are drawn on demand
 * from the seed (catalog.ts), a row's initial stock and reorder level likewise, and what moves
 * is kept in typed arrays (the physical stock's change since the start, the second of the last
 * recorded change, a byte of product traits: 9 bytes a (deposito, product)); the recorded
 * stock's differences are rare and kept in a map, sales lines in columns (sales-log.ts). A
 * KLK page is produced from its rows only (klkInventarioPage).
 */
import { fromUnscaled } from '../../core/avro/logical-types.ts';
import type { InventoryRow } from '../../core/records.ts';
import { fechaCaracas } from '../../core/time.ts';
import {
  anomalyRates,
  LATE_SALES_DELAY_MS,
  newLabel,
  phantomDurationMs,
  planAnomalies,
  type AnomalyLabel,
  type AnomalyRates,
} from './anomalies.ts';
import { Catalog, codigoBarras, DEPARTAMENTO_CODIGOS, PROCURA, type Producto } from './catalog.ts';
import { createRng, hashSeed, mixIndex, SeededRng } from './prng.ts';
import { SalesLog, type SaleInput, type VentaTruthLine } from './sales-log.ts';
import {
  cadenceDays,
  checkOpeningHours,
  DEFAULT_OPENING_HOURS,
  instantInOpenTime,
  openIntervals,
  openMsPerDay,
  receiptsBetween,
  type OpeningHours,
} from './store-calendar.ts';

export interface StoreSimulationOptions {
  ubicacionId: string;
  pos: 'klk' | 'stellar';
  depositos: string[];
  products: number;
  seed?: number | string;
  /**
   * Share of (deposito, product) rows that change per 30 simulated minutes, roughly: what
   * sales and receipts leave of it is filled with shrinkage (KLK) or dispatches (Stellar).
   */
  changeShare?: number;
  /** Sales lines per simulated hour while the store is open (KLK stores only). */
  salesLinesPerHour?: number;
  /** Simulated time of the first read. */
  startAt?: Date;
  /** Anomaly rates; each one missing takes DEFAULT_ANOMALY_RATES' (NO_ANOMALIES for none). */
  anomalies?: Partial<AnomalyRates>;
  /** Caracas hours the store sells (anomalies start in them too); default 08:00-20:00. */
  openingHours?: OpeningHours;
}

/** A row as the extractor must publish it. */
export type InventarioTruthRow = InventoryRow;

export type { VentaTruthLine };
export type { AnomalyKind, AnomalyLabel, AnomalyRates } from './anomalies.ts';
export type { OpeningHours } from './store-calendar.ts';

export interface StockRow {
  producto: Producto;
  deposito: string;
  /** Thousandths of a unit, as the POS records it. */
  cantidad: bigint;
  actualizadoEn: Date;
}

/** One movement of physical stock (onMovement): the books, for tests and benchmarks. */
export interface StockMovement {
  kind: 'sale' | 'return' | 'void' | 'receipt' | 'shrinkage' | 'dispatch' | 'set';
  deposito: string;
  producto_id: string;
  /** Signed change of the physical stock, thousandths. */
  cantidad: number;
  at: Date;
  /** Sales and returns: the line, and when the POS posts it (later than `at` for a late-posted line). */
  venta?: { numero_factura: string; linea: number; postedAt: Date };
}

export { fechaCaracas };

/** Told of every (deposito, product) whose recorded stock may have changed, as it changes. */
export type StockListener = (deposito: string, productoId: string) => void;
/** A product's description changed at the POS (a rename). */
export type RenameListener = (productoId: string, descripcion: string) => void;
export type MovementListener = (m: StockMovement) => void;

/** Marks a row whose delta lives in `wideDelta`. */
const OUT_OF_INT32 = -0x8000_0000;
/** Share of rows that start at 0: a real stockout waiting for its department's receipt. */
const INITIAL_ZERO_SHARE = 0.01;
/** Mean units of a sales line (thousandths): UND 1..6 units, KG 0.1..3 kg. */
const MEAN_LINE = { UND: 3_500, KG: 1_550 };
const RETURN_SHARE = 0.02;
/** Draws of a product before a sales line is given up (every drawn product out of stock). */
const PICK_TRIES = 12;

/** The POS records something else than the shelf holds: pinned at a value, or off by an amount. */
interface RecordedDifference {
  kind: 'fixed' | 'offset';
  value: number;
  label: AnomalyLabel | null;
}

interface ActiveGlitch {
  d: number;
  departamento: string | null;
  label: AnomalyLabel;
}

interface QueuedEvent {
  at: number;
  seq: number;
  run: (at: number) => void;
}

export class StoreSimulation {
  readonly ubicacionId: string;
  readonly pos: 'klk' | 'stellar';
  readonly depositos: string[];
  /** Every product, drawn on demand (iterable; `size`, `at(i)`). */
  readonly catalog: Catalog;
  readonly rates: Readonly<AnomalyRates>;
  readonly openingHours: Readonly<OpeningHours>;
  /** Increases at every change of stock or sales: a read's version identifies its truth. */
  version = 0;
  clock: Date;

  private readonly seed: string;
  private readonly rng: SeededRng;
  /** Restarted for each row's initial stock and level (see Catalog's). */
  private readonly rowRng = new SeededRng();
  private readonly changeShare: number;
  private readonly salesLinesPerHour: number;
  private readonly depositoIndex: Map<string, number>;
  private readonly stockSeed: number;
  private readonly startedAt: Date;
  /** Physical stock of row d * size + i minus its initial stock, in thousandths; OUT_OF_INT32 sends to `wideDelta`. */
  private readonly delta: Int32Array;
  /** The rare deltas beyond 32 bits (a best-seller sold for simulated years), by row. */
  private readonly wideDelta = new Map<number, number>();
  /** Epoch second of row d * size + i's last recorded change; 0 while it has the initial stock. */
  private readonly changedAt: Uint32Array;
  /** Product i's department slot and unit (1 + slot * 2 + kg), 0 until first needed. */
  private readonly traits: Uint8Array;
  private readonly departamentoSlots = new Map<string, number>();
  private readonly departamentoCodes: string[] = [];
  private readonly recorded = new Map<number, RecordedDifference>();
  private glitches: ActiveGlitch[] = [];
  private readonly openStockouts = new Map<number, AnomalyLabel>();
  private readonly initialStockoutEnded = new Set<number>();
  private initialZeros: number[] | undefined;
  private readonly labels: AnomalyLabel[] = [];
  private readonly queue: QueuedEvent[] = [];
  private queueSeq = 0;
  /** Rows whose physical stock changed in the advance under way. */
  private changed = new Set<number>();
  private readonly sales: SalesLog;
  private readonly stockListeners = new Set<StockListener>();
  private readonly renameListeners = new Set<RenameListener>();
  private readonly movementListeners = new Set<MovementListener>();
  private invoiceSeq = 0;

  constructor(options: StoreSimulationOptions) {
    this.ubicacionId = options.ubicacionId;
    this.pos = options.pos;
    this.depositos = options.depositos;
    const seed = options.seed ?? options.ubicacionId;
    this.seed = String(seed);
    this.catalog = new Catalog(seed, options.products);
    this.depositoIndex = new Map(this.depositos.map((d, i) => [d, i]));
    this.stockSeed = hashSeed(`stock0:${seed}`);
    this.rng = createRng(`stock:${seed}`);
    this.changeShare = options.changeShare ?? 0.05;
    this.salesLinesPerHour = options.pos === 'klk' ? (options.salesLinesPerHour ?? 2_000) : 0;
    this.rates = Object.freeze(anomalyRates(options.anomalies));
    this.openingHours = Object.freeze(checkOpeningHours(options.openingHours ?? DEFAULT_OPENING_HOURS));
    this.clock = options.startAt ?? new Date('2026-11-27T14:00:00Z');
    this.startedAt = this.clock;
    // Zero-filled: the kernel gives these pages only when a row first changes.
    this.delta = new Int32Array(this.depositos.length * this.catalog.size);
    this.changedAt = new Uint32Array(this.depositos.length * this.catalog.size);
    this.traits = new Uint8Array(this.catalog.size);
    this.sales = new SalesLog(this.catalog);
  }

  /** Number of products in the catalogue. */
  get products(): number {
    return this.catalog.size;
  }

  // ---- Rows: initial stock, reorder level, physical and recorded stock ----

  private trait(i: number, p?: Producto): number {
    let t = this.traits[i]!;
    if (t === 0) {
      const producto = p ?? this.catalog.at(i);
      let slot = this.departamentoSlots.get(producto.departamento.codigo);
      if (slot === undefined) {
        this.departamentoSlots.set(producto.departamento.codigo, (slot = this.departamentoCodes.length));
        this.departamentoCodes.push(producto.departamento.codigo);
      }
      t = this.traits[i] = 1 + slot * 2 + (producto.unidad === 'KG' ? 1 : 0);
    }
    return t;
  }

  private isKg(i: number, p?: Producto): boolean {
    return ((this.trait(i, p) - 1) & 1) === 1;
  }

  private departamentoOf(i: number, p?: Producto): string {
    return this.departamentoCodes[(this.trait(i, p) - 1) >> 1]!;
  }

  /** Whether row `row` starts at 0: the first draw of its sequence, so finding every such row costs one draw a row. */
  private startsAtZero(row: number): boolean {
    return this.rowRng.reset(mixIndex(this.stockSeed, row)).chance(INITIAL_ZERO_SHARE);
  }

  /** Expected units (thousandths) product i sells a day: the sales draw skews towards low indexes (index = size * u^3). */
  private dailyDemand(i: number, kg: boolean): number {
    const n = this.catalog.size;
    const pick = Math.cbrt((i + 1) / n) - Math.cbrt(i / n);
    return this.salesLinesPerHour * ((this.openingHours.close - this.openingHours.open) * pick) * (kg ? MEAN_LINE.KG : MEAN_LINE.UND);
  }

  /**
   * A row's reorder level (what a receipt brings it back to) and initial stock, pure
   * functions of (seed, row): at the selling deposito a few days of the product's demand (its
   * department's cadence, times 0.9 to 2.5: some rows run out before their receipt), elsewhere
   * a backroom's or a CEDI's stock.
   */
  private plan(row: number, p?: Producto): { initial: number; level: number } {
    const d = Math.floor(row / this.catalog.size);
    const i = row - d * this.catalog.size;
    const kg = this.isKg(i, p);
    const rng = this.rowRng.reset(mixIndex(this.stockSeed, row));
    const zero = rng.chance(INITIAL_ZERO_SHARE);
    const factor = 0.9 + rng.next() * 1.6;
    const filled = 0.5 + rng.next() * 0.5;
    const cedi = this.pos === 'stellar';
    const base = kg ? (cedi ? rng.int(50_000, 500_000) : rng.int(2_000, 40_000)) : (cedi ? rng.int(200, 2_000) : rng.int(6, 60)) * 1000;
    const selling = d === 0 && this.salesLinesPerHour > 0;
    // The filler (fill()) takes about changeShare of the rows every 30 minutes: what it takes a day is part of the demand.
    const filler = this.changeShare * 48 * (cedi ? (kg ? 10_500 : 27_000) : kg ? 160 : 1000);
    const wanted = ((selling ? this.dailyDemand(i, kg) : 0) + filler) * cadenceDays(this.departamentoOf(i, p)) * factor;
    const unit = kg ? 1 : 1000;
    const level = Math.max(base, Math.ceil(wanted / unit) * unit);
    const initial = zero ? 0 : Math.max(unit, Math.round((level * filled) / unit) * unit);
    return { initial, level };
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

  private physicalAt(row: number, p?: Producto): number {
    return this.plan(row, p).initial + this.deltaAt(row);
  }

  private glitched(d: number, i: number, p?: Producto): boolean {
    if (this.glitches.length === 0) return false;
    for (const g of this.glitches) if (g.d === d && (g.departamento === null || g.departamento === this.departamentoOf(i, p))) return true;
    return false;
  }

  private recordedAt(row: number, p?: Producto): number {
    const d = Math.floor(row / this.catalog.size);
    if (this.glitched(d, row - d * this.catalog.size, p)) return 0;
    const r = this.recorded.get(row);
    if (r?.kind === 'fixed') return r.value;
    return this.physicalAt(row, p) + (r?.value ?? 0);
  }

  private stampAt(row: number): Date {
    const s = this.changedAt[row]!;
    return s === 0 ? this.startedAt : new Date(s * 1000);
  }

  private stamp(row: number, at: number): void {
    const s = Math.floor(at / 1000);
    if (s > this.changedAt[row]!) this.changedAt[row] = s;
  }

  /** Adds `amount` thousandths to a row's physical stock at `at`; the POS records it unless the row's recorded stock is pinned. */
  private move(row: number, amount: number, at: number): void {
    const next = this.deltaAt(row) + amount;
    if (next > OUT_OF_INT32 && next <= 0x7fff_ffff) {
      this.delta[row] = next;
      this.wideDelta.delete(row);
    } else {
      this.delta[row] = OUT_OF_INT32;
      this.wideDelta.set(row, next);
    }
    if (this.recorded.get(row)?.kind !== 'fixed') this.stamp(row, at);
    this.changed.add(row);
    this.stockChanged(row);
  }

  private stockRow(d: number, i: number): StockRow {
    const producto = this.catalog.at(i);
    const row = d * this.catalog.size + i;
    return { producto, deposito: this.depositos[d]!, cantidad: BigInt(this.recordedAt(row, producto)), actualizadoEn: this.stampAt(row) };
  }

  /** Every stocked row of a deposito, in product order, as the POS records it. */
  rows(deposito: string): StockRow[] {
    const d = this.depositoAt(deposito);
    return Array.from({ length: this.catalog.size }, (_, i) => this.stockRow(d, i));
  }

  /** A row's stock as the POS records it (thousandths). */
  cantidad(deposito: string, productoId: string): bigint {
    return BigInt(this.recordedAt(this.rowOf(deposito, productoId)));
  }

  /** A row's physical stock, what the shelf holds (thousandths): never below 0. */
  cantidadFisica(deposito: string, productoId: string): bigint {
    return BigInt(this.physicalAt(this.rowOf(deposito, productoId)));
  }

  /**
   * Sets one row's stock by hand (tests and faults), as a count would: the shelf holds it and
   * the POS records it, ending any recorded difference. A negative value is recorded only (the
   * shelf holds 0): the POS keeps it until something else sets the row.
   */
  setCantidad(deposito: string, productoId: string, cantidad: bigint): void {
    const row = this.rowOf(deposito, productoId);
    const at = this.clock.getTime();
    const physical = cantidad < 0n ? 0 : Number(cantidad);
    const before = this.physicalAt(row);
    this.endDifference(row, at);
    if (physical !== before) this.move(row, physical - before, at);
    this.emit('set', row, physical - before, at);
    if (cantidad < 0n) this.recorded.set(row, { kind: 'fixed', value: Number(cantidad), label: null });
    this.stamp(row, at);
    this.stockoutBook(row, before, physical, at);
    this.version++;
    this.stockChanged(row);
  }

  /** Calls `listener` at every later change of a row's recorded stock (the Stellar simulator's tables follow); returns the unsubscribe. */
  onStockChange(listener: StockListener): () => void {
    this.stockListeners.add(listener);
    return () => this.stockListeners.delete(listener);
  }

  /** Calls `listener` at every later movement of physical stock (the books); returns the unsubscribe. */
  onMovement(listener: MovementListener): () => void {
    this.movementListeners.add(listener);
    return () => this.movementListeners.delete(listener);
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

  private stockChanged(row: number): void {
    if (this.stockListeners.size === 0) return;
    const d = Math.floor(row / this.catalog.size);
    const code = this.catalog.codeAt(row - d * this.catalog.size);
    for (const listener of this.stockListeners) listener(this.depositos[d]!, code);
  }

  private emit(kind: StockMovement['kind'], row: number, cantidad: number, at: number, venta?: StockMovement['venta']): void {
    if (this.movementListeners.size === 0) return;
    const d = Math.floor(row / this.catalog.size);
    const m: StockMovement = {
      kind,
      deposito: this.depositos[d]!,
      producto_id: this.catalog.codeAt(row - d * this.catalog.size),
      cantidad,
      at: new Date(at),
      ...(venta ? { venta } : {}),
    };
    for (const listener of this.movementListeners) listener(m);
  }

  // ---- Labels ----

  private label(kind: AnomalyLabel['kind'], row: number | null, d: number, departamento: string | null, at: number): AnomalyLabel {
    const producto = row === null ? null : this.catalog.codeAt(row - d * this.catalog.size);
    const l = newLabel(kind, this.ubicacionId, this.depositos[d]!, producto, departamento, StoreSimulation.second(at));
    this.labels.push(l);
    return l;
  }

  /** Opens or closes a REAL_STOCKOUT as a row's physical stock reaches 0 or leaves it. */
  private stockoutBook(row: number, before: number, after: number, at: number): void {
    if (after === 0 && before !== 0 && !this.openStockouts.has(row)) {
      this.openStockouts.set(row, this.label('REAL_STOCKOUT', row, Math.floor(row / this.catalog.size), null, at));
    } else if (before === 0 && after > 0) {
      const open = this.openStockouts.get(row);
      if (open) {
        open.end = StoreSimulation.second(at);
        this.openStockouts.delete(row);
      } else if (!this.initialStockoutEnded.has(row) && this.startsAtZero(row)) {
        // The row's initial stockout, labelled only now that it ends (anomalies() lists the open ones).
        const l = newLabel(
          'REAL_STOCKOUT',
          this.ubicacionId,
          this.depositos[Math.floor(row / this.catalog.size)]!,
          this.catalog.codeAt(row % this.catalog.size),
          null,
          this.startedAt,
        );
        l.end = StoreSimulation.second(at);
        this.labels.push(l);
        this.initialStockoutEnded.add(row);
      }
    }
  }

  /** The rows that start at 0 (one draw a row, once). */
  private initialZeroRows(): number[] {
    if (!this.initialZeros) {
      this.initialZeros = [];
      for (let row = 0; row < this.delta.length; row++) if (this.startsAtZero(row)) this.initialZeros.push(row);
    }
    return this.initialZeros;
  }

  /**
   * Every anomaly so far, labelled (fresh copies, ordered by start then id): phantom zeros,
   * POS glitches, real stockouts (those the store started with included), late-posted sales,
   * count corrections. `end` is null while one is going on.
   */
  anomalies(): AnomalyLabel[] {
    const all = this.labels.map((l) => ({ ...l, start: new Date(l.start), end: l.end && new Date(l.end) }));
    for (const row of this.initialZeroRows()) {
      if (this.initialStockoutEnded.has(row)) continue;
      const d = Math.floor(row / this.catalog.size);
      all.push(
        newLabel(
          'REAL_STOCKOUT',
          this.ubicacionId,
          this.depositos[d]!,
          this.catalog.codeAt(row - d * this.catalog.size),
          null,
          new Date(this.startedAt),
        ),
      );
    }
    return all.sort((a, b) => a.start.getTime() - b.start.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Ends a row's recorded difference (a count: recorded := physical), closing its label. */
  private endDifference(row: number, at: number): void {
    const r = this.recorded.get(row);
    if (!r) return;
    this.recorded.delete(row);
    if (r.label) r.label.end = StoreSimulation.second(at);
    this.stamp(row, at);
    this.stockChanged(row);
  }

  /** Whether a phantom zero or a count correction may start on a row: stock on the shelf, nothing else going on. */
  private canDiffer(row: number, minimum: number): boolean {
    return !this.recorded.has(row) && !this.openStockouts.has(row) && this.physicalAt(row) > minimum;
  }

  private startPhantom(row: number, at: number, durationMs: number): AnomalyLabel {
    const l = this.label('PHANTOM_ZERO', row, Math.floor(row / this.catalog.size), null, at);
    this.recorded.set(row, { kind: 'fixed', value: 0, label: l });
    this.stamp(row, at);
    this.stockChanged(row);
    this.schedule(at + durationMs, (end) => {
      if (this.recorded.get(row)?.label === l) this.endDifference(row, end);
    });
    return l;
  }

  /**
   * Starts a phantom zero now: the POS records 0 for this row while the shelf keeps its stock
   * (and the product keeps selling) until a count `minutes` later (drawn, 2 to 30 hours, by
   * default). The demo's injected phantom zeros come through here, so they are labelled.
   * Returns the label, or null when the row cannot have one (nothing on the shelf, or another
   * recorded difference going on).
   */
  injectPhantomZero(deposito: string, productoId: string, options: { minutes?: number } = {}): AnomalyLabel | null {
    const row = this.rowOf(deposito, productoId);
    const duration = options.minutes !== undefined ? options.minutes * 60_000 : phantomDurationMs(this.rng);
    if (!(duration > 0)) throw new RangeError(`injectPhantomZero: minutes must be > 0, got ${options.minutes}`);
    if (!this.canDiffer(row, 0)) return null;
    const l = this.startPhantom(row, this.clock.getTime(), duration);
    this.version++;
    return { ...l };
  }

  /** A row to start an anomaly on: a product that sells (the sales draw) at the selling deposito; any deposito at a CEDI. */
  private pickRow(minimum: number): number | undefined {
    const n = this.catalog.size;
    if (n === 0) return undefined;
    for (let t = 0; t < PICK_TRIES; t++) {
      const d = this.salesLinesPerHour > 0 ? 0 : this.rng.int(0, this.depositos.length - 1);
      const row = d * n + Math.floor(n * this.rng.next() ** 3);
      if (this.canDiffer(row, minimum)) return row;
    }
    return undefined;
  }

  private startAnomaly(kind: 'PHANTOM_ZERO' | 'POS_GLITCH' | 'COUNT_CORRECTION', at: number, durationMs: number): void {
    if (kind === 'PHANTOM_ZERO') {
      const row = this.pickRow(0);
      if (row !== undefined) this.startPhantom(row, at, durationMs);
    } else if (kind === 'POS_GLITCH') {
      const d = this.rng.int(0, this.depositos.length - 1);
      const departamento =
        this.rng.chance(0.25) || this.catalog.size === 0 ? null : this.departamentoOf(this.rng.int(0, this.catalog.size - 1));
      const g: ActiveGlitch = { d, departamento, label: this.label('POS_GLITCH', null, d, departamento, at) };
      this.glitches = [...this.glitches, g];
      this.glitchRowsChanged(g);
      this.schedule(at + durationMs, (end) => {
        this.glitches = this.glitches.filter((x) => x !== g);
        g.label.end = StoreSimulation.second(end);
        this.glitchRowsChanged(g);
      });
    } else {
      // A loss the POS does not record (theft, breakage): the shelf holds less than recorded
      // until a count finds it; the count's jump (possibly to 0, once the rest sold) is the label's end.
      const row = this.pickRow(1000);
      if (row === undefined) return;
      const kg = this.isKg(row % this.catalog.size);
      const physical = this.physicalAt(row);
      const loss = Math.min(kg ? this.rng.int(500, 8_000) : this.rng.int(1, 12) * 1000, physical - (kg ? 100 : 1000));
      if (loss <= 0) return;
      const l = this.label('COUNT_CORRECTION', row, Math.floor(row / this.catalog.size), null, at);
      this.recorded.set(row, { kind: 'offset', value: loss, label: l });
      this.move(row, -loss, at);
      this.emit('shrinkage', row, -loss, at);
      this.schedule(at + durationMs, (end) => {
        if (this.recorded.get(row)?.label === l) this.endDifference(row, end);
      });
    }
  }

  private glitchRowsChanged(g: ActiveGlitch): void {
    if (this.stockListeners.size === 0) return;
    for (let i = 0; i < this.catalog.size; i++)
      if (g.departamento === null || this.departamentoOf(i) === g.departamento) this.stockChanged(g.d * this.catalog.size + i);
  }

  // ---- Time ----

  /** Runs `run(at)` when simulated time passes `at` (ms), in time order with the sales. */
  private schedule(at: number, run: (at: number) => void): void {
    const e: QueuedEvent = { at, seq: this.queueSeq++, run };
    let lo = 0;
    let hi = this.queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.queue[mid]!.at <= at) lo = mid + 1;
      else hi = mid;
    }
    this.queue.splice(lo, 0, e);
  }

  /** Runs the queued events up to `t` (ms, inclusive). */
  private runUntil(t: number): void {
    while (this.queue.length > 0 && this.queue[0]!.at <= t) {
      const e = this.queue.shift()!;
      e.run(e.at);
    }
  }

  /** POS clocks record whole seconds (the KLK API writes no milliseconds). */
  private static second(ms: number): Date {
    return new Date(Math.floor(ms / 1000) * 1000);
  }

  /**
   * Moves simulated time forward: receipts, sales and returns while open (KLK), anomalies as
   * they start and end, corrections of the day's lines, shrinkage or dispatches.
   */
  advance(minutes: number): void {
    const from = this.clock.getTime();
    const span = minutes * 60_000;
    const to = from + span;
    this.changed = new Set<number>();
    for (const [d, deposito] of this.depositos.entries()) {
      for (const codigo of DEPARTAMENTO_CODIGOS)
        for (const at of receiptsBetween(from, to, this.openingHours, this.seed, deposito, codigo))
          this.schedule(at, (t) => this.receive(d, codigo, t));
    }
    const open = openIntervals(from, to, this.openingHours);
    const openMs = open.reduce((sum, [a, b]) => sum + b - a, 0);
    for (const p of planAnomalies(this.rng, this.rates, openMs, openMsPerDay(this.openingHours))) {
      this.schedule(StoreSimulation.second(instantInOpenTime(open, Math.floor(p.at * openMs))).getTime(), (t) =>
        this.startAnomaly(p.kind, t, p.durationMs),
      );
    }
    const lines = Math.round((this.salesLinesPerHour * openMs) / 3_600_000);
    const late = new Map<number, { label: AnomalyLabel; pending: number }>();
    let made = 0;
    while (made < lines) {
      const at = StoreSimulation.second(instantInOpenTime(open, Math.floor((made / lines) * openMs))).getTime();
      this.runUntil(at);
      made += this.sell(at, Math.min(lines - made, this.rng.int(1, 5)), late);
    }
    this.runUntil(to - 1);
    if (lines > 0) this.correctSomeLines(StoreSimulation.second(to - 1).getTime(), Math.max(1, Math.round(lines * 0.005)));
    this.fill(from, span, minutes);
    this.clock = new Date(to);
    this.version++;
  }

  /** A department's receipt in deposito d: every row below its reorder level back to it. */
  private receive(d: number, codigo: string, at: number): void {
    const n = this.catalog.size;
    for (let i = 0; i < n; i++) {
      if (this.departamentoOf(i) !== codigo) continue;
      const row = d * n + i;
      const { initial, level } = this.plan(row);
      const physical = initial + this.deltaAt(row);
      if (physical >= level) continue;
      this.move(row, level - physical, at);
      this.emit('receipt', row, level - physical, at);
      this.stockoutBook(row, physical, level, at);
    }
  }

  /** Up to the change share: shrinkage (never the last unit) at a store, dispatches to the stores at a CEDI. */
  private fill(from: number, span: number, minutes: number): void {
    const n = this.catalog.size;
    const target = Math.round(this.changeShare * (minutes / 30) * n * this.depositos.length);
    for (let tries = 0; this.changed.size < target && tries < target * 3; tries++) {
      const d = this.rng.int(0, this.depositos.length - 1);
      const i = Math.floor(this.rng.next() * n);
      const row = d * n + i;
      const kg = this.isKg(i);
      const at = from + this.rng.int(0, span - 1);
      const dispatch = this.pos === 'stellar';
      const wanted = dispatch ? (kg ? this.rng.int(1_000, 20_000) : this.rng.int(6, 48) * 1000) : kg ? this.rng.int(20, 300) : 1000;
      const amount = Math.min(wanted, this.physicalAt(row) - (kg ? 100 : 1000));
      if (amount <= 0) continue;
      this.move(row, -amount, at);
      this.emit(dispatch ? 'dispatch' : 'shrinkage', row, -amount, at);
    }
  }

  /** Draws a product that is on the shelf (the skewed sales draw), or undefined after PICK_TRIES. */
  private inStock(): number | undefined {
    for (let t = 0; t < PICK_TRIES; t++) {
      const i = Math.floor(this.catalog.size * this.rng.next() ** 3);
      if (this.physicalAt(i) > 0) return i;
    }
    return undefined;
  }

  /** One invoice of up to `lineCount` lines at `at`; returns `lineCount` (lines whose draws found nothing on the shelf are not sold). */
  private sell(at: number, lineCount: number, late: Map<number, { label: AnomalyLabel; pending: number }>): number {
    const when = new Date(at);
    const fecha = fechaCaracas(when);
    const invoice = ++this.invoiceSeq;
    const caja = this.rng.int(1, 8);
    let linea = 0;
    for (let n = 0; n < lineCount; n++) {
      // Skewed: a few products sell far more than the rest, as in a real store. Sales leave the first deposito: row i.
      const i = this.inStock();
      if (i === undefined) continue;
      const kg = this.isKg(i);
      const physical = this.physicalAt(i);
      const isReturn = this.rng.chance(RETURN_SHARE);
      const drawn = kg ? this.rng.int(100, 3_000) : this.rng.int(1, 6) * 1000;
      const cantidad = isReturn ? -drawn : Math.min(drawn, physical);
      const descuento = this.rng.chance(0.1);
      const isLate = this.rates.lateSalesShare > 0 && this.rng.chance(this.rates.lateSalesShare);
      const sale: SaleInput = { producto: i, at: when, cantidad, invoice, linea: ++linea, caja, descuento };
      const postedAt = isLate ? at + LATE_SALES_DELAY_MS : at;
      this.move(i, -cantidad, at);
      this.emit(isReturn ? 'return' : 'sale', i, -cantidad, at, {
        numero_factura: `F-${String(invoice).padStart(8, '0')}`,
        linea: sale.linea,
        postedAt: new Date(postedAt),
      });
      this.stockoutBook(i, physical, physical - cantidad, at);
      if (!isLate) {
        this.sales.add(fecha, sale);
        continue;
      }
      let l = late.get(i);
      if (!l) late.set(i, (l = { label: this.label('LATE_SALES', i, 0, null, at), pending: 0 }));
      const group = l;
      group.pending++;
      this.schedule(postedAt, (t) => {
        this.sales.add(fecha, sale);
        if (--group.pending === 0) group.label.end = StoreSimulation.second(t);
      });
    }
    return lineCount;
  }

  /**
   * Voids or corrects a few lines already posted today: the POS changes history. The goods
   * come back (or leave, for a return), never below 0.
   */
  private correctSomeLines(at: number, count: number): void {
    const fecha = fechaCaracas(new Date(at));
    const lines = this.sales.count(fecha);
    if (lines === 0) return;
    for (let n = 0; n < count; n++) {
      const index = this.rng.int(0, lines - 1);
      const line = this.sales.peek(fecha, index);
      const physical = this.physicalAt(line.producto);
      // A product out of stock waits for its receipt; a voided return must leave something on the shelf.
      if (line.anulada || physical === 0 || physical + line.cantidad <= 0) continue;
      this.sales.void(fecha, index);
      this.move(line.producto, line.cantidad, at);
      this.emit('void', line.producto, line.cantidad, at);
    }
  }

  // ---- Reads ----

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

  /** Every sales line of a store-local date the POS has posted so far. */
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
