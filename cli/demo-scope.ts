/**
 * Where a demo run keeps its data: its own topic prefix and its own PostgreSQL database, so
 * a run never reads what an earlier run (or a test, or another developer) left, and a second
 * run tells the same truth as the first.
 *
 * Runs from one checkout are listed in `<work dir>/scopes.json`. A new run removes the
 * earlier runs' topics and databases and says so; the latest run's stay, to look at, until
 * the next run or `fluxion demo --clean`. Nothing outside that list is ever touched.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FluxionAdmin } from '../core/kafka/types.ts';
import type { Pool } from '../core/postgres.ts';
import { UsageError } from '../core/errors.ts';

export interface DemoScope {
  runId: string;
  /** FLUXION_TOPIC_PREFIX of the run: the configured prefix, then `demo-<runId>.`. */
  prefix: string;
  /** The run's database, on the server of DATABASE_URL. */
  database: string;
  startedAt: string;
  /** The demo process, to refuse removing the data of a run still going. */
  pid: number;
}

/** Names of a new run's scope: UTC instant plus a random tail, lower case (a PostgreSQL identifier). */
export function newScope(
  basePrefix: string,
  baseDatabase: string,
  now: Date,
  pid: number,
  tail = randomBytes(2).toString('hex'),
): DemoScope {
  const runId = `${now.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').toLowerCase()}${tail}`;
  const database = `${baseDatabase}_demo_${runId}`.toLowerCase();
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(database))
    throw new UsageError(
      `the demo's database name "${database}" (from DATABASE_URL's database "${baseDatabase}") is not a plain PostgreSQL identifier ` +
        `of at most 63 characters`,
    );
  return { runId, prefix: `${basePrefix}demo-${runId}.`, database, startedAt: now.toISOString(), pid };
}

/** DATABASE_URL pointing at another database of the same server. */
export function databaseUrl(baseUrl: string, database: string): string {
  const u = new URL(baseUrl);
  u.pathname = `/${database}`;
  return u.toString();
}

export function databaseOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, '')) || 'postgres';
}

export class ScopeList {
  readonly file: string;
  constructor(workDir: string) {
    this.file = join(workDir, 'scopes.json');
  }

  read(): DemoScope[] {
    if (!existsSync(this.file)) return [];
    try {
      const parsed = JSON.parse(readFileSync(this.file, 'utf8')) as unknown;
      return Array.isArray(parsed)
        ? (parsed as DemoScope[]).filter((s) => typeof s?.prefix === 'string' && typeof s?.database === 'string')
        : [];
    } catch {
      // A torn file names nothing we could remove safely; the next write replaces it.
      return [];
    }
  }

  write(scopes: DemoScope[]): void {
    mkdirSync(join(this.file, '..'), { recursive: true });
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(scopes, null, 2)}\n`);
    renameSync(tmp, this.file);
  }
}

/** A run whose demo process still lives (signal 0 only asks whether the pid exists). */
export function isRunning(scope: DemoScope, self = process.pid): boolean {
  if (scope.pid === self) return false;
  try {
    process.kill(scope.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The run's processor state stores (FLUXION_STATE_DIR of its processes), removed with its topics. */
export function scopeStateDir(workDir: string, scope: DemoScope): string {
  return join(workDir, 'state', scope.runId.replace(/[^a-z0-9]/g, ''));
}

/** Deletes a scope's topics, its state stores and its database; says what went. */
export async function removeScope(
  scope: DemoScope,
  admin: FluxionAdmin,
  server: Pool,
  workDir: string,
): Promise<{ topics: number; database: boolean }> {
  rmSync(scopeStateDir(workDir, scope), { recursive: true, force: true });
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(scope.prefix));
  if (topics.length) await admin.deleteTopics(topics);
  // scopes.json is a file anyone can edit: only a plain identifier is ever put into SQL.
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(scope.database))
    throw new UsageError(`${scope.database} in the demo's scope list is not a database name it made: not dropped`);
  const exists = (await server.query('SELECT 1 FROM pg_database WHERE datname = $1', [scope.database])).rowCount === 1;
  for (let attempt = 1; exists; attempt++) {
    try {
      await server.query(`DROP DATABASE IF EXISTS ${scope.database} WITH (FORCE)`);
      break;
    } catch (err) {
      // WITH (FORCE) cannot end an autovacuum worker still busy after the run's big writes
      // (42501 for a role that is not superuser), nor a session still starting (55006); both
      // end on their own within seconds.
      if (!['42501', '55006'].includes((err as { code?: string }).code ?? '') || attempt >= 120) throw err;
      await sleep(250);
    }
  }
  return { topics: topics.length, database: exists };
}
