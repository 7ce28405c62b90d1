/**
 * A brand-new single-node KRaft broker of a test's own, for what must not be done to the
 * shared one: its very first start (a cold group coordinator, no internal topics yet), and a
 * SIGKILL under running processes followed by a restart on the same storage and ports.
 *
 * It runs the jars `scripts/services up` installed (`$FLUXION_SERVICES_DIR/kafka/libs`, by
 * default `.cache/services/kafka/libs` of this clone, as scripts/services resolves them) with
 * the same server.properties template and log4j configuration, in a fresh temporary directory
 * on free loopback ports. The storage is formatted here (a KRaft cluster id is 16 random bytes
 * in URL-safe base64), so the first `start()` is the broker's very first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../core/paths.ts';

export interface PrivateBroker {
  /** `127.0.0.1:<port>` of its PLAINTEXT listener. */
  brokers: string[];
  dir: string;
  /** Starts the broker (formatting its storage the first time) and waits for its port. */
  start(): Promise<void>;
  /** SIGKILL, as a crashed machine would; the storage stays for the next start. */
  kill(): Promise<void>;
  /** Stops the broker (if running) and deletes its directory. */
  destroy(): Promise<void>;
  /** The broker's own log (warnings and its start/stop lines). */
  serverLog(): string;
}

/** Where scripts/services keeps the Kafka jars for this clone. */
export function kafkaLibsDir(): string {
  const state = process.env.FLUXION_SERVICES_DIR ?? join(PROJECT_ROOT, '.cache', 'services');
  return join(state, 'kafka', 'libs');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function createPrivateBroker(): Promise<PrivateBroker> {
  const libs = kafkaLibsDir();
  if (!existsSync(libs))
    throw new Error(`no Kafka jars at ${libs}: run \`scripts/services up\` first (or set FLUXION_SERVICES_DIR to where it keeps them)`);
  const template = join(PROJECT_ROOT, 'scripts', 'services.d', 'kafka', 'server.properties.template');
  const log4j = join(PROJECT_ROOT, 'scripts', 'services.d', 'kafka', 'log4j2.properties');
  const dir = mkdtempSync(join(tmpdir(), 'fluxion-broker-'));
  const [port, controllerPort, saslPort] = [await freePort(), await freePort(), await freePort()];
  const data = join(dir, 'data');
  const logs = join(dir, 'logs');
  mkdirSync(logs, { recursive: true });
  const properties = join(dir, 'server.properties');
  writeFileSync(
    properties,
    readFileSync(template, 'utf8')
      .replaceAll('@PORT@', String(port))
      .replaceAll('@CONTROLLER_PORT@', String(controllerPort))
      .replaceAll('@SASL_PORT@', String(saslPort))
      .replaceAll('@DATA_DIR@', data)
      .replaceAll('@SASL_USER@', 'fluxion')
      .replaceAll('@SASL_PASSWORD@', randomBytes(12).toString('hex')),
    { mode: 0o600 },
  );
  const classpath = `${libs}/*`;
  const jvm = [
    '-Xms128m',
    '-Xmx512m',
    '-XX:+UseG1GC',
    '-Djava.awt.headless=true',
    `-Dlog4j2.configurationFile=${log4j}`,
    `-Dkafka.logs.dir=${logs}`,
  ];
  let child: ChildProcess | undefined;
  let formatted = false;

  const java = (args: string[], logName: string): ChildProcess =>
    spawn('java', ['-cp', classpath, ...jvm, ...args], {
      stdio: ['ignore', 'ignore', 'ignore'],
      detached: false,
      env: { ...process.env },
    }).once('error', (err) => {
      writeFileSync(join(logs, `${logName}.error`), String(err));
    });

  async function format(): Promise<void> {
    const clusterId = randomBytes(16).toString('base64url');
    const code = await new Promise<number | null>((resolve) =>
      java(['kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', properties], 'format').once('exit', resolve),
    );
    if (code !== 0) throw new Error(`formatting the private broker's storage failed (exit ${code}): see ${logs}`);
    formatted = true;
  }

  const broker: PrivateBroker = {
    brokers: [`127.0.0.1:${port}`],
    dir,
    async start() {
      if (child) throw new Error('the private broker is already running');
      if (!formatted) await format();
      const c = java(['kafka.Kafka', properties], 'broker');
      child = c;
      const exited = new Promise<number | null>((resolve) => c.once('exit', resolve));
      const deadline = Date.now() + 90_000;
      while (!(await portOpen(port))) {
        if (c.exitCode !== null)
          throw new Error(`the private broker exited (${c.exitCode}) before opening port ${port}: ${broker.serverLog().slice(-2_000)}`);
        if (Date.now() > deadline)
          throw new Error(`the private broker did not open port ${port} in 90 s: ${broker.serverLog().slice(-2_000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      void exited;
    },
    async kill() {
      const c = child;
      child = undefined;
      if (!c || c.exitCode !== null) return;
      const exited = new Promise((resolve) => c.once('exit', resolve));
      c.kill('SIGKILL');
      await exited;
      // The port is closed once the process is gone; wait until nothing answers on it.
      while (await portOpen(port)) await new Promise((r) => setTimeout(r, 50));
    },
    async destroy() {
      await broker.kill();
      rmSync(dir, { recursive: true, force: true });
    },
    serverLog() {
      const file = join(logs, 'server.log');
      return existsSync(file) ? readFileSync(file, 'utf8') : '';
    },
  };
  return broker;
}
