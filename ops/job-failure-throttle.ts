/**
 * Where the job-failure mail's throttle (ops/job-failure-mail.ts) remembers what it sent:
 * `avisos_trabajos` in PostgreSQL, or a JSON file when no database is reachable.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Pool } from '../core/postgres.ts';
import type { ThrottleEntry } from '../core/throttle.ts';

export interface ThrottleMemory {
  readonly name: string;
  get(key: string): Promise<ThrottleEntry | null>;
  put(key: string, entry: ThrottleEntry): Promise<void>;
}

/** `avisos_trabajos` in PostgreSQL. */
export function postgresThrottleMemory(pool: Pool): ThrottleMemory {
  return {
    name: 'postgres',
    async get(key) {
      const r = await pool.query<{ enviado_en: Date; retenidos: number; retenidos_desde: Date | null }>(
        'SELECT enviado_en, retenidos, retenidos_desde FROM avisos_trabajos WHERE clave = $1',
        [key],
      );
      const row = r.rows[0];
      return row
        ? { lastSentMs: row.enviado_en.getTime(), heldBack: row.retenidos, heldBackSinceMs: row.retenidos_desde?.getTime() ?? null }
        : null;
    },
    async put(key, e) {
      await pool.query(
        `INSERT INTO avisos_trabajos (clave, enviado_en, retenidos, retenidos_desde) VALUES ($1, $2, $3, $4)
         ON CONFLICT (clave) DO UPDATE
         SET enviado_en = EXCLUDED.enviado_en, retenidos = EXCLUDED.retenidos, retenidos_desde = EXCLUDED.retenidos_desde`,
        [key, new Date(e.lastSentMs), e.heldBack, e.heldBackSinceMs === null ? null : new Date(e.heldBackSinceMs)],
      );
    },
  };
}

/** A JSON file of entries by key, replaced atomically (written aside, then renamed). */
export function fileThrottleMemory(path: string): ThrottleMemory {
  const read = (): Record<string, ThrottleEntry> => {
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as Record<string, ThrottleEntry>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw err;
    }
  };
  return {
    name: 'file',
    async get(key) {
      const e = read()[key];
      return e && Number.isFinite(e.lastSentMs) ? e : null;
    },
    async put(key, entry) {
      const all = { ...read(), [key]: entry };
      mkdirSync(dirname(path), { recursive: true });
      const tmp = `${path}.${process.pid}.tmp`;
      writeFileSync(tmp, `${JSON.stringify(all, null, 1)}\n`);
      renameSync(tmp, path);
    },
  };
}
