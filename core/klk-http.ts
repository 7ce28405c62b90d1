/**
 * The one KLK request (docs/pos-contracts.md): a page of an endpoint, asked for with the
 * X-API-Key header, its whole body read as UTF-8, and what its HTTP status means. Two
 * components send it: the extractor (extractors/klk-api.ts, every page under the retry
 * policy) and `fluxion doctor` (ops/doctor-checks.ts, one page of one item to test the key).
 * Components may not import each other, so the request lives here.
 *
 * node:http(s), not fetch: the extractor passes an agent with the POS policy's TCP keepalive,
 * which fetch's sockets cannot be given. The key goes only in the header, never in a message.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { text } from 'node:stream/consumers';

export const KLK_INVENTARIO_PATH = '/api/v1/inventario';
export const KLK_VENTAS_PATH = '/api/v1/ventas';

export interface KlkAnswer {
  status: number;
  /** The Retry-After header as sent, if any. */
  retryAfter: string | undefined;
  body: string;
}

export interface KlkRequest {
  baseUrl: string;
  path: string;
  /** Query parameters besides paging, e.g. `{ deposito }` or `{ fecha }`. */
  params: Record<string, string>;
  page: number;
  pageSize: number;
  apiKey: string;
  /** Aborts the request and the body. */
  signal: AbortSignal;
  /** Default: Node's global agent. */
  agent?: http.Agent;
}

/** `path?query` of one page, as the request line and messages show it (no key in it). */
export function klkPageTarget(r: Pick<KlkRequest, 'path' | 'params' | 'page' | 'pageSize'>): string {
  const query = new URLSearchParams({ ...r.params, page: String(r.page), page_size: String(r.pageSize) });
  return `${r.path}?${query}`;
}

/** One GET of one page; rejects only when no answer came (network, abort). */
export function klkGet(r: KlkRequest): Promise<KlkAnswer> {
  const url = `${r.baseUrl.replace(/\/+$/, '')}${klkPageTarget(r)}`;
  const client = url.startsWith('https:') ? https : http;
  const headers = { 'X-API-Key': r.apiKey, accept: 'application/json' };
  return new Promise((resolve, reject) => {
    const req = client.get(url, { headers, signal: r.signal, ...(r.agent ? { agent: r.agent } : {}) }, (res) => {
      text(res).then((body) => resolve({ status: res.statusCode ?? 0, retryAfter: [res.headers['retry-after']].flat()[0], body }), reject);
    });
    req.once('error', reject);
  });
}

/**
 * What a status means: `ok` (200, a page to read), `auth` (401: the key is refused, no retry
 * helps), `unavailable` (429 or 5xx: the POS or its proxy is in trouble, worth waiting for),
 * `unexpected` (anything else: a wrong path or store, not worth another try).
 */
export type KlkStatusKind = 'ok' | 'auth' | 'unavailable' | 'unexpected';

export function klkStatusKind(status: number): KlkStatusKind {
  if (status === 200) return 'ok';
  if (status === 401) return 'auth';
  if (status === 429 || status >= 500) return 'unavailable';
  return 'unexpected';
}

/** Milliseconds a Retry-After header asks for (seconds or an HTTP date), if it is readable. */
export function klkRetryAfterMs(header: string | undefined): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}
