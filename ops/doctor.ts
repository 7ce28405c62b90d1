/**
 * `fluxion doctor`: the preflight a container entrypoint or a person runs before a job (the
 * old entrypoint pinged the VPN gateway). Every check runs at once under its own timeout and
 * ends as one row: part, target (never a secret), OK / FAIL / SKIP, duration, detail.
 *
 * The runner, the migration comparison, the KLK verdict, the targets and the report formats
 * are pure and unit-tested (test/unit/doctor.test.ts); the checks are small I/O functions over
 * clients the command builds from the configuration (cli/doctor.ts).
 */
import { connect as tcpConnect } from 'node:net';
import { readStellarTls, type Ubicacion } from '../core/config/ubicaciones.ts';
import { ConfigError } from '../core/errors.ts';
import type { KafkaClient, FluxionAdmin } from '../core/kafka/types.ts';
import { closedConnectionHint } from '../core/kafka/faults.ts';
import type { Logger } from '../core/logger.ts';
import { scrubSecrets } from '../core/logger.ts';
import { createPool, describeDatabase, type Pool } from '../core/postgres.ts';
import type { FluxionRegistry } from '../core/registry.ts';
import { readMigrations } from './migrate.ts';

export type CheckStatus = 'OK' | 'FAIL' | 'SKIP';

export interface CheckResult {
  part: string;
  target: string;
  status: CheckStatus;
  /** A required part that fails makes the exit code 1. */
  required: boolean;
  durationMs: number;
  detail: string;
}

/** What a check resolves to: OK with a detail, or SKIP with the reason. A check that throws FAILs with the error's message. */
export type CheckOutcome = string | { status: 'OK' | 'SKIP'; detail: string };

export interface DoctorCheck {
  part: string;
  target: string;
  /** Default true. */
  required?: boolean;
  /** Part of an earlier check that must be OK for this one to run (SKIP otherwise). */
  dependsOn?: string;
  /** `signal` aborts when the check's time is up: close what it opened. */
  run(signal: AbortSignal): Promise<CheckOutcome>;
}

export interface RunOptions {
  timeoutMs: number;
  /** Values that must never appear in a detail (keys, passwords): replaced by ***. */
  secrets?: string[];
  clock?: () => number;
}

export class CheckTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`no answer in ${timeoutMs} ms`);
    this.name = 'CheckTimeoutError';
  }
}

/** One line, no URL password, no known secret. */
export function cleanDetail(text: string, secrets: string[] = []): string {
  let out = scrubSecrets(text).replace(/\s*\n\s*/g, '; ').trim();
  // Longest first, so a secret containing another is replaced whole.
  for (const s of [...secrets].filter((x) => x.length >= 3).sort((a, b) => b.length - a.length)) out = out.split(s).join('***');
  return out;
}

/** Runs every check concurrently, each under `timeoutMs` (a dependent one starts when its dependency ends); results in the checks' order. */
export async function runChecks(checks: DoctorCheck[], options: RunOptions): Promise<CheckResult[]> {
  const clock = options.clock ?? (() => performance.now());
  const byPart = new Map<string, Promise<CheckResult>>();
  const all = checks.map((check) => {
    const required = check.required ?? true;
    const result = (async (): Promise<CheckResult> => {
      const dependency = check.dependsOn ? byPart.get(check.dependsOn) : undefined;
      if (dependency) {
        const dep = await dependency;
        if (dep.status !== 'OK') return { part: check.part, target: check.target, status: 'SKIP', required, durationMs: 0, detail: `${dep.part} is ${dep.status}` };
      }
      const started = clock();
      const controller = new AbortController();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const err = new CheckTimeoutError(options.timeoutMs);
          controller.abort(err);
          reject(err);
        }, options.timeoutMs);
      });
      const finish = (status: CheckStatus, detail: string): CheckResult => ({
        part: check.part,
        target: check.target,
        status,
        required,
        durationMs: Math.max(0, Math.round(clock() - started)),
        detail: cleanDetail(detail, options.secrets),
      });
      try {
        const outcome = await Promise.race([check.run(controller.signal), timeout]);
        return typeof outcome === 'string' ? finish('OK', outcome) : finish(outcome.status, outcome.detail);
      } catch (err) {
        return finish('FAIL', (err as Error)?.message ?? String(err));
      } finally {
        clearTimeout(timer);
      }
    })();
    if (!byPart.has(check.part)) byPart.set(check.part, result);
    return result;
  });
  return Promise.all(all);
}

/** 2 when the configuration is invalid, 1 when a required part failed, 0 otherwise. */
export function doctorExitCode(results: CheckResult[]): 0 | 1 | 2 {
  if (results.some((r) => r.part === 'config' && r.status === 'FAIL')) return 2;
  return results.some((r) => r.required && r.status === 'FAIL') ? 1 : 0;
}

export function summaryLine(results: CheckResult[]): string {
  const count = (s: CheckStatus) => results.filter((r) => r.status === s).length;
  const failed = results.filter((r) => r.status === 'FAIL');
  const code = doctorExitCode(results);
  const counts = `${count('OK')} OK, ${count('FAIL')} FAIL, ${count('SKIP')} SKIP`;
  if (failed.length === 0) return `doctor: ${counts}: ready`;
  return `doctor: ${counts}: ${code === 2 ? 'configuration invalid' : 'not ready'}; failed: ${failed.map((r) => r.part).join(', ')}`;
}

function formatDuration(ms: number): string {
  return ms < 10_000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** The table for people: aligned columns, the detail last and whole. */
export function formatTable(results: CheckResult[]): string[] {
  const header = ['part', 'target', 'status', 'duration', 'detail'];
  const rows = results.map((r) => [r.part, r.target, r.status, formatDuration(r.durationMs), r.detail]);
  const width = (i: number) => Math.max(header[i]!.length, ...rows.map((row) => row[i]!.length));
  const widths = [width(0), width(1), width(2), width(3)];
  const line = (cells: string[]) =>
    [cells[0]!.padEnd(widths[0]!), cells[1]!.padEnd(widths[1]!), cells[2]!.padEnd(widths[2]!), cells[3]!.padStart(widths[3]!), cells[4]!].join('  ').trimEnd();
  return [line(header), ...rows.map(line), summaryLine(results)];
}

/** The report for scripts: one JSON document. */
export function formatJson(results: CheckResult[]): string {
  const count = (s: CheckStatus) => results.filter((r) => r.status === s).length;
  return JSON.stringify({ exitCode: doctorExitCode(results), ok: count('OK'), fail: count('FAIL'), skip: count('SKIP'), checks: results });
}

/** A URL as a target: no user, password, query or fragment. */
export function safeTarget(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
  } catch {
    return '(unparseable URL)';
  }
}

/** Kafka's target: the bootstrap brokers and how we authenticate (the user, never the password). */
export function kafkaTarget(brokers: string[], ssl?: { rejectUnauthorized?: boolean }, sasl?: { mechanism: string; username: string }): string {
  const how = [ssl ? (ssl.rejectUnauthorized === false ? 'TLS unverified' : 'TLS') : '', sasl ? `SASL ${sasl.mechanism.toUpperCase()} as ${sasl.username}` : ''].filter(Boolean);
  return `${brokers.join(',')}${how.length ? ` (${how.join(', ')})` : ''}`;
}

// ------------------------------------------------------------------ migrations

export interface MigrationRow {
  version: number;
  name: string;
  checksum: string;
}

export interface MigrationComparison {
  /** Files not applied yet. */
  pending: string[];
  /** Applied, but the file changed since. */
  edited: string[];
  /** Applied, but the file is gone (a newer release applied them, or files were removed). */
  unknown: string[];
  applied: number;
}

export function compareMigrations(files: MigrationRow[], applied: MigrationRow[]): MigrationComparison {
  const done = new Map(applied.map((r) => [r.version, r]));
  const onDisk = new Set(files.map((f) => f.version));
  return {
    pending: files.filter((f) => !done.has(f.version)).map((f) => f.name),
    edited: files.filter((f) => done.has(f.version) && done.get(f.version)!.checksum !== f.checksum).map((f) => f.name),
    unknown: applied.filter((r) => !onDisk.has(r.version)).map((r) => r.name),
    applied: applied.length,
  };
}

/** OK detail for current migrations; throws what is wrong otherwise. */
export function migrationsVerdict(files: MigrationRow[], applied: MigrationRow[]): string {
  const c = compareMigrations(files, applied);
  const problems: string[] = [];
  if (c.pending.length) problems.push(`${c.pending.length} pending (${c.pending.join(', ')}): run \`fluxion migrate\``);
  if (c.edited.length) problems.push(`edited after being applied: ${c.edited.join(', ')} (revert the edit; changes go in a new migration)`);
  if (c.unknown.length) problems.push(`applied but not in sql/postgres: ${c.unknown.join(', ')} (is this release older than the database?)`);
  if (problems.length) throw new Error(problems.join('; '));
  return `${files.length} of ${files.length} applied`;
}

// ------------------------------------------------------------------ the checks

/** Why a connection failed, in words (Node's codes are not for operators). */
export function networkReason(err: unknown): string {
  let e: unknown = err;
  for (let i = 0; i < 4 && e && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ECONNREFUSED') return 'connection refused (nothing listens there)';
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host name not found (DNS; is the VPN up?)';
    if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return 'host unreachable (routing; is the VPN up?)';
    if (code === 'ECONNRESET') return 'connection reset';
    if (code === 'ETIMEDOUT') return 'connection timed out';
    if ((e as { name?: string }).name === 'CheckTimeoutError') return (e as Error).message;
    e = (e as { cause?: unknown }).cause;
  }
  return (err as Error)?.message ?? String(err);
}

/** Opens a TCP connection and closes it: the SQL Server port of a Stellar store. */
export function tcpProbe(host: string, port: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host, port });
    const onAbort = () => {
      socket.destroy();
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve();
    });
    socket.once('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(new Error(networkReason(err)));
    });
  });
}

/** What one authenticated KLK answer means (pure). */
export function klkVerdict(status: number, body: string, apiKeyEnv: string): string {
  if (status === 401) throw new Error(`KLK refused the API key (HTTP 401): check ${apiKeyEnv}`);
  if (status !== 200) throw new Error(`KLK answered HTTP ${status}${status === 429 || status >= 500 ? ' (the POS or its proxy is in trouble)' : `: ${body.slice(0, 120)}`}`);
  let json: { total_items?: unknown };
  try {
    json = JSON.parse(body) as { total_items?: unknown };
  } catch {
    throw new Error(`KLK answered HTTP 200 but not JSON: ${JSON.stringify(body.slice(0, 80))}`);
  }
  return typeof json.total_items === 'number' ? `API key accepted; ${json.total_items} products in the inventory` : 'API key accepted';
}

/** One active store's POS: an authenticated KLK request, or a TCP connect to the Stellar SQL Server. */
export function storeCheck(u: Ubicacion, env: NodeJS.ProcessEnv): DoctorCheck {
  if (u.pos === 'klk') {
    const { baseUrl, apiKeyEnv } = u.klk;
    return {
      part: u.id,
      target: `KLK ${safeTarget(baseUrl)}`,
      async run(signal) {
        const key = env[apiKeyEnv];
        if (!key) throw new Error(`${apiKeyEnv} is not set (the store's API key)`);
        const query = new URLSearchParams({ deposito: u.depositos[0]!, page: '1', page_size: '1' });
        let res: Response;
        let body: string;
        try {
          res = await fetch(`${baseUrl.replace(/\/+$/, '')}/api/v1/inventario?${query}`, { headers: { 'X-API-Key': key, accept: 'application/json' }, signal });
          body = await res.text();
        } catch (err) {
          if (signal.aborted) throw signal.reason;
          throw new Error(`KLK did not answer: ${networkReason(err)}`);
        }
        return klkVerdict(res.status, body, apiKeyEnv);
      },
    };
  }
  const { host, port, userEnv, passwordEnv } = u.stellar;
  return {
    part: u.id,
    target: `Stellar ${host}:${port}`,
    async run(signal) {
      try {
        await tcpProbe(host, port, signal);
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        throw new Error(`SQL Server port: ${(err as Error).message}`);
      }
      const missing = [userEnv, passwordEnv].filter((name) => !env[name]);
      if (missing.length) throw new Error(`SQL Server port open, but ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not set`);
      let tls;
      try {
        tls = readStellarTls(u, env);
      } catch (err) {
        if (err instanceof ConfigError) throw new Error(`SQL Server port open, but ${err.problems.join('; ')}`);
        throw err;
      }
      const how = !tls.encrypt ? 'no TLS' : tls.caFile ? `TLS, CA ${tls.caFile}` : tls.trustServerCertificate ? 'TLS, certificate not verified (trust_server_certificate)' : 'TLS';
      return `SQL Server port open (${how})`;
    },
  };
}

/** Kafka reachable (and our credentials accepted), and every Fluxion topic there. */
export function kafkaCheck(o: { target: string; kafka: () => KafkaClient; expectedTopics: string[]; sasl?: boolean }): DoctorCheck {
  return {
    part: 'kafka',
    target: o.target,
    async run(signal) {
      const connecting = o.kafka().admin();
      // A connection still retrying when the time is up is closed as soon as it is made.
      signal.addEventListener('abort', () => void connecting.then((a) => a.disconnect()).catch(() => undefined), { once: true });
      const admin: FluxionAdmin = await connecting;
      try {
        let cluster: Awaited<ReturnType<FluxionAdmin['describeCluster']>>;
        let topics: Set<string>;
        try {
          cluster = await admin.describeCluster();
          topics = new Set(await admin.listTopics());
        } catch (err) {
          const hint = o.sasl ? undefined : closedConnectionHint(err);
          throw hint ? new Error(`${(err as Error).message}${hint}`) : err;
        }
        const missing = o.expectedTopics.filter((t) => !topics.has(t));
        const about = `cluster ${cluster.clusterId}, ${cluster.brokers} broker${cluster.brokers === 1 ? '' : 's'}`;
        if (missing.length) {
          const shown = missing.length > 4 ? `${missing.slice(0, 4).join(', ')}, ...` : missing.join(', ');
          throw new Error(`${about}; ${missing.length} of ${o.expectedTopics.length} topics missing (${shown}): run \`fluxion topics ensure\``);
        }
        return `${about}; ${o.expectedTopics.length} of ${o.expectedTopics.length} topics present`;
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
    },
  };
}

/** The registry reachable (and our credentials accepted), and every Fluxion subject registered. */
export function registryCheck(o: { target: string; registry: () => FluxionRegistry; expectedSubjects: string[] }): DoctorCheck {
  return {
    part: 'registry',
    target: o.target,
    async run() {
      const subjects = new Set(await o.registry().listSubjects());
      const missing = o.expectedSubjects.filter((s) => !subjects.has(s));
      if (missing.length) {
        const shown = missing.length > 4 ? `${missing.slice(0, 4).join(', ')}, ...` : missing.join(', ');
        throw new Error(`${missing.length} of ${o.expectedSubjects.length} subjects not registered (${shown}): run \`fluxion schemas register\``);
      }
      return `${o.expectedSubjects.length} of ${o.expectedSubjects.length} subjects registered`;
    },
  };
}

/** PostgreSQL reachable, then its migrations current: two rows over one small pool; `close()` ends it. */
export function postgresChecks(o: { connectionString: string; migrationsDir: string; logger: Logger }): { checks: DoctorCheck[]; close(): Promise<void> } {
  let pool: Pool | undefined;
  const open = (signal: AbortSignal) => {
    pool ??= createPool({ connectionString: o.connectionString, logger: o.logger, max: 1, applicationName: 'fluxion-doctor', queryTimeoutMs: 30_000 });
    const p = pool;
    // A timed-out check must not leave a connection attempt behind.
    signal.addEventListener('abort', () => void p.end().catch(() => undefined), { once: true });
    return p;
  };
  const target = describeDatabase(o.connectionString);
  return {
    checks: [
      {
        part: 'postgres',
        target,
        async run(signal) {
          try {
            const { rows } = await open(signal).query<{ v: string }>("SELECT current_setting('server_version') AS v");
            return `PostgreSQL ${rows[0]!.v}`;
          } catch (err) {
            if (signal.aborted) throw signal.reason;
            throw new Error(networkReason(err));
          }
        },
      },
      {
        part: 'migrations',
        target: `${target} schema_migrations`,
        dependsOn: 'postgres',
        async run(signal) {
          const files = readMigrations(o.migrationsDir);
          let applied: MigrationRow[];
          try {
            ({ rows: applied } = await open(signal).query<MigrationRow>('SELECT version, name, checksum FROM schema_migrations ORDER BY version'));
          } catch (err) {
            if ((err as { code?: string }).code === '42P01') throw new Error(`no migration applied (no schema_migrations table), ${files.length} pending: run \`fluxion migrate\``);
            throw err;
          }
          return migrationsVerdict(files, applied);
        },
      },
    ],
    async close() {
      if (pool && !pool.ended) await pool.end().catch(() => undefined);
    },
  };
}

/**
 * The store list in production: an active store whose entry still lists placeholder fields
 * (names, deposito codes, hosts standing in for La Granja's real ones) is reported, naming
 * the store and each field. No row in local, where the simulators make them harmless.
 */
export function placeholderCheck(ubicaciones: Ubicacion[], environment: 'local' | 'production', file: string): DoctorCheck | undefined {
  if (environment !== 'production') return undefined;
  const found = ubicaciones.filter((u) => u.activa && u.placeholder?.length);
  return {
    part: 'placeholders',
    target: file,
    async run() {
      if (found.length === 0) return 'no active store holds a placeholder';
      const list = found.map((u) => `${u.id} (${u.placeholder!.join(', ')})`).join('; ');
      throw new Error(
        `${found.length} active store${found.length === 1 ? '' : 's'} still hold placeholders in production: ${list}: put La Granja's real values in the store list and remove them from the entry's placeholder list`,
      );
    },
  };
}

/** A row that did not run, with the reason (e.g. its configuration is missing). */
export function skippedCheck(part: string, target: string, reason: string): DoctorCheck {
  return { part, target, run: async () => ({ status: 'SKIP', detail: reason }) };
}

/** A row that failed before running: the reason is the detail. */
export function failedCheck(part: string, target: string, reason: string): DoctorCheck {
  return {
    part,
    target,
    run: async () => {
      throw new Error(reason);
    },
  };
}
