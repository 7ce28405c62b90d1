/**
 * What the notifier's mails say, in each locale (FLUXION_LOCALE, core/i18n.ts): subjects,
 * bodies, labels and advice. sinks/notify-rules.ts decides when to mail and fills these in.
 * Identifiers an operator types or searches for (store ids, job names, error classes,
 * commands, table names) stay as they are in every language.
 */
import { defineMessages } from '../core/i18n.ts';

const en = {
  subjectConnectivity: (store: string, job: string, errorClass: string) =>
    `${store}: POS unreachable, ${job} extraction failed (${errorClass})`,
  subjectExtraction: (store: string, job: string, errorClass: string) => `${store}: ${job} extraction failed (${errorClass})`,
  subjectQuarantine: (store: string) => `${store}: massive stockout, snapshot quarantined`,
  subjectStale: (store: string) => `${store}: snapshot older than the applied one, not applied`,
  subjectPhantom: (store: string, n: number, window: string) => `${store}: ${n} phantom zeros to count (${window})`,
  runIntro: (store: string, job: string) => `${store}: the ${job} extraction failed.`,
  adviceConnectivity: (store: string) =>
    `Fluxion could not reach ${store}'s POS, or it did not answer in time (after retries). Check the store's server, its network and ` +
    `the VPN; the next scheduled run tries again.`,
  adviceAuth: (store: string) =>
    `${store}'s POS refused Fluxion's credentials: check the variable named in the error. Retrying will not help until it is fixed.`,
  adviceOther: (store: string) =>
    `Nothing of this run was published: ${store}'s data stays as of its last successful run. The error above says what failed (for ` +
    `bad data: the page, field and value).`,
  quarantineIntro: (store: string) =>
    `${store}: massive stockout in the latest inventory snapshot. Fluxion quarantined it: it was NOT applied, so ${store}'s stock ` +
    `stays as of its previous snapshot.`,
  quarantineRelease: 'If the stock really is that low (a physical count confirms it), release it:',
  quarantineNote: '<who confirmed it, and how>',
  quarantineOtherwise: "Otherwise the store's next normal snapshot supersedes it. See the waiting ones with `fluxion quarantine list`.",
  staleIntro: (store: string) =>
    `${store}: an inventory snapshot arrived that is older than the one already applied. Fluxion did NOT apply it (it would move the ` +
    `stock back in time).`,
  staleAdvice: (store: string) =>
    `Once, it is a delayed or overlapping run and needs nothing. If it comes with every run, ${store}'s POS clock is behind: its ` +
    `stock stays frozen at the applied snapshot until the clock passes that time. Check the date and time of the store's POS server.`,
  phantomIntro: (store: string, n: number, window: string, threshold: number) =>
    `${store}: ${n} products got a phantom-zero alert within ${window}${threshold > 1 ? ` (threshold ${threshold})` : ''}: the POS ` +
    `says 0, but the shelf probably has stock. Please count them.`,
  phantomTop: (budget: number, mailedToday: number) =>
    `The most confident first (at most ${budget} alerts per store per day${mailedToday ? `; ${mailedToday} already mailed today` : ''}):`,
  phantomBeyond: (n: number, store: string) => `and ${n} more in the alertas table (fluxion alertas listar --tienda ${store})`,
  phantomDismiss:
    'Goods on the shelf? Correct the stock in the POS: the alert resolves itself with the next snapshot. The shelf really is empty ' +
    '(the 0 is right)? Dismiss the alert: fluxion alertas descartar <alert_id> --nota "<what the count showed>".',
  phantomWhere: 'The alerts are in the alertas table (estado OPEN) and on alerts.phantom-zeros.',
  heldBack: (n: number, kind: string, store: string, since: string, every: string) =>
    `${n} more ${kind} notice(s) for ${store} were not mailed${since ? ` since ${since}` : ''} (at most one mail per store and kind ` +
    `every ${every}).`,
  kindConnectivity: 'connectivity',
  kindExtraction: 'extraction failure',
  kindQuarantine: 'quarantine',
  kindStale: 'stale snapshot',
  kindPhantom: 'phantom-zero',
  footer: (environment: string, key: string) => `--\nFluxion Stream notifier (${environment}), throttle key ${key}.`,
  unknownEnvironment: 'unknown environment',
  noMessage: '(no message)',
  lStore: 'store',
  lJob: 'job',
  lErrorClass: 'error class',
  lError: 'error',
  lRun: 'run',
  lStarted: 'started',
  lFinished: 'finished',
  lReason: 'reason',
  lSnapshot: 'snapshot',
  lSource: 'source',
  lTakenAt: 'taken at',
  lRows: 'rows',
  lAlerts: 'alerts',
  lByRule: 'by rule',
  lFirstOpened: 'first opened',
  lLastOpened: 'last opened',
};

export type NotifyMessages = typeof en;

export const notifyMessages = defineMessages<NotifyMessages>({
  en,
  es: {
    subjectConnectivity: (store, job, errorClass) => `${store}: POS inaccesible, falló la extracción ${job} (${errorClass})`,
    subjectExtraction: (store, job, errorClass) => `${store}: falló la extracción ${job} (${errorClass})`,
    subjectQuarantine: (store) => `${store}: quiebre masivo, snapshot en cuarentena`,
    subjectStale: (store) => `${store}: snapshot más viejo que el ya aplicado, no se aplicó`,
    subjectPhantom: (store, n, window) => `${store}: ${n} ceros fantasma por contar (${window})`,
    runIntro: (store, job) => `${store}: falló la extracción ${job}.`,
    adviceConnectivity: (store) =>
      `Fluxion no pudo conectarse al POS de ${store}, o no respondió a tiempo (tras los reintentos). Revise el servidor de la tienda, ` +
      `su red y la VPN; la próxima corrida programada lo intentará de nuevo.`,
    adviceAuth: (store) =>
      `El POS de ${store} rechazó las credenciales de Fluxion: revise la variable nombrada en el error. Reintentar no servirá hasta ` +
      `corregirla.`,
    adviceOther: (store) =>
      `No se publicó nada de esta corrida: los datos de ${store} quedan como en su última corrida exitosa. El error de arriba dice ` +
      `qué falló (si son datos malos: la página, el campo y el valor).`,
    quarantineIntro: (store) =>
      `${store}: quiebre masivo en el último snapshot de inventario. Fluxion lo puso en cuarentena: NO se aplicó, así que el stock de ` +
      `${store} queda como en su snapshot anterior.`,
    quarantineRelease: 'Si el stock realmente es así de bajo (un conteo físico lo confirma), libérelo:',
    quarantineNote: '<quién lo confirmó, y cómo>',
    quarantineOtherwise: 'Si no, el próximo snapshot normal de la tienda lo reemplaza. Vea los que esperan con `fluxion quarantine list`.',
    staleIntro: (store) =>
      `${store}: llegó un snapshot de inventario más viejo que el ya aplicado. Fluxion NO lo aplicó (devolvería el stock en el tiempo).`,
    staleAdvice: (store) =>
      `Una vez, es una corrida demorada o solapada y no requiere nada. Si llega en cada corrida, el reloj del POS de ${store} está ` +
      `atrasado: su stock queda congelado en el snapshot aplicado hasta que el reloj pase esa hora. Revise la fecha y hora del ` +
      `servidor POS de la tienda.`,
    phantomIntro: (store, n, window, threshold) =>
      `${store}: ${n} productos recibieron una alerta de cero fantasma en ${window}${threshold > 1 ? ` (umbral ${threshold})` : ''}: ` +
      `el POS dice 0, pero probablemente hay mercancía en el anaquel. Por favor cuéntelos.`,
    phantomTop: (budget, mailedToday) =>
      `Las más confiables primero (a lo sumo ${budget} alertas por tienda y día${mailedToday ? `; ${mailedToday} ya enviadas hoy` : ''}):`,
    phantomBeyond: (n, store) => `y ${n} más en la tabla alertas (fluxion alertas listar --tienda ${store})`,
    phantomDismiss:
      '¿Hay mercancía en el anaquel? Corrija el stock en el POS: la alerta se resuelve sola con el siguiente snapshot. ¿El anaquel de ' +
      'verdad está vacío (el 0 es correcto)? Descarte la alerta: fluxion alertas descartar <alert_id> --nota "<lo que mostró el ' +
      'conteo>".',
    phantomWhere: 'Las alertas están en la tabla alertas (estado OPEN) y en alerts.phantom-zeros.',
    heldBack: (n, kind, store, since, every) =>
      `${n} aviso(s) más de ${kind} de ${store} no se enviaron${since ? ` desde ${since}` : ''} (a lo sumo un correo por tienda y ` +
      `tipo cada ${every}).`,
    kindConnectivity: 'conectividad',
    kindExtraction: 'extracción fallida',
    kindQuarantine: 'cuarentena',
    kindStale: 'snapshot atrasado',
    kindPhantom: 'cero fantasma',
    footer: (environment, key) => `--\nNotificador de Fluxion Stream (${environment}), clave de limitación ${key}.`,
    unknownEnvironment: 'entorno desconocido',
    noMessage: '(sin mensaje)',
    lStore: 'tienda',
    lJob: 'trabajo',
    lErrorClass: 'clase de error',
    lError: 'error',
    lRun: 'corrida',
    lStarted: 'inicio',
    lFinished: 'fin',
    lReason: 'motivo',
    lSnapshot: 'snapshot',
    lSource: 'origen',
    lTakenAt: 'tomado el',
    lRows: 'filas',
    lAlerts: 'alertas',
    lByRule: 'por regla',
    lFirstOpened: 'primera abierta',
    lLastOpened: 'última abierta',
  },
});
