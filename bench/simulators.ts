#!/usr/bin/env node
/**
 * bench/simulators: the KLK simulator's memory and CPU at a given size. Starts
 * `fluxion simulate klk` as its own process for N stores x P products, reads every store's
 * inventory pages (and the day's sales) once with plain HTTP, as an extractor would, and
 * reports the simulator's peak RSS (VmHWM), its anonymous memory (RssAnon) and its CPU
 * seconds, from /proc. Runs are merged into the results file by (label, size), so a before and
 * an after land side by side.
 *
 *   node bench/simulators.ts [--sizes 12x3000,500x20000] [--label after] [--cycles 1]
 *        [--fluxion <checkout>/bin/fluxion.ts] [--concurrency 4] [--page-size 1000]
 *        [--max-rss-mb 8000] [--timeout-s 1200] [--out bench/results/<date>-simulators.json]
 *
 * --fluxion measures another checkout's simulator (e.g. main's, in a `git worktree`).
 * --cycles N reads N times, advancing 30 simulated minutes between reads.
 * --node-options is the simulator's NODE_OPTIONS (default the image's, as bench/e2e sets it).
 * --node-args '--trace-gc' and --child-log <file> (the simulator's output) help find why.
 * Needs no services, but the CLI validates its environment: export the services' variables
 * (`eval "$(scripts/services env)"`) or any values it accepts.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT } from '../core/paths.ts';
import { writeKlkStoreList } from './lib/klk-store-list.ts';
import { procCpuSeconds, procStatusKb } from './lib/proc.ts';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '12x3000,500x20000' },
    label: { type: 'string', default: 'after' },
    cycles: { type: 'string', default: '1' },
    fluxion: { type: 'string', default: join(PROJECT_ROOT, 'bin', 'fluxion.ts') },
    concurrency: { type: 'string', default: '4' },
    'page-size': { type: 'string', default: '1000' },
    'max-rss-mb': { type: 'string', default: '8000' },
    'timeout-s': { type: 'string', default: '1200' },
    port: { type: 'string', default: '38791' },
    'node-args': { type: 'string', default: '' },
    // As the image runs every process (Dockerfile) and bench/e2e runs the simulators.
    'node-options': { type: 'string', default: '--max-semi-space-size=8' },
    'child-log': { type: 'string' },
    out: { type: 'string', default: join(PROJECT_ROOT, 'bench', 'results', `${new Date().toISOString().slice(0, 10)}-simulators.json`) },
  },
});

const out = (line: string) => process.stdout.write(`${line}\n`);
const int = (name: keyof typeof values) => {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got "${String(values[name])}"`);
  return n;
};
const sizes = String(values.sizes)
  .split(',')
  .map((s) => {
    const m = /^(\d+)x(\d+)$/.exec(s.trim());
    if (!m) throw new Error(`--sizes takes <stores>x<products>[,...], got "${s}"`);
    return { stores: Number(m[1]), products: Number(m[2]) };
  });
const cycles = int('cycles');
const concurrency = int('concurrency');
const pageSize = int('page-size');
const maxRssMb = int('max-rss-mb');
const timeoutMs = int('timeout-s') * 1000;
const port = int('port');
const fluxion = resolve(String(values.fluxion));
const mb = (kb: number) => Math.round(kb / 1024);

interface Run {
  label: string;
  stores: number;
  products: number;
  checkout: string;
  commit: string;
  node_options: string;
  node_args?: string;
  ok: boolean;
  error?: string;
  startup_s?: number;
  ready_rss_mb?: number;
  read_s?: number;
  rows_read?: number;
  pages_read?: number;
  ventas_lines_read?: number;
  rows_per_s?: number;
  peak_rss_mb: number;
  rss_anon_mb_at_end?: number;
  cpu_s: number;
  cpu_read_s?: number;
}

async function getJson(url: string, apiKey?: string): Promise<Record<string, unknown>> {
  const r = await fetch(url, { headers: apiKey ? { 'x-api-key': apiKey } : {} });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`${url}: HTTP ${r.status} ${text.slice(0, 200)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

/** Reads every inventory page and the day's sales of each store, `concurrency` stores at a time. */
async function readAll(
  base: string,
  stores: Array<{ id: string; key: string }>,
  fecha: string,
): Promise<{ rows: number; pages: number; ventas: number }> {
  let rows = 0;
  let pages = 0;
  let ventas = 0;
  let next = 0;
  const worker = async () => {
    while (next < stores.length) {
      const { id, key } = stores[next++]!;
      for (const [path, query] of [
        ['inventario', 'deposito=01'],
        ['ventas', `fecha=${fecha}`],
      ] as const) {
        for (let page = 1, total = 1; page <= total; page++) {
          const body = await getJson(`${base}/${id}/api/v1/${path}?${query}&page=${page}&page_size=${pageSize}`, key);
          total = body.total_pages as number;
          const n = (body.items as unknown[]).length;
          pages++;
          if (path === 'inventario') rows += n;
          else ventas += n;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { rows, pages, ventas };
}

async function measure(stores: number, products: number): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'fluxion-bench-sims-'));
  const checkout = dirname(dirname(fluxion));
  const commit = execFileSync('git', ['-C', checkout, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const list = writeKlkStoreList(join(dir, 'ubicaciones.yaml'), stores, port, 'tienda_s', 'generated by bench/simulators').map((s) => ({
    ...s,
    key: `bench-key-${s.id}`,
  }));
  const env = {
    ...process.env,
    ...Object.fromEntries(list.map((s) => [s.apiKeyEnv, s.key])),
    ETL_ENVIRONMENT: 'local',
    FLUXION_UBICACIONES_FILE: join(dir, 'ubicaciones.yaml'),
    LOG_LEVEL: 'warn',
    NODE_OPTIONS: String(values['node-options']),
  };
  const started = performance.now();
  const nodeArgs = String(values['node-args']).split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, fluxion, 'simulate', 'klk', '--products', String(products)], {
    cwd: checkout,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (values['child-log']) {
    const log = createWriteStream(String(values['child-log']));
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
  }
  const pid = child.pid!;
  let sampledKb = 0;
  let lastCpu = 0;
  let tail = '';
  let fatal = '';
  child.stderr!.on('data', (d: Buffer) => {
    tail = (tail + d.toString()).slice(-2000);
    fatal ||= /FATAL ERROR[^\n]*|\w*Error: [^\n]*/.exec(d.toString())?.[0] ?? '';
  });
  const why = () => fatal || tail.trim().split('\n').slice(-3).join(' | ');
  const exited = new Promise<number>((r) => child.on('exit', (code, signal) => r(code ?? (signal ? 128 : 1))));
  let killedFor: string | undefined;
  const sampler = setInterval(() => {
    const rss = procStatusKb(pid, 'VmRSS');
    if (rss === 0) return;
    sampledKb = Math.max(sampledKb, procStatusKb(pid, 'VmHWM'), rss);
    lastCpu = Math.max(lastCpu, procCpuSeconds(pid));
    if (mb(rss) > maxRssMb && !killedFor) {
      killedFor = `killed by the bench at ${mb(rss)} MB RSS (--max-rss-mb ${maxRssMb})`;
      child.kill('SIGKILL');
    }
  }, 100);
  const run: Run = {
    label: String(values.label),
    stores,
    products,
    checkout,
    commit,
    node_options: env.NODE_OPTIONS,
    ...(nodeArgs.length ? { node_args: nodeArgs.join(' ') } : {}),
    ok: false,
    peak_rss_mb: 0,
    cpu_s: 0,
  };
  const fail = (error: string) => ({ ...run, error, peak_rss_mb: mb(sampledKb), cpu_s: lastCpu });
  const deadline = setTimeout(() => {
    killedFor ??= `killed by the bench after --timeout-s ${timeoutMs / 1000}`;
    child.kill('SIGKILL');
  }, timeoutMs);
  try {
    const ready = await Promise.race([
      new Promise<true>((r) => {
        let text = '';
        child.stdout!.on('data', (d: Buffer) => {
          text += d.toString();
          if (text.includes('KLK simulator:')) r(true);
        });
      }),
      exited.then((code) => code),
    ]);
    if (ready !== true)
      return fail(
        killedFor ?? `exited (${ready}) before it was ready after ${((performance.now() - started) / 1000).toFixed(1)} s: ${why()}`,
      );
    run.startup_s = (performance.now() - started) / 1000;
    run.ready_rss_mb = mb(procStatusKb(pid, 'VmRSS'));
    const cpuAtReady = procCpuSeconds(pid);
    const base = `http://127.0.0.1:${port}`;
    const readStart = performance.now();
    let totals = { rows: 0, pages: 0, ventas: 0 };
    for (let cycle = 1; cycle <= cycles; cycle++) {
      if (cycle > 1)
        await fetch(`${base}/_control/advance`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"minutes":30}',
        }).then((r) => r.text());
      const clock = ((await getJson(`${base}/_control/stores`)) as unknown as Array<{ clock: string }>)[0]!.clock;
      const fecha = new Date(new Date(clock).getTime() - 4 * 3_600_000).toISOString().slice(0, 10); // Caracas date
      const read = await Promise.race([readAll(base, list, fecha), exited.then((code) => code)]);
      if (typeof read === 'number') return fail(killedFor ?? `exited (${read}) while being read: ${why()}`);
      totals = { rows: totals.rows + read.rows, pages: totals.pages + read.pages, ventas: totals.ventas + read.ventas };
    }
    run.read_s = (performance.now() - readStart) / 1000;
    run.rows_read = totals.rows;
    run.pages_read = totals.pages;
    run.ventas_lines_read = totals.ventas;
    run.rows_per_s = Math.round(totals.rows / run.read_s);
    run.peak_rss_mb = mb(Math.max(sampledKb, procStatusKb(pid, 'VmHWM')));
    run.rss_anon_mb_at_end = mb(procStatusKb(pid, 'RssAnon'));
    run.cpu_s = procCpuSeconds(pid);
    run.cpu_read_s = Math.round((run.cpu_s - cpuAtReady) * 100) / 100;
    run.ok = true;
    return run;
  } catch (err) {
    return fail(killedFor ?? (err as Error).message);
  } finally {
    clearTimeout(deadline);
    clearInterval(sampler);
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

const file = resolve(String(values.out));
const previous = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { runs: Run[] }) : { runs: [] };
for (const { stores, products } of sizes) {
  out(`bench/simulators ${values.label}: ${stores} stores x ${products.toLocaleString('en-US')} products (${fluxion})`);
  const run = await measure(stores, products);
  out(
    run.ok
      ? `  ready in ${run.startup_s!.toFixed(1)} s at ${run.ready_rss_mb} MB; read ${run.rows_read!.toLocaleString('en-US')} rows ` +
          `(${run.pages_read} pages) in ${run.read_s!.toFixed(1)} s; peak RSS ${run.peak_rss_mb} MB, RssAnon ${run.rss_anon_mb_at_end} ` +
          `MB, CPU ${run.cpu_s.toFixed(1)} s (${run.cpu_read_s} s reading)`
      : `  FAILED: ${run.error} (peak RSS ${run.peak_rss_mb} MB, CPU ${run.cpu_s.toFixed(1)} s)`,
  );
  previous.runs = previous.runs.filter(
    (r) => !(r.label === run.label && r.stores === stores && r.products === products && r.node_options === run.node_options),
  );
  previous.runs.push(run);
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        bench: 'simulators',
        date: new Date().toISOString(),
        machine: { cpus: cpus().length, memory_gb: Math.round(totalmem() / 2 ** 30) },
        concurrency,
        page_size: pageSize,
        cycles,
        runs: previous.runs,
      },
      null,
      2,
    )}\n`,
  );
}
out(`results: ${file}`);
