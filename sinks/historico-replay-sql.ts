/**
 * The SQL of `fluxion replay historico` (sinks/historico-replay.ts): the shadow table beside
 * inventario_historico, the TEMP table of staged events, the set-based statements that derive
 * every interval from them, and the swap that gives the shadow the live names.
 */
import type { Pool, PoolClient } from '../core/postgres.ts';
import { withTransaction } from '../core/postgres.ts';

export const LIVE = 'inventario_historico';
export const SHADOW = 'inventario_historico_replay';

const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** The events of the bulk phase, in read (offset) order within each key's partition. */
export const EVENTS = 'pg_temp.inventario_historico_replay_eventos';
export const EVENT_COLUMNS: ReadonlyArray<readonly [string, string]> = [
  ['seq', 'bigint'],
  ['kafka_partition', 'integer'],
  ['kafka_offset', 'bigint'],
  ['ubicacion_id', 'text'],
  ['deposito', 'text'],
  ['producto_id', 'text'],
  ['op', 'char(1)'],
  ['cantidad', 'numeric(18,3)'],
  ['costo', 'numeric(18,4)'],
  ['precio', 'numeric(18,4)'],
  ['activo', 'boolean'],
  ['snapshot_id', 'uuid'],
  ['taken_at', 'timestamptz'],
];
const KEY = 'ubicacion_id, deposito, producto_id';
// The windows only group by key: byte order sorts them several times faster than the
// database's collation would, for the same groups.
const KEY_C = 'ubicacion_id COLLATE "C", deposito COLLATE "C", producto_id COLLATE "C"';

/**
 * Writes every staged event into the shadow table, set-based, with planInventory's rules
 * (sinks/sink-batch.ts) applied over the whole log instead of a slice:
 * - an event whose taken_at is before an earlier event of its key (offset order) is skipped;
 * - of a key's events at one instant the last wins;
 * - each remaining event that leaves a value (c, u) opens an interval that the key's next
 *   remaining event closes; a d closes and opens nothing.
 * With kept rows (--from), a key's first event first supersedes a kept open row of the same
 * instant and closes the kept open interval, as the sink's close and supersede steps do.
 */
export async function applyEvents(
  client: PoolClient,
  hasKeptRows: boolean,
): Promise<{ applied: number; skipped: number; skippedSample: Array<Record<string, unknown>> }> {
  // The two window passes sort the whole log: let them sort in memory up to a bound.
  await client.query(`SET LOCAL work_mem = '256MB'`);
  await client.query(
    `CREATE TEMP TABLE replay_ordenados ON COMMIT DROP AS
     SELECT e.*, max(taken_at) OVER (PARTITION BY ${KEY_C} ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS anterior
     FROM ${EVENTS} e`,
  );
  const counts = (
    await client.query<{ staged: string; refused: string }>(
      'SELECT count(*) AS staged, count(*) FILTER (WHERE taken_at < anterior) AS refused FROM replay_ordenados',
    )
  ).rows[0]!;
  const refused = Number(counts.refused);
  const sample =
    refused === 0
      ? []
      : (
          await client.query<{ kafka_partition: number; kafka_offset: string; taken_at: Date; anterior: Date }>(
            'SELECT kafka_partition, kafka_offset::text, taken_at, anterior FROM replay_ordenados WHERE taken_at < anterior ORDER BY ' +
              'seq LIMIT 20',
          )
        ).rows;
  await client.query(
    `CREATE TEMP TABLE replay_pasos ON COMMIT DROP AS
     SELECT ${KEY}, op, cantidad, costo, precio, activo, snapshot_id, taken_at,
            lead(taken_at) OVER k AS valid_to, taken_at = min(taken_at) OVER k AS primero
     FROM (SELECT *, lead(taken_at) OVER (PARTITION BY ${KEY_C} ORDER BY seq) AS siguiente
           FROM replay_ordenados WHERE anterior IS NULL OR taken_at >= anterior) v
     WHERE siguiente IS DISTINCT FROM taken_at
     WINDOW k AS (PARTITION BY ${KEY_C} ORDER BY taken_at)`,
  );
  const match = `h.ubicacion_id = p.ubicacion_id AND h.deposito = p.deposito AND h.producto_id = p.producto_id AND h.valid_to IS NULL`;
  if (hasKeptRows) {
    await client.query('ANALYZE replay_pasos');
    await client.query(`DELETE FROM ${SHADOW} h USING replay_pasos p WHERE p.primero AND ${match} AND h.valid_from = p.taken_at`);
    await client.query(
      `UPDATE ${SHADOW} h SET valid_to = p.taken_at FROM replay_pasos p WHERE p.primero AND ${match} AND h.valid_from < p.taken_at`,
    );
  }
  await client.query(
    `SELECT inventario_historico_asegurar_mes(m, '${SHADOW}') FROM (SELECT DISTINCT date_trunc('month', taken_at, 'UTC') AS m FROM ` +
      `replay_pasos WHERE op <> 'd') AS meses`,
  );
  await client.query(
    `INSERT INTO ${SHADOW} (${KEY}, cantidad, costo, precio, activo, op, snapshot_id, valid_from, valid_to)
     SELECT ${KEY}, cantidad, costo, precio, activo, op, snapshot_id, taken_at, valid_to FROM replay_pasos WHERE op <> 'd'`,
  );
  const skippedSample = sample.map((r) => ({
    partition: r.kafka_partition,
    offset: r.kafka_offset,
    taken_at: r.taken_at.toISOString(),
    earlier: r.anterior.toISOString(),
  }));
  return { applied: Number(counts.staged) - refused, skipped: refused, skippedSample };
}

export async function countRows(client: Pick<PoolClient, 'query'>, table: string): Promise<number> {
  return Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n);
}

/** Live rows the rebuilt table has no row for (same key and valid_from): what a forced swap deletes. */
export async function countLost(client: PoolClient): Promise<number> {
  const r = await client.query<{ n: string }>(
    `SELECT count(*) AS n FROM ${LIVE} l WHERE NOT EXISTS (
       SELECT 1 FROM ${SHADOW} s
       WHERE s.ubicacion_id = l.ubicacion_id AND s.deposito = l.deposito AND s.producto_id = l.producto_id
         AND s.valid_from = l.valid_from)`,
  );
  return Number(r.rows[0]!.n);
}

/** The shadow table, partitioned and indexed as the live one, holding the rows --from/--to keep. */
export async function createShadow(pool: Pool, from: Date | undefined, to: Date | undefined): Promise<number> {
  return withTransaction(pool, async (client) => {
    await client.query(`DROP TABLE IF EXISTS ${SHADOW} CASCADE`);
    await client.query(`CREATE TABLE ${SHADOW} (LIKE ${LIVE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (valid_from)`);
    await client.query(
      `ALTER TABLE ${SHADOW} ADD CONSTRAINT ${SHADOW}_pkey PRIMARY KEY (ubicacion_id, deposito, producto_id, valid_from)`,
    );
    await client.query(`CREATE TABLE ${SHADOW}_default PARTITION OF ${SHADOW} DEFAULT`);
    await client.query(`CREATE INDEX ${SHADOW}_al ON ${SHADOW} (ubicacion_id, valid_from) INCLUDE (valid_to)`);
    await client.query(`CREATE INDEX ${SHADOW}_abiertos ON ${SHADOW} (ubicacion_id, deposito, producto_id) WHERE valid_to IS NULL`);
    let kept = 0;
    const keep = async (where: string, validTo: string, params: unknown[]) => {
      await client.query(
        `SELECT inventario_historico_asegurar_mes(m, '${SHADOW}') FROM (SELECT DISTINCT date_trunc('month', valid_from, 'UTC') AS m ` +
          `FROM ${LIVE} WHERE ${where}) AS meses`,
        params,
      );
      const r = await client.query(
        `INSERT INTO ${SHADOW}
           (ubicacion_id, deposito, producto_id, cantidad, costo, precio, activo, op, snapshot_id, valid_from, valid_to)
         SELECT ubicacion_id, deposito, producto_id, cantidad, costo, precio, activo, op, snapshot_id, valid_from, ${validTo}
         FROM ${LIVE} WHERE ${where}`,
        params,
      );
      kept += r.rowCount ?? 0;
    };
    // Rows closed by an event at or after --from are reopened: that event is replayed.
    if (from) await keep('valid_from < $1', 'CASE WHEN valid_to >= $1 THEN NULL ELSE valid_to END', [from]);
    if (to) await keep('valid_from >= $1', 'valid_to', [to]);
    return kept;
  });
}

/** A replayed interval still open at --to ends at its key's first event at or after --to. */
export async function closeAtTo(client: PoolClient, to: Date, firstAtOrAfter: Map<string, Date>): Promise<void> {
  const keys = [...firstAtOrAfter.keys()].map((k) => k.split('\u0000'));
  await client.query(
    `UPDATE ${SHADOW} s SET valid_to = f.t
     FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS f(ubicacion_id, deposito, producto_id, t)
     WHERE s.ubicacion_id = f.ubicacion_id AND s.deposito = f.deposito AND s.producto_id = f.producto_id
       AND s.valid_to IS NULL AND s.valid_from < $1`,
    [to, keys.map((k) => k[0]), keys.map((k) => k[1]), keys.map((k) => k[2]), [...firstAtOrAfter.values()]],
  );
}

/** Drops the live table and gives the shadow, its partitions and indexes the live names. */
export async function swap(client: PoolClient): Promise<void> {
  const parts = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass`,
    [SHADOW],
  );
  await client.query(`DROP TABLE ${LIVE} CASCADE`);
  await client.query(`ALTER TABLE ${SHADOW} RENAME TO ${LIVE}`);
  for (const { name } of parts.rows) {
    await client.query(`ALTER TABLE ${ident(name)} RENAME TO ${ident(LIVE + name.slice(SHADOW.length))}`);
  }
  await client.query(`ALTER TABLE ${LIVE} RENAME CONSTRAINT ${SHADOW}_pkey TO ${LIVE}_pkey`);
  await client.query(`ALTER INDEX ${SHADOW}_al RENAME TO ${LIVE}_al`);
  await client.query(`ALTER INDEX ${SHADOW}_abiertos RENAME TO ${LIVE}_abiertos`);
}
