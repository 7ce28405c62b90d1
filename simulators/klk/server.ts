/**
 * The KLK POS stand-in: an HTTP server implementing the KLK contract of docs/pos-contracts.md for any
 * number of stores, one base path per store (`/<ubicacion_id>/api/v1/...`), API key checked,
 * paginated, with faults on demand. Loopback only.
 *
 * Control endpoints (for tests, the demo and operators playing with it):
 *   PUT    /_control/faults/<ubicacion_id>   body: StoreFaults      set a store's faults
 *   DELETE /_control/faults                                          clear every fault
 *   POST   /_control/advance                 body: {"minutes": 30}   move every store's time
 *   GET    /_control/stores                                          ids, versions, clocks
 *   GET    /_control/anomalias[?ubicacion_id=<id>]                   the anomaly labels (the truth a
 *                                                                    detector is scored against)
 *   POST   /_control/phantom-zero/<ubicacion_id>  body: {"deposito": "01", "producto_id": "000001", "minutes"?: 120}
 *                                                                    start a labelled phantom zero
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../core/logger.ts';
import { FaultControl, servedInventario, type StoreFaults } from '../faults.ts';
import type { InventarioTruthRow, StoreSimulation, VentaTruthLine } from '../data/store-simulation.ts';

export interface KlkSimulatorOptions {
  stores: StoreSimulation[];
  /** API key each store accepts, by ubicacion_id. */
  apiKeys: Record<string, string>;
  faults?: FaultControl;
  port?: number;
  host?: string;
  logger?: Logger;
}

export interface KlkSimulator {
  url: string;
  port: number;
  faults: FaultControl;
  baseUrl(ubicacionId: string): string;
  /** Requests served, by store (tests check retries with it). */
  requests(ubicacionId: string): number;
  close(): Promise<void>;
}

const MAX_PAGE_SIZE = 5000;

/** ISO 8601 in Caracas local time (-04:00), as the KLK API writes instants. */
export function caracasIso(instant: Date): string {
  return `${new Date(instant.getTime() - 4 * 3_600_000).toISOString().slice(0, 19)}-04:00`;
}

// Rows share few instants (every row unchanged since the start has the same one): format each once.
const isoCache = new Map<number, string>();
function cachedCaracasIso(instant: Date): string {
  const ms = instant.getTime();
  let iso = isoCache.get(ms);
  if (iso === undefined) {
    if (isoCache.size >= 10_000) isoCache.clear();
    isoCache.set(ms, (iso = caracasIso(instant)));
  }
  return iso;
}

function klkItem(r: InventarioTruthRow) {
  return {
    codigo_producto: r.producto_id,
    codigo_barras: r.codigo_barras,
    descripcion: r.descripcion,
    departamento: r.departamento_codigo === null ? null : { codigo: r.departamento_codigo, nombre: r.departamento_nombre },
    grupo: r.grupo_codigo === null ? null : { codigo: r.grupo_codigo, nombre: r.grupo_nombre },
    subgrupo: r.subgrupo_codigo === null ? null : { codigo: r.subgrupo_codigo, nombre: r.subgrupo_nombre },
    unidad: r.unidad,
    cantidad: r.cantidad,
    costo: r.costo,
    precio: r.precio,
    activo: r.activo,
    actualizado_en: r.actualizado_en ? cachedCaracasIso(r.actualizado_en) : null,
  };
}

function ventaItem(v: VentaTruthLine) {
  return {
    numero_factura: v.numero_factura,
    linea: v.linea,
    fecha_hora: cachedCaracasIso(v.fecha_hora),
    codigo_producto: v.producto_id,
    cantidad: v.cantidad,
    precio_unitario: v.precio_unitario,
    descuento: v.descuento,
    total: v.total,
    caja: v.caja,
    anulada: v.anulada,
  };
}

/** Rows serialized into one chunk of bytes: a page never exists as one large string. */
const BATCH = 100;

/**
 * A page's JSON body: `meta`'s fields, then `items`: the rows `rows(start, end)` yields, each
 * serialized as it comes (see StoreSimulation.klkInventarioRows), joined into bytes a batch
 * at a time. A page-sized string would stay in the heap until a full collection.
 */
function pageBody<T>(
  meta: Record<string, unknown>,
  start: number,
  end: number,
  rows: (from: number, to: number) => Iterable<T>,
  item: (row: T) => unknown,
): Buffer {
  const head = JSON.stringify({ ...meta, items: [] });
  const chunks = [Buffer.from(head.slice(0, -2))];
  let first = true;
  for (let from = start; from < end; from += BATCH) {
    const parts: string[] = [];
    for (const row of rows(from, Math.min(end, from + BATCH))) parts.push(JSON.stringify(item(row)));
    if (parts.length === 0) break;
    chunks.push(Buffer.from(`${first ? '' : ','}${parts.join(',')}`));
    first = false;
  }
  chunks.push(Buffer.from(']}'));
  return Buffer.concat(chunks);
}

/**
 * How many rows the POS reports for a deposito, and its rows [from, to). Only those rows are
 * produced, unless a mass-zero fault needs the whole list to pick its victims (small stores in
 * tests); the other data faults rewrite rows one by one, so a batch alone gets them right.
 */
function inventarioRows(
  sim: StoreSimulation,
  deposito: string,
  f: StoreFaults,
): { total: number; rows: (from: number, to: number) => Iterable<InventarioTruthRow> } {
  if (!sim.depositos.includes(deposito) || f.emptyInventory) return { total: 0, rows: () => [] };
  if (f.massZerosShare) {
    const all = servedInventario(sim.klkInventario(deposito), f);
    return { total: all.length, rows: (from, to) => all.slice(from, to) };
  }
  if (f.phantomZeros?.length || f.invalidDecimalFor)
    return { total: sim.products, rows: (from, to) => servedInventario(sim.klkInventarioPage(deposito, from, to), f) };
  return { total: sim.products, rows: (from, to) => sim.klkInventarioRows(deposito, from, to) };
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function pageParams(url: URL): { page: number; pageSize: number } | string {
  const page = Number(url.searchParams.get('page') ?? '1');
  const pageSize = Number(url.searchParams.get('page_size') ?? '1000');
  if (!Number.isInteger(page) || page < 1) return 'page must be an integer >= 1';
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE)
    return `page_size must be an integer in 1..${MAX_PAGE_SIZE}`;
  return { page, pageSize };
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

export async function startKlkSimulator(options: KlkSimulatorOptions): Promise<KlkSimulator> {
  const faults = options.faults ?? new FaultControl();
  const stores = new Map(options.stores.map((s) => [s.ubicacionId, s]));
  const served = new Map<string, number>();
  const log = options.logger?.child({ component: 'klk-simulator' });

  /** Sends a page body honouring the page-level faults of the store. */
  function sendPage(res: ServerResponse, f: StoreFaults, page: number, body: () => Buffer): void {
    if (f.stallOnPage === page) return; // never answers: the client's timeout must fire
    if (f.malformedOnPage === page) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('<html><body>502 Bad Gateway (proxy)</body></html>');
      return;
    }
    const bytes = body();
    if (f.resetOnPage === page) {
      const text = bytes.toString('utf8');
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes.length });
      res.write(text.slice(0, Math.floor(text.length / 2)), () => res.socket?.destroy());
      return;
    }
    if (f.truncateOnPage === page) {
      // A proxy that closes the body early but cleanly: chunked, ended after half.
      const text = bytes.toString('utf8');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(text.slice(0, Math.floor(text.length / 2)));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': bytes.length });
    res.end(bytes);
  }

  async function handleStore(req: IncomingMessage, res: ServerResponse, url: URL, sim: StoreSimulation, rest: string): Promise<void> {
    const id = sim.ubicacionId;
    served.set(id, (served.get(id) ?? 0) + 1);
    const f = faults.get(id);
    if (f.latencyMs) await new Promise((r) => setTimeout(r, f.latencyMs));
    const expected = options.apiKeys[id];
    if (!expected || req.headers['x-api-key'] !== expected) return sendJson(res, 401, { error: 'unauthorized' });
    const error = faults.takeHttpError(id);
    if (error) {
      const headers: Record<string, string> = error.status === 429 ? { 'retry-after': String(error.retryAfterSeconds ?? 1) } : {};
      return sendJson(
        res,
        error.status,
        { error: error.status === 429 ? 'too many requests' : error.status === 401 ? 'unauthorized' : 'internal error' },
        headers,
      );
    }
    const paging = pageParams(url);
    if (typeof paging === 'string') return sendJson(res, 400, { error: paging });
    const { page, pageSize } = paging;

    if (rest === '/api/v1/inventario') {
      const deposito = url.searchParams.get('deposito');
      if (!deposito) return sendJson(res, 400, { error: 'deposito is required' });
      const { total, rows } = inventarioRows(sim, deposito, f);
      const meta = {
        tienda: id,
        deposito,
        generado_en: caracasIso(sim.clock),
        page,
        page_size: pageSize,
        total_items: total,
        total_pages: Math.ceil(total / pageSize),
      };
      return sendPage(res, f, page, () => pageBody(meta, (page - 1) * pageSize, Math.min(total, page * pageSize), rows, klkItem));
    }
    if (rest === '/api/v1/ventas') {
      const fecha = url.searchParams.get('fecha');
      if (!fecha || !/^\d{4}-\d{2}-\d{2}$/.test(fecha)) return sendJson(res, 400, { error: 'fecha (YYYY-MM-DD) is required' });
      const total = sim.ventasCount(fecha);
      const meta = { tienda: id, fecha, page, page_size: pageSize, total_items: total, total_pages: Math.ceil(total / pageSize) };
      return sendPage(res, f, page, () =>
        pageBody(meta, (page - 1) * pageSize, Math.min(total, page * pageSize), (from, to) => sim.ventasRows(fecha, from, to), ventaItem),
      );
    }
    return sendJson(res, 404, { error: `no such endpoint: ${rest}` });
  }

  async function handleControl(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    if (req.method === 'PUT' && path.startsWith('/_control/faults/')) {
      const id = decodeURIComponent(path.slice('/_control/faults/'.length));
      if (!stores.has(id)) return sendJson(res, 404, { error: `unknown store ${id}` });
      faults.set(id, (await readBody(req)) as StoreFaults);
      return sendJson(res, 200, { ubicacion_id: id, faults: faults.get(id) });
    }
    if (req.method === 'DELETE' && path === '/_control/faults') {
      faults.clear();
      return sendJson(res, 200, { cleared: true });
    }
    if (req.method === 'POST' && path === '/_control/advance') {
      const body = (await readBody(req)) as { minutes?: unknown };
      const minutes = Number(body.minutes ?? 30);
      if (!Number.isFinite(minutes) || minutes <= 0) return sendJson(res, 400, { error: 'minutes must be a positive number' });
      for (const s of stores.values()) s.advance(minutes);
      return sendJson(res, 200, { advanced_minutes: minutes });
    }
    if (req.method === 'GET' && path === '/_control/anomalias') {
      const only = url.searchParams.get('ubicacion_id');
      if (only !== null && !stores.has(only)) return sendJson(res, 404, { error: `unknown store ${only}` });
      const chosen = only === null ? [...stores.values()] : [stores.get(only)!];
      return sendJson(res, 200, {
        clocks: Object.fromEntries(chosen.map((s) => [s.ubicacionId, s.clock.toISOString()])),
        labels: chosen.flatMap((s) => s.anomalies()),
      });
    }
    if (req.method === 'POST' && path.startsWith('/_control/phantom-zero/')) {
      const id = decodeURIComponent(path.slice('/_control/phantom-zero/'.length));
      const sim = stores.get(id);
      if (!sim) return sendJson(res, 404, { error: `unknown store ${id}` });
      const body = (await readBody(req)) as { deposito?: unknown; producto_id?: unknown; minutes?: unknown };
      if (typeof body.deposito !== 'string' || typeof body.producto_id !== 'string')
        return sendJson(res, 400, { error: 'deposito and producto_id (strings) are required' });
      if (!sim.depositos.includes(body.deposito) || sim.producto(body.producto_id) === undefined)
        return sendJson(res, 404, { error: `${id} has no product ${body.producto_id} in deposito ${body.deposito}` });
      if (body.minutes !== undefined && !(typeof body.minutes === 'number' && body.minutes > 0))
        return sendJson(res, 400, { error: 'minutes must be a positive number' });
      const label = sim.injectPhantomZero(body.deposito, body.producto_id, body.minutes === undefined ? {} : { minutes: body.minutes });
      if (!label)
        return sendJson(res, 409, {
          error: `${id} ${body.deposito}/${body.producto_id}: nothing on the shelf, or another anomaly going on`,
        });
      return sendJson(res, 201, label);
    }
    if (req.method === 'GET' && path === '/_control/stores') {
      return sendJson(
        res,
        200,
        [...stores.values()].map((s) => ({
          ubicacion_id: s.ubicacionId,
          version: s.version,
          clock: s.clock.toISOString(),
          products: s.products,
        })),
      );
    }
    return sendJson(res, 404, { error: 'unknown control endpoint' });
  }

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const work = async () => {
      if (path.startsWith('/_control/')) return handleControl(req, res, url);
      const slash = path.indexOf('/', 1);
      const id = path.slice(1, slash < 0 ? undefined : slash);
      const sim = stores.get(id);
      if (!sim || slash < 0) return sendJson(res, 404, { error: `unknown store ${id}` });
      if (req.method !== 'GET') return sendJson(res, 405, { error: 'method not allowed' });
      return handleStore(req, res, url, sim, path.slice(slash));
    };
    work().catch((err: unknown) => {
      log?.error({ err, path }, 'simulator request failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'simulator error' });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://${options.host ?? '127.0.0.1'}:${port}`;
  log?.info({ url, stores: [...stores.keys()] }, 'KLK simulator listening');
  return {
    url,
    port,
    faults,
    baseUrl: (id) => `${url}/${id}`,
    requests: (id) => served.get(id) ?? 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
