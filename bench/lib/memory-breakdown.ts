/**
 * Loaded with `node --import` into a process under study: says what its resident memory is
 * made of when it peaks. VmHWM (what the benches report) is one number; whether a peak is the
 * V8 heap, Buffers, or the node binary's own pages decides which lever can lower it.
 *
 * Every 200 ms it samples process.memoryUsage() and /proc/self/status; each time RSS passes
 * its previous high by 4 MB it writes one JSON line to stderr:
 *   {"memory_breakdown":{pid, rss_mb, anon_mb, file_mb, heap_total_mb, heap_used_mb, external_mb, array_buffers_mb}}
 * The last such line of a process is its peak. `file_mb` is file-backed pages (mostly the node
 * binary, about 60 MB once type stripping and the modules are loaded): shared and reclaimable,
 * but counted in RSS. `anon_mb` minus heap_total and external is V8's code and metadata,
 * thread stacks and malloc's free lists.
 *
 *   node bench/processors.ts --skip-dedupe --node-args="--import=$PWD/bench/lib/memory-breakdown.ts" --child-logs /tmp/logs
 */
import { readFileSync, writeSync } from 'node:fs';

const STEP = 4 * 1024 * 1024;
const mb = (bytes: number) => Math.round(bytes / (1024 * 1024));

function statusKb(status: string, field: string): number | null {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) : null;
}

let high = 0;
setInterval(() => {
  const m = process.memoryUsage();
  if (m.rss < high + STEP) return;
  high = m.rss;
  let status = '';
  try {
    status = readFileSync('/proc/self/status', 'utf8');
  } catch {
    // Not Linux: the V8 figures alone still say most of it.
  }
  const anon = statusKb(status, 'RssAnon');
  const file = statusKb(status, 'RssFile');
  const line = {
    memory_breakdown: {
      pid: process.pid,
      rss_mb: mb(m.rss),
      anon_mb: anon === null ? null : Math.round(anon / 1024),
      file_mb: file === null ? null : Math.round(file / 1024),
      heap_total_mb: mb(m.heapTotal),
      heap_used_mb: mb(m.heapUsed),
      external_mb: mb(m.external),
      array_buffers_mb: mb(m.arrayBuffers),
    },
  };
  writeSync(2, `${JSON.stringify(line)}\n`);
}, 200).unref();
