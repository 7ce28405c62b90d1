#!/usr/bin/env node
/**
 * bench/extract-stages: where the inventory extractor's CPU goes, stage by stage, against the
 * legacy read of the same rows with the same reading code, in one process and one run (the
 * modules loaded and the JIT warm for every pass alike). Passes over every active store:
 *
 *   read    the legacy read: rows into a Map, as bench/e2e's legacy read keeps them
 *   encode  read + Avro-encoding each row into the snapshot (SnapshotChunks.add)
 *   chunk   encode + assembling the framed chunks (SnapshotChunks.build)
 *   full    extractInventario: the above + one Kafka transaction per store (kafkajs, broker)
 *
 * Rounds alternate the order of the passes (the machine is shared and noisy); the report
 * gives each pass's median CPU seconds, microseconds per row, and its ratio to `read`.
 * It runs against whatever the environment points at: start the simulators and set
 * FLUXION_TOPIC_PREFIX, the KLK/Stellar secrets and the services' variables first
 * (bench/README.md, "extract stages").
 *
 *   node bench/extract-stages.ts [--rounds 3] [--out bench/results/<date>-extract-cpu.json]
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { createContext } from '../cli/context.ts';
import { loadSubjectSchemas } from '../core/avro/schemas.ts';
import { subjectFor } from '../core/registry.ts';
import { topicName } from '../core/topics.ts';
import { extractInventario, mapLimit, readStoreInventario, EXTRACTION_DEFAULTS } from '../extractors/extract-run.ts';
import { createSnapshotEncoding, SnapshotChunks } from '../extractors/snapshot-chunks.ts';
import { median, round } from './lib/stats.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    out: { type: 'string' },
    passes: { type: 'string', default: 'read,encode,chunk,full' },
  },
});
const rounds = Number(values.rounds);
const passes = values.passes!.split(',') as Pass[];
type Pass = 'read' | 'encode' | 'chunk' | 'full';

const c = createContext(process.env, (l) => process.stdout.write(`${l}\n`));
const stores = c.ubicaciones().filter((u) => u.activa);
const deps = c.extractionDeps();
const concurrency = EXTRACTION_DEFAULTS.concurrency;
const topic = topicName('pos.inventario.snapshots', deps.topicPrefix);
const chunkSchema = loadSubjectSchemas().find((s) => s.topic === 'pos.inventario.snapshots')!.schema;
const encoding = createSnapshotEncoding(chunkSchema, await deps.registry.lookupId(subjectFor(topic), chunkSchema));

async function pass(which: Pass): Promise<number> {
  if (which === 'full') {
    const outcomes = await extractInventario(stores, deps, { concurrency });
    const failed = outcomes.filter((o) => o.status !== 'OK');
    if (failed.length) throw new Error(`full pass: ${failed.map((o) => `${o.ubicacionId}: ${o.errorMessage}`).join('; ')}`);
    return outcomes.reduce((s, o) => s + o.rows, 0);
  }
  const counts = await mapLimit(stores, concurrency, async (u) => {
    const signal = AbortSignal.timeout(15 * 60_000);
    if (which === 'read') {
      const inv = new Map<string, unknown[]>();
      const snapshotId = randomUUID();
      const takenAt = new Date();
      for await (const r of readStoreInventario(u, deps, {}, signal)) {
        inv.set(`${r.deposito}\u0000${r.producto_id}`, [
          u.id,
          r.deposito,
          r.producto_id,
          r.cantidad,
          r.costo,
          r.precio,
          r.activo,
          snapshotId,
          takenAt,
        ]);
      }
      return [...inv.values()].length;
    }
    const chunks = new SnapshotChunks(encoding, {
      snapshotId: randomUUID(),
      ubicacionId: u.id,
      source: u.pos === 'klk' ? 'KLK' : 'STELLAR',
      takenAt: new Date(),
    });
    for await (const r of readStoreInventario(u, deps, {}, signal)) chunks.add(r);
    if (which === 'chunk') chunks.build();
    return chunks.rowCount;
  });
  return counts.reduce((s, n) => s + n, 0);
}

const cpuS: Record<string, number[]> = {};
const wallS: Record<string, number[]> = {};
let rows = 0;
const load = [loadavg()[0]!];
for (let k = 0; k < rounds; k++) {
  const order = k % 2 ? [...passes].reverse() : passes;
  for (const which of order) {
    global.gc?.();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    rows = await pass(which);
    const cpu = process.cpuUsage(cpu0);
    (cpuS[which] ??= []).push((cpu.user + cpu.system) / 1e6);
    (wallS[which] ??= []).push((performance.now() - t0) / 1000);
    process.stderr.write(
      `round ${k + 1} ${which}: ${round(cpuS[which]!.at(-1)!)} CPU s, ${round(wallS[which]!.at(-1)!)} s, ${rows} rows\n`,
    );
  }
  load.push(loadavg()[0]!);
}
const readCpu = median(cpuS.read ?? [Number.NaN]);
const report = {
  bench: 'extract-stages',
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, node: process.version, load_average_1m: load.map((l) => round(l)) },
  scenario: { stores: stores.length, rows, concurrency, rounds },
  passes: Object.fromEntries(
    passes.map((p) => [
      p,
      {
        cpu_seconds: cpuS[p]!.map((x) => round(x)),
        median_cpu_seconds: round(median(cpuS[p]!)),
        median_wall_seconds: round(median(wallS[p]!)),
        us_per_row: round((median(cpuS[p]!) * 1e6) / rows, 1),
        ratio_to_read: round(median(cpuS[p]!) / readCpu),
      },
    ]),
  ),
};
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
if (values.out) writeFileSync(values.out, `${JSON.stringify(report, null, 2)}\n`);
await c.close();
process.exit(0);
