/**
 * `fluxion doctor` without services, per store: the KLK and Stellar checks against in-process
 * servers, what a network error code means, and the placeholders of the store list
 * (the runner, report and migrations: doctor.test.ts).
 */
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadUbicacionesFile, resolveUbicacion, type Ubicacion } from '../../core/config/ubicaciones.ts';
import { projectPath } from '../../core/paths.ts';
import { main } from '../../cli/main.ts';
import { doctorExitCode, runChecks } from '../../ops/doctor.ts';
import { networkReason, placeholderCheck, storeCheck } from '../../ops/doctor-checks.ts';

/** A port nothing listens on (a stopped store). */
async function freePort(): Promise<number> {
  const s = createTcpServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('store checks (in-process servers)', () => {
  const servers: Array<{ close(cb: () => void): unknown }> = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
  });

  async function klkServer(key: string, delayMs = 0): Promise<{ url: string; seen: string[] }> {
    const seen: string[] = [];
    const server: Server = createHttpServer((req, res) => {
      seen.push(req.url!);
      setTimeout(() => {
        if (req.headers['x-api-key'] !== key) {
          res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"unauthorized"}');
          return;
        }
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ page: 1, total_pages: 7, total_items: 7, items: [{}] }));
      }, delayMs);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push({
      close: (cb) => {
        server.closeAllConnections();
        server.close(cb);
      },
    });
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/tienda_01`, seen };
  }

  const klkStore = (baseUrl: string): Ubicacion => ({
    id: 'tienda_01',
    nombre: 't',
    tipo: 'tienda',
    activa: true,
    pos: 'klk',
    depositos: ['07'],
    klk: { baseUrl, apiKeyEnv: 'KLK_API_KEY_TIENDA_01', pageSize: 1000, timeoutMs: 30_000 },
  });
  const stellarStore = (port: number): Ubicacion => ({
    id: 'cedi_frio',
    nombre: 'c',
    tipo: 'cedi',
    activa: true,
    pos: 'stellar',
    depositos: ['0101'],
    stellar: {
      host: '127.0.0.1',
      port,
      database: 'VAD10',
      userEnv: 'STELLAR_USER_CEDI_FRIO',
      passwordEnv: 'STELLAR_PASSWORD_CEDI_FRIO',
      encrypt: false,
      connectTimeoutMs: 15_000,
      requestTimeoutMs: 300_000,
    },
  });

  it('KLK: one small authenticated request; a wrong key fails naming the variable, never the key', async () => {
    const klk = await klkServer('right-key');
    const ok = await runChecks([storeCheck(klkStore(klk.url), { KLK_API_KEY_TIENDA_01: 'right-key' })], { timeoutMs: 2_000 });
    expect(ok[0]).toMatchObject({
      part: 'tienda_01',
      target: `KLK ${klk.url}`,
      status: 'OK',
      detail: 'API key accepted; 7 products in the inventory',
    });
    expect(klk.seen[0]).toBe('/tienda_01/api/v1/inventario?deposito=07&page=1&page_size=1');
    const bad = await runChecks([storeCheck(klkStore(klk.url), { KLK_API_KEY_TIENDA_01: 'wrong-key-value' })], {
      timeoutMs: 2_000,
      secrets: ['wrong-key-value'],
    });
    expect(bad[0]).toMatchObject({ status: 'FAIL', detail: 'KLK refused the API key (HTTP 401): check KLK_API_KEY_TIENDA_01' });
    expect(JSON.stringify(bad)).not.toContain('wrong-key-value');
    const unset = await runChecks([storeCheck(klkStore(klk.url), {})], { timeoutMs: 2_000 });
    expect(unset[0]).toMatchObject({ status: 'FAIL', detail: "KLK_API_KEY_TIENDA_01 is not set (the store's API key)" });
  });

  it('KLK: a slow POS fails at the timeout, a stopped one at once', async () => {
    const slow = await klkServer('k', 2_000);
    const [timedOut] = await runChecks([storeCheck(klkStore(slow.url), { KLK_API_KEY_TIENDA_01: 'k' })], { timeoutMs: 200 });
    expect(timedOut).toMatchObject({ status: 'FAIL', detail: 'no answer in 200 ms' });
    const port = await freePort();
    const [refused] = await runChecks([storeCheck(klkStore(`http://127.0.0.1:${port}/tienda_01`), { KLK_API_KEY_TIENDA_01: 'k' })], {
      timeoutMs: 2_000,
    });
    expect(refused).toMatchObject({ status: 'FAIL', detail: 'KLK did not answer: connection refused (nothing listens there)' });
  });

  it('Stellar: a TCP connect to the SQL Server port, and the credentials must be set', async () => {
    const tcp = createTcpServer((s) => s.destroy());
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    servers.push(tcp);
    const port = (tcp.address() as AddressInfo).port;
    const env = { STELLAR_USER_CEDI_FRIO: 'u', STELLAR_PASSWORD_CEDI_FRIO: 'p' };
    const [open] = await runChecks([storeCheck(stellarStore(port), env)], { timeoutMs: 2_000 });
    expect(open).toMatchObject({
      part: 'cedi_frio',
      target: `Stellar 127.0.0.1:${port}`,
      status: 'OK',
      detail: 'SQL Server port open (no TLS)',
    });
    const [noCreds] = await runChecks([storeCheck(stellarStore(port), {})], { timeoutMs: 2_000 });
    expect(noCreds).toMatchObject({
      status: 'FAIL',
      detail: 'SQL Server port open, but STELLAR_USER_CEDI_FRIO and STELLAR_PASSWORD_CEDI_FRIO are not set',
    });
    const [closed] = await runChecks([storeCheck(stellarStore(await freePort()), env)], { timeoutMs: 2_000 });
    expect(closed).toMatchObject({ status: 'FAIL', detail: 'SQL Server port: connection refused (nothing listens there)' });
  });

  it('Stellar: names a CA file the store cannot read, and says how TLS is done', async () => {
    const tcp = createTcpServer((s) => s.destroy());
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    servers.push(tcp);
    const port = (tcp.address() as AddressInfo).port;
    const withCa = (u: Ubicacion): Ubicacion =>
      u.pos === 'stellar' ? { ...u, stellar: { ...u.stellar, encrypt: true, caFileEnv: 'STELLAR_CA_FILE_CEDI_FRIO' } } : u;
    const env = { STELLAR_USER_CEDI_FRIO: 'u', STELLAR_PASSWORD_CEDI_FRIO: 'p', STELLAR_CA_FILE_CEDI_FRIO: '/nonexistent/ca.pem' };
    const [missing] = await runChecks([storeCheck(withCa(stellarStore(port)), env)], { timeoutMs: 2_000 });
    expect(missing).toMatchObject({ status: 'FAIL' });
    expect(missing!.detail).toMatch(
      new RegExp(
        /^SQL Server port open, but ubicacion cedi_frio: /.source +
          /STELLAR_CA_FILE_CEDI_FRIO="\/nonexistent\/ca\.pem": the CA file cannot be read: ENOENT/.source,
      ),
    );
    const verified = (u: Ubicacion): Ubicacion => (u.pos === 'stellar' ? { ...u, stellar: { ...u.stellar, encrypt: true } } : u);
    const [ok] = await runChecks([storeCheck(verified(stellarStore(port)), env)], { timeoutMs: 2_000 });
    expect(ok).toMatchObject({ status: 'OK', detail: 'SQL Server port open (TLS)' });
  });

  it('says what a network error code means', () => {
    expect(networkReason(Object.assign(new Error('getaddrinfo ENOTFOUND x'), { code: 'ENOTFOUND' }))).toBe(
      'host name not found (DNS; is the VPN up?)',
    );
    expect(networkReason(new TypeError('fetch failed', { cause: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }) }))).toBe(
      'connection refused (nothing listens there)',
    );
    expect(networkReason(new Error('something else'))).toBe('something else');
  });
});

describe('placeholders in the store list', () => {
  const store = (id: string, activa: boolean, placeholder: Ubicacion['placeholder']): Ubicacion => ({
    id,
    nombre: id,
    tipo: 'tienda',
    activa,
    pos: 'klk',
    depositos: ['01'],
    placeholder,
    klk: { baseUrl: 'https://klk.example', apiKeyEnv: 'K', pageSize: 1000, timeoutMs: 30_000 },
  });

  it('fails in production naming each active store and its placeholder fields; inactive stores do not count', async () => {
    const stores = [
      store('tienda_01', true, ['nombre', 'host']),
      store('tienda_02', true, []),
      store('tienda_03', true, ['depositos']),
      store('tienda_14', false, ['nombre']),
    ];
    const [r] = await runChecks([placeholderCheck(stores, 'production', 'config/ubicaciones.yaml')!], { timeoutMs: 1_000 });
    expect(r).toMatchObject({ part: 'placeholders', target: 'config/ubicaciones.yaml', status: 'FAIL', required: true });
    expect(r!.detail).toMatch(
      new RegExp(
        /^2 active stores still hold placeholders in production: tienda_01 \(nombre, host\); tienda_03 \(depositos\): /.source +
          /put La Granja's real values/.source,
      ),
    );
    expect(r!.detail).not.toContain('tienda_14');
    expect(doctorExitCode([r!])).toBe(1);
  });

  it('is OK in production once no active store lists one, and is no row at all locally', async () => {
    const [r] = await runChecks(
      [placeholderCheck([store('tienda_01', true, []), store('tienda_14', false, ['host'])], 'production', 'f.yaml')!],
      { timeoutMs: 1_000 },
    );
    expect(r).toMatchObject({ status: 'OK', detail: 'no active store holds a placeholder' });
    expect(placeholderCheck([store('tienda_01', true, ['host'])], 'local', 'f.yaml')).toBeUndefined();
  });

  it('reports the checked-in store list used in production: `fluxion doctor` prints the row and fails', async () => {
    const active = loadUbicacionesFile(projectPath('config/ubicaciones.yaml'))
      .filter((u) => u.activa)
      .map((u) => resolveUbicacion(u, 'production'));
    const lines: string[] = [];
    const code = await main(['doctor', '--skip-stores'], {
      env: { ETL_ENVIRONMENT: 'production', LOG_LEVEL: 'silent' },
      out: (l) => lines.push(l),
      err: (l) => lines.push(l),
    });
    const row = lines.find((l) => l.startsWith('placeholders '));
    expect(row, lines.join('\n')).toMatch(/placeholders\s+config\/ubicaciones\.yaml\s+FAIL/);
    expect(row).toContain(`${active.length} active stores still hold placeholders in production`);
    expect(row).toContain('tienda_01 (nombre, depositos, host)');
    expect(row).toContain('cedi_frio (depositos, host)');
    expect(code).toBe(2); // the services' variables are unset here too (the config row); the placeholder row alone makes 1, above
    // Locally the simulators make them harmless: no row.
    const local: string[] = [];
    await main(['doctor', '--skip-stores'], {
      env: { ETL_ENVIRONMENT: 'local', LOG_LEVEL: 'silent' },
      out: (l) => local.push(l),
      err: (l) => local.push(l),
    });
    expect(local.some((l) => l.startsWith('placeholders '))).toBe(false);
    expect(local.some((l) => l.startsWith('config '))).toBe(true);
  });
});
