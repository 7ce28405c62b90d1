/**
 * Child processes of a bench: a node process whose output goes to a log file (optional) and
 * is parsed as pino JSON lines (waitLog), with its CPU and peak RSS from /proc; and the
 * Prometheus scrape of a child's /metrics.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { PROJECT_ROOT } from '../../core/paths.ts';
import { procCpuSeconds, procStatusKb, resetPeakRss } from './proc.ts';

export interface LogLine {
  at: number;
  line: Record<string, unknown>;
}

export interface Child {
  name: string;
  pid: number;
  exited: Promise<number>;
  /** The `count`-th log line with this message (1-based), with the instant it arrived. */
  waitLog(msg: string, count?: number): Promise<LogLine>;
  logs(msg: string): LogLine[];
  /** The ceiling consumer's counts once they reach `records` (printed after each commit); the last ones after 10 s. */
  progress(records?: number): Promise<{ rows: number; records: number }>;
  cpuSeconds(): number;
  rssMb(): number;
  /** Peak RSS since the last resetPeak (VmHWM, reset through clear_refs, and VmRSS sampled every 50 ms). */
  peakRssMb(): number;
  /**
   * Peaks since the last resetPeak of RssAnon (heap, buffers, native allocations) and RssFile
   * (mapped files: a state store's pages, reclaimable), sampled every 50 ms.
   */
  peakRssSplitMb(): { anon: number; file: number };
  resetPeak(): void;
  pause(): void;
  resume(): void;
  stop(): Promise<number>;
  tail(): string;
  /** Warnings and errors the process logged since the last call, with how often. */
  takeWarnings(): Record<string, number>;
}

export function startChild(name: string, args: string[], env: NodeJS.ProcessEnv, logDir?: string): Child {
  const proc: ChildProcess = spawn(process.execPath, args, { env, cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = proc.pid!;
  const logFile = logDir ? createWriteStream(join(logDir, `${name}-${pid}.log`)) : undefined;
  const lines: LogLine[] = [];
  const warnings: string[] = [];
  const tailLines: string[] = [];
  const waiters: Array<() => void> = [];
  let progress = { rows: 0, records: 0 };
  let alive = true;
  const onText = (stream: NodeJS.ReadableStream) => {
    let buffered = '';
    stream.on('data', (d: Buffer) => {
      const at = performance.now();
      logFile?.write(d);
      buffered += d.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      for (const text of parts) {
        tailLines.push(text);
        if (tailLines.length > 40) tailLines.shift();
        if (!text.startsWith('{')) continue;
        let line: Record<string, unknown>;
        try {
          line = JSON.parse(text) as Record<string, unknown>;
        } catch {
          continue;
        }
        if (typeof line.rows === 'number' && typeof line.records === 'number' && line.msg === undefined)
          progress = { rows: line.rows, records: line.records };
        else lines.push({ at, line });
        if (line.level === 'warn' || line.level === 'error' || line.level === 'fatal')
          warnings.push(
            `${line.level}: ${String(line.msg)}${line.err ? ` (${String((line.err as { message?: string }).message ?? line.err)})` : ''}`,
          );
      }
      for (const w of waiters.splice(0)) w();
    });
  };
  onText(proc.stdout!);
  onText(proc.stderr!);
  const exited = new Promise<number>((resolveExit) =>
    proc.on('exit', (code, signal) => {
      alive = false;
      for (const w of waiters.splice(0)) w();
      resolveExit(code ?? (signal ? 128 : 1));
    }),
  );
  proc.on('close', () => logFile?.end()); // after the last output, unlike 'exit'
  let sampledKb = 0;
  let anonKb = 0;
  let fileKb = 0;
  const sampler = setInterval(() => {
    if (!alive) return;
    try {
      sampledKb = Math.max(sampledKb, procStatusKb(pid, 'VmRSS'));
      anonKb = Math.max(anonKb, procStatusKb(pid, 'RssAnon'));
      fileKb = Math.max(fileKb, procStatusKb(pid, 'RssFile'));
    } catch {
      // exited between the check and the read
    }
  }, 50);
  sampler.unref();
  void exited.then(() => clearInterval(sampler));
  const child: Child = {
    name,
    pid,
    exited,
    async waitLog(msg, count = 1) {
      for (;;) {
        const found = lines.filter((l) => l.line.msg === msg);
        if (found.length >= count) return found[count - 1]!;
        if (!alive) throw new Error(`${name} exited before logging "${msg}":\n${child.tail()}`);
        await new Promise<void>((r) => waiters.push(r));
      }
    },
    logs: (msg) => lines.filter((l) => l.line.msg === msg),
    async progress(records = 0) {
      const deadline = performance.now() + 10_000;
      while (progress.records < records && alive && performance.now() < deadline) await sleep(20);
      return progress;
    },
    cpuSeconds: () => procCpuSeconds(pid),
    rssMb: () => procStatusKb(pid, 'VmRSS') / 1024,
    peakRssMb: () => Math.max(procStatusKb(pid, 'VmHWM'), sampledKb) / 1024,
    peakRssSplitMb: () => ({ anon: Math.round(anonKb / 1024), file: Math.round(fileKb / 1024) }),
    resetPeak() {
      resetPeakRss(pid); // resets VmHWM to the current RSS
      sampledKb = procStatusKb(pid, 'VmRSS');
      anonKb = procStatusKb(pid, 'RssAnon');
      fileKb = procStatusKb(pid, 'RssFile');
    },
    pause: () => void proc.kill('SIGSTOP'),
    resume: () => void proc.kill('SIGCONT'),
    async stop() {
      if (!alive) return exited;
      proc.kill('SIGCONT');
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    tail: () => tailLines.join('\n'),
    takeWarnings() {
      const counted: Record<string, number> = {};
      for (const w of warnings.splice(0)) counted[w] = (counted[w] ?? 0) + 1;
      return counted;
    },
  };
  return child;
}

/** A free TCP port for a child's /metrics. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** Sum of a Prometheus counter's samples whose labels include `labels`. */
export async function scrape(port: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
