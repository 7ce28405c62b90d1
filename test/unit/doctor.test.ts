/**
 * `fluxion doctor` without services: the concurrent runner with per-check timeouts and
 * dependencies, exit codes, the table and JSON, the migration comparison, the KLK verdict,
 * targets that never show a secret, and the store checks against in-process servers.
 */
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadUbicacionesFile, resolveUbicacion, type Ubicacion } from '../../core/config/ubicaciones.ts';
import { projectPath } from '../../core/paths.ts';
import { main } from '../../cli/main.ts';
import {
  cleanDetail,
  compareMigrations,
  doctorExitCode,
  formatJson,
  formatTable,
  kafkaTarget,
  migrationsVerdict,
  runChecks,
  safeTarget,
  summaryLine,
  type CheckResult,
  type DoctorCheck,
} from '../../ops/doctor.ts';
import { klkVerdict, networkReason, placeholderCheck, storeCheck } from '../../ops/doctor-checks.ts';

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    });
  });

/** A port nothing listens on (a stopped store). */
async function freePort(): Promise<number> {
  const s = createTcpServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function row(part: string, status: CheckResult['status'], required = true): CheckResult {
  return { part, target: 't', status, required, durationMs: 1, detail: '' };
}

describe('runChecks', () => {
  it('runs the checks concurrently and keeps their order', async () => {
    const checks: DoctorCheck[] = [600, 200, 400].map((ms, i) => ({
      part: `c${i}`,
      target: 'x',
      run: async () => {
        await sleep(ms);
        return `slept ${ms}`;
      },
    }));
    const started = Date.now();
    const results = await runChecks(checks, { timeoutMs: 5_000 });
    // One after the other would take 1200 ms.
    expect(Date.now() - started).toBeLessThan(1_100);
    expect(results.map((r) => [r.part, r.status, r.detail])).toEqual([
      ['c0', 'OK', 'slept 600'],
      ['c1', 'OK', 'slept 200'],
      ['c2', 'OK', 'slept 400'],
    ]);
    expect(results[0]!.durationMs).toBeGreaterThanOrEqual(550);
  });

  it('fails a check that takes longer than its timeout and aborts its signal', async () => {
    let aborted = false;
    const hang: DoctorCheck = {
      part: 'hang',
      target: 'x',
      run: (signal) =>
        new Promise(() => {
          signal.addEventListener('abort', () => (aborted = true));
        }),
    };
    const quick: DoctorCheck = { part: 'quick', target: 'x', run: async () => 'fine' };
    const started = Date.now();
    const [h, q] = await runChecks([hang, quick], { timeoutMs: 150 });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(h).toMatchObject({ part: 'hang', status: 'FAIL', detail: 'no answer in 150 ms' });
    expect(h!.durationMs).toBeGreaterThanOrEqual(140);
    expect(aborted).toBe(true);
    expect(q).toMatchObject({ status: 'OK', detail: 'fine' });
  });

  it('a thrown error is a FAIL with its message; a SKIP outcome is kept', async () => {
    const results = await runChecks(
      [
        { part: 'a', target: 'x', run: async () => Promise.reject(new Error('boom\nsecond line')) },
        { part: 'b', target: 'x', run: async () => ({ status: 'SKIP', detail: 'not asked' }) },
      ],
      { timeoutMs: 1_000 },
    );
    expect(results.map((r) => [r.status, r.detail])).toEqual([
      ['FAIL', 'boom; second line'],
      ['SKIP', 'not asked'],
    ]);
  });

  it('skips a dependent check when its dependency is not OK, runs it when it is', async () => {
    let ran = 0;
    const dependent = (on: string): DoctorCheck => ({
      part: `after-${on}`,
      target: 'x',
      dependsOn: on,
      run: async () => {
        ran++;
        return 'ran';
      },
    });
    const results = await runChecks(
      [
        { part: 'down', target: 'x', run: async () => Promise.reject(new Error('refused')) },
        {
          part: 'up',
          target: 'x',
          run: async () => {
            await sleep(50);
            return 'ok';
          },
        },
        dependent('down'),
        dependent('up'),
      ],
      { timeoutMs: 1_000 },
    );
    expect(results.map((r) => [r.part, r.status, r.detail])).toEqual([
      ['down', 'FAIL', 'refused'],
      ['up', 'OK', 'ok'],
      ['after-down', 'SKIP', 'down is FAIL'],
      ['after-up', 'OK', 'ran'],
    ]);
    expect(ran).toBe(1);
  });

  it('never lets a secret or a URL password into a detail', async () => {
    const [r] = await runChecks(
      [{ part: 'a', target: 'x', run: async () => Promise.reject(new Error('key s3cr3t-key refused at postgres://u:pw-in-url@h/db')) }],
      {
        timeoutMs: 1_000,
        secrets: ['s3cr3t-key'],
      },
    );
    expect(r!.detail).toBe('key *** refused at postgres://u:***@h/db');
    expect(cleanDetail('abcabcd', ['abc', 'abcabcd'])).toBe('***');
  });
});

describe('exit code and report', () => {
  it('is 0 when every required part is OK or skipped, 1 when one fails, 2 when the config is invalid', () => {
    expect(doctorExitCode([row('config', 'OK'), row('kafka', 'OK'), row('stores', 'SKIP')])).toBe(0);
    expect(doctorExitCode([row('config', 'OK'), row('optional', 'FAIL', false)])).toBe(0);
    expect(doctorExitCode([row('config', 'OK'), row('tienda_03', 'FAIL')])).toBe(1);
    expect(doctorExitCode([row('config', 'FAIL'), row('tienda_03', 'FAIL')])).toBe(2);
  });

  it('prints an aligned table with the failed parts named in the last line', () => {
    const results: CheckResult[] = [
      { part: 'config', target: 'ETL_ENVIRONMENT=local', status: 'OK', required: true, durationMs: 3, detail: 'valid' },
      {
        part: 'tienda_03',
        target: 'KLK http://127.0.0.1:18701/tienda_03',
        status: 'FAIL',
        required: true,
        durationMs: 12_345,
        detail: 'KLK did not answer',
      },
    ];
    const lines = formatTable(results);
    expect(lines[0]).toMatch(/^part\s+target\s+status\s+duration\s+detail$/);
    expect(lines[1]).toMatch(/^config\s+ETL_ENVIRONMENT=local\s+OK\s+3 ms\s+valid$/);
    expect(lines[2]).toMatch(/^tienda_03\s+KLK http:\/\/127\.0\.0\.1:18701\/tienda_03\s+FAIL\s+12\.3 s\s+KLK did not answer$/);
    // The status column starts at the same place on every line.
    expect(new Set(lines.slice(0, 3).map((l) => l.search(/\b(status|OK|FAIL)\b/))).size).toBe(1);
    expect(lines[3]).toBe('doctor: 1 OK, 1 FAIL, 0 SKIP: not ready; failed: tienda_03');
    expect(summaryLine([row('config', 'OK')])).toBe('doctor: 1 OK, 0 FAIL, 0 SKIP: ready');
  });

  it('prints one JSON document for scripts', () => {
    const doc = JSON.parse(formatJson([row('config', 'OK'), row('kafka', 'FAIL'), row('stores', 'SKIP')]));
    expect(doc).toMatchObject({ exitCode: 1, ok: 1, fail: 1, skip: 1 });
    expect(doc.checks[1]).toEqual({ part: 'kafka', target: 't', status: 'FAIL', required: true, durationMs: 1, detail: '' });
  });
});

describe('targets never hold a secret', () => {
  it('drops user, password and query from URLs', () => {
    expect(safeTarget('https://user:pw@registry.example:8081/apis/ccompat/v7/?token=x#f')).toBe(
      'https://registry.example:8081/apis/ccompat/v7',
    );
    expect(safeTarget('not a url')).toBe('(unparseable URL)');
  });

  it('names how Kafka is reached, with the user and never the password', () => {
    expect(kafkaTarget(['b1:9093', 'b2:9093'], { rejectUnauthorized: true }, { mechanism: 'scram-sha-512', username: 'fluxion' })).toBe(
      'b1:9093,b2:9093 (TLS, SASL SCRAM-SHA-512 as fluxion)',
    );
    expect(kafkaTarget(['b1:9093'], { rejectUnauthorized: false })).toBe('b1:9093 (TLS unverified)');
    expect(kafkaTarget(['127.0.0.1:19092'])).toBe('127.0.0.1:19092');
  });
});

describe('migrations current', () => {
  const files = [
    { version: 1, name: '001_base.sql', checksum: 'a' },
    { version: 2, name: '002_ventas.sql', checksum: 'b' },
    { version: 3, name: '003_abc.sql', checksum: 'c' },
  ];

  it('is current when every file is applied with its checksum', () => {
    expect(migrationsVerdict(files, files)).toBe('3 of 3 applied');
  });

  it('names pending, edited and unknown migrations', () => {
    const applied = [
      { version: 1, name: '001_base.sql', checksum: 'a' },
      { version: 2, name: '002_ventas.sql', checksum: 'EDITED' },
      { version: 9, name: '009_future.sql', checksum: 'z' },
    ];
    expect(compareMigrations(files, applied)).toEqual({
      pending: ['003_abc.sql'],
      edited: ['002_ventas.sql'],
      unknown: ['009_future.sql'],
      applied: 3,
    });
    expect(() => migrationsVerdict(files, applied)).toThrow(
      '1 pending (003_abc.sql): run `fluxion migrate`; edited after being applied: 002_ventas.sql (revert the edit; changes go in a ' +
        'new migration); applied but not in sql/postgres: 009_future.sql (is this release older than the database?)',
    );
    expect(() => migrationsVerdict(files, [])).toThrow('3 pending (001_base.sql, 002_ventas.sql, 003_abc.sql)');
  });
});

describe('the KLK verdict', () => {
  it('accepts an authenticated page', () => {
    expect(klkVerdict(200, JSON.stringify({ page: 1, total_pages: 3, total_items: 2300, items: [] }), 'KLK_API_KEY_TIENDA_01')).toBe(
      'API key accepted; 2300 products in the inventory',
    );
  });
  it('names the variable of a refused key', () => {
    expect(() => klkVerdict(401, '{"error":"unauthorized"}', 'KLK_API_KEY_TIENDA_02')).toThrow(
      'KLK refused the API key (HTTP 401): check KLK_API_KEY_TIENDA_02',
    );
  });
  it('reports other answers', () => {
    expect(() => klkVerdict(503, 'oops', 'K')).toThrow('KLK answered HTTP 503 (the POS or its proxy is in trouble)');
    expect(() => klkVerdict(404, 'no such store', 'K')).toThrow('KLK answered HTTP 404: no such store');
    expect(() => klkVerdict(200, '<html>proxy</html>', 'K')).toThrow('KLK answered HTTP 200 but not JSON');
  });
});

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
