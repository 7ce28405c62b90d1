/**
 * Fuzzing of whole KLK answers (issue 7): whatever body a KLK POS returns with HTTP 200 (text,
 * any JSON value, a page with odd paging fields or odd items, a page cut short), reading the
 * store either yields rows the Avro schema encodes, or fails with a PosDataError naming the
 * store and the field (or saying the body is not JSON). Never a TypeError, never a bad row.
 *
 * The POS here is a loopback HTTP server answering every request with the body under test:
 * the fuzz needs bodies the contract's simulator never sends on purpose.
 */
import fc from 'fast-check';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAvroType, inlineSharedTypes, loadSharedTypes } from '../../core/avro/schemas.ts';
import { PosDataError } from '../../core/errors.ts';
import { createLogger } from '../../core/logger.ts';
import { SCHEMAS_DIR } from '../../core/paths.ts';
import { createKlkApi } from '../../extractors/klk-api.ts';

const shared = loadSharedTypes();
const typeOf = (file: string) =>
  createAvroType(inlineSharedTypes(JSON.parse(readFileSync(join(SCHEMAS_DIR, 'types', file), 'utf8')), shared), file);
const inventoryType = typeOf('InventoryRow.avsc');
const ventaType = typeOf('VentaLinea.avsc');

let server: Server;
let body = '';
let baseUrl = '';

beforeAll(async () => {
  server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const api = () =>
  createKlkApi({
    ubicacionId: 'tienda_07',
    baseUrl,
    apiKey: 'fuzz-key',
    apiKeyEnv: 'KLK_API_KEY_TIENDA_07',
    pageSize: 1000,
    requestTimeoutMs: 5_000,
    retry: { retries: 0, initialDelayMs: 1, maxDelayMs: 1, factor: 1 },
    signal: new AbortController().signal,
    logger: createLogger({ level: 'silent' }),
  });

// Fields mostly as the contract shows them, sometimes anything at all.
const odd = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 30 }),
  fc.constant({}),
  fc.constant([]),
  fc.string({ minLength: 200, maxLength: 260 }),
);
const mostly = <T>(good: fc.Arbitrary<T>) => fc.oneof({ arbitrary: good, weight: 10 }, { arbitrary: odd, weight: 1 });
const decimal = mostly(
  fc.oneof(
    fc.integer({ min: -9999, max: 99999 }).map((n) => `${n}.000`),
    fc.constantFrom('0.8500', '-2.000', '12.345'),
  ),
);
const code = mostly(fc.stringMatching(/^[0-9]{3,8}$/));
const clase = mostly(fc.record({ codigo: code, nombre: mostly(fc.string({ maxLength: 20 })) }));
const instant = mostly(
  fc.date({ noInvalidDate: true, min: new Date('2020-01-01'), max: new Date('2030-01-01') }).map((d) => d.toISOString()),
);
const inventarioItem = fc.record(
  {
    codigo_producto: code,
    codigo_barras: fc.oneof(fc.constant(null), code),
    descripcion: mostly(fc.string({ maxLength: 40 })),
    departamento: clase,
    grupo: clase,
    subgrupo: clase,
    unidad: mostly(fc.constantFrom('UND', 'KG')),
    cantidad: decimal,
    costo: decimal,
    precio: decimal,
    activo: mostly(fc.boolean()),
    actualizado_en: instant,
  },
  { requiredKeys: ['codigo_producto', 'descripcion', 'unidad', 'cantidad', 'activo'] },
);
const ventaItem = fc.record(
  {
    numero_factura: mostly(fc.stringMatching(/^F-[0-9]{8}$/)),
    linea: mostly(fc.integer({ min: 1, max: 300 })),
    fecha_hora: instant,
    codigo_producto: code,
    cantidad: decimal,
    precio_unitario: decimal,
    descuento: decimal,
    total: decimal,
    caja: fc.oneof(fc.constant(null), code),
    anulada: mostly(fc.boolean()),
  },
  { requiredKeys: ['numero_factura', 'linea', 'fecha_hora', 'codigo_producto', 'cantidad', 'total', 'anulada'] },
);
const page = (item: fc.Arbitrary<unknown>) =>
  fc
    .record({
      page: fc.constant(1),
      page_size: fc.constant(1000),
      total_pages: fc.oneof(
        { arbitrary: fc.constant(1), weight: 8 },
        { arbitrary: fc.constantFrom(0, 2, -1, 1.5, '1', null, 1e300), weight: 1 },
      ),
      items: fc.oneof(
        { arbitrary: fc.array(fc.oneof({ arbitrary: item, weight: 20 }, { arbitrary: odd, weight: 1 }), { maxLength: 8 }), weight: 12 },
        { arbitrary: odd, weight: 1 },
      ),
    })
    .map((p) => JSON.stringify(p));
const bodyOf = (item: fc.Arbitrary<unknown>) =>
  fc.oneof(
    { arbitrary: page(item), weight: 12 },
    { arbitrary: fc.json(), weight: 2 },
    { arbitrary: fc.string({ maxLength: 60 }), weight: 1 },
    // A page cut short, as a proxy timing out mid-body would leave it.
    {
      arbitrary: fc.tuple(page(item), fc.double({ min: 0, max: 1, noNaN: true })).map(([b, at]) => b.slice(0, Math.floor(b.length * at))),
      weight: 2,
    },
  );

/** Reads the store with `body` as every answer; the rows, or the error it failed with. */
async function readAll(read: () => AsyncGenerator<unknown>): Promise<{ rows: unknown[]; err?: unknown }> {
  const rows: unknown[] = [];
  try {
    for await (const r of read()) rows.push(r);
    return { rows };
  } catch (err) {
    return { rows, err };
  }
}

function checkOutcome(outcome: { rows: unknown[]; err?: unknown }, type: { isValid(v: unknown): boolean }): 'read' | 'refused' {
  for (const row of outcome.rows) expect(type.isValid(row), `yielded a row the schema refuses: ${JSON.stringify(row)}`).toBe(true);
  if (outcome.err === undefined) return 'read';
  expect(outcome.err, String(outcome.err)).toBeInstanceOf(PosDataError);
  const message = (outcome.err as Error).message;
  expect(message).toContain('tienda_07');
  expect(message).toMatch(/field [a-z_]+: |the body is not JSON/);
  expect(message).not.toContain('fuzz-key');
  return 'refused';
}

describe('whole KLK answers under arbitrary bodies', () => {
  const cases = [
    { what: 'inventario', item: inventarioItem, type: inventoryType, read: () => api().inventario('01') },
    { what: 'ventas', item: ventaItem, type: ventaType, read: () => api().ventas('2026-11-27') },
  ];
  it.each(cases)(
    '$what: rows the schema encodes, or a refusal naming the store and the field',
    async ({ item, type, read }) => {
      const seen = { read: 0, refused: 0 };
      await fc.assert(
        fc.asyncProperty(bodyOf(item), async (b) => {
          body = b;
          seen[checkOutcome(await readAll(read), type)]++;
        }),
        { numRuns: 400, seed: 20261128 },
      );
      // Both outcomes were exercised.
      expect(seen.read).toBeGreaterThan(20);
      expect(seen.refused).toBeGreaterThan(20);
    },
    60_000,
  );

  it('refuses a body of JSON null by name (it parsed, and used to end in a TypeError)', async () => {
    body = 'null';
    const { err } = await readAll(() => api().inventario('01'));
    expect(err).toBeInstanceOf(PosDataError);
    expect((err as Error).message).toBe('tienda_07: page 1: field body: "null" is not a page object');
  });
});
