/**
 * `fluxion demo`'s child processes (cli/demo.ts): each Fluxion process started as
 * `fluxion <args>` with its own log file, stopped with SIGTERM then SIGKILL, and named with
 * the end of its log when it dies; and the ports the demo needs, checked free before it starts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Ubicacion } from '../core/config/ubicaciones.ts';
import { UsageError } from '../core/errors.ts';
import { PROJECT_ROOT } from '../core/paths.ts';

export interface Child {
  name: string;
  log: string;
  proc: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `fluxion <args>` as a child whose output goes to `<logDir>/<name>.log` (this run's only). */
export function startChild(name: string, args: string[], env: NodeJS.ProcessEnv, logDir: string): Child {
  const log = join(logDir, `${name}.log`);
  const stream = createWriteStream(log, { flags: 'w' });
  const proc = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'fluxion.ts'), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.pipe(stream);
  proc.stderr!.pipe(stream);
  return { name, log, proc, exited: new Promise((done) => proc.once('exit', (code, signal) => done({ code, signal }))) };
}

export async function stopChildren(children: Child[], out: (line: string) => void): Promise<void> {
  for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGTERM');
  await Promise.race([Promise.all(children.map((c) => c.exited)), sleep(20_000)]);
  for (const c of children) {
    if (c.proc.exitCode === null && c.proc.signalCode === null) {
      out(`${c.name} did not stop within 20 s of SIGTERM: killed`);
      c.proc.kill('SIGKILL');
    }
  }
}

/** The last lines of a child's log, for the message that it died. */
export function tail(file: string, lines: number): string[] {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines);
  } catch {
    return [];
  }
}

/** Whether something already listens on host:port (a listen attempt that fails with EADDRINUSE). */
export function portTaken(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'EADDRINUSE'));
    probe.listen(port, host, () => probe.close(() => done(false)));
  });
}

/** The simulators' and the dashboard's ports must be free: a clear refusal beats a crash half-way. */
export async function checkPorts(stores: Ubicacion[], dashboardPort: number | null): Promise<void> {
  const wanted: Array<{ host: string; port: number; what: string }> = [];
  const klk = stores.find((u): u is Extract<Ubicacion, { pos: 'klk' }> => u.pos === 'klk');
  if (klk)
    wanted.push({ host: new URL(klk.klk.baseUrl).hostname, port: Number(new URL(klk.klk.baseUrl).port), what: 'the KLK simulator' });
  for (const u of stores)
    if (u.pos === 'stellar') wanted.push({ host: u.stellar.host, port: u.stellar.port, what: `the Stellar simulator of ${u.id}` });
  if (dashboardPort !== null) wanted.push({ host: '127.0.0.1', port: dashboardPort, what: 'the dashboard (--dashboard-port)' });
  const taken: string[] = [];
  for (const w of wanted) if (await portTaken(w.host, w.port)) taken.push(`${w.host}:${w.port} (${w.what})`);
  if (taken.length)
    throw new UsageError(
      `in use: ${taken.join(', ')}. Is another demo, or a test running the simulators, still going? \`ss -ltnp\` names the process`,
    );
}

export function reportDeath(ch: Child & { code: number | null; signal: NodeJS.Signals | null }, out: (line: string) => void): void {
  out(`error: ${ch.name} ended before the demo did (${ch.signal ? `signal ${ch.signal}` : `exit code ${ch.code}`}); its log: ${ch.log}`);
  const last = tail(ch.log, 10).filter((l) => l.trim());
  if (last.length === 0) out(`  ${ch.name}.log is empty`);
  for (const line of last) out(`  ${ch.name}.log: ${line}`);
}
