/**
 * The control API, mounted on the dashboard's server (`fluxion dashboard`):
 *
 *   POST /etl/sync       {"job": "inventario" | "ventas", "tiendas": ["tienda_01"] | "todas"}
 *                        -> 202 {run_id, job, tiendas, status_url}; the run goes on in the background
 *   GET  /etl/runs/:id   -> 200 the run's per-store progress and result (404 unknown id)
 *   GET  /etl/runs       -> 200 the recent runs of this process, newest first
 *
 * Every route needs `Authorization: Bearer <FLUXION_SYNC_TOKEN>`, compared in constant time
 * (both sides hashed first, so neither the length nor a prefix leaks). Without a configured
 * token the API is off: 503 with a message saying so. Answers: 401 no or wrong token, 400 a
 * bad body or an unknown/inactive store (the message names it), 409 a run of that job is
 * already running in this process, 413 a body over 16 KiB.
 *
 * A run is the same code as `fluxion extract`: the CLI wiring injects it as `run` (ops does
 * not import extractors). The run id is the one written to ops.etl-runs and `etl_runs`, so a
 * run can also be followed in PostgreSQL. Run history is in memory (the last 100 runs).
 * The token is never logged; logs name the run, the job, the stores and the client address.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { JobLockedError } from '../core/job-lock.ts';
import { selectUbicaciones, type Ubicacion } from '../core/config/ubicaciones.ts';
import { ConfigError, errorMessage } from '../core/errors.ts';
import type { StoreOutcome } from '../core/etl-run.ts';
import { scrubSecrets, type Logger } from '../core/logger.ts';

export const SYNC_JOBS = ['inventario', 'ventas'] as const;
export type SyncJob = (typeof SYNC_JOBS)[number];

export interface SyncRunContext {
  runId: string;
  signal: AbortSignal;
  onStoreStarted(ubicacionId: string): void;
  onStoreFinished(result: StoreOutcome): void;
}

/** Runs `job` over `stores`, reporting each store as it starts and ends. */
export type SyncRunner = (job: SyncJob, stores: Ubicacion[], ctx: SyncRunContext) => Promise<void>;

export interface ControlApiOptions {
  /** FLUXION_SYNC_TOKEN; undefined turns the API off. */
  token: string | undefined;
  stores: () => Ubicacion[];
  run: SyncRunner;
  logger: Logger;
  now?: () => Date;
  /** Runs kept for GET /etl/runs/:id. */
  keepRuns?: number;
}

export type StoreProgress = 'PENDING' | 'RUNNING' | 'OK' | 'FAILED';

export interface RunView {
  run_id: string;
  job: SyncJob;
  /** RUNNING; then OK (every store OK), FAILED (some store failed) or ERROR (the run itself failed). */
  status: 'RUNNING' | 'OK' | 'FAILED' | 'ERROR';
  started_at: string;
  finished_at: string | null;
  error: string | null;
  counts: Record<StoreProgress, number>;
  stores: Array<{
    ubicacion_id: string;
    status: StoreProgress;
    rows: number | null;
    duration_ms: number | null;
    snapshot_id: string | null;
    fecha: string | null;
    error_class: string | null;
    error_message: string | null;
  }>;
}

export interface ControlApi {
  /** Answers the request when it is one of the API's routes; false otherwise (not touched). */
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
  enabled: boolean;
  run(id: string): RunView | undefined;
  /** Aborts running runs and waits for them to end. */
  stop(): Promise<void>;
}

export const MAX_BODY_BYTES = 16 * 1024;

class HttpProblem extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** The request body of POST /etl/sync, checked by hand so that each message names the field. */
export function parseSyncBody(text: string): { job: SyncJob; tiendas: 'todas' | string[] } {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new HttpProblem(400, `the body is not JSON: ${(err as Error).message}; send {"job": "inventario", "tiendas": "todas"}`);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new HttpProblem(400, 'the body must be a JSON object: {"job": "inventario" | "ventas", "tiendas": ["tienda_01"] | "todas"}');
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((k) => k !== 'job' && k !== 'tiendas');
  if (unknown.length)
    throw new HttpProblem(
      400,
      `unknown field(s) ${unknown.map((k) => JSON.stringify(k)).join(', ')}: the body has only "job" and "tiendas"`,
    );
  if (typeof fields.job !== 'string' || !(SYNC_JOBS as readonly string[]).includes(fields.job)) {
    throw new HttpProblem(400, `"job" must be "inventario" or "ventas", got ${JSON.stringify(fields.job) ?? 'nothing'}`);
  }
  const tiendas = fields.tiendas;
  if (tiendas === 'todas') return { job: fields.job as SyncJob, tiendas };
  if (!Array.isArray(tiendas) || tiendas.length === 0 || !tiendas.every((t) => typeof t === 'string' && t.length > 0)) {
    throw new HttpProblem(
      400,
      `"tiendas" must be "todas" or a non-empty list of store ids such as ["tienda_01"], got ${JSON.stringify(tiendas) ?? 'nothing'}`,
    );
  }
  return { job: fields.job as SyncJob, tiendas: [...new Set(tiendas as string[])] };
}

/** Constant-time check of an Authorization header against the token's SHA-256. */
export function bearerMatches(header: string | undefined, tokenDigest: Buffer): boolean {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '');
  const given = createHash('sha256')
    .update(match?.[1] ?? '')
    .digest();
  return timingSafeEqual(given, tokenDigest) && match !== null;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers }).end(`${text}\n`);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new HttpProblem(413, `the body is ${declared} bytes; at most ${MAX_BODY_BYTES}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpProblem(413, `the body is over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

interface RunState {
  view: RunView;
  done: Promise<void>;
  controller: AbortController;
}

export function createControlApi(options: ControlApiOptions): ControlApi {
  const now = options.now ?? (() => new Date());
  const keep = options.keepRuns ?? 100;
  const log = options.logger.child({ component: 'control-api' });
  const tokenDigest = options.token ? createHash('sha256').update(options.token).digest() : undefined;
  const runs = new Map<string, RunState>();
  const runningByJob = new Map<SyncJob, string>();

  function counts(view: RunView): Record<StoreProgress, number> {
    const c: Record<StoreProgress, number> = { PENDING: 0, RUNNING: 0, OK: 0, FAILED: 0 };
    for (const s of view.stores) c[s.status]++;
    return c;
  }

  function start(job: SyncJob, stores: Ubicacion[], client: string): RunView {
    const runId = randomUUID();
    const controller = new AbortController();
    const view: RunView = {
      run_id: runId,
      job,
      status: 'RUNNING',
      started_at: now().toISOString(),
      finished_at: null,
      error: null,
      counts: { PENDING: stores.length, RUNNING: 0, OK: 0, FAILED: 0 },
      stores: stores.map((u) => ({
        ubicacion_id: u.id,
        status: 'PENDING',
        rows: null,
        duration_ms: null,
        snapshot_id: null,
        fecha: null,
        error_class: null,
        error_message: null,
      })),
    };
    const entry = (id: string) => view.stores.find((s) => s.ubicacion_id === id);
    runningByJob.set(job, runId);
    log.info({ run_id: runId, job, stores: stores.map((u) => u.id), client }, 'sync run started');
    const ctx: SyncRunContext = {
      runId,
      signal: controller.signal,
      onStoreStarted(id) {
        const s = entry(id);
        if (s && s.status === 'PENDING') s.status = 'RUNNING';
        view.counts = counts(view);
      },
      onStoreFinished(r) {
        const s = entry(r.ubicacionId);
        if (!s) return;
        Object.assign(s, {
          status: r.status,
          rows: r.rows,
          duration_ms: r.durationMs,
          snapshot_id: r.snapshotId,
          fecha: r.fecha,
          error_class: r.errorClass,
          error_message: r.errorMessage === null ? null : scrubSecrets(r.errorMessage),
        });
        view.counts = counts(view);
      },
    };
    const done = (async () => {
      try {
        await options.run(job, stores, ctx);
        const unfinished = view.stores.filter((s) => s.status === 'PENDING' || s.status === 'RUNNING');
        for (const s of unfinished)
          Object.assign(s, { status: 'FAILED', error_class: 'UNREPORTED', error_message: 'the run ended without reporting this store' });
        view.status = view.stores.every((s) => s.status === 'OK') ? 'OK' : 'FAILED';
      } catch (err) {
        view.status = 'ERROR';
        view.error = scrubSecrets(errorMessage(err));
        for (const s of view.stores.filter((x) => x.status === 'PENDING' || x.status === 'RUNNING'))
          Object.assign(s, { status: 'FAILED', error_class: 'RUN_FAILED', error_message: view.error });
        // Another process running the job is not a failure of this one (no mail, as for the CLI).
        if (err instanceof JobLockedError) log.warn({ err, run_id: runId, job }, 'sync run refused: the job runs elsewhere');
        else log.error({ err, run_id: runId, job }, 'sync run failed');
      } finally {
        view.counts = counts(view);
        view.finished_at = now().toISOString();
        if (runningByJob.get(job) === runId) runningByJob.delete(job);
        log.info({ run_id: runId, job, status: view.status, counts: view.counts }, 'sync run ended');
      }
    })();
    runs.set(runId, { view, done, controller });
    // Forget the oldest finished runs beyond `keep`.
    for (const [id, r] of runs) {
      if (runs.size <= keep) break;
      if (r.view.status !== 'RUNNING') runs.delete(id);
    }
    return view;
  }

  async function handleSync(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = parseSyncBody(await readBody(req));
    const all = options.stores();
    let stores: Ubicacion[];
    try {
      stores = selectUbicaciones(all, body.tiendas);
    } catch (err) {
      if (err instanceof ConfigError) throw new HttpProblem(400, err.problems.join('; '));
      throw err;
    }
    if (body.job === 'ventas') {
      if (body.tiendas === 'todas') stores = stores.filter((u) => u.pos === 'klk');
      const stellar = stores.filter((u) => u.pos !== 'klk');
      if (stellar.length)
        throw new HttpProblem(400, `${stellar.map((u) => u.id).join(', ')}: Stellar has no sales API; ventas come from KLK stores only`);
    }
    if (stores.length === 0) throw new HttpProblem(400, `no active store to run ${body.job} for`);
    const running = runningByJob.get(body.job);
    if (running) {
      send(res, 409, {
        error: `a ${body.job} run is already running: wait for it to end`,
        run_id: running,
        status_url: `/etl/runs/${running}`,
      });
      return;
    }
    const view = start(body.job, stores, req.socket.remoteAddress ?? 'unknown');
    const statusUrl = `/etl/runs/${view.run_id}`;
    send(
      res,
      202,
      { run_id: view.run_id, job: view.job, tiendas: stores.map((u) => u.id), status: view.status, status_url: statusUrl },
      { location: statusUrl },
    );
  }

  return {
    enabled: tokenDigest !== undefined,
    run: (id) => runs.get(id)?.view,
    async handle(req, res) {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname;
      if (path !== '/etl/sync' && path !== '/etl/runs' && !path.startsWith('/etl/runs/')) return false;
      try {
        if (!tokenDigest)
          throw new HttpProblem(
            503,
            'the control API is off: FLUXION_SYNC_TOKEN is not set (set it to a long random token to turn it on)',
          );
        if (!bearerMatches(req.headers.authorization, tokenDigest)) {
          log.warn({ client: req.socket.remoteAddress, method: req.method, path }, 'control API request without a valid token');
          send(
            res,
            401,
            { error: 'missing or wrong token: send Authorization: Bearer <FLUXION_SYNC_TOKEN>' },
            { 'www-authenticate': 'Bearer realm="fluxion"' },
          );
          return true;
        }
        if (path === '/etl/sync') {
          if (req.method !== 'POST') throw Object.assign(new HttpProblem(405, 'use POST /etl/sync'), { allow: 'POST' });
          await handleSync(req, res);
          return true;
        }
        if (req.method !== 'GET') throw Object.assign(new HttpProblem(405, `use GET ${path}`), { allow: 'GET' });
        if (path === '/etl/runs') {
          send(res, 200, { runs: [...runs.values()].map((r) => r.view).reverse() });
          return true;
        }
        const id = path.slice('/etl/runs/'.length);
        const run = runs.get(id);
        if (!run)
          throw new HttpProblem(
            404,
            `no run ${id} in this process (runs are kept in memory: the last ${keep}); see etl_runs in PostgreSQL`,
          );
        send(res, 200, run.view);
        return true;
      } catch (err) {
        if (err instanceof HttpProblem) {
          const allow = (err as HttpProblem & { allow?: string }).allow;
          send(res, err.status, { error: err.message }, allow ? { allow } : {});
        } else {
          log.error({ err }, 'control API request failed');
          send(res, 500, { error: scrubSecrets(errorMessage(err)) });
        }
        return true;
      }
    },
    async stop() {
      for (const r of runs.values()) if (r.view.status === 'RUNNING') r.controller.abort(new Error('the dashboard is stopping'));
      await Promise.all([...runs.values()].map((r) => r.done));
    },
  };
}
