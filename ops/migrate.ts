/**
 * `fluxion migrate`: applies sql/postgres/NNN_name.sql in order, each in its own transaction
 * together with its row in schema_migrations (version, name, sha256 checksum). A migration
 * already applied and edited afterwards stops everything: history is never rewritten.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MigrationError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { withTransaction, type Pool } from '../core/postgres.ts';

export interface MigrationFile {
  version: number;
  name: string;
  file: string;
  sql: string;
  checksum: string;
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: string[];
}

const FILE_PATTERN = /^(\d{3})_([a-z0-9_]+)\.sql$/;
// Any constant will do: it only has to be the same for every migrator of this database.
const ADVISORY_LOCK_KEY = 7_384_110_001;

export function readMigrations(dir: string): MigrationFile[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort();
  const seen = new Map<number, string>();
  return files.map((name) => {
    const m = FILE_PATTERN.exec(name);
    if (!m) throw new MigrationError(`${join(dir, name)}: migration files are named NNN_lower_case_name.sql`);
    const version = Number(m[1]);
    const other = seen.get(version);
    if (other) throw new MigrationError(`${name} and ${other} share version ${m[1]}`);
    seen.set(version, name);
    const sql = readFileSync(join(dir, name), 'utf8');
    return { version, name, file: join(dir, name), sql, checksum: createHash('sha256').update(sql).digest('hex') };
  });
}

export async function migrate(pool: Pool, dir: string, logger: Logger): Promise<MigrateResult> {
  const migrations = readMigrations(dir);
  const lockClient = await pool.connect();
  try {
    // Two containers starting together must not both apply 001.
    await lockClient.query('SELECT pg_advisory_lock($1)', [ADVISORY_LOCK_KEY]);
    await lockClient.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await lockClient.query<{ version: number; name: string; checksum: string; applied_at: Date }>(
      'SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version',
    );
    const onDisk = new Map(migrations.map((m) => [m.version, m]));
    const problems: string[] = [];
    for (const row of rows) {
      const file = onDisk.get(row.version);
      if (!file) {
        problems.push(
          `migration ${row.name} (version ${row.version}) was applied on ${row.applied_at.toISOString()} but its file is gone from ${dir}`,
        );
      } else if (file.checksum !== row.checksum) {
        problems.push(
          `migration ${file.name} was applied on ${row.applied_at.toISOString()} with checksum ${row.checksum.slice(0, 12)}, ` +
            `but the file now has checksum ${file.checksum.slice(0, 12)}: applied migrations must not be edited; ` +
            'revert the edit and put the change in a new migration',
        );
      }
    }
    if (problems.length) throw new MigrationError(problems.join('\n'));

    const appliedVersions = new Set(rows.map((r) => r.version));
    const result: MigrateResult = { applied: [], alreadyApplied: rows.map((r) => r.name) };
    for (const m of migrations) {
      if (appliedVersions.has(m.version)) continue;
      const started = Date.now();
      try {
        await withTransaction(pool, async (client) => {
          await client.query(m.sql);
          await client.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
            m.version,
            m.name,
            m.checksum,
          ]);
        });
      } catch (cause) {
        const pgErr = cause as { code?: string; position?: string };
        throw new MigrationError(
          `migration ${m.name} failed and was rolled back: ${(cause as Error).message}` +
            (pgErr.code ? ` (SQLSTATE ${pgErr.code}${pgErr.position ? `, at character ${pgErr.position}` : ''})` : ''),
          { cause, context: { file: m.file } },
        );
      }
      logger.info({ migration: m.name, ms: Date.now() - started }, 'migration applied');
      result.applied.push(m.name);
    }
    return result;
  } finally {
    await lockClient.query('SELECT pg_advisory_unlock($1)', [ADVISORY_LOCK_KEY]).catch(() => undefined);
    lockClient.release();
  }
}
