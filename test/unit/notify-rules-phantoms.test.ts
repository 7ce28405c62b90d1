/**
 * What `fluxion notify` decides about phantom zeros (the threshold per store, the daily budget,
 * most confident first), in which language the mails speak, staleness, and the notify
 * configuration read from the environment. Runs and quarantines: notify-rules.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../cli/config.ts';
import { requireNotifyDelivery } from '../../core/config/environment.ts';
import {
  createNotifyRules,
  createPhantomLedger,
  createPhantomStoreWindow,
  formatInstant,
  type NotifyRulesConfig,
} from '../../sinks/notify-rules.ts';
import { problemsOf } from '../helpers/config-errors.ts';
import { MIN, T0, CONFIG, failed, quarantine, alert } from '../helpers/notify-events.ts';

describe('many phantom zeros in one store', () => {
  it('mails once the store reaches the threshold within the window, naming the store and products', () => {
    const rules = createNotifyRules({ ...CONFIG, phantomStoreThreshold: 5 });
    for (let i = 1; i <= 4; i++)
      expect(rules.decide(alert('tienda_05', i, T0 + i * MIN), T0 + i * MIN)).toMatchObject({ send: [], ignored: 'below-threshold' });
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
    for (const [i, c] of confidences.slice(0, 4).entries()) {
      rules.decide(alert('tienda_05', i + 1, T0 + (i + 1) * MIN, 'OPEN', c), T0 + (i + 1) * MIN);
    }
    const d = rules.decide(alert('tienda_05', 5, T0 + 5 * MIN, 'OPEN', 0.6), T0 + 5 * MIN);
    const mail = d.send[0]!;
    expect(mail.alertIds).toEqual([id('tienda_05', 4), id('tienda_05', 2), id('tienda_05', 3)]);
    expect(listedIds(mail.text)).toEqual(mail.alertIds);
    expect(mail.text).toContain('The most confident first (at most 3 alerts per store per day):');
    expect(mail.text).toMatch(/^ {2}- 0\.95 {2}tienda_05 deposito 01 producto 000004: .* \[SELLING_AT_ZERO\] /m);
    expect(mail.text).toContain('and 2 more in the alertas table (fluxion alertas listar --tienda tienda_05)');
    expect(mail.text).toContain('fluxion alertas descartar <alert_id> --nota');
  });

  it(
    'a spent budget mails nothing more that store-local day, throttle or not; the next day (Caracas) the waiting ones go, most ' +
      'confident first',
    () => {
      // throttleMs 0: every decision may mail, so only the budget holds them back.
      const rules = createNotifyRules({
        ...CONFIG,
        throttleMs: 0,
        phantomStoreThreshold: 1,
        phantomDailyBudget: 2,
        maxAgeMs: 7 * 24 * 60 * MIN,
      });
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
    },
  );

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
    expect(rules.decide(alert('tienda_06', 3, T0 + 61 * MIN), T0 + 61 * MIN).send[0]!.alertIds).toEqual([
      id('tienda_06', 2),
      id('tienda_06', 3),
    ]);
  });

  it('createPhantomLedger: an alert listed once is not listed again; resolve and dismiss forget it', () => {
    const ledger = createPhantomLedger(2);
    ledger.open(alert('t', 1, T0, 'OPEN', 0.4).alert);
    ledger.open(alert('t', 2, T0, 'OPEN', 0.4).alert);
    ledger.open(alert('t', 1, T0, 'OPEN', 0.6).alert); // an update: new confidence, same alert
    expect(ledger.listing('t', '2026-11-27').listed.map((a) => [a.alert_id, a.confidence])).toEqual([
      [id('t', 1), 0.6],
      [id('t', 2), 0.4],
    ]);
    ledger.mailed('t', '2026-11-27', [id('t', 1)]);
    expect(ledger.listing('t', '2026-11-27')).toMatchObject({ listed: [{ alert_id: id('t', 2) }], beyond: 0, mailedToday: 1 });
    expect(ledger.listing('t', '2026-11-28')).toMatchObject({ listed: [{ alert_id: id('t', 2) }], mailedToday: 0 });
  });
});

describe("the operators' language", () => {
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
    expect(rules.decide(failed('cedi_frio', 'ESOCKET'), T0).send[0]!.subject).toBe(
      '[Fluxion] cedi_frio: POS inaccesible, falló la extracción INVENTARIO (ESOCKET)',
    );
    rules.decide(failed('tienda_02', 'POS_DATA', T0 + 30 * MIN), T0 + 30 * MIN);
    expect(rules.decide(failed('tienda_02', 'POS_DATA', T0 + 60 * MIN), T0 + 60 * MIN).send[0]!.text).toContain(
      '1 aviso(s) más de extracción fallida de tienda_02 no se enviaron desde',
    );
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
    expect(n).toMatchObject({
      to: [],
      throttleMs: 60 * MIN,
      phantomStoreThreshold: 1,
      phantomWindowMs: 60 * MIN,
      phantomDailyBudget: 10,
      maxAgeMs: 1440 * MIN,
    });
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
    expect(n).toMatchObject({
      from: 'Fluxion <etl@lagranja.example>',
      to: ['ops@lagranja.example', 'gerencia@lagranja.example'],
      throttleMs: 15 * MIN,
      phantomStoreThreshold: 5,
      phantomWindowMs: 30 * MIN,
      sendgridBaseUrl: 'http://127.0.0.1:9999',
    });
    expect(n.sendgridApiKey).toBe('SG.secret-key');
    expect(JSON.stringify(n)).not.toContain('secret-key');
    expect(Object.keys(n)).not.toContain('sendgridApiKey');
  });

  it('names each bad variable, hiding the key', () => {
    const problems = problemsOf(() =>
      loadConfig({
        SENDGRID_API_KEY: 'sk-secret',
        FLUXION_NOTIFY_TO: 'ops@x.example, nobody',
        FLUXION_NOTIFY_THROTTLE_MINUTES: '0',
        FLUXION_NOTIFY_PHANTOM_STORE_THRESHOLD: '2.5',
      }),
    );
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
