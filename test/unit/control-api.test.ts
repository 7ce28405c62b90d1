/**
 * The control API over real HTTP with a fake run function: auth, bad bodies, unknown stores,
 * conflicts, and per-store progress.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveUbicacion, loadUbicacionesFile, type Ubicacion } from '../../core/config/ubicaciones.ts';
import { projectPath } from '../../core/paths.ts';
import {
  bearerMatches,
  createControlApi,
  parseSyncBody,
  type ControlApi,
  type SyncJob,
  type SyncRunContext,
} from '../../ops/control-api.ts';
import type { StoreOutcome } from '../../core/etl-run.ts';
import type { ControlApiAnswer } from '../helpers/control-api-answer.ts';

const TOKEN = 'test-token-0123456789abcdef';
const stores: Ubicacion[] = loadUbicacionesFile(projectPath('config/ubicaciones.yaml')).map((u) => resolveUbicacion(u, 'local'));

interface Call {
  job: SyncJob;
  stores: string[];
  ctx: SyncRunContext;
  finish: () => void;
  fail: (err: Error) => void;
}

/** Pino lines written by the API, to check that no secret is logged. */
const logLines: string[] = [];
const logger = pino(
  { level: 'debug' },
  new Writable({
    write(chunk, _enc, done) {
      logLines.push(String(chunk));
      done();
    },
  }),
);

let server: Server;
let base: string;
let api: ControlApi;
let calls: Call[];

function outcome(id: string, status: 'OK' | 'FAILED' = 'OK'): StoreOutcome {
  return {
    ubicacionId: id,
    source: 'KLK',
    status,
    rows: status === 'OK' ? 42 : 0,
    durationMs: 5,
    snapshotId: status === 'OK' ? '6f1c2b7e-5d4a-4c3b-9a8f-0e1d2c3b4a59' : null,
    fecha: null,
    errorClass: status === 'OK' ? null : 'POS_AUTH',
    errorMessage: status === 'OK' ? null : 'tienda_02: check KLK_API_KEY_TIENDA_02 (postgres://u:hunter2@db/x)',
  };
}

async function startApi(token: string | undefined): Promise<void> {
  calls = [];
  api = createControlApi({
    token,
    stores: () => stores,
    logger,
    run: (job, selected, ctx) =>
      new Promise<void>((resolve, reject) => {
        calls.push({ job, stores: selected.map((u) => u.id), ctx, finish: resolve, fail: reject });
      }),
  });
  server = createServer((req, res) => {
    void api.handle(req, res).then((handled) => {
      if (!handled) res.writeHead(404).end('not the control API');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function call(
  method: string,
  path: string,
  options: { body?: string | object; token?: string | null; headers?: Record<string, string> } = {},
) {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? TOKEN : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const body = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, { method, headers, body });
  const text = await res.text();
  let json: ControlApiAnswer = {};
  try {
    json = JSON.parse(text) as ControlApiAnswer;
  } catch {
    // Not JSON: an empty answer, so every field a test checks is missing and its assertion fails.
  }
  return { status: res.status, headers: res.headers, json };
}

async function until(check: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

beforeEach(() => {
  logLines.length = 0;
});

afterEach(async () => {
  for (const c of calls ?? []) c.finish();
  await api?.stop();
  await new Promise<void>((r) => server?.close(() => r()));
});

describe('control API: off without a token', () => {
  it('answers 503 saying so, on every route, whatever the header', async () => {
    await startApi(undefined);
    expect(api.enabled).toBe(false);
    for (const [method, path] of [
      ['POST', '/etl/sync'],
      ['GET', '/etl/runs/x'],
      ['GET', '/etl/runs'],
    ] as const) {
      const r = await call(method, path, { body: method === 'POST' ? { job: 'inventario', tiendas: 'todas' } : undefined });
      expect(r.status, `${method} ${path}`).toBe(503);
      expect(r.json.error).toMatch(/control API is off: FLUXION_SYNC_TOKEN is not set/);
    }
    expect(calls).toHaveLength(0);
  });

  it('leaves other paths to the server', async () => {
    await startApi(undefined);
    expect((await call('GET', '/api/lag')).status).toBe(404);
  });
});

describe('control API: authentication', () => {
  beforeEach(() => startApi(TOKEN));

  it('401 without a header, with a wrong or longer/shorter token, or another scheme; never starts a run', async () => {
    const body = { job: 'inventario', tiendas: 'todas' };
    const attempts: Array<Record<string, string> | string | null> = [null, 'wrong', `${TOKEN}x`, TOKEN.slice(0, -1), ''];
    for (const token of attempts) {
      const r = await call('POST', '/etl/sync', { body, token: token as string | null });
      expect(r.status, `token ${JSON.stringify(token)}`).toBe(401);
      expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(r.json.error).toMatch(/missing or wrong token/);
    }
    const basic = await call('POST', '/etl/sync', {
      body,
      token: null,
      headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` },
    });
    expect(basic.status).toBe(401);
    expect((await call('GET', '/etl/runs/whatever', { token: 'nope' })).status).toBe(401);
    expect(calls).toHaveLength(0);
  });

  it('never logs the token or the header', async () => {
    await call('POST', '/etl/sync', { body: { job: 'inventario', tiendas: ['tienda_01'] } });
    await call('POST', '/etl/sync', { body: { job: 'inventario', tiendas: ['tienda_01'] }, token: 'a-wrong-guess-of-the-token' });
    const logged = logLines.join('');
    expect(logged).toMatch(/sync run started/);
    expect(logged).toMatch(/without a valid token/);
    expect(logged).not.toContain(TOKEN);
    expect(logged).not.toContain('a-wrong-guess-of-the-token');
  });

  it('compares hashes of equal length in constant time', () => {
    const digest = createHash('sha256').update(TOKEN).digest();
    expect(bearerMatches(`Bearer ${TOKEN}`, digest)).toBe(true);
    expect(bearerMatches(`bearer ${TOKEN}`, digest)).toBe(true);
    expect(bearerMatches(TOKEN, digest)).toBe(false);
    expect(bearerMatches(undefined, digest)).toBe(false);
    expect(bearerMatches('Bearer ', createHash('sha256').update('').digest())).toBe(false);
  });
});

describe('control API: bad requests', () => {
  beforeEach(() => startApi(TOKEN));

  const cases: Array<[string, string | object, RegExp]> = [
    ['not JSON', '{"job": "inventario",', /not JSON/],
    ['an array', '[]', /JSON object/],
    ['no job', { tiendas: 'todas' }, /"job" must be "inventario" or "ventas", got nothing/],
    ['an unknown job', { job: 'abc', tiendas: 'todas' }, /"job" must be "inventario" or "ventas", got "abc"/],
    ['no tiendas', { job: 'inventario' }, /"tiendas" must be "todas" or a non-empty list/],
    ['empty tiendas', { job: 'inventario', tiendas: [] }, /non-empty list/],
    ['tiendas not strings', { job: 'inventario', tiendas: [1] }, /non-empty list/],
    ['tiendas "all"', { job: 'inventario', tiendas: 'all' }, /"todas"/],
    ['an unknown field', { job: 'inventario', tiendas: 'todas', fecha: '2026-11-27' }, /unknown field\(s\) "fecha"/],
    ['an unknown store', { job: 'inventario', tiendas: ['tienda_01', 'tienda_99'] }, /unknown ubicacion "tienda_99"/],
    ['an inactive store', { job: 'inventario', tiendas: ['tienda_14'] }, /tienda_14 is inactive/],
    ['ventas of a Stellar store', { job: 'ventas', tiendas: ['tienda_01', 'cedi_frio'] }, /cedi_frio: Stellar has no sales API/],
  ];
  for (const [what, body, message] of cases) {
    it(`400 for ${what}, with a message`, async () => {
      const r = await call('POST', '/etl/sync', { body });
      expect(r.status).toBe(400);
      expect(r.json.error).toMatch(message);
      expect(calls).toHaveLength(0);
    });
  }

  it('413 for a body over 16 KiB, 405 for the wrong method, 404 for an unknown run', async () => {
    expect(
      (await call('POST', '/etl/sync', { body: JSON.stringify({ job: 'inventario', tiendas: Array(3000).fill('tienda_01') }) })).status,
    ).toBe(413);
    const get = await call('GET', '/etl/sync');
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect((await call('DELETE', '/etl/runs/x')).status).toBe(405);
    const unknown = await call('GET', '/etl/runs/00000000-0000-0000-0000-000000000000');
    expect(unknown.status).toBe(404);
    expect(unknown.json.error).toMatch(/no run/);
  });

  it('parses the two shapes of tiendas, dropping repeated ids', () => {
    expect(parseSyncBody('{"job":"ventas","tiendas":"todas"}')).toEqual({ job: 'ventas', tiendas: 'todas' });
    expect(parseSyncBody('{"job":"inventario","tiendas":["tienda_01","tienda_01","tienda_02"]}')).toEqual({
      job: 'inventario',
      tiendas: ['tienda_01', 'tienda_02'],
    });
  });
});

describe('control API: runs', () => {
  beforeEach(() => startApi(TOKEN));

  it('202 with a run id; GET shows per-store progress, then the result', async () => {
    const r = await call('POST', '/etl/sync', { body: { job: 'inventario', tiendas: ['tienda_01', 'tienda_02', 'cedi_frio'] } });
    expect(r.status).toBe(202);
    expect(r.json).toMatchObject({ job: 'inventario', tiendas: ['tienda_01', 'tienda_02', 'cedi_frio'], status: 'RUNNING' });
    expect(r.json.run_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.headers.get('location')).toBe(`/etl/runs/${r.json.run_id}`);
    expect(r.json.status_url).toBe(`/etl/runs/${r.json.run_id}`);
    await until(() => calls.length === 1);
    const c = calls[0]!;
    expect(c).toMatchObject({ job: 'inventario', stores: ['tienda_01', 'tienda_02', 'cedi_frio'] });
    expect(c.ctx.runId).toBe(r.json.run_id);

    const path = `/etl/runs/${r.json.run_id}`;
    expect((await call('GET', path)).json).toMatchObject({ status: 'RUNNING', counts: { PENDING: 3, RUNNING: 0, OK: 0, FAILED: 0 } });
    c.ctx.onStoreStarted('tienda_01');
    c.ctx.onStoreStarted('tienda_02');
    c.ctx.onStoreFinished(outcome('tienda_01'));
    const mid = (await call('GET', path)).json;
    expect(mid).toMatchObject({ status: 'RUNNING', finished_at: null, counts: { PENDING: 1, RUNNING: 1, OK: 1, FAILED: 0 } });
    expect(mid.stores![0]).toMatchObject({
      ubicacion_id: 'tienda_01',
      status: 'OK',
      rows: 42,
      snapshot_id: '6f1c2b7e-5d4a-4c3b-9a8f-0e1d2c3b4a59',
    });
    expect(mid.stores![1]).toMatchObject({ ubicacion_id: 'tienda_02', status: 'RUNNING', rows: null });

    c.ctx.onStoreFinished(outcome('tienda_02', 'FAILED'));
    c.ctx.onStoreStarted('cedi_frio');
    c.ctx.onStoreFinished(outcome('cedi_frio'));
    c.finish();
    await until(() => api.run(r.json.run_id!)?.status !== 'RUNNING');
    const end = (await call('GET', path)).json;
    expect(end).toMatchObject({ status: 'FAILED', counts: { PENDING: 0, RUNNING: 0, OK: 2, FAILED: 1 } });
    expect(end.finished_at).not.toBeNull();
    expect(end.stores![1]).toMatchObject({ status: 'FAILED', error_class: 'POS_AUTH' });
    // A connection string in an error message is scrubbed.
    expect(end.stores![1]!.error_message).toContain('postgres://u:***@db/x');
    expect((await call('GET', '/etl/runs')).json.runs!.map((x) => x.run_id)).toEqual([r.json.run_id]);
  });

  it('409 while a run of the same job is running; another job may start; the same job again once it ended', async () => {
    const first = await call('POST', '/etl/sync', { body: { job: 'inventario', tiendas: 'todas' } });
    expect(first.status).toBe(202);
    await until(() => calls.length === 1);
    expect(calls[0]!.stores).toHaveLength(stores.filter((u) => u.activa).length);

    const again = await call('POST', '/etl/sync', { body: { job: 'inventario', tiendas: ['tienda_03'] } });
    expect(again.status).toBe(409);
    expect(again.json).toMatchObject({ run_id: first.json.run_id });
    expect(again.json.error).toMatch(/already running/);

    const ventas = await call('POST', '/etl/sync', { body: { job: 'ventas', tiendas: 'todas' } });
    expect(ventas.status).toBe(202);
    await until(() => calls.length === 2);
    // ventas "todas": the active KLK stores only.
    expect(calls[1]!.stores).toEqual(stores.filter((u) => u.activa && u.pos === 'klk').map((u) => u.id));

    calls[0]!.finish();
    await until(() => api.run(first.json.run_id!)?.status !== 'RUNNING');
    // The run reported no store: each is FAILED as unreported, not left pending.
    expect(api.run(first.json.run_id!)).toMatchObject({ status: 'FAILED' });
    expect(api.run(first.json.run_id!)!.stores[0]).toMatchObject({ status: 'FAILED', error_class: 'UNREPORTED' });
    expect((await call('POST', '/etl/sync', { body: { job: 'inventario', tiendas: ['tienda_03'] } })).status).toBe(202);
  });

  it('a run that throws ends as ERROR with the message, and frees its job', async () => {
    const r = await call('POST', '/etl/sync', { body: { job: 'ventas', tiendas: ['tienda_05'] } });
    await until(() => calls.length === 1);
    calls[0]!.fail(new Error('Kafka at 127.0.0.1:1 did not answer'));
    await until(() => api.run(r.json.run_id!)?.status !== 'RUNNING');
    expect(api.run(r.json.run_id!)).toMatchObject({ status: 'ERROR', error: 'Kafka at 127.0.0.1:1 did not answer' });
    expect(api.run(r.json.run_id!)!.stores[0]).toMatchObject({ status: 'FAILED', error_class: 'RUN_FAILED' });
    expect((await call('POST', '/etl/sync', { body: { job: 'ventas', tiendas: ['tienda_05'] } })).status).toBe(202);
  });

  it('stop() aborts running runs through their signal', async () => {
    await call('POST', '/etl/sync', { body: { job: 'inventario', tiendas: ['tienda_01'] } });
    await until(() => calls.length === 1);
    const c = calls[0]!;
    c.ctx.signal.addEventListener('abort', () => c.finish());
    await api.stop();
    expect(c.ctx.signal.aborted).toBe(true);
  });
});
