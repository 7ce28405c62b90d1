#!/usr/bin/env node
/**
 * bench/state-store-candidates: the embedded key-value stores issue 16 weighs for the
 * processors' state, each in its own child process (so RSS is its own): N puts of ~120-byte
 * values under string keys shaped like the differ's (`ubicacion/deposito/producto`), N random
 * gets, then a reopen (what a restart costs before any record is read). Reports wall times
 * and peak RSS split into RssAnon (heap, native allocations: what the goal bounds) and
 * RssFile (mapped store pages the kernel can reclaim).
 *
 *   node bench/state-store-candidates.ts [--keys 1000000] [--out bench/results/<date>-state-store-candidates.json]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { keys: { type: 'string', default: '1000000' }, out: { type: 'string' }, child: { type: 'string' }, dir: { type: 'string' } },
});
const N = Number(values.keys);

function rss(): { anonMb: number; fileMb: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { anonMb: Math.round(kb('RssAnon') / 1024), fileMb: Math.round(kb('RssFile') / 1024) };
}

const key = (i: number) => `T${String(i % 500).padStart(3, '0')}/01/${String(i).padStart(8, '0')}`;
const value = (i: number) => Buffer.from(`${i}`.padEnd(120, 'x'));

async function runChild(kind: string, dir: string): Promise<Record<string, unknown>> {
  let peak = rss();
  const sample = () => {
    const r = rss();
    peak = { anonMb: Math.max(peak.anonMb, r.anonMb), fileMb: Math.max(peak.fileMb, r.fileMb) };
  };
  const timer = setInterval(sample, 50);
  const order = Array.from({ length: N }, (_, i) => (i * 7_919) % N);
  const t0 = performance.now();
  let putMs = 0;
  let getMs = 0;
  let reopenMs = 0;
  let found = 0;
  if (kind === 'lmdb') {
    const { open } = await import('lmdb');
    let db = open({ path: dir, encoding: 'binary', noSync: false });
    // One write transaction per 10,000 puts, as a processor's transaction of a batch would.
    for (let i = 0; i < N; i += 10_000) {
      await db.transaction(() => {
        for (let j = i; j < Math.min(N, i + 10_000); j++) db.put(key(j), value(j));
      });
    }
    putMs = performance.now() - t0;
    const g0 = performance.now();
    for (const i of order) if (db.get(key(i))) found++;
    getMs = performance.now() - g0;
    await db.close();
    const r0 = performance.now();
    db = open({ path: dir, encoding: 'binary' });
    db.get(key(0));
    reopenMs = performance.now() - r0;
    await db.close();
  } else {
    const { ClassicLevel } = await import('classic-level');
    let db = new ClassicLevel<string, Buffer>(dir, { valueEncoding: 'buffer', cacheSize: 8 * 1024 * 1024 });
    await db.open();
    for (let i = 0; i < N; i += 10_000) {
      const ops = [];
      for (let j = i; j < Math.min(N, i + 10_000); j++) ops.push({ type: 'put' as const, key: key(j), value: value(j) });
      await db.batch(ops);
    }
    putMs = performance.now() - t0;
    const g0 = performance.now();
    for (const i of order) if (await db.get(key(i))) found++;
    getMs = performance.now() - g0;
    await db.close();
    const r0 = performance.now();
    db = new ClassicLevel<string, Buffer>(dir, { valueEncoding: 'buffer', cacheSize: 8 * 1024 * 1024 });
    await db.open();
    await db.get(key(0));
    reopenMs = performance.now() - r0;
    await db.close();
  }
  clearInterval(timer);
  sample();
  const diskMb = Math.round(Number(execFileSync('du', ['-sk', dir], { encoding: 'utf8' }).split('\t')[0]) / 1024);
  return {
    kind,
    keys: N,
    found,
    putS: round(putMs / 1000),
    getS: round(getMs / 1000),
    getUsPerKey: round((getMs * 1000) / N),
    reopenMs: round(reopenMs),
    peakRssAnonMb: peak.anonMb,
    peakRssFileMb: peak.fileMb,
    diskMb,
  };
}

const round = (x: number) => Math.round(x * 100) / 100;

if (values.child) {
  process.stdout.write(JSON.stringify(await runChild(values.child, values.dir!)));
} else {
  const results = [];
  for (const kind of ['lmdb', 'classic-level']) {
    const dir = mkdtempSync(join(tmpdir(), `state-cand-${kind}-`));
    try {
      const out = execFileSync(process.execPath, [new URL(import.meta.url).pathname, '--child', kind, '--dir', dir, '--keys', String(N)], {
        encoding: 'utf8',
        maxBuffer: 1 << 20,
      });
      results.push(JSON.parse(out));
      console.log(results.at(-1));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const out = resolve(values.out ?? `bench/results/${new Date().toISOString().slice(0, 10)}-state-store-candidates.json`);
  mkdirSync(resolve(out, '..'), { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify(
      { bench: 'state-store-candidates', date: new Date().toISOString(), cpus: cpus().length, valueBytes: 120, results },
      null,
      2,
    )}\n`,
  );
  console.log(`written ${out}`);
}
