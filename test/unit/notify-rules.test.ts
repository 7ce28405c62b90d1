/**
 * What `fluxion notify` decides, without services: kinds, throttling by (kind, store) on an
 * injected clock, the phantom-zeros threshold per store, staleness, the Sentry report, and
 * what the mails say. Plus the notify configuration read from the environment.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig, requireNotifyDelivery } from '../../cli/config.ts';
import type { PhantomAlert, QuarantineRecord } from '../../core/records.ts';
import {
  classifyRun,
  createNotifyRules,
  createPhantomLedger,
  createPhantomStoreWindow,
  createThrottle,
  EtlRunFailedError,
  formatInstant,
  isConnectivityError,
  type EtlRun,
  type NotifyRulesConfig,
} from '../../sinks/notify-rules.ts';
import { problemsOf } from '../helpers/config-errors.ts';

const MIN = 60_000;
const T0 = Date.UTC(2026, 10, 27, 12, 0, 0);
const CONFIG: NotifyRulesConfig = { throttleMs: 60 * MIN, phantomStoreThreshold: 20, phantomWindowMs: 60 * MIN, maxAgeMs: 24 * 60 * MIN, environment: 'production', locale: 'en' };

let seq = 0;
function run(store: string, status: 'OK' | 'FAILED', errorClass: string | null = null, atMs = T0, job: EtlRun['job'] = 'INVENTARIO'): EtlRun {
  seq++;
  return {
    run_id: `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
    job,
    ubicacion_id: store,
    status,
    rows: status === 'OK' ? 1500 : 0,
    started_at: new Date(atMs - 20_000),
    finished_at: new Date(atMs),
    snapshot_id: null,
    fecha: null,
    error_class: status === 'OK' ? null : errorClass,
    error_message: status === 'OK' ? null : `${store}: page 1, item 42 (producto 000042): field cantidad: "12,5" is not an exact decimal(18,3)`,
  };
}
const failed = (store: string, errorClass = 'POS_DATA', atMs = T0, job: EtlRun['job'] = 'INVENTARIO') => ({ type: 'etl-run' as const, run: run(store, 'FAILED', errorClass, atMs, job) });

function quarantine(store: string, status: QuarantineRecord['status'] = 'QUARANTINED', atMs = T0): { type: 'quarantine'; record: QuarantineRecord } {
  return {
    type: 'quarantine',
    record: {
      snapshot_id: '6f1c2b7e-5d4a-4c3b-9a8f-0e1d2c3b4a59',
      ubicacion_id: store,
      source: 'KLK',
      taken_at: new Date(atMs),
      status,
      reason: '812 of 1500 products with stock (54.1%) dropped to 0 or vanished; the limit is 30%',
      row_count: 1500,
      chunk_count: 2,
      partition: 1,
      first_offset: 42,
      updated_at: new Date(atMs),
      note: null,
    },
  };
}

function alert(store: string, n: number, openedMs = T0, status: PhantomAlert['status'] = 'OPEN', confidence = 0.9): { type: 'phantom-alert'; alert: PhantomAlert } {
  const producto = String(n).padStart(6, '0');
  return {
    type: 'phantom-alert',
    alert: {
      alert_id: `00000000-0000-5000-8000-${store.slice(-2)}${String(n).padStart(10, '0')}`,
      ubicacion_id: store,
      deposito: '01',
      producto_id: producto,
      rule: n % 2 ? 'UNEXPLAINED_DROP' : 'SELLING_AT_ZERO',
      confidence,
      status,
      summary: `${store} deposito 01 producto ${producto}: dropped from 50 to 0 with 1 sold`,
      evidence: {},
      opened_at: new Date(openedMs),
      updated_at: new Date(openedMs),
    },
  };
}

describe('classification', () => {
  it('an OK run makes nothing; a FAILED one is CONNECTIVITY or EXTRACTION_FAILED by its error class', () => {
    expect(classifyRun({ status: 'OK', error_class: null })).toBeNull();
    for (const c of ['POS_UNAVAILABLE', 'SERVICE_UNAVAILABLE', 'DEADLINE', 'HTTP_503', 'HTTP_500', 'HTTP_429', 'ESOCKET', 'ETIMEOUT', 'ECONNCLOSED', 'ECONNREFUSED', 'TIMEOUT']) {
      expect(classifyRun({ status: 'FAILED', error_class: c }), c).toBe('CONNECTIVITY');
    }
    for (const c of ['POS_AUTH', 'POS_DATA', 'HTTP_404', 'HTTP_401', 'VALIDATION', 'UNEXPECTED', 'NOT_SUPPORTED', 'EREQUEST']) {
      expect(classifyRun({ status: 'FAILED', error_class: c }), c).toBe('EXTRACTION_FAILED');
    }
    expect(classifyRun({ status: 'FAILED', error_class: null })).toBe('EXTRACTION_FAILED');
    expect(isConnectivityError('HTTP_5xx')).toBe(false);
  });
});

describe('throttling by kind and store, on an injected clock', () => {
  it('createThrottle: refused within the interval, admitted after it with the count held back', () => {
    const t = createThrottle(60 * MIN);
    expect(t.admit('k', T0)).toEqual({ admitted: true, heldBack: 0, heldBackSinceMs: null });
    expect(t.admit('k', T0 + 10 * MIN)).toEqual({ admitted: false, heldBack: 1, nextMs: T0 + 60 * MIN });
    expect(t.admit('k', T0 + 59 * MIN)).toEqual({ admitted: false, heldBack: 2, nextMs: T0 + 60 * MIN });
    expect(t.admit('other', T0 + 59 * MIN).admitted).toBe(true);
    expect(t.admit('k', T0 + 60 * MIN)).toEqual({ admitted: true, heldBack: 2, heldBackSinceMs: T0 + 10 * MIN });
    expect(t.admit('k', T0 + 61 * MIN).admitted).toBe(false);
    t.release('k');
    expect(t.admit('k', T0 + 62 * MIN).admitted).toBe(true);
  });

  it('the second failure of a store within the interval is not sent; after the interval it is, saying how many were held back', () => {
    const rules = createNotifyRules(CONFIG);
    const first = rules.decide(failed('tienda_02', 'POS_DATA', T0), T0);
    expect(first.send).toHaveLength(1);
    expect(first.send[0]!.key).toBe('EXTRACTION_FAILED/tienda_02');

    const second = rules.decide(failed('tienda_02', 'POS_DATA', T0 + 30 * MIN), T0 + 30 * MIN);
    expect(second.send).toEqual([]);
    expect(second.throttled.map((m) => m.key)).toEqual(['EXTRACTION_FAILED/tienda_02']);
    // Held back from mail, but every failed run still goes to Sentry.
    expect(second.sentry?.tags.ubicacion_id).toBe('tienda_02');

    const third = rules.decide(failed('tienda_02', 'POS_DATA', T0 + 60 * MIN), T0 + 60 * MIN);
    expect(third.send).toHaveLength(1);
    expect(third.send[0]!.text).toContain('1 more extraction failure notice(s) for tienda_02 were not mailed since');
    expect(third.send[0]!.text).toContain('every 60 min');
  });

  it('different stores, and different kinds of one store, are throttled independently', () => {
    const rules = createNotifyRules(CONFIG);
    expect(rules.decide(failed('tienda_02'), T0).send).toHaveLength(1);
    expect(rules.decide(failed('tienda_03'), T0 + MIN).send).toHaveLength(1);
    expect(rules.decide(failed('tienda_02', 'POS_UNAVAILABLE'), T0 + 2 * MIN).send.map((m) => m.kind)).toEqual(['CONNECTIVITY']);
    expect(rules.decide(quarantine('tienda_02', 'QUARANTINED', T0 + 3 * MIN), T0 + 3 * MIN).send.map((m) => m.kind)).toEqual(['SNAPSHOT_QUARANTINED']);
    expect(rules.decide(failed('tienda_02'), T0 + 4 * MIN).send).toEqual([]);
    expect(rules.decide(failed('tienda_03', 'HTTP_503'), T0 + 4 * MIN).send).toHaveLength(1);
  });

  it('a mail that could not be delivered does not hold the next one back', () => {
    const rules = createNotifyRules(CONFIG);
    const [mail] = rules.decide(failed('tienda_05'), T0).send;
    rules.deliveryFailed(mail!, T0);
    expect(rules.decide(failed('tienda_05'), T0 + MIN).send).toHaveLength(1);
  });

  it('the throttle follows the clock it is given, not event times', () => {
    const rules = createNotifyRules(CONFIG);
    // Two runs 2 hours apart by their own times, read within one minute (a backlog): one mail.
    expect(rules.decide(failed('tienda_07', 'POS_DATA', T0), T0 + 120 * MIN).send).toHaveLength(1);
    expect(rules.decide(failed('tienda_07', 'POS_DATA', T0 + 120 * MIN), T0 + 121 * MIN).send).toEqual([]);
  });
});

describe('what a failed run says', () => {
  it('names store, job, error class and error, in the subject and body; Sentry gets tags and a fingerprint', () => {
    const rules = createNotifyRules(CONFIG);
    const event = failed('tienda_02', 'POS_DATA', T0, 'VENTAS');
    const d = rules.decide(event, T0);
    const mail = d.send[0]!;
    expect(mail.kind).toBe('EXTRACTION_FAILED');
    expect(mail.subject).toBe('[Fluxion] tienda_02: VENTAS extraction failed (POS_DATA)');
    expect(mail.text).toContain('tienda_02: the VENTAS extraction failed.');
    expect(mail.text).toContain('field cantidad: "12,5" is not an exact decimal(18,3)');
    expect(mail.text).toContain(event.run.run_id);
    expect(mail.text).toContain('2026-11-27 08:00:00 America/Caracas (2026-11-27T12:00:00.000Z)');

    expect(d.sentry).toMatchObject({
      level: 'error',
      tags: { ubicacion_id: 'tienda_02', job: 'VENTAS', run_id: event.run.run_id, error_class: 'POS_DATA', kind: 'EXTRACTION_FAILED' },
      fingerprint: ['fluxion-etl-run-failed', 'VENTAS', 'tienda_02', 'POS_DATA'],
    });
    expect(d.sentry!.error).toBeInstanceOf(EtlRunFailedError);
    expect(d.sentry!.error!.message).toContain('tienda_02: VENTAS run failed (POS_DATA)');
  });

  it('a connectivity failure has its own subject and advice', () => {
    const mail = createNotifyRules(CONFIG).decide(failed('cedi_frio', 'ESOCKET'), T0).send[0]!;
    expect(mail.subject).toBe('[Fluxion] cedi_frio: POS unreachable, INVENTARIO extraction failed (ESOCKET)');
    expect(mail.text).toContain('could not reach cedi_frio');
  });

  it('credentials get their own advice', () => {
    expect(createNotifyRules(CONFIG).decide(failed('tienda_04', 'POS_AUTH'), T0).send[0]!.text).toContain('refused Fluxion\'s credentials');
  });

  it('an OK run makes nothing, not even a Sentry event', () => {
    expect(createNotifyRules(CONFIG).decide({ type: 'etl-run', run: run('tienda_01', 'OK') }, T0)).toEqual({ send: [], throttled: [], sentry: null, ignored: 'run-ok' });
  });

  it('shows a non-production environment in the subject', () => {
    const mail = createNotifyRules({ ...CONFIG, environment: 'local' }).decide(failed('tienda_02'), T0).send[0]!;
    expect(mail.subject.startsWith('[Fluxion local] tienda_02:')).toBe(true);
  });
});

describe('quarantined snapshots', () => {
  it('a QUARANTINED record mails "massive stockout" with the reason and the release command', () => {
    const q = quarantine('tienda_03');
    const d = createNotifyRules(CONFIG).decide(q, T0 + MIN);
    expect(d.sentry).toBeNull();
    const mail = d.send[0]!;
    expect(mail.subject).toBe('[Fluxion] tienda_03: massive stockout, snapshot quarantined');
    expect(mail.text).toContain(q.record.reason);
    expect(mail.text).toContain(`fluxion quarantine release ${q.record.snapshot_id}`);
  });

  it('RELEASE_REQUESTED, RELEASED and SUPERSEDED make nothing', () => {
    const rules = createNotifyRules(CONFIG);
    for (const s of ['RELEASE_REQUESTED', 'RELEASED', 'SUPERSEDED'] as const) {
      expect(rules.decide(quarantine('tienda_03', s), T0).ignored).toBe('not-quarantined');
    }
  });

  it('a STALE record mails "older than the applied one" with both snapshots, throttled per store like the rest', () => {
    const rules = createNotifyRules(CONFIG);
    const reason = 'taken at 2026-12-02T10:00:00.000Z, older than the applied snapshot 9a1b… taken at 2026-12-02T11:30:00.000Z';
    const stale = quarantine('tienda_04', 'STALE');
    stale.record.reason = reason;
    const d = rules.decide(stale, T0 + MIN);
    expect(d.send.map((m) => m.kind)).toEqual(['SNAPSHOT_STALE']);
    expect(d.send[0]!.subject).toBe('[Fluxion] tienda_04: snapshot older than the applied one, not applied');
    expect(d.send[0]!.text).toContain(reason);
    expect(d.send[0]!.text).toContain("POS clock is behind");
    // The next stale snapshot of the same store within the throttle is held back, counted.
    expect(rules.decide(quarantine('tienda_04', 'STALE', T0 + 30 * MIN), T0 + 30 * MIN).throttled.map((m) => m.kind)).toEqual(['SNAPSHOT_STALE']);
    // A quarantine of the same store is another kind: not held back by it.
    expect(rules.decide(quarantine('tienda_04', 'QUARANTINED', T0 + 31 * MIN), T0 + 31 * MIN).send.map((m) => m.kind)).toEqual(['SNAPSHOT_QUARANTINED']);
    // Spanish by default.
    const es = createNotifyRules({ ...CONFIG, locale: undefined }).decide(quarantine('tienda_04', 'STALE'), T0 + MIN).send[0]!;
    expect(es.subject).toContain('tienda_04: snapshot más viejo que el ya aplicado, no se aplicó');
  });
});

describe('many phantom zeros in one store', () => {
  it('mails once the store reaches the threshold within the window, naming the store and products', () => {
    const rules = createNotifyRules({ ...CONFIG, phantomStoreThreshold: 5 });
    for (let i = 1; i <= 4; i++) expect(rules.decide(alert('tienda_05', i, T0 + i * MIN), T0 + i * MIN)).toMatchObject({ send: [], ignored: 'below-threshold' });
    // Another store's alerts do not count for this one.
    for (let i = 1; i <= 4; i++) expect(rules.decide(alert('tienda_06', i, T0 + i * MIN), T0 + i * MIN).send).toEqual([]);
    const d = rules.decide(alert('tienda_05', 5, T0 + 5 * MIN), T0 + 5 * MIN);
    expect(d.send).toHaveLength(1);
    const mail = d.send[0]!;
    expect(mail.kind).toBe('PHANTOM_ZEROS');
    expect(mail.subject).toBe('[Fluxion] tienda_05: 5 phantom zeros to count (60 min)');
    expect(mail.text).toContain('tienda_05 deposito 01 producto 000003');
    expect(mail.text).toContain('SELLING_AT_ZERO 2, UNEXPLAINED_DROP 3');
    // More alerts within the throttle interval: held back.
    expect(rules.decide(alert('tienda_05', 6, T0 + 6 * MIN), T0 + 6 * MIN).throttled).toHaveLength(1);
  });

  it('counts only alerts opened within the window, each alert once, OPEN ones only', () => {
    const rules = createNotifyRules({ ...CONFIG, phantomStoreThreshold: 3, phantomWindowMs: 30 * MIN });
    const now = T0 + 200 * MIN;
    expect(rules.decide(alert('tienda_08', 1, T0), now).ignored).toBe('below-threshold');
    expect(rules.decide(alert('tienda_08', 1, T0), now).ignored).toBe('below-threshold'); // redelivered
    expect(rules.decide(alert('tienda_08', 2, T0, 'RESOLVED'), now).ignored).toBe('alert-resolved');
    expect(rules.decide(alert('tienda_08', 3, T0 + 40 * MIN), now).ignored).toBe('below-threshold'); // alert 1 left the window
    expect(rules.decide(alert('tienda_08', 4, T0 + 1 * MIN), now).ignored).toBe('outside-window');
    expect(rules.decide(alert('tienda_08', 5, T0 + 50 * MIN), now).ignored).toBe('below-threshold');
    expect(rules.decide(alert('tienda_08', 6, T0 + 60 * MIN), now).send).toHaveLength(1);
  });

  it('createPhantomStoreWindow returns the window oldest first', () => {
    const w = createPhantomStoreWindow(10 * MIN);
    w.add(alert('t', 2, T0 + 5 * MIN).alert);
    expect(w.add(alert('t', 1, T0).alert)!.map((a) => a.producto_id)).toEqual(['000001', '000002']);
    expect(w.add(alert('t', 3, T0 + 12 * MIN).alert)!.map((a) => a.producto_id)).toEqual(['000002', '000003']);
  });
});

describe('phantom-zero mails: most confident first, within a daily budget per store', () => {
  const id = (store: string, n: number) => alert(store, n).alert.alert_id;
  const listedIds = (text: string) => [...text.matchAll(/^ {2}- \d\.\d\d .* (\S+)$/gm)].map((m) => m[1]);

  it("lists the store's OPEN alerts by confidence, highest first, at most the budget; the rest only counted", () => {
    const rules = createNotifyRules({ ...CONFIG, phantomStoreThreshold: 5, phantomDailyBudget: 3 });
    const confidences = [0.5, 0.9, 0.7, 0.95, 0.6];
    confidences.slice(0, 4).forEach((c, i) => rules.decide(alert('tienda_05', i + 1, T0 + (i + 1) * MIN, 'OPEN', c), T0 + (i + 1) * MIN));
    const d = rules.decide(alert('tienda_05', 5, T0 + 5 * MIN, 'OPEN', 0.6), T0 + 5 * MIN);
    const mail = d.send[0]!;
    expect(mail.alertIds).toEqual([id('tienda_05', 4), id('tienda_05', 2), id('tienda_05', 3)]);
    expect(listedIds(mail.text)).toEqual(mail.alertIds);
    expect(mail.text).toContain('The most confident first (at most 3 alerts per store per day):');
    expect(mail.text).toMatch(/^ {2}- 0\.95 {2}tienda_05 deposito 01 producto 000004: .* \[SELLING_AT_ZERO\] /m);
    expect(mail.text).toContain('and 2 more in the alertas table (fluxion alertas listar --tienda tienda_05)');
    expect(mail.text).toContain('fluxion alertas descartar <alert_id> --nota');
  });

  it('a spent budget mails nothing more that store-local day, throttle or not; the next day (Caracas) the waiting ones go, most confident first', () => {
    // throttleMs 0: every decision may mail, so only the budget holds them back.
    const rules = createNotifyRules({ ...CONFIG, throttleMs: 0, phantomStoreThreshold: 1, phantomDailyBudget: 2, maxAgeMs: 7 * 24 * 60 * MIN });
    expect(rules.decide(alert('tienda_01', 1, T0, 'OPEN', 0.8), T0).send[0]!.alertIds).toEqual([id('tienda_01', 1)]);
    // Listed once: the next mail has only what is new.
    expect(rules.decide(alert('tienda_01', 2, T0 + MIN, 'OPEN', 0.6), T0 + MIN).send[0]!.alertIds).toEqual([id('tienda_01', 2)]);
    const spent = rules.decide(alert('tienda_01', 3, T0 + 2 * MIN, 'OPEN', 0.7), T0 + 2 * MIN);
    expect(spent).toMatchObject({ send: [], throttled: [], ignored: 'daily-budget-spent' });
    expect(rules.decide(alert('tienda_01', 4, T0 + 3 * MIN, 'OPEN', 0.99), T0 + 3 * MIN).ignored).toBe('daily-budget-spent');
    // Another store has its own budget.
    expect(rules.decide(alert('tienda_02', 1, T0 + 3 * MIN), T0 + 3 * MIN).send).toHaveLength(1);
    // T0 is 08:00 in Caracas; 23:59 there is still the same day, 00:00 (04:00 UTC) the next.
    const lastMinute = Date.UTC(2026, 10, 28, 3, 59);
    expect(rules.decide(alert('tienda_01', 3, T0 + 2 * MIN, 'OPEN', 0.7), lastMinute).ignored).toBe('daily-budget-spent');
    const nextDay = Date.UTC(2026, 10, 28, 4, 0);
    const mail = rules.decide(alert('tienda_01', 5, nextDay, 'OPEN', 0.1), nextDay).send[0]!;
    expect(mail.alertIds).toEqual([id('tienda_01', 4), id('tienda_01', 3)]);
    expect(mail.text).toContain('and 1 more in the alertas table');
  });

  it('resolved and dismissed alerts are never listed; a later OPEN of a dismissed alert changes nothing', () => {
    const rules = createNotifyRules({ ...CONFIG, throttleMs: 0, phantomStoreThreshold: 3, phantomDailyBudget: 10 });
    rules.decide(alert('tienda_03', 1, T0, 'OPEN', 0.9), T0);
    rules.decide(alert('tienda_03', 2, T0 + MIN, 'OPEN', 0.8), T0 + MIN);
    expect(rules.openPhantomAlerts('tienda_03')).toEqual([id('tienda_03', 1), id('tienda_03', 2)]);
    rules.dismissed([id('tienda_03', 1)]);
    expect(rules.decide(alert('tienda_03', 1, T0, 'OPEN', 0.99), T0 + 2 * MIN).ignored).toBe('alert-dismissed');
    rules.decide(alert('tienda_03', 2, T0 + MIN, 'RESOLVED'), T0 + 2 * MIN);
    expect(rules.openPhantomAlerts('tienda_03')).toEqual([]);
    const mail = rules.decide(alert('tienda_03', 3, T0 + 3 * MIN, 'OPEN', 0.5), T0 + 3 * MIN).send[0]!;
    // The window still counts 3 alerts opened (the threshold is about the stockout), the list only the open one.
    expect(mail.subject).toContain('3 phantom zeros to count (60 min)');
    expect(mail.alertIds).toEqual([id('tienda_03', 3)]);
    expect(mail.text).not.toContain('more in the alertas table');
  });

  it('a mail that could not be delivered gives its alerts and its budget back', () => {
    const rules = createNotifyRules({ ...CONFIG, throttleMs: 0, phantomStoreThreshold: 1, phantomDailyBudget: 1 });
    const mail = rules.decide(alert('tienda_04', 1, T0), T0).send[0]!;
    rules.deliveryFailed(mail, T0 + MIN);
    expect(rules.decide(alert('tienda_04', 2, T0 + MIN, 'OPEN', 0.5), T0 + MIN).send[0]!.alertIds).toEqual([id('tienda_04', 1)]);
  });

  it('a throttled mail spends no budget: its alerts wait for the next one', () => {
    const rules = createNotifyRules({ ...CONFIG, throttleMs: 60 * MIN, phantomStoreThreshold: 1, phantomDailyBudget: 5 });
    rules.decide(alert('tienda_06', 1, T0), T0);
    expect(rules.decide(alert('tienda_06', 2, T0 + MIN), T0 + MIN).throttled).toHaveLength(1);
    expect(rules.decide(alert('tienda_06', 3, T0 + 61 * MIN), T0 + 61 * MIN).send[0]!.alertIds).toEqual([id('tienda_06', 2), id('tienda_06', 3)]);
  });

  it('createPhantomLedger: an alert listed once is not listed again; resolve and dismiss forget it', () => {
    const ledger = createPhantomLedger(2);
    ledger.open(alert('t', 1, T0, 'OPEN', 0.4).alert);
    ledger.open(alert('t', 2, T0, 'OPEN', 0.4).alert);
    ledger.open(alert('t', 1, T0, 'OPEN', 0.6).alert); // an update: new confidence, same alert
    expect(ledger.listing('t', '2026-11-27').listed.map((a) => [a.alert_id, a.confidence])).toEqual([[id('t', 1), 0.6], [id('t', 2), 0.4]]);
    ledger.mailed('t', '2026-11-27', [id('t', 1)]);
    expect(ledger.listing('t', '2026-11-27')).toMatchObject({ listed: [{ alert_id: id('t', 2) }], beyond: 0, mailedToday: 1 });
    expect(ledger.listing('t', '2026-11-28')).toMatchObject({ listed: [{ alert_id: id('t', 2) }], mailedToday: 0 });
  });
});

describe('the operators\' language', () => {
  const ES: NotifyRulesConfig = { ...CONFIG, locale: undefined };

  it('mails speak Spanish by default: subject, body, labels and advice', () => {
    const rules = createNotifyRules(ES);
    const event = failed('tienda_02', 'POS_DATA', T0, 'VENTAS');
    const mail = rules.decide(event, T0).send[0]!;
    expect(mail.subject).toBe('[Fluxion] tienda_02: falló la extracción VENTAS (POS_DATA)');
    expect(mail.text).toContain('tienda_02: falló la extracción VENTAS.');
    expect(mail.text).toMatch(/^clase de error: +POS_DATA$/m);
    expect(mail.text).toContain('No se publicó nada de esta corrida');
    expect(mail.text).toContain('Notificador de Fluxion Stream (production), clave de limitación EXTRACTION_FAILED/tienda_02.');
    // Kind and key stay English: they are for logs and the throttle.
    expect(mail).toMatchObject({ kind: 'EXTRACTION_FAILED', key: 'EXTRACTION_FAILED/tienda_02' });
    expect(rules.decide(failed('cedi_frio', 'ESOCKET'), T0).send[0]!.subject).toBe('[Fluxion] cedi_frio: POS inaccesible, falló la extracción INVENTARIO (ESOCKET)');
    rules.decide(failed('tienda_02', 'POS_DATA', T0 + 30 * MIN), T0 + 30 * MIN);
    expect(rules.decide(failed('tienda_02', 'POS_DATA', T0 + 60 * MIN), T0 + 60 * MIN).send[0]!.text).toContain('1 aviso(s) más de extracción fallida de tienda_02 no se enviaron desde');
  });

  it('quarantine and phantom-zero mails in Spanish by default, English with locale en', () => {
    const q = quarantine('tienda_03');
    const es = createNotifyRules(ES).decide(q, T0 + MIN).send[0]!;
    expect(es.subject).toBe('[Fluxion] tienda_03: quiebre masivo, snapshot en cuarentena');
    expect(es.text).toContain(`fluxion quarantine release ${q.record.snapshot_id} --note "<quién lo confirmó, y cómo>"`);
    const en = createNotifyRules({ ...ES, locale: 'en' }).decide(q, T0 + MIN).send[0]!;
    expect(en.subject).toBe('[Fluxion] tienda_03: massive stockout, snapshot quarantined');
    const rules = createNotifyRules({ ...ES, phantomStoreThreshold: 2 });
    rules.decide(alert('tienda_05', 1, T0), T0);
    const p = rules.decide(alert('tienda_05', 2, T0 + MIN), T0 + MIN).send[0]!;
    expect(p.subject).toBe('[Fluxion] tienda_05: 2 ceros fantasma por contar (60 min)');
    expect(p.text).toContain('Las alertas están en la tabla alertas (estado OPEN)');
    expect(p.text).toContain('Las más confiables primero (a lo sumo 10 alertas por tienda y día):');
    expect(p.text).toContain('Descarte la alerta: fluxion alertas descartar <alert_id>');
  });
});

describe('staleness', () => {
  it('events older than maxAge when read are neither mailed nor reported', () => {
    const rules = createNotifyRules(CONFIG);
    const now = T0 + 25 * 60 * MIN;
    expect(rules.decide(failed('tienda_02', 'POS_DATA', T0), now)).toEqual({ send: [], throttled: [], sentry: null, ignored: 'stale' });
    expect(rules.decide(quarantine('tienda_02', 'QUARANTINED', T0), now).ignored).toBe('stale');
    expect(rules.decide(alert('tienda_02', 1, T0), now).ignored).toBe('stale');
    expect(rules.decide(failed('tienda_02', 'POS_DATA', now - MIN), now).send).toHaveLength(1);
  });
});

describe('formatInstant', () => {
  it('shows Caracas time and the UTC instant', () => {
    expect(formatInstant(new Date(Date.UTC(2026, 0, 1, 3, 5, 9)))).toBe('2025-12-31 23:05:09 America/Caracas (2026-01-01T03:05:09.000Z)');
  });
});

describe('notify configuration from the environment', () => {
  it('has defaults: 60 min throttle, 20 alerts in 60 min, 24 h max age, no key, no recipients', () => {
    const n = loadConfig({}).notify;
    expect(n).toMatchObject({ to: [], throttleMs: 60 * MIN, phantomStoreThreshold: 1, phantomWindowMs: 60 * MIN, phantomDailyBudget: 10, maxAgeMs: 1440 * MIN });
    expect(n.sendgridApiKey).toBeUndefined();
    expect(() => requireNotifyDelivery(loadConfig({}))).not.toThrow();
  });

  it('reads recipients, sender, throttles; the key is readable but never serialised', () => {
    const n = loadConfig({
      SENDGRID_API_KEY: 'SG.secret-key',
      FLUXION_NOTIFY_FROM: 'Fluxion <etl@lagranja.example>',
      FLUXION_NOTIFY_TO: 'ops@lagranja.example, gerencia@lagranja.example',
      FLUXION_NOTIFY_THROTTLE_MINUTES: '15',
      FLUXION_NOTIFY_PHANTOM_STORE_THRESHOLD: '5',
      FLUXION_NOTIFY_PHANTOM_WINDOW_MINUTES: '30',
      SENDGRID_BASE_URL: 'http://127.0.0.1:9999',
    }).notify;
    expect(n).toMatchObject({ from: 'Fluxion <etl@lagranja.example>', to: ['ops@lagranja.example', 'gerencia@lagranja.example'], throttleMs: 15 * MIN, phantomStoreThreshold: 5, phantomWindowMs: 30 * MIN, sendgridBaseUrl: 'http://127.0.0.1:9999' });
    expect(n.sendgridApiKey).toBe('SG.secret-key');
    expect(JSON.stringify(n)).not.toContain('secret-key');
    expect(Object.keys(n)).not.toContain('sendgridApiKey');
  });

  it('names each bad variable, hiding the key', () => {
    const problems = problemsOf(() => loadConfig({ SENDGRID_API_KEY: 'sk-secret', FLUXION_NOTIFY_TO: 'ops@x.example, nobody', FLUXION_NOTIFY_THROTTLE_MINUTES: '0', FLUXION_NOTIFY_PHANTOM_STORE_THRESHOLD: '2.5' }));
    expect(problems).toEqual([
      'SENDGRID_API_KEY=(value hidden): must be a SendGrid API key (starts with SG.)',
      'FLUXION_NOTIFY_TO="ops@x.example, nobody": must be comma-separated addresses; not an address: "nobody"',
      'FLUXION_NOTIFY_THROTTLE_MINUTES="0": must be a number of minutes above 0',
      expect.stringMatching(/^FLUXION_NOTIFY_PHANTOM_STORE_THRESHOLD="2.5": /),
    ]);
  });

  it('with a key, demands a sender and recipients', () => {
    expect(problemsOf(() => requireNotifyDelivery(loadConfig({ SENDGRID_API_KEY: 'SG.k' })))).toEqual([
      expect.stringMatching(/^FLUXION_NOTIFY_FROM is not set: SENDGRID_API_KEY is/),
      expect.stringMatching(/^FLUXION_NOTIFY_TO is not set: SENDGRID_API_KEY is/),
    ]);
  });
});
