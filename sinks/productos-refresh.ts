/**
 * The productos refresh (job productos-refresh, `fluxion productos refresh`): one store's
 * catalogue, as its POS reports it now, written into `productos` where it differs.
 *
 * The live sink already keeps productos current from pos.inventario.changes (every catalogue
 * field is in the differ's row fingerprint, so a renamed product is a `u` change within one
 * inventory cycle). This job is the reconciliation against the source itself: it repairs what
 * the event path cannot see (a row edited or lost in PostgreSQL, a store whose snapshots sit
 * in quarantine) and counts what it had to correct, which stays near 0 while the event path
 * is sound.
 *
 * Rows stream into a session TEMP table, so no transaction stays open while a POS is read
 * (over the VPN that takes minutes), collapsed per producto_id (a product in two depositos,
 * or on two KLK pages: the last read wins, as in a snapshot). Then ONE statement upserts only
 * the rows whose catalogue fields differ: `ON CONFLICT ... DO UPDATE ... WHERE` still locks
 * and WAL-logs every conflicting row, so unchanged rows are anti-joined away first. The
 * sink's guard applies: an older description never overwrites a newer one; and a row that
 * another store wrote identically while this statement ran (its snapshot could not see it)
 * is left as it is.
 */
import { ConfigError, ServiceUnavailableError } from '../core/errors.ts';
import type { Pool, PoolClient } from '../core/postgres.ts';
import type { InventoryRow } from '../core/records.ts';
import { scrubSecrets } from '../core/logger.ts';
import { unnestOf } from './postgres-writer.ts';
import { catalogueRow, columnParams, PRODUCTOS_COLUMNS, toColumns, type CatalogueRow } from './sink-batch.ts';

export const CATALOGUE_COLUMNS = PRODUCTOS_COLUMNS.filter((c): c is keyof CatalogueRow => c !== 'visto_en' && c !== 'ubicacion_id');

export const CATALOGUE_BATCH_ROWS = 5_000;

export interface CatalogueRefresh {
  /** Rows the POS reported (a product once per deposito). */
  read: number;
  /** Distinct products among them. */
  productos: number;
  inserted: number;
  updated: number;
  unchanged: number;
  /**
   * Rows that differed when read but were left alone: productos held a newer description (the
   * sink's, from a later snapshot), or another store had written the same one meanwhile.
   */
  newerKept: number;
}

/**
 * Groups rows into batches of at most `size` distinct products, each product once per batch
 * (its last read): one INSERT ... ON CONFLICT may not touch a row twice.
 */
export async function* catalogueBatches(
  rows: AsyncIterable<InventoryRow>,
  size = CATALOGUE_BATCH_ROWS,
): AsyncGenerator<{ rows: CatalogueRow[]; read: number }> {
  let batch = new Map<string, CatalogueRow>();
  let read = 0;
  for await (const r of rows) {
    read++;
    batch.set(r.producto_id, catalogueRow(r));
    if (batch.size >= size) {
      yield { rows: [...batch.values()], read };
      batch = new Map();
      read = 0;
    }
  }
  if (batch.size > 0 || read > 0) yield { rows: [...batch.values()], read };
}

const STAGING = 'pg_temp.productos_refresh';
const cols = CATALOGUE_COLUMNS.join(', ');
const setFrom = (names: readonly string[]) => names.map((c) => `${c} = EXCLUDED.${c}`).join(', ');
const content = CATALOGUE_COLUMNS.filter((c) => c !== 'producto_id');

const CREATE_STAGING =
  `CREATE TEMP TABLE productos_refresh ` +
  `(${CATALOGUE_COLUMNS.map((c) => `${c} text${c === 'producto_id' ? ' PRIMARY KEY' : ''}`).join(', ')})`;

const STAGE = `INSERT INTO ${STAGING} (${cols}) SELECT * FROM ${unnestOf(CATALOGUE_COLUMNS, 's')}
  ON CONFLICT (producto_id) DO UPDATE SET ${setFrom(content)}`;

const UPSERT_CHANGED = `WITH staged AS (SELECT count(*)::int AS n FROM ${STAGING}),
changed AS (
  SELECT ${CATALOGUE_COLUMNS.map((c) => `s.${c}`).join(', ')} FROM ${STAGING} s
  LEFT JOIN productos cur ON cur.producto_id = s.producto_id
  WHERE cur.producto_id IS NULL
     OR (${content.map((c) => `cur.${c}`).join(', ')}) IS DISTINCT FROM (${content.map((c) => `s.${c}`).join(', ')})
),
written AS (
  INSERT INTO productos AS p (${cols}, visto_en, ubicacion_id)
  -- In key order, as every store's run does: two runs writing shared products at once take
  -- their row locks in the same order and cannot deadlock.
  SELECT ${cols}, $1::timestamptz, $2::text FROM changed ORDER BY producto_id
  ON CONFLICT (producto_id) DO UPDATE
  SET ${setFrom(content)}, visto_en = EXCLUDED.visto_en, ubicacion_id = EXCLUDED.ubicacion_id, actualizado_en = now()
  WHERE (p.visto_en, p.ubicacion_id) <= (EXCLUDED.visto_en, EXCLUDED.ubicacion_id)
    AND (${content.map((c) => `p.${c}`).join(', ')}) IS DISTINCT FROM (${content.map((c) => `EXCLUDED.${c}`).join(', ')})
  RETURNING (xmax = 0) AS inserted
)
SELECT (SELECT n FROM staged) AS staged,
       (SELECT count(*)::int FROM changed) AS changed,
       (SELECT count(*)::int FROM written WHERE inserted) AS inserted,
       (SELECT count(*)::int FROM written WHERE NOT inserted) AS updated`;

async function connect(pool: Pool): Promise<PoolClient> {
  try {
    return await pool.connect();
  } catch (cause) {
    throw new ServiceUnavailableError(`PostgreSQL is not reachable: ${scrubSecrets((cause as Error).message)}`, {
      cause,
      service: 'postgres',
    });
  }
}

/**
 * Fails before any POS is read when the database cannot take the rows: unreachable
 * (ServiceUnavailableError) or never migrated (ConfigError, naming the command that fixes it).
 */
export async function assertProductosTable(pool: Pool): Promise<void> {
  const client = await connect(pool);
  try {
    const r = await client.query<{ found: boolean }>(`SELECT to_regclass('productos') IS NOT NULL AS found`);
    if (!r.rows[0]?.found)
      throw new ConfigError(['the database has no productos table (migration 001_catalogo.sql): run `fluxion migrate` first']);
  } finally {
    client.release();
  }
}

/**
 * Writes the catalogue `rows` of store `ubicacionId`, read at `vistoEn`, into productos where
 * it differs. Throws (the store fails) when the rows or PostgreSQL fail; nothing of the store
 * is written then.
 */
export async function refreshCatalogue(
  pool: Pool,
  ubicacionId: string,
  rows: AsyncIterable<InventoryRow>,
  vistoEn: Date,
  batchSize = CATALOGUE_BATCH_ROWS,
): Promise<CatalogueRefresh> {
  const client = await connect(pool);
  let broken: Error | undefined;
  try {
    await client.query(`DROP TABLE IF EXISTS ${STAGING}`);
    await client.query(CREATE_STAGING);
    let read = 0;
    for await (const batch of catalogueBatches(rows, batchSize)) {
      read += batch.read;
      if (batch.rows.length > 0) await client.query(STAGE, columnParams(toColumns(CATALOGUE_COLUMNS, batch.rows), CATALOGUE_COLUMNS));
    }
    const r = await client.query<{ staged: number; changed: number; inserted: number; updated: number }>(UPSERT_CHANGED, [
      vistoEn,
      ubicacionId,
    ]);
    const { staged, changed, inserted, updated } = r.rows[0]!;
    return { read, productos: staged, inserted, updated, unchanged: staged - changed, newerKept: changed - inserted - updated };
  } catch (err) {
    broken = err as Error;
    throw err;
  } finally {
    // A pooled session keeps its TEMP tables: drop the staging rows now, not at the session's
    // end; a client that failed is discarded rather than handed to the next user.
    await client.query(`DROP TABLE IF EXISTS ${STAGING}`).catch(() => undefined);
    client.release(broken);
  }
}
