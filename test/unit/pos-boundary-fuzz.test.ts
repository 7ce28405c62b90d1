/**
 * Fuzzing of the POS boundary (issue 7): whatever a POS sends for a row, the check either
 * returns a row the Avro schema encodes and PostgreSQL can store, or throws a PosDataError
 * naming the store, the field and the value. Never another error, never a bad row.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createAvroType, inlineSharedTypes, loadSharedTypes } from '../../core/avro/schemas.ts';
import { PosDataError } from '../../core/errors.ts';
import { toInventoryRow, type PosInventoryItem } from '../../extractors/inventory-row.ts';
import { toVentaLinea } from '../../extractors/venta-line.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SCHEMAS_DIR } from '../../core/paths.ts';

const shared = loadSharedTypes();
const typeOf = (file: string) =>
  createAvroType(inlineSharedTypes(JSON.parse(readFileSync(join(SCHEMAS_DIR, 'types', file), 'utf8')), shared), file);
const inventoryType = typeOf('InventoryRow.avsc');
const ventaType = typeOf('VentaLinea.avsc');
const where = { ubicacionId: 'tienda_07', place: 'page 2, item 5' };

// Values a POS might send: mostly good ones (so that rows get through and are checked too),
// then near-misses and garbage.
const mostly = <T>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<unknown>) =>
  fc.oneof({ arbitrary: good, weight: 12 }, { arbitrary: bad, weight: 1 });
const decimalish = mostly(
  fc.oneof(fc.integer({ min: -99999, max: 99999 }).map(String), fc.constantFrom('0', '12.5', '-3.000', '99999999999999.999')),
  fc.oneof(
    fc.constantFrom('999999999999999999', '1e3', '12,5', '', ' 1', 'NaN', '0.00001'),
    fc.double().map(String),
    fc.double(),
    fc.constant(undefined),
  ),
);
const nullableDecimal = fc.oneof(decimalish, fc.constant(null));
const textish = mostly(
  fc.string({ maxLength: 40 }),
  fc.oneof(fc.string({ minLength: 190, maxLength: 260 }), fc.constant('a\u0000b'), fc.integer(), fc.constant(undefined)),
);
const nullableText = fc.oneof(textish, fc.constant(null));
const codeish = mostly(
  fc.stringMatching(/^[0-9A-Za-z._-]{1,20}$/),
  fc.oneof(fc.string({ maxLength: 25 }), fc.constant(''), fc.integer(), fc.constant(null)),
);
const instantish = mostly(
  fc.oneof(
    fc.date({ noInvalidDate: true, min: new Date('1990-01-01'), max: new Date('2100-01-01') }).map((d) => d.toISOString()),
    fc.constant(null),
  ),
  fc.constantFrom('2026-11-27 14:00:00', '2026-13-01T00:00:00Z', 'yesterday', ''),
);
const booleanish = mostly(fc.boolean(), fc.constantFrom(0, 1, 'true', 'S', null));
const unidadish = mostly(fc.constantFrom('UND', 'KG', 'LT', 'CAJA'), textish);

const item = fc.record<PosInventoryItem>({
  deposito: codeish,
  producto_id: codeish,
  codigo_barras: nullableText,
  descripcion: textish,
  departamento_codigo: nullableText,
  departamento_nombre: nullableText,
  grupo_codigo: nullableText,
  grupo_nombre: nullableText,
  subgrupo_codigo: nullableText,
  subgrupo_nombre: nullableText,
  unidad: unidadish,
  cantidad: decimalish,
  costo: nullableDecimal,
  precio: nullableDecimal,
  activo: booleanish,
  actualizado_en: instantish,
});

/** Runs one check; true when the row was accepted (and then proven encodable and storable). */
function checkOutcome<T>(run: () => T, type: { isValid(v: unknown): boolean }): boolean {
  let row: T;
  try {
    row = run();
  } catch (err) {
    expect(err).toBeInstanceOf(PosDataError);
    expect((err as Error).message).toContain('tienda_07');
    expect((err as Error).message).toMatch(/field [a-z_]+: /);
    return false;
  }
  expect(type.isValid(row), `accepted a row the schema refuses: ${JSON.stringify(row)}`).toBe(true);
  for (const v of Object.values(row as object)) if (typeof v === 'string') expect(v.includes('\u0000')).toBe(false);
  return true;
}

describe('the POS boundary under arbitrary input', () => {
  it('an inventory row is either exact and encodable, or refused naming store, field and value', () => {
    let accepted = 0;
    fc.assert(
      fc.property(item, (i) => void (checkOutcome(() => toInventoryRow(i, where), inventoryType) && accepted++)),
      { numRuns: 3_000, seed: 20261128 },
    );
    // Both outcomes were exercised.
    expect(accepted).toBeGreaterThan(100);
    expect(accepted).toBeLessThan(3_000);
  });

  it('a sales line is either exact and encodable, or refused naming store, field and value', () => {
    const line = fc.record({
      numero_factura: mostly(fc.stringMatching(/^F[0-9]{1,10}$/), textish),
      linea: mostly(fc.integer({ min: 1, max: 500 }), fc.oneof(fc.integer({ min: -5, max: 200_000 }), fc.double(), fc.constant('3'))),
      codigo_producto: codeish,
      fecha_hora: mostly(
        fc.date({ noInvalidDate: true, min: new Date('2000-01-01'), max: new Date('2099-01-01') }).map((d) => d.toISOString()),
        instantish,
      ),
      cantidad: decimalish,
      precio_unitario: decimalish,
      descuento: decimalish,
      total: decimalish,
      caja: nullableText,
      anulada: booleanish,
    });
    let accepted = 0;
    fc.assert(
      fc.property(line, (l) => void (checkOutcome(() => toVentaLinea(l, '2026-11-27', where), ventaType) && accepted++)),
      { numRuns: 3_000, seed: 20261128 },
    );
    expect(accepted).toBeGreaterThan(100);
    expect(accepted).toBeLessThan(3_000);
  });

  it('refuses a NUL character in text, which PostgreSQL cannot store', () => {
    const good: PosInventoryItem = {
      deposito: '01',
      producto_id: '000123',
      codigo_barras: null,
      descripcion: 'PAN\u0000CANILLA',
      departamento_codigo: null,
      departamento_nombre: null,
      grupo_codigo: null,
      grupo_nombre: null,
      subgrupo_codigo: null,
      subgrupo_nombre: null,
      unidad: 'UND',
      cantidad: '1',
      costo: null,
      precio: null,
      activo: true,
      actualizado_en: null,
    };
    expect(() => toInventoryRow(good, where)).toThrow(
      /tienda_07: page 2, item 5 \(producto 000123\): field descripcion: .* contains a NUL character/,
    );
  });
});
