#!/usr/bin/env node
/**
 * bench/extract: one full inventory cycle of the chain (12 KLK stores x 15,000 products,
 * 4 Stellar locations x 40,000) against the simulators, through the real CLI processes.
 * Reports wall time, rows/s, the extractor's CPU seconds and peak RSS, and the simulators'
 * CPU seconds, side by side in one run, and writes bench/results/<date>-extract.json.
 *
 *   node bench/extract.ts [--klk-products 15000] [--stellar-products 40000] [--cycles 2]
 *
 * Needs the services (`scripts/services up`; it reads `scripts/services env` itself).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT } from '../core/paths.ts';

const { values } = parseArgs({
  options: {
    'klk-products': { type: 'string', default: '15000' },
    'stellar-products': { type: 'string', default: '40000' },
    cycles: { type: 'string', default: '2' },
  },
});

const servicesEnv = Object.fromEntries(
  execFileSync(join(PROJECT_ROOT, 'scripts', 'services'), ['env'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.startsWith('export '))
    .map((l) => l.slice(7).split(/=(.*)/s).slice(0, 2) as [string, string]),
);
const secrets: Record<string, string> = {};
for (let i = 1; i <= 17; i++) secrets[`KLK_API_KEY_TIENDA_${String(i).padStart(2, '0')}`] = `bench-key-${i}`;
for (const id of ['CEDI_FRIO', 'CEDI_SECO', 'CEDI_VERDE', 'TIENDA_13']) {
  secrets[`STELLAR_USER_${id}`] = 'fluxion';
  secrets[`STELLAR_PASSWORD_${id}`] = `bench-pass-${id}`;
}
const prefix = `bench${Date.now().toString(36)}.`;
// NODE_OPTIONS as the production image sets it (Dockerfile).
const env = {
  ...process.env,
  ...servicesEnv,
  ...secrets,
  FLUXION_TOPIC_PREFIX: prefix,
  LOG_LEVEL: 'warn',
  ETL_ENVIRONMENT: 'local',
  NODE_OPTIONS: '--max-semi-space-size=8',
};
const fluxion = join(PROJECT_ROOT, 'bin', 'fluxion.ts');

function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks
}

function run(args: string[]): void {
  execFileSync(process.execPath, [fluxion, ...args], { env, stdio: ['ignore', 'ignore', 'inherit'] });
}

async function startSimulator(kind: 'klk' | 'stellar', products: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [fluxion, 'simulate', kind, '--products', products], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    let seen = 0;
    const want = kind === 'klk' ? 1 : 4;
    child.stdout!.on('data', (d: Buffer) => {
      seen += d
        .toString()
        .split('\n')
        .filter((l) => l.includes('simulator:')).length;
      if (seen >= want) resolve();
    });
    child.on('exit', (code) => reject(new Error(`simulate ${kind} exited with ${code}`)));
  });
  return child;
}

async function measured(): Promise<void> {
  run(['topics', 'ensure']);
  run(['schemas', 'register']);
  const klk = await startSimulator('klk', values['klk-products']!);
  const stellar = await startSimulator('stellar', values['stellar-products']!);
  const rows = 12 * Number(values['klk-products']) + 4 * Number(values['stellar-products']);
  const results = [];
  try {
    for (let cycle = 1; cycle <= Number(values.cycles); cycle++) {
      const before = { klk: cpuSeconds(klk.pid!), stellar: cpuSeconds(stellar.pid!) };
      const t0 = process.hrtime.bigint();
      const child = spawn('/usr/bin/time', ['-f', 'TIME %e %U %S %M', process.execPath, fluxion, 'extract', 'inventario', '--todas'], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code !== 0) throw new Error(`extract failed (exit ${code}):\n${stdout}\n${stderr}`);
      const m = /TIME ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(stderr);
      if (!m) throw new Error(`no GNU time line in:\n${stderr}`);
      const after = { klk: cpuSeconds(klk.pid!), stellar: cpuSeconds(stellar.pid!) };
      const result = {
        cycle,
        wall_seconds: Number(wall.toFixed(2)),
        rows,
        rows_per_second: Math.round(rows / wall),
        extractor_cpu_seconds: Number((Number(m[2]) + Number(m[3])).toFixed(2)),
        extractor_peak_rss_mb: Math.round(Number(m[4]) / 1024),
        klk_simulator_cpu_seconds: Number((after.klk - before.klk).toFixed(2)),
        stellar_simulator_cpu_seconds: Number((after.stellar - before.stellar).toFixed(2)),
      };
      results.push(result);
      process.stdout.write(`${JSON.stringify(result)}\n`);
      // Stock moves between cycles as it would in 30 minutes of trading.
      await fetch('http://127.0.0.1:18701/_control/advance', { method: 'POST', body: '{"minutes":30}' });
    }
  } finally {
    klk.kill('SIGTERM');
    stellar.kill('SIGTERM');
  }
  const report = {
    bench: 'extract',
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model, memory_gb: Math.round(totalmem() / 2 ** 30), node: process.version },
    scenario: {
      klk_stores: 12,
      klk_products: Number(values['klk-products']),
      stellar_stores: 4,
      stellar_products: Number(values['stellar-products']),
    },
    cycles: results,
    note:
      'The Stellar simulator advances only on the KLK control call for KLK stores; Stellar stock changes with --tick-seconds. Both ' +
      'sides run on the same 2 cores.',
  };
  mkdirSync(join(PROJECT_ROOT, 'bench', 'results'), { recursive: true });
  const file = join(PROJECT_ROOT, 'bench', 'results', `${report.date.slice(0, 10)}-extract.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`written ${file}\n`);
}

await measured();
