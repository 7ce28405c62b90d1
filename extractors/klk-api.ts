/**
 * Everything that knows the KLK API (docs/pos-contracts.md) lives here: paths, the
 * X-API-Key header, paging, the shape of items, and what each HTTP answer means. Adapting
 * to the vendor's real answers later touches this file only.
 *
 * Each page is one attempt under the retry policy (5xx, 429 with Retry-After, resets and
 * unreadable bodies are retried with backoff); a 401 fails the store at once. The API key
 * is sent only as a header and never appears in an error or a log line.
 *
 * The request itself (URL, header, body) is core/klk-http.ts's, which `fluxion doctor` sends too;
 * here it goes through an agent of extractors/tcp-keepalive.ts (the POS policy's TCP keepalive).
 * The pages of one read share a connection; the agent is closed when the read ends.
 */
import type * as http from 'node:http';
import { PosAuthError, PosDataError, PosUnavailableError } from '../core/errors.ts';
import {
  KLK_INVENTARIO_PATH,
  KLK_VENTAS_PATH,
  klkGet,
  klkPageTarget,
  klkRetryAfterMs,
  klkStatusKind,
  type KlkAnswer,
} from '../core/klk-http.ts';
import type { Logger } from '../core/logger.ts';
import { withRetry, type RetryPolicy } from '../core/retry.ts';
import { toInventoryRow, type InventoryRow } from './inventory-row.ts';
import { keepAliveAgent } from './tcp-keepalive.ts';
import { toVentaLinea, type VentaLinea } from './venta-line.ts';

export interface KlkApiOptions {
  ubicacionId: string;
  baseUrl: string;
  apiKey: string;
  /** Name of the variable holding the key, for messages. */
  apiKeyEnv: string;
  pageSize: number;
  requestTimeoutMs: number;
  retry: RetryPolicy;
  /** Aborted when the store's deadline passes or the run is stopped. */
  signal: AbortSignal;
  logger: Logger;
}

interface Page {
  page: number;
  totalPages: number;
  items: unknown[];
}

export function createKlkApi(o: KlkApiOptions) {
  const base = o.baseUrl.replace(/\/+$/, '');
  const log = o.logger.child({ component: 'klk-api', ubicacion: o.ubicacionId });

  async function fetchPage(path: string, params: Record<string, string>, page: number, agent: http.Agent): Promise<Page> {
    const what = `GET ${klkPageTarget({ path, params, page, pageSize: o.pageSize })} `;
    return withRetry(
      o.retry,
      async () => {
        let res: KlkAnswer;
        const timeout = AbortSignal.timeout(o.requestTimeoutMs);
        try {
          const signal = AbortSignal.any([o.signal, timeout]);
          res = await klkGet({ baseUrl: base, path, params, page, pageSize: o.pageSize, apiKey: o.apiKey, signal, agent });
        } catch (cause) {
          if (o.signal.aborted) throw o.signal.reason;
          const reason = timeout.aborted ? `no answer in ${o.requestTimeoutMs} ms` : (cause as Error).message;
          throw new PosUnavailableError(`${o.ubicacionId}: KLK ${what}failed: ${reason}`, {
            cause,
            context: { ubicacion: o.ubicacionId },
          });
        }
        const body = res.body;
        const kind = klkStatusKind(res.status);
        if (kind === 'auth') {
          throw new PosAuthError(`${o.ubicacionId}: KLK refused the API key (HTTP 401) on ${what.trim()}: check ${o.apiKeyEnv}`, {
            context: { ubicacion: o.ubicacionId },
          });
        }
        if (kind === 'unavailable') {
          throw new PosUnavailableError(`${o.ubicacionId}: KLK ${what}answered HTTP ${res.status}`, {
            code: `HTTP_${res.status}`,
            context: { ubicacion: o.ubicacionId, retryAfterMs: res.status === 429 ? klkRetryAfterMs(res.retryAfter) : undefined },
          });
        }
        if (kind === 'unexpected') {
          throw new PosDataError(`${o.ubicacionId}: KLK ${what}answered HTTP ${res.status}: ${body.slice(0, 200)}`, {
            code: `HTTP_${res.status}`,
            context: { ubicacion: o.ubicacionId },
          });
        }
        let json: Record<string, unknown>;
        try {
          json = JSON.parse(body) as Record<string, unknown>;
        } catch (cause) {
          // Usually a proxy's error page or a body cut short: worth another try.
          throw new PosDataError(
            `${o.ubicacionId}: KLK ${what}page ${page}: the body is not JSON (${(cause as Error).message}): ` +
              `${JSON.stringify(body.slice(0, 80))}`,
            {
              cause,
              retriable: true,
              context: { ubicacion: o.ubicacionId },
            },
          );
        }
        const at = { ubicacionId: o.ubicacionId, place: `page ${page}` };
        // `null`, a number or a list parse fine but are no page: refuse them here, not as a TypeError below.
        if (json === null || typeof json !== 'object' || Array.isArray(json)) {
          throw new PosDataError(`${at.ubicacionId}: ${at.place}: field body: ${JSON.stringify(body.slice(0, 80))} is not a page object`, {
            context: { ubicacion: o.ubicacionId, field: 'body' },
          });
        }
        if (!Array.isArray(json.items))
          throw new PosDataError(`${o.ubicacionId}: page ${page}: field items: ${JSON.stringify(json.items)} is not a list`, {
            context: { ubicacion: o.ubicacionId, field: 'items' },
          });
        const totalPages = json.total_pages;
        if (typeof totalPages !== 'number' || !Number.isSafeInteger(totalPages) || totalPages < 0) {
          throw new PosDataError(`${at.ubicacionId}: ${at.place}: field total_pages: ${JSON.stringify(totalPages)} is not a page count`, {
            context: { ubicacion: o.ubicacionId, field: 'total_pages' },
          });
        }
        return { page, totalPages, items: json.items };
      },
      {
        signal: o.signal,
        onRetry: (err, attempt, delayMs) => log.warn({ err, attempt, delayMs, page }, 'KLK request failed; retrying'),
      },
    );
  }

  /** Every page in order; the page count may grow while the POS keeps selling. */
  async function* pages(path: string, params: Record<string, string>): AsyncGenerator<Page> {
    const agent = keepAliveAgent(base);
    try {
      let total = 1;
      for (let page = 1; page <= total; page++) {
        const p = await fetchPage(path, params, page, agent);
        total = Math.max(p.totalPages, page === 1 ? p.totalPages : total);
        yield p;
      }
    } finally {
      agent.destroy();
    }
  }

  return {
    /** The deposito's inventory, row by row, checked. Duplicates across pages are the caller's to fold. */
    async *inventario(deposito: string): AsyncGenerator<InventoryRow> {
      for await (const p of pages(KLK_INVENTARIO_PATH, { deposito })) {
        for (let i = 0; i < p.items.length; i++) {
          const it = (p.items[i] ?? {}) as Record<string, unknown>;
          const cls = (v: unknown, f: 'codigo' | 'nombre') =>
            v === null || v === undefined ? null : typeof v === 'object' ? (v as Record<string, unknown>)[f] : v;
          yield toInventoryRow(
            {
              deposito,
              producto_id: it.codigo_producto,
              codigo_barras: it.codigo_barras,
              descripcion: it.descripcion,
              departamento_codigo: cls(it.departamento, 'codigo'),
              departamento_nombre: cls(it.departamento, 'nombre'),
              grupo_codigo: cls(it.grupo, 'codigo'),
              grupo_nombre: cls(it.grupo, 'nombre'),
              subgrupo_codigo: cls(it.subgrupo, 'codigo'),
              subgrupo_nombre: cls(it.subgrupo, 'nombre'),
              unidad: it.unidad,
              cantidad: it.cantidad,
              costo: it.costo,
              precio: it.precio,
              activo: it.activo,
              actualizado_en: it.actualizado_en,
            },
            { ubicacionId: o.ubicacionId, place: `page ${p.page}, item ${i + 1}` },
          );
        }
      }
    },

    /** The day's sales lines (the whole day, every call), checked. */
    async *ventas(fecha: string): AsyncGenerator<VentaLinea> {
      for await (const p of pages(KLK_VENTAS_PATH, { fecha })) {
        for (let i = 0; i < p.items.length; i++) {
          yield toVentaLinea((p.items[i] ?? {}) as Record<string, unknown>, fecha, {
            ubicacionId: o.ubicacionId,
            place: `page ${p.page}, item ${i + 1}`,
          });
        }
      }
    },
  };
}
