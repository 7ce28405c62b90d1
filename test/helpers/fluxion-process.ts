/**
 * Long-running `fluxion` commands as real child processes (as a container runs them), with
 * their JSON log lines kept for assertions, and a fake SendGrid that keeps every mail the
 * notifier sends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../core/paths.ts';

export interface FluxionProcess {
  name: string;
  child: ChildProcess;
  /** Everything it wrote to stderr (pino's JSON lines) so far. */
  log(): string;
  /** Its log lines parsed, from character `from` of log() on. */
  lines(from?: number): Array<Record<string, unknown>>;
  exited: Promise<number | null>;
  alive(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<number | null>;
}

export function startFluxion(name: string, args: string[], env: Record<string, string>): FluxionProcess {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'bin', 'fluxion.ts'), ...args], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', SENTRY_DSN: '', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let text = '';
  child.stderr!.on('data', (d: Buffer) => {
    text += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const p: FluxionProcess = {
    name,
    child,
    log: () => text,
    lines: (from = 0) =>
      text
        .slice(from)
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    exited,
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop(graceMs = 15_000) {
      if (!p.alive()) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  return p;
}

export interface FakeSendGrid {
  url: string;
  /** Subjects of the mails received, in order. */
  subjects: string[];
  close(): Promise<void>;
}

/** Answers 202 to every POST /v3/mail/send and keeps its subject. */
export async function fakeSendGrid(): Promise<FakeSendGrid> {
  const subjects: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v3/mail/send') return void res.writeHead(404).end();
      subjects.push((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { subject: string }).subject);
      res.writeHead(202).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    subjects,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
