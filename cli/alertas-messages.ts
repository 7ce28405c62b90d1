/**
 * What `fluxion alertas` prints for an operator, in each locale (FLUXION_LOCALE, core/i18n.ts).
 * Identifiers an operator types or searches for (alert ids, store ids, estados, rules,
 * commands, table names) stay as they are in every language.
 */
import { defineMessages } from '../core/i18n.ts';

const en = {
  hId: 'alert id',
  hDeposito: 'deposito',
  hProducto: 'product',
  hDescripcion: 'description',
  hRegla: 'rule',
  hConfianza: 'confidence',
  hAbierta: 'opened (Caracas)',
  hEstado: 'status',
  hNota: 'note',
  store: (store: string, n: number) => `${store}: ${n} alert(s)`,
  total: (n: number, stores: number, estado: string) => `alertas: ${n} ${estado} alert(s) in ${stores} store(s)`,
  none: (estado: string) => `alertas: no ${estado} alert matches`,
  estadoTodas: 'any estado',
  notaDe: (por: string, when: string, nota: string) => `${por}, ${when}: ${nota}`,
  resolvedAlso: (when: string) => `stock back ${when}`,
  dismissed: (id: string, what: string, por: string) =>
    `alertas: alert ${id} (${what}) dismissed by ${por}; it stays DESCARTADA whatever the detector sends for it. If the product ` +
    `recovers and drops to 0 again, a new alert opens.`,
  notFound: (id: string) => `no alert has id ${id} (see \`fluxion alertas listar --estado todas\`); nothing changed`,
  alreadyDismissed: (id: string, when: string, por: string, nota: string) =>
    `alert ${id} was already dismissed ${when} by ${por} ("${nota}"); nothing changed`,
  alreadyResolved: (id: string, when: string) =>
    `alert ${id} was already resolved ${when} (the detector saw the stock back or the rule no longer holding); nothing to dismiss`,
  badId: (value: string) => `"${value}" is not an alert id: give the whole UUID, as \`fluxion alertas listar\` shows it`,
  emptyNota: '--nota is empty: say why the alert is dismissed (for instance what the count on the shelf showed)',
  emptyPor: '--por is empty: name who dismisses the alert',
  badEstado: (value: string) => `--estado "${value}" is not OPEN, DESCARTADA, RESOLVED or todas`,
  notMigrated:
    'the database has no alertas table, or not its dismissal columns (migration 008_alertas_descartadas.sql): run `fluxion migrate` first',
  unreachable: (detail: string) => `PostgreSQL does not answer (DATABASE_URL): ${detail}. Nothing changed; try again once it is back`,
  badDesde: (value: string) =>
    `--desde "${value}" is not a date (2026-11-27: from that day's midnight in Caracas) or an instant (2026-11-27T14:00:00Z)`,
};

export type AlertasMessages = typeof en;

export const alertasMessages = defineMessages<AlertasMessages>({
  en,
  es: {
    hId: 'alert_id',
    hDeposito: 'deposito',
    hProducto: 'producto',
    hDescripcion: 'descripción',
    hRegla: 'regla',
    hConfianza: 'confianza',
    hAbierta: 'abierta (Caracas)',
    hEstado: 'estado',
    hNota: 'nota',
    store: (store, n) => `${store}: ${n} alerta(s)`,
    total: (n, stores, estado) => `alertas: ${n} alerta(s) ${estado} en ${stores} tienda(s)`,
    none: (estado) => `alertas: ninguna alerta ${estado} coincide`,
    estadoTodas: 'de cualquier estado',
    notaDe: (por, when, nota) => `${por} el ${when}: ${nota}`,
    resolvedAlso: (when) => `stock de vuelta ${when}`,
    dismissed: (id, what, por) =>
      `alertas: alerta ${id} (${what}) descartada por ${por}; queda DESCARTADA aunque el detector siga enviando datos de ella. Si el ` +
      `producto se recupera y vuelve a 0, se abre una alerta nueva.`,
    notFound: (id) => `ninguna alerta tiene el id ${id} (vea \`fluxion alertas listar --estado todas\`); no se cambió nada`,
    alreadyDismissed: (id, when, por, nota) => `la alerta ${id} ya fue descartada el ${when} por ${por} ("${nota}"); no se cambió nada`,
    alreadyResolved: (id, when) =>
      `la alerta ${id} ya se resolvió el ${when} (el detector vio volver el stock, o la regla dejó de cumplirse); no hay nada que ` +
      `descartar`,
    badId: (value) => `"${value}" no es un id de alerta: copie el UUID completo, como lo muestra \`fluxion alertas listar\``,
    emptyNota: '--nota está vacía: diga por qué se descarta la alerta (por ejemplo, qué mostró el conteo en el anaquel)',
    emptyPor: '--por está vacío: indique quién descarta la alerta',
    badEstado: (value) => `--estado "${value}" no es OPEN, DESCARTADA, RESOLVED ni todas`,
    notMigrated:
      'la base de datos no tiene la tabla alertas, o le faltan las columnas de descarte (migración 008_alertas_descartadas.sql): ' +
      'ejecute `fluxion migrate` primero',
    unreachable: (detail) => `PostgreSQL no responde (DATABASE_URL): ${detail}. No se cambió nada; intente de nuevo cuando vuelva`,
    badDesde: (value) =>
      `--desde "${value}" no es una fecha (2026-11-27: desde la medianoche de ese día en Caracas) ni un instante (2026-11-27T14:00:00Z)`,
  },
});
