import { cpSync, mkdtempSync, appendFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { MigrationError } from '../../core/errors.ts';
import { MIGRATIONS_DIR } from '../../core/paths.ts';
import { createPool } from '../../core/postgres.ts';
import { migrate } from '../../ops/migrate.ts';
import { freshDatabase, runCli, testLogger } from '../../fixtures/services.ts';

/** Every committed migration file (sql/postgres/NNN_*.sql). */
const MIGRATIONS = readdirSync(MIGRATIONS_DIR).filter((f) => /^\d{3}_.*\.sql$/.test(f)).length;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function database() {
  const db = await freshDatabase();
  cleanups.push(db.drop);
  return db;
}

async function query<T extends pg.QueryResultRow = Record<string, unknown>>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

describe('fluxion migrate', () => {
  it('creates every table of docs/architecture.md, then changes nothing on a second run', async () => {
    const db = await database();
    const first = await runCli(['migrate'], { DATABASE_URL: db.url });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(`migrations: ${MIGRATIONS} applied, 0 already applied; ubicaciones: 20 inserted or changed of 20`);

    const tables = (await query(db.url, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)).map((r) => r.tablename);
    for (const t of [
      'ubicaciones',
      'productos',
      'inventario_actual',
      'inventario_historico',
      'ventas',
      'productos_abc_cache',
      'alertas',
      'etl_runs',
      'sink_offsets',
      'schema_migrations',
    ]) {
      expect(tables, t).toContain(t);
    }
    const applied = await query<{ version: number; name: string; checksum: string }>(
      db.url,
      'SELECT version, name, checksum FROM schema_migrations ORDER BY version',
    );
    expect(applied.map((r) => r.name)).toEqual(
      readdirSync(MIGRATIONS_DIR)
        .filter((f) => f.endsWith('.sql'))
        .sort(),
    );
    expect(applied.every((r) => /^[0-9a-f]{64}$/.test(r.checksum))).toBe(true);

    const dump = async () =>
      query(
        db.url,
        `SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2`,
      );
    const before = await dump();
    const second = await runCli(['migrate'], { DATABASE_URL: db.url });
    expect(second.code).toBe(0);
    expect(second.stdout).toContain(`migrations: 0 applied, ${MIGRATIONS} already applied; ubicaciones: 0 inserted or changed of 20`);
    expect(await dump()).toEqual(before);
    expect(await query(db.url, 'SELECT count(*)::int AS n FROM ubicaciones WHERE activa')).toEqual([{ n: 16 }]);
  });

  it('refuses to run when an applied migration was edited afterwards', async () => {
    const db = await database();
    const dir = mkdtempSync(join(tmpdir(), 'migrations-'));
    cpSync(MIGRATIONS_DIR, dir, { recursive: true });
    const pool = createPool({ connectionString: db.url, logger: testLogger });
    try {
      await migrate(pool, dir, testLogger);
      appendFileSync(join(dir, '002_inventario.sql'), '\n-- a harmless-looking edit\n');
      const error = await migrate(pool, dir, testLogger).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MigrationError);
      expect((error as Error).message).toMatch(
        new RegExp(
          /migration 002_inventario\.sql was applied on .* with checksum [0-9a-f]{12}, /.source +
            /but the file now has checksum [0-9a-f]{12}: applied migrations must not be edited/.source,
        ),
      );
    } finally {
      await pool.end();
    }
  });

  it('rolls a failing migration back whole and names it', async () => {
    const db = await database();
    const dir = mkdtempSync(join(tmpdir(), 'migrations-'));
    cpSync(MIGRATIONS_DIR, dir, { recursive: true });
    writeFileSync(join(dir, '900_broken.sql'), 'CREATE TABLE half_done (id int);\nSELECT * FROM no_such_table;\n');
    const pool = createPool({ connectionString: db.url, logger: testLogger });
    try {
      const error = await migrate(pool, dir, testLogger).catch((e: unknown) => e);
      expect((error as Error).message).toMatch(
        /migration 900_broken\.sql failed and was rolled back: relation "no_such_table" does not exist \(SQLSTATE 42P01/,
      );
      expect(await query(db.url, `SELECT to_regclass('half_done') AS t`)).toEqual([{ t: null }]);
      expect((await query(db.url, 'SELECT count(*)::int AS n FROM schema_migrations'))[0]!.n).toBe(MIGRATIONS);
    } finally {
      await pool.end();
    }
  });

  it('answers inventario_al(ts, ubicacion) from the type-2 history', async () => {
    const db = await database();
    expect((await runCli(['migrate'], { DATABASE_URL: db.url })).code).toBe(0);
    const snap = (n: number) => `00000000-0000-4000-8000-00000000000${n}`;
    await query(
      db.url,
      `INSERT INTO inventario_historico (ubicacion_id, deposito, producto_id, cantidad, costo, precio, activo, op, snapshot_id,
                                        valid_from, valid_to) VALUES
        ('tienda_01', '01', 'A', 10.000, NULL, NULL, true, 'c', $1, '2026-11-27T10:00Z', '2026-11-27T10:30Z'),
        ('tienda_01', '01', 'A', 7.500,  NULL, NULL, true, 'u', $2, '2026-11-27T10:30Z', NULL),
        ('tienda_01', '01', 'B', 3.000,  NULL, NULL, true, 'c', $1, '2026-11-27T10:00Z', '2026-11-27T11:00Z'),
        ('tienda_02', '01', 'A', 99.000, NULL, NULL, true, 'c', $1, '2026-11-27T10:00Z', NULL)`,
      [snap(1), snap(2)],
    );
    const at = async (ts: string) =>
      (await query(db.url, `SELECT producto_id, cantidad::text FROM inventario_al($1, 'tienda_01') ORDER BY producto_id`, [ts])).map(
        (r) => `${r.producto_id}=${r.cantidad}`,
      );
    expect(await at('2026-11-27T09:59Z')).toEqual([]);
    expect(await at('2026-11-27T10:00Z')).toEqual(['A=10.000', 'B=3.000']);
    expect(await at('2026-11-27T10:30Z')).toEqual(['A=7.500', 'B=3.000']);
    expect(await at('2026-11-27T11:00Z')).toEqual(['A=7.500']); // B vanished at 11:00

    // Rows that landed in the default partition move into the month's partition when it is created.
    expect((await query(db.url, `SELECT inventario_historico_asegurar_mes('2026-11-27T10:00Z') AS p`))[0]!.p).toBe(
      'inventario_historico_2026_11',
    );
    expect((await query(db.url, 'SELECT count(*)::int AS n FROM inventario_historico_default'))[0]!.n).toBe(0);
    expect((await query(db.url, 'SELECT count(*)::int AS n FROM inventario_historico_2026_11'))[0]!.n).toBe(4);
    expect(await at('2026-11-27T10:30Z')).toEqual(['A=7.500', 'B=3.000']);
  });

  it('fails with exit code 2, without showing the password, when DATABASE_URL is malformed', async () => {
    const result = await runCli(['migrate'], { DATABASE_URL: 'mysql://fluxion:s3cret@127.0.0.1/x' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('DATABASE_URL=(value hidden): must start with postgres://');
    expect(result.stderr).not.toContain('s3cret');
  });

  it('says PostgreSQL is unreachable, naming where, without the password', async () => {
    const result = await runCli(['migrate'], { DATABASE_URL: 'postgres://fluxion:s3cret@127.0.0.1:1/fluxion' });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/ECONNREFUSED|not reachable/);
    expect(result.stderr).not.toContain('s3cret');
  });
});
