/**
 * Loaded with `node --import` into a short-lived child: on exit, appends the process's own
 * CPU seconds and peak RSS (getrusage) as one JSON line to $FLUXION_BENCH_USAGE_FILE, which
 * the parent cannot read from /proc once the child is gone.
 */
import { appendFileSync } from 'node:fs';

const file = process.env.FLUXION_BENCH_USAGE_FILE;
if (file) {
  process.on('exit', (code) => {
    const u = process.resourceUsage();
    appendFileSync(
      file,
      `${JSON.stringify({ pid: process.pid, code, cpu_seconds: (u.userCPUTime + u.systemCPUTime) / 1e6, max_rss_mb: u.maxRSS / 1024 })}\n`,
    );
  });
}
