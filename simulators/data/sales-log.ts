/**
 * A store's sales lines by store-local date, kept in columns of typed arrays (about 20 bytes a
 * line instead of an object of strings): a national day of sales (500 stores x 2,000 lines an
 * hour) would otherwise outgrow the simulator. Lines are rebuilt from the catalogue on read.
 */
import { fromUnscaled } from '../../core/avro/logical-types.ts';
import type { VentaLinea } from '../../core/records.ts';
import type { Catalog } from './catalog.ts';

/** A sales line as the POS reports it (the store is the simulation's). */
export type VentaTruthLine = Omit<VentaLinea, 'ubicacion_id' | 'caja'> & { caja: string };

export interface SaleInput {
  /** 0-based catalogue index. */
  producto: number;
  /** Whole seconds. */
  at: Date;
  /** Thousandths; negative for a return. */
  cantidad: number;
  invoice: number;
  linea: number;
  caja: number;
  /** 5% off the line's unit price. */
  descuento: boolean;
}

const DESCUENTO = 1;
const ANULADA = 2;

/** One date's lines, appended in order; arrays double as they fill. */
class SalesDay {
  length = 0;
  producto = new Int32Array(64);
  second = new Uint32Array(64);
  cantidad = new Int32Array(64);
  invoice = new Uint32Array(64);
  linea = new Uint16Array(64);
  caja = new Uint8Array(64);
  flags = new Uint8Array(64);

  push(s: SaleInput): void {
    if (this.length === this.producto.length) this.grow();
    const n = this.length++;
    this.producto[n] = s.producto;
    this.second[n] = s.at.getTime() / 1000;
    this.cantidad[n] = s.cantidad;
    this.invoice[n] = s.invoice;
    this.linea[n] = s.linea;
    this.caja[n] = s.caja;
    this.flags[n] = s.descuento ? DESCUENTO : 0;
  }

  private grow(): void {
    const twice = <T extends Int32Array | Uint32Array | Uint16Array | Uint8Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(a.length * 2);
      b.set(a);
      return b;
    };
    this.producto = twice(this.producto);
    this.second = twice(this.second);
    this.cantidad = twice(this.cantidad);
    this.invoice = twice(this.invoice);
    this.linea = twice(this.linea);
    this.caja = twice(this.caja);
    this.flags = twice(this.flags);
  }
}

export class SalesLog {
  private readonly days = new Map<string, SalesDay>();
  private readonly catalog: Catalog;

  constructor(catalog: Catalog) {
    this.catalog = catalog;
  }

  add(fecha: string, sale: SaleInput): void {
    if (!Number.isInteger(sale.at.getTime() / 1000)) throw new Error(`a sale's instant has whole seconds, got ${sale.at.toISOString()}`);
    let day = this.days.get(fecha);
    if (!day) this.days.set(fecha, (day = new SalesDay()));
    day.push(sale);
  }

  count(fecha: string): number {
    return this.days.get(fecha)?.length ?? 0;
  }

  /** Line `index` of a date: its product, quantity and whether it is void. */
  peek(fecha: string, index: number): { producto: number; cantidad: number; anulada: boolean } {
    const day = this.days.get(fecha);
    if (!day || index >= day.length) throw new RangeError(`no sales line ${index} on ${fecha}`);
    return { producto: day.producto[index]!, cantidad: day.cantidad[index]!, anulada: (day.flags[index]! & ANULADA) !== 0 };
  }

  /** Marks line `index` of a date void; its product and quantity, or undefined when it already was. */
  void(fecha: string, index: number): { producto: number; cantidad: number } | undefined {
    const day = this.days.get(fecha);
    if (!day || index >= day.length) throw new RangeError(`no sales line ${index} on ${fecha}`);
    if (day.flags[index]! & ANULADA) return undefined;
    day.flags[index]! |= ANULADA;
    return { producto: day.producto[index]!, cantidad: day.cantidad[index]! };
  }

  /** Lines [start, end) of a date, as the POS reports them. */
  lines(fecha: string, start: number, end: number): VentaTruthLine[] {
    return [...this.iterate(fecha, start, end)];
  }

  *iterate(fecha: string, start: number, end: number): Generator<VentaTruthLine> {
    const day = this.days.get(fecha);
    if (!day) return;
    for (let n = Math.max(0, start); n < Math.min(end, day.length); n++) yield this.line(fecha, day, n);
  }

  private line(fecha: string, day: SalesDay, n: number): VentaTruthLine {
    const p = this.catalog.at(day.producto[n]!);
    const cantidad = BigInt(day.cantidad[n]!);
    const descuento = day.flags[n]! & DESCUENTO ? (p.precio * 5n) / 100n : 0n;
    // cantidad (scale 3) x precio (scale 4) = scale 7; round half away from zero to scale 4.
    const raw = cantidad * p.precio;
    const bruto = (raw + (raw >= 0n ? 500n : -500n)) / 1000n;
    const total = bruto - (cantidad < 0n ? -descuento : descuento);
    return {
      fecha,
      numero_factura: `F-${String(day.invoice[n]!).padStart(8, '0')}`,
      linea: day.linea[n]!,
      fecha_hora: new Date(day.second[n]! * 1000),
      producto_id: p.producto_id,
      cantidad: fromUnscaled(cantidad, 3),
      precio_unitario: fromUnscaled(p.precio, 4),
      descuento: fromUnscaled(descuento, 4),
      total: fromUnscaled(total, 4),
      caja: String(day.caja[n]!).padStart(2, '0'),
      anulada: (day.flags[n]! & ANULADA) !== 0,
    };
  }
}
