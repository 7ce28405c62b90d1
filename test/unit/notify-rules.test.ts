/**
 * What `fluxion notify` decides, without services: kinds, throttling by (kind, store) on an
 * injected clock, the Sentry report and what the mails of failed runs and quarantined
 * snapshots say (phantom zeros, language, staleness and configuration: notify-rules-phantoms.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { classifyRun, createNotifyRules, createThrottle, EtlRunFailedError, isConnectivityError } from '../../sinks/notify-rules.ts';
import { MIN, T0, CONFIG, run, failed, quarantine } from '../helpers/notify-events.ts';

describe('classification', () => {
  it('an OK run makes nothing; a FAILED one is CONNECTIVITY or EXTRACTION_FAILED by its error class', () => {
    expect(classifyRun({ status: 'OK', error_class: null })).toBeNull();
    for (const c of [
      'POS_UNAVAILABLE',
      'SERVICE_UNAVAILABLE',
      'DEADLINE',
      'HTTP_503',
      'HTTP_500',
      'HTTP_429',
      'ESOCKET',
      'ETIMEOUT',
      'ECONNCLOSED',
      'ECONNREFUSED',
      'TIMEOUT',
    ]) {
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
    expect(rules.decide(quarantine('tienda_02', 'QUARANTINED', T0 + 3 * MIN), T0 + 3 * MIN).send.map((m) => m.kind)).toEqual([
      'SNAPSHOT_QUARANTINED',
    ]);
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
    expect(createNotifyRules(CONFIG).decide(failed('tienda_04', 'POS_AUTH'), T0).send[0]!.text).toContain("refused Fluxion's credentials");
  });

  it('an OK run makes nothing, not even a Sentry event', () => {
    expect(createNotifyRules(CONFIG).decide({ type: 'etl-run', run: run('tienda_01', 'OK') }, T0)).toEqual({
      send: [],
      throttled: [],
      sentry: null,
      ignored: 'run-ok',
    });
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
    expect(d.send[0]!.text).toContain('POS clock is behind');
    // The next stale snapshot of the same store within the throttle is held back, counted.
    expect(rules.decide(quarantine('tienda_04', 'STALE', T0 + 30 * MIN), T0 + 30 * MIN).throttled.map((m) => m.kind)).toEqual([
      'SNAPSHOT_STALE',
    ]);
    // A quarantine of the same store is another kind: not held back by it.
    expect(rules.decide(quarantine('tienda_04', 'QUARANTINED', T0 + 31 * MIN), T0 + 31 * MIN).send.map((m) => m.kind)).toEqual([
      'SNAPSHOT_QUARANTINED',
    ]);
    // Spanish by default.
    const es = createNotifyRules({ ...CONFIG, locale: undefined }).decide(quarantine('tienda_04', 'STALE'), T0 + MIN).send[0]!;
    expect(es.subject).toContain('tienda_04: snapshot más viejo que el ya aplicado, no se aplicó');
  });
});
