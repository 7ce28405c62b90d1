/**
 * `fluxion dashboard`'s HTTP server (node:http: six read-only routes and the control API do
 * not need a framework). Bound to 127.0.0.1 unless configured otherwise.
 *
 *   GET /               the page (static HTML, vanilla JS, inline SVG chart; no CDN)
 *   GET /static/*       its script and style sheet; /static/messages.js the script's words in FLUXION_LOCALE
 *   GET /api/lag        per group, topic and partition: offsets, lag, status (the latest sample)
 *   GET /api/stores     per store: last extraction, last applied snapshot, missed polls
 *   GET /api/history    per group lag over the last hours, one point per sample
 *   GET /metrics        Prometheus exposition
 *   GET /healthz        200 while the server answers; the body says how old the last sample is
 *   /etl/*              the control API (ops/control-api.ts)
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import { errorMessage } from '../../core/errors.ts';
import { DEFAULT_LOCALE, type Locale } from '../../core/i18n.ts';
import type { Logger } from '../../core/logger.ts';
import { projectPath } from '../../core/paths.ts';
import type { ControlApi } from '../control-api.ts';
import { clientMessages, renderPage } from './messages.ts';
import type { DashboardSampler } from './sampler.ts';

export interface DashboardServerOptions {
  host: string;
  port: number;
  sampler: DashboardSampler;
  metrics: Registry;
  control?: ControlApi;
  logger: Logger;
  /** How often the page refreshes its figures. */
  refreshSeconds: number;
  /** The page's language (FLUXION_LOCALE); default Spanish. */
  locale?: Locale;
}

export interface DashboardServer {
  server: Server;
  /** Listens; resolves with the base URL (e.g. http://127.0.0.1:8080). */
  listen(): Promise<string>;
  close(): Promise<void>;
}

const STATIC_DIR = projectPath('ops/dashboard/static');
const ASSETS: Record<string, { file: string; type: string }> = {
  '/static/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/static/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
};

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
};

function json(res: ServerResponse, status: number, body: unknown): void {
  res
    .writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...SECURITY_HEADERS })
    .end(`${JSON.stringify(body)}\n`);
}

export function createDashboardServer(options: DashboardServerOptions): DashboardServer {
  const log = options.logger.child({ component: 'dashboard' });
  // Read once: the assets ship with the code and never change while it runs.
  const assets = new Map(
    Object.entries(ASSETS).map(([path, a]) => [path, { body: readFileSync(join(STATIC_DIR, a.file)), type: a.type }]),
  );
  const locale = options.locale ?? DEFAULT_LOCALE;
  const page = renderPage(readFileSync(join(STATIC_DIR, 'index.html'), 'utf8'), locale, options.refreshSeconds);
  // A script, not an inline one: the page's CSP allows scripts from this server only.
  assets.set('/static/messages.js', {
    body: Buffer.from(`'use strict';\nwindow.FLUXION_MESSAGES = ${JSON.stringify(clientMessages(locale))};\n`),
    type: 'text/javascript; charset=utf-8',
  });
  const { sampler } = options;

  function sampleOrWait(res: ServerResponse, pick: (s: NonNullable<ReturnType<DashboardSampler['latest']>>) => unknown): void {
    const s = sampler.latest();
    if (s) {
      json(res, 200, pick(s));
      return;
    }
    // Before the first sample: wait for it rather than answer with nothing.
    sampler.sampleNow().then(
      (first) => json(res, 200, pick(first)),
      (err: unknown) => json(res, 503, { error: `no sample yet: ${errorMessage(err)}` }),
    );
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (options.control && (await options.control.handle(req, res))) return;
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET', ...SECURITY_HEADERS }).end();
      return;
    }
    switch (path) {
      case '/':
      case '/index.html':
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...SECURITY_HEADERS }).end(page);
        return;
      case '/favicon.ico':
        res.writeHead(204, SECURITY_HEADERS).end();
        return;
      case '/api/lag':
        return sampleOrWait(res, (s) => ({
          sampledAt: s.sampledAt,
          topicPrefix: s.topicPrefix,
          errors: s.errors,
          intervals: s.intervals,
          groups: s.groups,
        }));
      case '/api/stores':
        return sampleOrWait(res, (s) => ({
          sampledAt: s.sampledAt,
          errors: s.errors,
          lookbackHours: s.lookbackHours,
          stores: s.stores,
          dlq: s.dlq,
          quarantine: s.quarantine,
        }));
      case '/api/history':
        json(res, 200, { intervalMs: sampler.intervalMs, points: sampler.history() });
        return;
      case '/metrics': {
        const text = await options.metrics.metrics();
        res.writeHead(200, { 'content-type': options.metrics.contentType, 'cache-control': 'no-store' }).end(text);
        return;
      }
      case '/healthz': {
        const s = sampler.latest();
        const ageMs = s ? Date.now() - new Date(s.sampledAt).getTime() : null;
        json(res, 200, {
          status: 'ok',
          lastSample: s?.sampledAt ?? null,
          lastSampleAgeSeconds: ageMs === null ? null : Math.round(ageMs / 1000),
          sampleErrors: s?.errors ?? [],
          controlApi: options.control?.enabled ? 'on' : 'off',
        });
        return;
      }
      default: {
        const asset = assets.get(path);
        if (asset) {
          res.writeHead(200, { 'content-type': asset.type, 'cache-control': 'no-cache', ...SECURITY_HEADERS }).end(asset.body);
          return;
        }
        json(res, 404, { error: `no such page: ${path}` });
      }
    }
  }

  const server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      log.error({ err, path: req.url }, 'dashboard request failed');
      if (!res.headersSent) json(res, 500, { error: errorMessage(err) });
      else res.end();
    });
  });

  return {
    server,
    listen() {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port, options.host, () => {
          server.off('error', reject);
          const { port } = server.address() as AddressInfo;
          const host = options.host.includes(':') ? `[${options.host}]` : options.host;
          resolve(`http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`);
        });
      });
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
