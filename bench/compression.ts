#!/usr/bin/env node
/**
 * bench/compression: bytes saved against CPU spent, per topic, for the record-batch codecs
 * Fluxion can use (none, gzip built into kafkajs, zstd from Node's zlib at levels 1 and 3).
 * Reads each topic's records as a real cycle produced them (through core/kafka/), groups
 * them into batches of the producer's size (512 KiB, core/kafka/producer.ts) and compresses
 * and decompresses each batch, reporting the ratio and CPU milliseconds per uncompressed MB.
 * lz4 is not measured: kafkajs has no lz4 codec, and the npm ones are native packages.
 *
 *   node bench/compression.ts --prefix <topic prefix of a run> [--topics a,b] [--out <file>]
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { gzipSync, gunzipSync, zstdCompressSync, zstdDecompressSync, constants } from 'node:zlib';
import { parseArgs } from 'node:util';
import { createContext } from '../cli/context.ts';
import { round } from './lib/stats.ts';

const { values } = parseArgs({
  options: {
    prefix: { type: 'string' },
    topics: {
      type: 'string',
      default:
        'pos.inventario.snapshots,pos.inventario.changes,pos.inventario.state,pos.ventas.raw,pos.ventas,pos.ventas.state,' +
        'alerts.phantom-zeros.state,ops.etl-runs',
    },
    out: { type: 'string' },
  },
});
if (values.prefix === undefined) throw new Error('--prefix is required (the FLUXION_TOPIC_PREFIX of the run to read)');
const BATCH = 512 * 1024;
const codecs: Record<string, { c: (b: Buffer) => Buffer; d: (b: Buffer) => Buffer }> = {
  gzip: { c: (b) => gzipSync(b), d: (b) => gunzipSync(b) },
  zstd1: { c: (b) => zstdCompressSync(b, { params: { [constants.ZSTD_c_compressionLevel]: 1 } }), d: (b) => zstdDecompressSync(b) },
  zstd3: { c: (b) => zstdCompressSync(b, { params: { [constants.ZSTD_c_compressionLevel]: 3 } }), d: (b) => zstdDecompressSync(b) },
};
const cpuMs = (f: () => void) => {
  const c0 = process.cpuUsage();
  f();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
};

const c = createContext(process.env, () => undefined);
const kafka = c.kafka();
const admin = await kafka.admin();
const result: Record<string, unknown> = {};
for (const t of values.topics!.split(',')) {
  const topic = values.prefix + t;
  const offsets = await admin.topicOffsets(topic).catch(() => []);
  const partitions = offsets.map((o) => o.partition);
  if (!partitions.length) continue;
  const batches: Buffer[] = [];
  let cur: Buffer[] = [];
  let size = 0;
  let records = 0;
  await kafka
    .readToEnd(topic, partitions, (r) => {
      const v = r.value ?? Buffer.alloc(0);
      const k = r.key ?? Buffer.alloc(0);
      // A record in a batch: its key and value plus about 10 bytes of varint framing.
      const rec = Buffer.concat([k, v, Buffer.alloc(10)]);
      if (size + rec.length > BATCH && cur.length) {
        batches.push(Buffer.concat(cur));
        cur = [];
        size = 0;
      }
      cur.push(rec);
      size += rec.length;
      records++;
    })
    .catch((e: Error) => process.stderr.write(`${topic}: ${e.message}\n`));
  if (cur.length) batches.push(Buffer.concat(cur));
  const bytes = batches.reduce((s, b) => s + b.length, 0);
  if (!bytes) continue;
  const mb = bytes / 2 ** 20;
  const row: Record<string, unknown> = { records, mb: round(mb, 3) };
  for (const [name, codec] of Object.entries(codecs)) {
    let out: Buffer[] = [];
    const cms = cpuMs(() => (out = batches.map(codec.c)));
    const dms = cpuMs(() => out.forEach(codec.d));
    const outBytes = out.reduce((s, b) => s + b.length, 0);
    row[name] = {
      ratio: round(bytes / outBytes),
      compressed_mb: round(outBytes / 2 ** 20, 3),
      compress_cpu_ms_per_mb: round(cms / mb, 1),
      decompress_cpu_ms_per_mb: round(dms / mb, 1),
    };
  }
  result[t] = row;
  process.stderr.write(`${t}: ${JSON.stringify(row)}\n`);
}
await admin.disconnect();
const report = {
  bench: 'compression',
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, node: process.version, load_average_1m: round(loadavg()[0]!) },
  prefix: values.prefix,
  batch_bytes: BATCH,
  topics: result,
};
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
if (values.out) writeFileSync(values.out, `${JSON.stringify(report, null, 2)}\n`);
process.exit(0);
