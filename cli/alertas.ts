/**
 * `fluxion alertas listar|descartar`: phantom-zero alerts for an operator (sinks/alertas.ts).
 * What it prints is in FLUXION_LOCALE (cli/alertas-messages.ts); `--json` is for scripts.
 */
import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { FluxionError } from '../core/errors.ts';
import { formatLocalMinute } from '../core/mail/format.ts';
import {
  AlertaNotFoundError,
  AlertaNotOpenError,
  checkDescarte,
  descartarAlerta,
  listarAlertas,
  parseDesde,
  parseEstado,
  porTienda,
  type AlertaListada,
} from '../sinks/alertas.ts';
import { alertasMessages, type AlertasMessages } from './alertas-messages.ts';
import type { ProgramIo } from './program-io.ts';

/** Exit codes of `fluxion alertas descartar`, as its --help states them. */
export const DESCARTAR_EXIT = { dismissed: 0, failed: 1, usage: 2, notFound: 3, notOpen: 4 } as const;

const DESCARTAR_HELP = `
Exit codes:
  0  the alert is now DESCARTADA
  1  PostgreSQL could not be reached, or another unexpected failure
  2  bad usage (the id is not a UUID, --nota or --por is empty), or the database is not migrated
  3  no alert has that id
  4  the alert is no longer OPEN: already resolved or already dismissed (the message says when, and by whom)

A dismissed alert stays DESCARTADA whatever the detector sends later for the same alert id
(updates, its RESOLVED). If the product recovers and drops to 0 again, that new episode opens a
new alert.`;

const DESCRIPTION_WIDTH = 32;

/** Who dismisses, when --por is not given: FLUXION_OPERATOR, else the OS user. */
function defaultOperator(configured: string | undefined): string {
  if (configured) return configured;
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? 'unknown';
  }
}

/** The operator's words for an error the operator can act on; null for anything else. */
function operatorMessage(e: unknown, m: AlertasMessages): string | null {
  if (e instanceof AlertaNotFoundError) return m.notFound(e.alertId);
  if (e instanceof AlertaNotOpenError) {
    const a = e.alerta;
    if (a.estado === 'DESCARTADA')
      return m.alreadyDismissed(a.alert_id, formatLocalMinute(a.descartada_en!), a.descartada_por ?? '?', a.nota ?? '');
    return m.alreadyResolved(a.alert_id, formatLocalMinute(a.resuelta_en ?? a.actualizada_en));
  }
  if (!(e instanceof FluxionError)) return null;
  const value = String(e.context.value ?? '');
  switch (e.code) {
    case 'ALERTA_ID':
      return m.badId(value);
    case 'ALERTA_NOTA':
      return m.emptyNota;
    case 'ALERTA_POR':
      return m.emptyPor;
    case 'ALERTA_ESTADO':
      return m.badEstado(value);
    case 'ALERTA_DESDE':
      return m.badDesde(value);
    case 'ALERTAS_NOT_MIGRATED':
      return m.notMigrated;
    case 'SERVICE_UNAVAILABLE':
      return m.unreachable(e.message.replace(/^PostgreSQL is not reachable: /, ''));
    default:
      return null;
  }
}

/** Runs `work`; an error the operator can act on is printed in their words with its exit code. */
async function asOperator(io: ProgramIo, m: () => AlertasMessages, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (e) {
    const text = operatorMessage(e, m());
    if (text === null) throw e;
    io.err(`fluxion: ${text}`);
    io.fail((e as FluxionError).exitCode);
  }
}

const what = (a: AlertaListada): string =>
  `${a.ubicacion_id} deposito ${a.deposito} producto ${a.producto_id}${a.descripcion ? ` ${a.descripcion}` : ''}`;

function notaCell(a: AlertaListada, m: AlertasMessages): string {
  const parts: string[] = [];
  if (a.estado === 'DESCARTADA') parts.push(m.notaDe(a.descartada_por ?? '?', formatLocalMinute(a.descartada_en!), a.nota ?? ''));
  if (a.resuelta_en) parts.push(m.resolvedAlso(formatLocalMinute(a.resuelta_en)));
  return parts.join('; ');
}

/** One block per store: its name and count, then its alerts as aligned columns (the last one, the note, unpadded). */
export function alertasTable(alertas: readonly AlertaListada[], m: AlertasMessages): string[] {
  const head = [m.hId, m.hDeposito, m.hProducto, m.hDescripcion, m.hRegla, m.hConfianza, m.hAbierta, m.hEstado, m.hNota];
  const cells = (a: AlertaListada) => [
    a.alert_id,
    a.deposito,
    a.producto_id,
    (a.descripcion ?? '-').slice(0, DESCRIPTION_WIDTH),
    a.regla,
    a.confianza.toFixed(2),
    formatLocalMinute(a.abierta_en),
    a.estado,
    notaCell(a, m),
  ];
  const rows = alertas.map(cells);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => `  ${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}`.trimEnd();
  const out: string[] = [];
  for (const [store, list] of porTienda(alertas)) {
    out.push(m.store(store, list.length), fmt(head), ...list.map((a) => fmt(cells(a))), '');
  }
  return out;
}

export function registerAlertasCommand(program: Command, io: ProgramIo): void {
  const alertas = program
    .command('alertas')
    .description('phantom-zero alerts (table alertas): list them per store, dismiss one with a note');
  const messages = () => alertasMessages(io.context().config.locale);

  alertas
    .command('listar')
    .description(
      'alerts per store, most confident first: id, deposito, product and its description, rule, confidence, opened, estado, note',
    )
    .option('--tienda <id>', 'only this store (repeatable)', (value: string, previous: string[] = []) => [...previous, value])
    .option('--estado <estado>', 'OPEN, DESCARTADA, RESOLVED or todas', 'OPEN')
    .option('--desde <fecha>', 'only alerts opened from this date (YYYY-MM-DD, Caracas) or instant (ISO 8601)')
    .option('--json', 'one JSON object per alert and line, for scripts')
    .action(async (opts: { tienda?: string[]; estado: string; desde?: string; json?: boolean }) =>
      asOperator(io, messages, async () => {
        const estados = parseEstado(opts.estado);
        const desde = opts.desde === undefined ? null : parseDesde(opts.desde);
        const c = io.context();
        const m = messages();
        const found = await listarAlertas(c.pool(), { tiendas: opts.tienda ?? [], estados, desde });
        if (opts.json) {
          for (const a of found) io.out(JSON.stringify(a));
          return;
        }
        const estado = estados.length ? estados.join(', ') : m.estadoTodas;
        if (found.length === 0) {
          io.out(m.none(estado));
          return;
        }
        for (const line of alertasTable(found, m)) io.out(line);
        io.out(m.total(found.length, porTienda(found).size, estado));
      }),
    );

  alertas
    .command('descartar')
    .description('dismiss an OPEN alert with a note (who and why): it stays DESCARTADA and is never mailed again')
    .argument('<id>', 'the alert id (alert_id), from `fluxion alertas listar`')
    .requiredOption('--nota <texto>', 'why it is dismissed (for instance what the count on the shelf showed); required, not empty')
    .option('--por <quien>', 'who dismisses it (default FLUXION_OPERATOR, else the OS user)')
    .addHelpText('after', DESCARTAR_HELP)
    .action(async (id: string, opts: { nota: string; por?: string }) =>
      asOperator(io, messages, async () => {
        const c = io.context();
        // Checked before PostgreSQL is asked anything.
        const descarte = checkDescarte({ alertId: id, nota: opts.nota, por: opts.por ?? defaultOperator(c.config.operator) });
        const a = await descartarAlerta(c.pool(), descarte);
        io.out(messages().dismissed(a.alert_id, what(a), a.descartada_por ?? descarte.por));
      }),
    );
}
