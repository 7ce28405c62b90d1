/** The boundary check of a KLK sales line (docs/pos-contracts.md, GET /api/v1/ventas). */
import type { VentaLinea } from '../core/records.ts';
import { booleanValue, codeValue, decimalValue, fail, instantValue, textValue, type RowPlace } from './pos-values.ts';

export type { VentaLinea };

export function toVentaLinea(item: Record<string, unknown>, fecha: string, where: RowPlace): VentaLinea {
  const numero = textValue(where, 'numero_factura', item.numero_factura, false)!;
  if (numero.length === 0 || numero.length > 30) fail(where, 'numero_factura', numero, 'is not an invoice number (1-30 characters)');
  const at = { ...where, place: `${where.place} (factura ${numero})` };
  const linea = item.linea;
  if (typeof linea !== 'number' || !Number.isInteger(linea) || linea < 1 || linea > 100_000)
    fail(at, 'linea', linea, 'is not a line number (integer >= 1)');
  const productoId = codeValue(at, 'codigo_producto', item.codigo_producto);
  const withProduct = { ...at, productoId };
  return {
    ubicacion_id: where.ubicacionId,
    fecha,
    numero_factura: numero,
    linea,
    fecha_hora: instantValue(withProduct, 'fecha_hora', item.fecha_hora, false)!,
    producto_id: productoId,
    cantidad: decimalValue(withProduct, 'cantidad', item.cantidad, 3, false)!,
    precio_unitario: decimalValue(withProduct, 'precio_unitario', item.precio_unitario, 4, false)!,
    descuento: decimalValue(withProduct, 'descuento', item.descuento, 4, false)!,
    total: decimalValue(withProduct, 'total', item.total, 4, false)!,
    caja: textValue(withProduct, 'caja', item.caja, true),
    anulada: booleanValue(withProduct, 'anulada', item.anulada),
  };
}
