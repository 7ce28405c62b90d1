/** Mirrors the checked-in store list into the `ubicaciones` table the backend reads. */
import type { Ubicacion } from '../core/config/ubicaciones.ts';
import { withTransaction, type Pool } from '../core/postgres.ts';

/** Upserts every store; returns how many rows were inserted or changed. */
export async function syncUbicaciones(pool: Pool, ubicaciones: Ubicacion[]): Promise<number> {
  const rows = ubicaciones.map((u) => ({
    ubicacion_id: u.id,
    nombre: u.nombre,
    tipo: u.tipo,
    pos: u.pos,
    activa: u.activa,
    depositos: u.depositos,
  }));
  return withTransaction(pool, async (client) => {
    const { rowCount } = await client.query(
      `INSERT INTO ubicaciones (ubicacion_id, nombre, tipo, pos, activa, depositos)
       SELECT ubicacion_id, nombre, tipo, pos, activa, depositos
       FROM jsonb_to_recordset($1::jsonb) AS u(ubicacion_id text, nombre text, tipo text, pos text, activa boolean, depositos text[])
       ON CONFLICT (ubicacion_id) DO UPDATE SET
         nombre = EXCLUDED.nombre, tipo = EXCLUDED.tipo, pos = EXCLUDED.pos, activa = EXCLUDED.activa,
         depositos = EXCLUDED.depositos, actualizado_en = now()
       WHERE (ubicaciones.nombre, ubicaciones.tipo, ubicaciones.pos, ubicaciones.activa, ubicaciones.depositos)
             IS DISTINCT FROM (EXCLUDED.nombre, EXCLUDED.tipo, EXCLUDED.pos, EXCLUDED.activa, EXCLUDED.depositos)`,
      [JSON.stringify(rows)],
    );
    return rowCount ?? 0;
  });
}
