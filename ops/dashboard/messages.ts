/**
 * What the dashboard says to operators, in each locale (FLUXION_LOCALE, core/i18n.ts): the
 * reasons of lag and freshness statuses (in /api/* and on the page), the page's fixed text
 * (filled into static/index.html by the server) and the words its script writes (served as
 * /static/messages.js). Status codes (OK, WARN, ERR, STALL, DOWN) stay as they are: they are
 * the metrics' label values and what alert rules match.
 */
import { defineMessages, type Locale } from '../../core/i18n.ts';

const min = (ms: number, _locale: Locale) => `${Math.round(ms / 60_000)} min`;

const en = {
  // lag.ts
  lagCaughtUp: 'caught up',
  lagDownWaiting: (lag: number, group: string) => `${lag} records waiting and the group has no member: is \`${group}\` running?`,
  lagDownIdle: (group: string) =>
    `nothing waiting, but the group has no member: nobody will read the next records. Is \`${group}\` running?`,
  lagStall: (unchangedMs: number, lag: number) => `position has not moved for ${min(unchangedMs, 'en')} with ${lag} records waiting`,
  lagAgeUnknown: (lag: number) => `${lag} records waiting (age unknown)`,
  lagErr: (ageMs: number, intervalMs: number) =>
    `oldest waiting record is ${min(ageMs, 'en')} old: more than two polls (${min(intervalMs, 'en')} each) behind`,
  lagWarn: (ageMs: number, intervalMs: number) =>
    `oldest waiting record is ${min(ageMs, 'en')} old: more than one poll (${min(intervalMs, 'en')}) behind`,
  lagWorking: (lag: number, ageMs: number) => `working through ${lag} records (oldest ${Math.round(ageMs / 1000)} s old)`,
  // freshness.ts
  freshMissedInARow: (job: string, n: number) => `${job}: the last ${n} polls were missed`,
  freshMissed: (job: string, missed: number, expected: number, hours: number) =>
    `${job}: ${missed} of ${expected} polls missed in the last ${hours} h`,
  freshQuarantined: (n: number) => `${n} snapshot(s) in quarantine: see \`fluxion quarantine list\``,
  freshStale: (n: number) =>
    `${n} stale snapshot(s): older than the last applied one, not applied (an overlapping or delayed run, or the POS clock set back)`,
  // the page (static/index.html: {{t.<key>}})
  pageTitle: 'Fluxion Stream · pipeline',
  pageSubtitle: 'La Granja pipeline',
  pageSample: 'sample',
  pageRefresh: (s: string) => `refresh every ${s} s`,
  pageGroups: 'Consumer groups',
  pageHistory: 'Lag history',
  pageHistorySub: '(last hours; one point per sample)',
  pageStores: 'Stores',
  pagePartitions: 'Partitions',
  pageShowAll: 'show caught-up partitions',
  colStatus: 'status',
  colGroup: 'group',
  colProcess: 'process',
  colMembers: 'members',
  colLagMessages: 'lag (messages)',
  colLagSeconds: 'lag (s)',
  colOldest: 'oldest waiting',
  colStore: 'store',
  colPos: 'POS',
  colLastInventario: 'last inventario OK',
  colLastVentas: 'last ventas OK',
  colLastApplied: 'last applied snapshot',
  colMissedPolls: 'missed polls',
  colQuarantine: 'quarantine',
  colStale: 'stale snapshots',
  colOpenAlerts: 'open alerts',
  colWhy: 'why',
  colTopic: 'topic',
  colPartition: 'partition',
  colCommitted: 'committed',
  colEnd: 'end',
  chartSeconds: 'seconds',
  chartMessages: 'messages',
  legendTitle: 'Status',
  legendOk: 'caught up, or working through a burst younger than one poll interval',
  legendWarn: 'the oldest waiting record is older than one poll interval of the schedule',
  legendErr: 'older than two intervals',
  legendStall: 'the consumer is there but its position has not moved for 5 minutes',
  legendDown: 'the group has no member: the process is down, whether or not records wait',
  // the page's script (static/app.js reads them from /static/messages.js)
  jsNever: 'never',
  jsAgo: (d: string) => `${d} ago`,
  jsNone: 'none',
  jsNotAppliedYet: ' (newer extraction not applied yet)',
  jsLookback: (h: number) => `(missed polls: opening-hours ticks of the last ${h} h)`,
  jsCollecting: 'collecting samples…',
  jsTopicPrefix: (p: string) => `topic prefix ${p}`,
};

export type DashboardMessages = typeof en;

export const dashboardMessages = defineMessages<DashboardMessages>({
  en,
  es: {
    lagCaughtUp: 'al día',
    lagDownWaiting: (lag, group) => `${lag} registros en espera y el grupo no tiene miembros: ¿está corriendo \`${group}\`?`,
    lagDownIdle: (group) =>
      `nada en espera, pero el grupo no tiene miembros: nadie leerá los próximos registros. ¿Está corriendo \`${group}\`?`,
    lagStall: (unchangedMs, lag) => `la posición no avanza desde hace ${min(unchangedMs, 'es')} con ${lag} registros en espera`,
    lagAgeUnknown: (lag) => `${lag} registros en espera (antigüedad desconocida)`,
    lagErr: (ageMs, intervalMs) =>
      `el registro más antiguo en espera tiene ${min(ageMs, 'es')}: más de dos sondeos (de ${min(intervalMs, 'es')}) de atraso`,
    lagWarn: (ageMs, intervalMs) =>
      `el registro más antiguo en espera tiene ${min(ageMs, 'es')}: más de un sondeo (${min(intervalMs, 'es')}) de atraso`,
    lagWorking: (lag, ageMs) => `procesando ${lag} registros (el más antiguo de hace ${Math.round(ageMs / 1000)} s)`,
    freshMissedInARow: (job, n) => `${job}: se perdieron los últimos ${n} sondeos`,
    freshMissed: (job, missed, expected, hours) => `${job}: ${missed} de ${expected} sondeos perdidos en las últimas ${hours} h`,
    freshQuarantined: (n) => `${n} snapshot(s) en cuarentena: ver \`fluxion quarantine list\``,
    freshStale: (n) =>
      `${n} snapshot(s) atrasado(s): más antiguos que el último aplicado, no se aplicaron (una corrida solapada o retrasada, o el ` +
      `reloj del POS atrasado)`,
    pageTitle: 'Fluxion Stream · canal de datos',
    pageSubtitle: 'canal de datos de La Granja',
    pageSample: 'muestra',
    pageRefresh: (s) => `se actualiza cada ${s} s`,
    pageGroups: 'Grupos de consumidores',
    pageHistory: 'Historial de atraso',
    pageHistorySub: '(últimas horas; un punto por muestra)',
    pageStores: 'Tiendas',
    pagePartitions: 'Particiones',
    pageShowAll: 'mostrar particiones al día',
    colStatus: 'estado',
    colGroup: 'grupo',
    colProcess: 'proceso',
    colMembers: 'miembros',
    colLagMessages: 'atraso (mensajes)',
    colLagSeconds: 'atraso (s)',
    colOldest: 'espera más antigua',
    colStore: 'tienda',
    colPos: 'POS',
    colLastInventario: 'último inventario OK',
    colLastVentas: 'últimas ventas OK',
    colLastApplied: 'último snapshot aplicado',
    colMissedPolls: 'sondeos perdidos',
    colQuarantine: 'cuarentena',
    colStale: 'snapshots atrasados',
    colOpenAlerts: 'alertas abiertas',
    colWhy: 'por qué',
    colTopic: 'tópico',
    colPartition: 'partición',
    colCommitted: 'confirmado',
    colEnd: 'fin',
    chartSeconds: 'segundos',
    chartMessages: 'mensajes',
    legendTitle: 'Estados',
    legendOk: 'al día, o procesando una ráfaga más reciente que un intervalo de sondeo',
    legendWarn: 'el registro más antiguo en espera supera un intervalo de sondeo del horario',
    legendErr: 'supera dos intervalos',
    legendStall: 'el consumidor está presente pero su posición no avanza desde hace 5 minutos',
    legendDown: 'el grupo no tiene miembros: el proceso está detenido, haya o no registros en espera',
    jsNever: 'nunca',
    jsAgo: (d) => `hace ${d}`,
    jsNone: 'ninguno',
    jsNotAppliedYet: ' (extracción más reciente aún no aplicada)',
    jsLookback: (h) => `(sondeos perdidos: horarios de apertura de las últimas ${h} h)`,
    jsCollecting: 'recopilando muestras…',
    jsTopicPrefix: (p) => `prefijo de tópicos ${p}`,
  },
});

/** The words the page's script needs, as a JSON-able object of one locale ({0} marks a parameter). */
export function clientMessages(locale: Locale): Record<string, string> {
  const m = dashboardMessages(locale);
  return {
    never: m.jsNever,
    ago: m.jsAgo('{0}'),
    none: m.jsNone,
    notAppliedYet: m.jsNotAppliedYet,
    lookback: m.jsLookback('{0}' as unknown as number),
    collecting: m.jsCollecting,
    topicPrefix: m.jsTopicPrefix('{0}'),
  };
}

/** Fills the page's `{{t.<key>}}` placeholders; an unknown key is an error (a typo in the page). */
export function renderPage(template: string, locale: Locale, refreshSeconds: number): string {
  const m = dashboardMessages(locale) as unknown as Record<string, string | ((...a: unknown[]) => string)>;
  // The page ships a valid lang (es) so it lints and previews as is; serving sets the run's locale.
  return template
    .replace(/<html lang="[a-z-]+">/, `<html lang="${locale}">`)
    .replaceAll('{{REFRESH_SECONDS}}', String(refreshSeconds))
    .replace(/\{\{t\.(\w+)\}\}/g, (_, key: string) => {
      const msg = m[key];
      if (msg === undefined) throw new Error(`static/index.html: no message ${key} in ops/dashboard/messages.ts`);
      return escapeHtml(typeof msg === 'function' ? msg(String(refreshSeconds)) : msg);
    });
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
