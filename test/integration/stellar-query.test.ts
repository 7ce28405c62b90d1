/**
 * The checked-in Stellar inventory query (simulators/stellar/statements.ts) on the simulated
 * VAD10 tables, through the real mssql driver: it returns exactly the truth, each of its
 * filters is needed (taking one out changes the answer), its time on big depositos, and a
 * construct the simulator's translation does not know is an error, never an answer.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { codigoBarras, PROCURA } from '../../simulators/data/catalog.ts';
import { FaultControl } from '../../simulators/faults.ts';
import { testLogger } from '../../fixtures/services.ts';
import { closePools, differences, pool, QUERY, store as startStore, streamInventario, type Store } from '../helpers/stellar-driver.ts';

const faults = new FaultControl();
const store = (ubicacionId: string, products: number, depositos: string[]) => startStore(ubicacionId, products, depositos, faults);
let tienda: Store; // 3,000 products in depositos 01 and 02

beforeAll(async () => {
  tienda = await store('tienda_07', 3_000, ['01', '02']);
});

afterEach(async () => {
  await closePools();
});

afterAll(async () => {
  await tienda?.server.close();
});

/** The query with one piece taken out; fails when the piece is not there (the query changed). */
function without(query: string, piece: string | RegExp, replacement = ''): string {
  const changed = query.replace(piece, replacement);
  if (changed === query) throw new Error(`the query no longer contains ${String(piece)}: update this mutation`);
  return changed;
}

describe('the checked-in query on the VAD10 tables: each of its filters is needed', () => {
  // tienda: 3,000 products in depositos 01 and 02 (and the simulator's MERMAS, never extracted).
  it('the generated catalogue holds what each filter must leave out', () => {
    const catalog = [...tienda.sim.catalog];
    const merchandise = catalog.filter((p) => p.departamento.codigo !== PROCURA);
    expect(catalog.filter((p) => p.departamento.codigo === PROCURA && p.activo && codigoBarras(p) !== null).length).toBeGreaterThan(0);
    expect(merchandise.filter((p) => !p.activo && codigoBarras(p) !== null).length).toBeGreaterThan(0);
    expect(merchandise.filter((p) => p.activo && codigoBarras(p) === null).length).toBeGreaterThan(0);
    expect(merchandise.filter((p) => p.activo && p.codigos.filter((c) => c.tipo === 'BARRA').length > 1).length).toBeGreaterThan(0);
    expect(merchandise.filter((p) => p.activo && codigoBarras(p) !== null && p.grupo === null).length).toBeGreaterThan(0);
  });

  it('returns exactly the truth (filtered in JS from the generated data) per deposito, and follows the stock as it moves', async () => {
    const p = await pool(tienda).connect();
    for (const deposito of ['01', '02']) {
      const { rows, error } = await streamInventario(p, deposito).result;
      expect(error).toBeUndefined();
      expect(differences(rows, tienda.sim.stellarInventario(deposito))).toEqual([]);
    }
    const before = tienda.sim.stellarInventario('01');
    tienda.sim.advance(120);
    const after = tienda.sim.stellarInventario('01');
    expect(after.filter((r, i) => r.cantidad !== before[i]!.cantidad).length).toBeGreaterThan(10);
    const { rows, error } = await streamInventario(p, '01').result;
    expect(error).toBeUndefined();
    expect(differences(rows, after)).toEqual([]);
  });

  const mutations: Array<[string, (q: string) => string]> = [
    ['the PROCURA exclusion', (q) => without(q, /\n\s*AND p\.c_Departamento <> '000017'[^\n]*/)],
    ['active products only (n_Activo = 1)', (q) => without(q, /\n\s*AND p\.n_Activo = 1/)],
    ["codes of type 'BARRA' only", (q) => without(q, /\n\s*WHERE c_TipoCodigo = 'BARRA'/)],
    [
      'products with a barcode only (the inner join on the barcodes)',
      (q) => without(q, /INNER JOIN (\(\s*SELECT c_CodNasa)/, 'LEFT JOIN $1'),
    ],
    ['the lowest BARRA code', (q) => without(q, 'MIN(c_Codigo)', 'MAX(c_Codigo)')],
    [
      'one row per product (the grouped barcodes)',
      (q) => without(without(q, 'MIN(c_Codigo) AS', 'c_Codigo AS'), /\n\s*GROUP BY c_CodNasa/),
    ],
    ['the deposito parameter', (q) => without(q, /WHERE dp\.c_CodDeposito = @codigo_deposito\s*AND/, 'WHERE')],
    ["the group's department in its join", (q) => without(q, / AND g\.c_Departamento = p\.c_Departamento/)],
  ];

  it.each(mutations)('without %s the answer is no longer the truth', async (_name, mutate) => {
    const mutated = mutate(QUERY);
    const p = await pool(tienda).connect();
    const { rows, error } = await streamInventario(p, '01', undefined, mutated).result;
    // The mutated query runs: what fails is the answer, not the syntax.
    expect(error).toBeUndefined();
    expect(rows.length).toBeGreaterThan(0);
    expect(differences(rows, tienda.sim.stellarInventario('01'))).not.toEqual([]);
  });

  it.for([8_000, 60_000])(
    'snapshot query time: a deposito of %i products, streamed to mssql, exactly the truth',
    async (products, { annotate }) => {
      const started = performance.now();
      const s = await store(`cedi_${products}`, products, ['0101']);
      const startSeconds = (performance.now() - started) / 1000;
      try {
        const p = await pool(s).connect();
        const t0 = performance.now();
        let firstRow = 0;
        const { rows, error } = await streamInventario(p, '0101', (n) => {
          if (n === 1) firstRow = performance.now() - t0;
        }).result;
        const seconds = (performance.now() - t0) / 1000;
        expect(error).toBeUndefined();
        expect(differences(rows, s.sim.stellarInventario('0101'))).toEqual([]);
        const figures = {
          products,
          rows: rows.length,
          simulatorStartSeconds: +startSeconds.toFixed(2),
          firstRowMs: Math.round(firstRow),
          querySeconds: +seconds.toFixed(2),
        };
        testLogger.info(figures, 'Stellar simulator: snapshot query time');
        await annotate(JSON.stringify(figures));
      } finally {
        await s.server.close();
      }
    },
  );

  it('a construct the translation does not know is an error naming it, never an answer', async () => {
    const p = await pool(tienda).connect();
    const applied = without(
      QUERY,
      /INNER JOIN \(\s*SELECT c_CodNasa[\s\S]*?\) b ON b\.c_CodNasa = p\.c_Codigo/,
      'OUTER APPLY (SELECT TOP 1 c_Codigo AS codigo_barras FROM MA_CODIGOS c WHERE c.c_CodNasa = p.c_Codigo AND c.c_TipoCodigo = ' +
        "'BARRA' ORDER BY c_Codigo) b",
    );
    const { rows, error } = await streamInventario(p, '01', undefined, applied).result;
    expect(rows).toEqual([]);
    expect(error).toMatchObject({
      number: 50000,
      message: expect.stringContaining("not supported by the Stellar simulator's translation: OUTER APPLY"),
    });
  });
});
