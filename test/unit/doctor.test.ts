/**
 * `fluxion doctor` without services: the concurrent runner with per-check timeouts and
 * dependencies, exit codes, the table and JSON, the migration comparison, the KLK verdict and
 * targets that never show a secret (the store checks: doctor-stores.test.ts).
 */
import { describe, expect, it } from 'vitest';
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
import { klkVerdict } from '../../ops/doctor-checks.ts';

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    });
  });

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
