/**
 * `fluxion doctor`'s checks: small I/O functions over clients the command builds from the
 * configuration (cli/doctor.ts), each a DoctorCheck that ops/doctor.ts's runner times out and
 * reports. The KLK request is core/klk-http.ts's, the one the extractor sends.
 */
import { connect as tcpConnect } from 'node:net';
import { readStellarTls, type StellarTls, type Ubicacion } from '../core/config/ubicaciones.ts';
import { ConfigError } from '../core/errors.ts';
import { closedConnectionHint, type KafkaClient, type FluxionAdmin } from '../core/kafka/client.ts';
import { KLK_INVENTARIO_PATH, klkGet, klkStatusKind, type KlkAnswer } from '../core/klk-http.ts';
import type { Logger } from '../core/logger.ts';
import { createPool, describeDatabase, type Pool } from '../core/postgres.ts';
import type { FluxionRegistry } from '../core/registry.ts';
import { migrationsVerdict, safeTarget, type DoctorCheck, type MigrationRow } from './doctor.ts';
import { readMigrations } from './migrate.ts';

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
  const kind = klkStatusKind(status);
  if (kind === 'auth') throw new Error(`KLK refused the API key (HTTP 401): check ${apiKeyEnv}`);
  if (kind === 'unavailable') throw new Error(`KLK answered HTTP ${status} (the POS or its proxy is in trouble)`);
  if (kind === 'unexpected') throw new Error(`KLK answered HTTP ${status}: ${body.slice(0, 120)}`);
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
        let res: KlkAnswer;
        try {
          const params = { deposito: u.depositos[0]! };
          res = await klkGet({ baseUrl, path: KLK_INVENTARIO_PATH, params, page: 1, pageSize: 1, apiKey: key, signal });
        } catch (err) {
          if (signal.aborted) throw signal.reason;
          throw new Error(`KLK did not answer: ${networkReason(err)}`);
        }
        return klkVerdict(res.status, res.body, apiKeyEnv);
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
      if (missing.length)
        throw new Error(`SQL Server port open, but ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not set`);
      let tls: StellarTls;
      try {
        tls = readStellarTls(u, env);
      } catch (err) {
        if (err instanceof ConfigError) throw new Error(`SQL Server port open, but ${err.problems.join('; ')}`);
        throw err;
      }
      const how = !tls.encrypt
        ? 'no TLS'
        : tls.caFile
          ? `TLS, CA ${tls.caFile}`
          : tls.trustServerCertificate
            ? 'TLS, certificate not verified (trust_server_certificate)'
            : 'TLS';
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
          throw new Error(
            `${about}; ${missing.length} of ${o.expectedTopics.length} topics missing (${shown}): run \`fluxion topics ensure\``,
          );
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
      // Asked subject by subject: a registry's list of all subjects may be paged or capped
      // (Apicurio's compatibility API answers at most 1,000), and a shared one holds many.
      const registry = o.registry();
      const latest = await Promise.all(o.expectedSubjects.map((s) => registry.latestSchema(s)));
      const missing = o.expectedSubjects.filter((_, i) => latest[i] === null);
      if (missing.length) {
        const shown = missing.length > 4 ? `${missing.slice(0, 4).join(', ')}, ...` : missing.join(', ');
        throw new Error(
          `${missing.length} of ${o.expectedSubjects.length} subjects not registered (${shown}): run \`fluxion schemas register\``,
        );
      }
      return `${o.expectedSubjects.length} of ${o.expectedSubjects.length} subjects registered`;
    },
  };
}

/** PostgreSQL reachable, then its migrations current: two rows over one small pool; `close()` ends it. */
export function postgresChecks(o: { connectionString: string; migrationsDir: string; logger: Logger }): {
  checks: DoctorCheck[];
  close(): Promise<void>;
} {
  let pool: Pool | undefined;
  const open = (signal: AbortSignal) => {
    pool ??= createPool({
      connectionString: o.connectionString,
      logger: o.logger,
      max: 1,
      applicationName: 'fluxion-doctor',
      queryTimeoutMs: 30_000,
    });
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
            ({ rows: applied } = await open(signal).query<MigrationRow>(
              'SELECT version, name, checksum FROM schema_migrations ORDER BY version',
            ));
          } catch (err) {
            if ((err as { code?: string }).code === '42P01')
              throw new Error(`no migration applied (no schema_migrations table), ${files.length} pending: run \`fluxion migrate\``);
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
        `${found.length} active store${found.length === 1 ? '' : 's'} still hold placeholders in production: ${list}: put La Granja's ` +
          `real values in the store list and remove them from the entry's placeholder list`,
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
