/**
 * The real mssql driver against the Stellar simulator (simulators/stellar/server.ts), for
 * test/integration/stellar-simulator.test.ts and stellar-query.test.ts: a store to serve, a
 * one-connection pool (closed by closePools() after each test), the checked-in inventory query
 * streamed row by row, and the first differences between its rows and the simulation's truth.
 */
import { readFileSync } from 'node:fs';
import sql from 'mssql';
import { StoreSimulation, type InventarioTruthRow } from '../../simulators/data/store-simulation.ts';
import type { FaultControl } from '../../simulators/faults.ts';
import { startStellarSimulator, type StellarSimulator } from '../../simulators/stellar/server.ts';
import { INVENTARIO_SQL_PATH } from '../../simulators/stellar/statements.ts';
import { testLogger } from '../../fixtures/services.ts';

export const USER = 'fluxion_ro';
export const PASSWORD = 'Contraseña-de-prueba-1';
export const QUERY = readFileSync(INVENTARIO_SQL_PATH, 'utf8');

export type Row = Record<string, unknown>;
export type DriverError = Error & { code?: string; number?: number };

export interface Store {
  sim: StoreSimulation;
  server: StellarSimulator;
}

const openPools: sql.ConnectionPool[] = [];

/** Closes every pool pool() opened: call it after each test. */
export async function closePools(): Promise<void> {
  await Promise.all(openPools.splice(0).map((p) => p.close().catch(() => undefined)));
}

export async function store(ubicacionId: string, products: number, depositos: string[], faults: FaultControl): Promise<Store> {
  const sim = new StoreSimulation({ ubicacionId, pos: 'stellar', depositos, products });
  const server = await startStellarSimulator({ simulation: sim, faults, user: USER, password: PASSWORD, logger: testLogger });
  return { sim, server };
}

export function pool(s: Store, overrides: Partial<sql.config> = {}): sql.ConnectionPool {
  const p = new sql.ConnectionPool({
    server: s.server.host,
    port: s.server.port,
    user: USER,
    password: PASSWORD,
    database: 'VAD10',
    connectionTimeout: 5_000,
    requestTimeout: 15_000,
    pool: { max: 1, min: 0 },
    options: { encrypt: false, trustServerCertificate: true, cancelTimeout: 1_000 },
    ...overrides,
  });
  p.on('error', () => undefined);
  openPools.push(p);
  return p;
}

export interface Streamed {
  rows: Row[];
  columns: Record<string, { type: unknown; length?: number; precision?: number; scale?: number; nullable?: boolean }>;
  error?: DriverError;
  request: sql.Request;
}

/** Runs the inventory query with `request.stream = true`; resolves at 'done' or at the first error. */
export function streamInventario(
  p: sql.ConnectionPool,
  deposito: string | null,
  onRow?: (n: number, request: sql.Request) => void,
  query = QUERY,
): { request: sql.Request; result: Promise<Streamed> } {
  const request = p.request();
  request.stream = true;
  request.input('codigo_deposito', sql.VarChar(10), deposito);
  const out: Streamed = { rows: [], columns: {}, request };
  const result = new Promise<Streamed>((resolve) => {
    request.on('recordset', (columns: Streamed['columns']) => (out.columns = columns));
    request.on('row', (row: Row) => {
      out.rows.push(row);
      onRow?.(out.rows.length, request);
    });
    request.on('error', (err: DriverError) => {
      out.error ??= err;
      resolve(out);
    });
    request.on('done', () => resolve(out));
  });
  void request.query(query);
  return { request, result };
}

/** A decimal as the exact string of its scale (exact while it has at most 15 digits). */
export function exact(value: unknown, scale: number): string | null {
  if (value === null) return null;
  if (typeof value !== 'number') return `not a number: ${String(value)}`;
  return value.toFixed(scale);
}

/** The first differences between what the driver returned and the truth (empty when equal). */
export function differences(rows: Row[], truth: InventarioTruthRow[]): string[] {
  const problems: string[] = [];
  if (rows.length !== truth.length) problems.push(`${rows.length} rows, expected ${truth.length}`);
  for (let i = 0; i < Math.min(rows.length, truth.length) && problems.length < 5; i++) {
    const r = rows[i]!;
    const t = truth[i]!;
    const expected = {
      codigo_producto: t.producto_id,
      codigo_barras: t.codigo_barras,
      descripcion: t.descripcion,
      departamento_codigo: t.departamento_codigo,
      departamento_nombre: t.departamento_nombre,
      grupo_codigo: t.grupo_codigo,
      grupo_nombre: t.grupo_nombre,
      subgrupo_codigo: t.subgrupo_codigo,
      subgrupo_nombre: t.subgrupo_nombre,
      unidad: t.unidad,
      cantidad: t.cantidad,
      costo: t.costo,
      precio: t.precio,
    };
    const actual = { ...r, cantidad: exact(r.cantidad, 3), costo: exact(r.costo, 4), precio: exact(r.precio, 4) };
    const numbersExact =
      r.cantidad === Number(t.cantidad) &&
      r.costo === (t.costo === null ? null : Number(t.costo)) &&
      r.precio === (t.precio === null ? null : Number(t.precio));
    if (JSON.stringify(actual) !== JSON.stringify(expected) || !numbersExact)
      problems.push(`row ${i}: got ${JSON.stringify(r)}, expected ${JSON.stringify(expected)}`);
  }
  return problems;
}
