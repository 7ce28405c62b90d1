/**
 * Progress of a long operator command (a replay): a one-line bar redrawn on a terminal,
 * plain periodic log lines otherwise (CI, `docker logs`, a pipe), where a redrawn line
 * would be noise.
 */
import type { Logger } from './logger.ts';

export interface Progress {
  /** `done` items of `total` so far. */
  update(done: number): void;
  /** Final line (always printed). */
  finish(message: string): void;
}

export interface ProgressOptions {
  label: string;
  total: number;
  /** Where the bar is drawn; its `isTTY` decides bar or log lines. */
  stream: NodeJS.WriteStream | { isTTY?: boolean; write(s: string): unknown };
  logger: Logger;
  /** Between log lines when not a terminal (default 5 s). */
  logEveryMs?: number;
  now?: () => number;
}

const WIDTH = 30;

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

/** "[=====>     ] 1,234/5,000 25% 3,400/s ETA 0m01s" */
export function progressLine(label: string, done: number, total: number, elapsedMs: number): string {
  const share = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(share * WIDTH);
  const bar = `${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? '>' : ''}${' '.repeat(WIDTH - filled)}`;
  const rate = elapsedMs > 0 ? (done / elapsedMs) * 1000 : 0;
  const eta = rate > 0 ? (total - done) / rate : Number.POSITIVE_INFINITY;
  const counts = `${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')}`;
  return `${label} [${bar}] ${counts} ${Math.floor(share * 100)}% ${Math.round(rate).toLocaleString('en-US')}/s ETA ${duration(eta)}`;
}

export function createProgress(o: ProgressOptions): Progress {
  const now = o.now ?? Date.now;
  const started = now();
  const every = o.logEveryMs ?? 5_000;
  let lastDraw = 0;
  let last = 0;
  return {
    update(done) {
      last = done;
      const t = now();
      if (o.stream.isTTY) {
        if (t - lastDraw < 100) return;
        lastDraw = t;
        o.stream.write(`\r${progressLine(o.label, done, o.total, t - started)}`);
      } else if (t - lastDraw >= every) {
        lastDraw = t;
        o.logger.info({ done, total: o.total }, progressLine(o.label, done, o.total, t - started));
      }
    },
    finish(message) {
      if (o.stream.isTTY) o.stream.write(`\r${progressLine(o.label, last, o.total, now() - started)}\n`);
      o.logger.info({ done: last, total: o.total, ms: now() - started }, message);
    },
  };
}
