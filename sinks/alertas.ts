/**
 * What an operator does with phantom-zero alerts in PostgreSQL (`fluxion alertas`): list them
 * per store, and dismiss one with a note. The sink writes alertas from alerts.phantom-zeros;
 * a dismissal is the one write that comes from a person, and the sink keeps it
 * (sinks/sink-batch.ts mergeAlerta: a dismissed alert never goes back to OPEN on the
 * detector's later records of the same alert_id; a new episode is a new alert_id).
 *
 * The detector does not hear of a dismissal: it keeps the alert open in its state and sends
 * its updates and its RESOLVED, which land on the dismissed row as evidence only.
 */
import type pg from 'pg';
import { ConfigError, FluxionError, ServiceUnavailableError, UsageError } from '../core/errors.ts';
import { scrubSecrets } from '../core/logger.ts';
import { isConnectionError, type Pool } from '../core/postgres.ts';
import { ALERTA_ESTADOS, type AlertaEstado } from './sink-batch.ts';

export interface AlertaListada {
  alert_id: string;
  ubicacion_id: string;
  deposito: string;
  producto_id: string;
  /** productos.descripcion, or null when the product is not in productos. */
  descripcion: string | null;
  regla: string;
  confianza: number;
  estado: AlertaEstado;
  resumen: string;
  abierta_en: Date;
  actualizada_en: Date;
  resuelta_en: Date | null;
  nota: string | null;
  descartada_por: string | null;
  descartada_en: Date | null;
}

/** No alert has that id. Exit code 3. */
export class AlertaNotFoundError extends FluxionError {
  override readonly exitCode = 3;
  readonly alertId: string;
  constructor(alertId: string) {
    super(`no alert with id ${alertId} in alertas`, { code: 'ALERTA_NOT_FOUND', context: { table: 'alertas', alert_id: alertId } });
    this.alertId = alertId;
  }
}

/** The alert is no longer OPEN (resolved by the detector, or already dismissed). Exit code 4. */
export class AlertaNotOpenError extends FluxionError {
  override readonly exitCode = 4;
  readonly alerta: AlertaListada;
  constructor(alerta: AlertaListada) {
    const when = alerta.estado === 'DESCARTADA' ? alerta.descartada_en : (alerta.resuelta_en ?? alerta.actualizada_en);
    super(`alert ${alerta.alert_id} is ${alerta.estado} since ${when?.toISOString()}, not OPEN`, {
      code: 'ALERTA_NOT_OPEN',
      context: { table: 'alertas', alert_id: alerta.alert_id, estado: alerta.estado },
    });
    this.alerta = alerta;
  }
}

/**
 * Runs one statement, translating what an operator can act on: PostgreSQL not reachable
 * (ServiceUnavailableError, exit 1) and a database without the alertas table or its dismissal
 * columns (ConfigError ALERTAS_NOT_MIGRATED, exit 2: run `fluxion migrate`).
 */
async function query<R extends pg.QueryResultRow>(pool: Pool, text: string, params: unknown[]): Promise<pg.QueryResult<R>> {
  try {
    return await pool.query<R>(text, params);
  } catch (err) {
    if (isConnectionError(err))
      throw new ServiceUnavailableError(`PostgreSQL is not reachable: ${scrubSecrets((err as Error).message)}`, {
        cause: err,
        service: 'postgres',
        context: { table: 'alertas' },
      });
    const sqlstate = (err as { code?: string }).code;
    // 42P01 undefined_table, 42703 undefined_column: migrations 004 or 008 not applied.
    if (sqlstate === '42P01' || sqlstate === '42703') {
      throw new ConfigError(
        [
          `the database lacks the alertas table or its dismissal columns (${scrubSecrets((err as Error).message)}): run \`fluxion ` +
            `migrate\` first`,
        ],
        {
          code: 'ALERTAS_NOT_MIGRATED',
          cause: err,
          context: { table: 'alertas', sqlstate },
        },
      );
    }
    throw err;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const COLUMNS = `a.alert_id::text AS alert_id, a.ubicacion_id, a.deposito, a.producto_id, p.descripcion,
  a.regla, a.confianza, a.estado, a.resumen,
  a.abierta_en, a.actualizada_en, a.resuelta_en, a.nota, a.descartada_por, a.descartada_en`;

export interface Descarte {
  alertId: string;
  nota: string;
  por: string;
}

/** Checks a dismissal's arguments before any I/O; the messages say what to type instead. */
export function checkDescarte(d: Descarte): Descarte {
  const alertId = d.alertId.trim();
  if (!UUID.test(alertId))
    throw new UsageError(`"${d.alertId}" is not an alert id (a UUID, as \`fluxion alertas listar\` shows it)`, {
      code: 'ALERTA_ID',
      context: { field: 'id', value: d.alertId },
    });
  const nota = d.nota.trim();
  if (!nota)
    throw new UsageError('--nota is empty: say why the alert is dismissed (what the count on the shelf showed)', {
      code: 'ALERTA_NOTA',
      context: { field: '--nota' },
    });
  const por = d.por.trim();
  if (!por) throw new UsageError('--por is empty: name who dismisses the alert', { code: 'ALERTA_POR', context: { field: '--por' } });
  return { alertId: alertId.toLowerCase(), nota, por };
}

/**
 * Dismisses an OPEN alert: estado DESCARTADA with the note, who and now(). Throws
 * AlertaNotFoundError or AlertaNotOpenError (naming when it was resolved or dismissed).
 * One conditional UPDATE: a sink resolving the alert at the same instant either comes first
 * (the alert is then RESOLVED and not dismissed) or after (it stays DESCARTADA).
 */
export async function descartarAlerta(pool: Pool, descarte: Descarte): Promise<AlertaListada> {
  const d = checkDescarte(descarte);
  const updated = await query<AlertaListada>(
    pool,
    `WITH d AS (
       UPDATE alertas SET estado = 'DESCARTADA', nota = $2, descartada_por = $3, descartada_en = now()
       WHERE alert_id = $1::uuid AND estado = 'OPEN' RETURNING *
     )
     SELECT ${COLUMNS} FROM d a LEFT JOIN productos p ON p.producto_id = a.producto_id`,
    [d.alertId, d.nota, d.por],
  );
  if (updated.rows[0]) return updated.rows[0];
  const current = await query<AlertaListada>(
    pool,
    `SELECT ${COLUMNS} FROM alertas a LEFT JOIN productos p ON p.producto_id = a.producto_id WHERE a.alert_id = $1::uuid`,
    [d.alertId],
  );
  if (!current.rows[0]) throw new AlertaNotFoundError(d.alertId);
  throw new AlertaNotOpenError(current.rows[0]);
}

export interface ListarFiltro {
  /** ubicacion_id values; empty: every store. */
  tiendas: string[];
  /** Empty: every estado. */
  estados: AlertaEstado[];
  /** Only alerts opened at or after this instant. */
  desde: Date | null;
}

/** Parses `--estado`: one of OPEN, DESCARTADA, RESOLVED (any case) or `todas`. */
export function parseEstado(value: string): AlertaEstado[] {
  const v = value.trim().toUpperCase();
  if (v === 'TODAS' || v === 'ALL') return [];
  const estado = ALERTA_ESTADOS.find((e) => e === v);
  if (!estado)
    throw new UsageError(`--estado "${value}" is not OPEN, DESCARTADA, RESOLVED or todas`, {
      code: 'ALERTA_ESTADO',
      context: { field: '--estado', value },
    });
  return [estado];
}

/** Parses `--desde`: a store-local date YYYY-MM-DD (from its midnight in America/Caracas) or an ISO instant. */
export function parseDesde(value: string): Date {
  const v = value.trim();
  // Caracas is UTC-4 all year (core/time.ts).
  const d = /^\d{4}-\d{2}-\d{2}$/.test(v) ? new Date(`${v}T00:00:00-04:00`) : /^\d{4}-\d{2}-\d{2}T/.test(v) ? new Date(v) : new Date(NaN);
  if (Number.isNaN(d.getTime()))
    throw new UsageError(
      `--desde "${value}" is not a date (2026-11-27, from that day's midnight in Caracas) or an instant (2026-11-27T14:00:00Z)`,
      { code: 'ALERTA_DESDE', context: { field: '--desde', value } },
    );
  return d;
}

/** Alerts by store (ubicacion_id), most confident first within a store, then the newest. */
export async function listarAlertas(pool: Pool, filtro: ListarFiltro): Promise<AlertaListada[]> {
  const r = await query<AlertaListada>(
    pool,
    `SELECT ${COLUMNS}
     FROM alertas a LEFT JOIN productos p ON p.producto_id = a.producto_id
     WHERE (cardinality($1::text[]) = 0 OR a.ubicacion_id = ANY($1::text[]))
       AND (cardinality($2::text[]) = 0 OR a.estado = ANY($2::text[]))
       AND ($3::timestamptz IS NULL OR a.abierta_en >= $3::timestamptz)
     ORDER BY a.ubicacion_id, a.confianza DESC, a.abierta_en DESC, a.alert_id`,
    [filtro.tiendas, filtro.estados, filtro.desde],
  );
  return r.rows;
}

/** Which of `alertIds` an operator dismissed (the notifier leaves them out of its mails). */
export async function descartadas(pool: Pool, alertIds: readonly string[]): Promise<string[]> {
  if (alertIds.length === 0) return [];
  const r = await query<{ alert_id: string }>(
    pool,
    `SELECT alert_id::text AS alert_id FROM alertas WHERE alert_id = ANY($1::uuid[]) AND estado = 'DESCARTADA'`,
    [alertIds],
  );
  return r.rows.map((x) => x.alert_id);
}

/** The alerts grouped by store, in the order listarAlertas gives them. */
export function porTienda(alertas: readonly AlertaListada[]): Map<string, AlertaListada[]> {
  const out = new Map<string, AlertaListada[]>();
  for (const a of alertas) {
    const list = out.get(a.ubicacion_id);
    if (list) list.push(a);
    else out.set(a.ubicacion_id, [a]);
  }
  return out;
}
