/**
 * A migrated PostgreSQL database per ABC test (abc.test.ts, abc-atomic.test.ts), with its pool
 * and extra clients, all dropped or closed after each test.
 */
import pg from 'pg';
import { afterEach } from 'vitest';
import { MIGRATIONS_DIR } from '../../core/paths.ts';
import { createPool, type Pool } from '../../core/postgres.ts';
import { migrate } from '../../ops/migrate.ts';
import { freshDatabase, testLogger } from '../../fixtures/services.ts';

export interface AbcDatabases {
  /** A fresh database with every migration applied, and a pool of 6 on it. */
  migratedDatabase(): Promise<{ url: string; pool: Pool }>;
  /** One more client on `url` (a reader beside the pool). */
  connect(url: string): Promise<pg.Client>;
  /** What to close after the test besides the above, last pushed first. */
  cleanups: Array<() => Promise<void>>;
}

/** Registers the afterEach that drops what the test's calls created. */
export function abcDatabases(): AbcDatabases {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });
  return {
    cleanups,
    async migratedDatabase() {
      const db = await freshDatabase();
      cleanups.push(db.drop);
      const pool = createPool({ connectionString: db.url, logger: testLogger, max: 6 });
      cleanups.push(() => pool.end());
      await migrate(pool, MIGRATIONS_DIR, testLogger);
      return { url: db.url, pool };
    },
    async connect(url) {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      cleanups.push(() => c.end().catch(() => undefined));
      return c;
    },
  };
}
