/**
 * The chaos run's processes (test/chaos/chaos-run.ts): `scripts/services` for bouncing Kafka
 * and PostgreSQL, Fluxion commands as children with their logs, and the supervisor that
 * restarts a long-running one as a container runtime would.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PROJECT_ROOT } from '../../core/paths.ts';

import type { LongRunning } from './chaos-faults.ts';

export const SERVICES = join(PROJECT_ROOT, 'scripts', 'services');
export const FLUXION = join(PROJECT_ROOT, 'bin', 'fluxion.ts');

export function services(...args: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(SERVICES, args, { timeout: 120_000 }, (err, _out, stderr) =>
      err ? reject(new Error(`scripts/services ${args.join(' ')}: ${stderr || err.message}`)) : resolve(),
    ),
  );
}

export interface Child {
  proc: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startFluxion(args: string[], env: NodeJS.ProcessEnv, logFile: string, stdout?: (s: string) => void): Child {
  const log = createWriteStream(logFile, { flags: 'a' });
  const proc = spawn(process.execPath, [FLUXION, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d: Buffer) => stdout?.(d.toString()));
  proc.stdout!.pipe(log);
  proc.stderr!.pipe(log);
  return { proc, exited: new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal }))) };
}

/**
 * Keeps one long-running process up: started again 0.5-1.5 s after it ends, whatever the
 * reason, as `restart: unless-stopped` does.
 */
export function supervise(
  name: LongRunning,
  args: string[],
  env: NodeJS.ProcessEnv,
  logDir: string,
  random: () => number,
  log: (l: string) => void,
) {
  let current: Child | undefined;
  let stopping = false;
  let starts = 0;
  const loop = (async () => {
    while (!stopping) {
      starts++;
      current = startFluxion(args, env, join(logDir, `${name}.log`));
      const { code, signal } = await current.exited;
      if (stopping) break;
      if (signal !== 'SIGKILL') log(`${name} exited by itself (code ${code}, signal ${signal}): restarting`);
      await sleep(500 + Math.floor(random() * 1_000));
    }
  })();
  return {
    name,
    starts: () => starts,
    kill(signal: 'SIGKILL' | 'SIGSTOP' | 'SIGCONT' = 'SIGKILL'): boolean {
      if (!current || current.proc.exitCode !== null || current.proc.signalCode !== null) return false;
      return current.proc.kill(signal);
    },
    async stop(): Promise<void> {
      stopping = true;
      if (current && current.proc.exitCode === null && current.proc.signalCode === null) {
        current.proc.kill('SIGTERM');
        const done = await Promise.race([current.exited.then(() => true), sleep(20_000).then(() => false)]);
        if (!done) current.proc.kill('SIGKILL');
      }
      await loop;
    },
  };
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
