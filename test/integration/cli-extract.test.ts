/**
 * The commands as an operator runs them: `fluxion simulate klk` serving the store list's
 * local addresses, `fluxion extract ...` reading it, with real exit codes and output.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../core/paths.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';
import { runCli } from '../../fixtures/services.ts';

const keys = Object.fromEntries(
  Array.from({ length: 17 }, (_, i) => [`KLK_API_KEY_TIENDA_${String(i + 1).padStart(2, '0')}`, `demo-key-${i + 1}`]),
);
const labelsFile = join(mkdtempSync(join(tmpdir(), 'fluxion-labels-')), 'anomalias.json');
let simulator: ChildProcess;
let pipeline: TestPipeline;

beforeAll(async () => {
  pipeline = await createTestPipeline();
  simulator = spawn(
    process.execPath,
    [
      join(PROJECT_ROOT, 'bin', 'fluxion.ts'),
      'simulate',
      'klk',
      '--products',
      '1200',
      '--fault',
      'tienda_05={"httpError":{"status":401,"times":1}}',
      '--anomalias-file',
      labelsFile,
      '--anomaly-rates',
      '{"phantomZeroPerDay":40}',
    ],
    {
      env: { ...process.env, ...keys, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the KLK simulator did not start in 30 s')), 30_000);
    simulator.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('KLK simulator:')) {
        clearTimeout(timer);
        resolve();
      }
    });
    simulator.on('exit', (code) => reject(new Error(`the KLK simulator exited with ${code}`)));
  });
});

afterAll(async () => {
  simulator?.kill('SIGTERM');
  await pipeline?.cleanup();
});

describe('fluxion extract (CLI)', () => {
  it('extracts the named stores, prints one line per store and exits 0', async () => {
    const r = await runCli(['extract', 'inventario', '--tienda', 'tienda_01', '--tienda', 'tienda_02'], {
      ...keys,
      FLUXION_TOPIC_PREFIX: pipeline.prefix,
    });
    // A warning may appear while the broker settles (kafkajs retries); an error may not.
    expect(r.stderr, r.stderr).not.toMatch(/"level":"(error|fatal)"/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^tienda_01\s+KLK\s+1200\s+[\d.]+ s\s+OK$/m);
    expect(r.stdout).toMatch(/^tienda_02\s+KLK\s+1200\s+[\d.]+ s\s+OK$/m);
    expect(r.stdout).toContain('2 of 2 stores OK');
    const chunks = await pipeline.read<{ ubicacion_id: string }>('pos.inventario.snapshots');
    expect(new Set(chunks.map((c) => c.decoded.ubicacion_id))).toEqual(new Set(['tienda_01', 'tienda_02']));
  });

  it('exits 1 when a store fails, naming it, and never prints the key', async () => {
    const r = await runCli(['extract', 'ventas', '--tienda', 'tienda_03', '--tienda', 'tienda_04'], {
      ...keys,
      KLK_API_KEY_TIENDA_04: 'wrong-secret-key',
      FLUXION_TOPIC_PREFIX: pipeline.prefix,
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^tienda_03\s+KLK\s+\d+\s+[\d.]+ s\s+OK$/m);
    expect(r.stdout).toMatch(/^tienda_04\s+KLK\s+0\s+[\d.]+ s\s+FAILED POS_AUTH: tienda_04: KLK refused the API key \(HTTP 401\)/m);
    expect(r.stdout).toContain('1 of 2 stores OK, 1 FAILED');
    expect(r.stdout + r.stderr).not.toContain('wrong-secret-key');
  });

  it("applies faults given on the simulator's command line", async () => {
    const r = await runCli(['extract', 'inventario', '--tienda', 'tienda_05'], { ...keys, FLUXION_TOPIC_PREFIX: pipeline.prefix });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^tienda_05\s+KLK\s+0\s+[\d.]+ s\s+FAILED POS_AUTH/m);
    const bad = await runCli(['simulate', 'klk', '--products', '10', '--fault', 'tienda_99={}'], keys);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--fault must be <ubicacion_id>=<json> for one of tienda_01');
  });

  it("writes every store's anomaly labels with --anomalias-file, again after each advance (SIGUSR2); refuses unknown rates", async () => {
    type Labels = {
      clocks: Record<string, string>;
      labels: Array<{ kind: string; ubicacion_id: string; start: string; end: string | null }>;
    };
    const read = () => JSON.parse(readFileSync(labelsFile, 'utf8')) as Labels;
    expect(existsSync(labelsFile)).toBe(true);
    const first = read();
    expect(Object.keys(first.clocks)).toContain('tienda_01');
    // The stores that start with a product at 0 have it labelled as a real stockout since the start.
    expect(
      first.labels.filter((l) => l.kind === 'REAL_STOCKOUT').every((l) => l.start === first.clocks[l.ubicacion_id] && l.end === null),
    ).toBe(true);
    expect(first.labels.some((l) => l.kind === 'PHANTOM_ZERO')).toBe(false);
    simulator.kill('SIGUSR2');
    const deadline = Date.now() + 30_000;
    while (read().clocks.tienda_01 === first.clocks.tienda_01 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const after = read();
    expect(new Date(after.clocks.tienda_01!).getTime() - new Date(first.clocks.tienda_01!).getTime()).toBe(30 * 60_000);
    // 40 a day over 12 open hours: about 1.7 a store in 30 minutes, 17 stores.
    expect(after.labels.filter((l) => l.kind === 'PHANTOM_ZERO').length).toBeGreaterThan(5);
    const bad = await runCli(['simulate', 'klk', '--products', '10', '--anomaly-rates', '{"phantomZeros":1}'], keys);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--anomaly-rates: unknown rate phantomZeros');
  });

  it('exits 2 for bad usage: unknown store, no selection, a Stellar store asked for ventas, a bad date', async () => {
    const env = { ...keys, FLUXION_TOPIC_PREFIX: pipeline.prefix };
    const unknown = await runCli(['extract', 'inventario', '--tienda', 'tienda_99'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown ubicacion "tienda_99"');
    const none = await runCli(['extract', 'inventario'], env);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('say which stores: --todas or --tienda ID');
    const stellar = await runCli(['extract', 'ventas', '--tienda', 'cedi_frio'], env);
    expect(stellar.code).toBe(2);
    expect(stellar.stderr).toContain('cedi_frio: Stellar has no sales API');
    const date = await runCli(['extract', 'ventas', '--todas', '--fecha', '2026-02-30'], env);
    expect(date.code).toBe(2);
    expect(date.stderr).toContain('--fecha must be a real date as YYYY-MM-DD, got "2026-02-30"');
  });
});
