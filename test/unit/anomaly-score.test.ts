import { describe, expect, it } from 'vitest';
import {
  alertsFromRecords,
  scorePhantomAlerts,
  UNLABELLED,
  type ScoredAlert,
  type ScoredLabel,
} from '../../simulators/data/anomaly-score.ts';

const T0 = Date.parse('2026-11-30T10:00:00Z'); // 06:00 in Caracas
const MIN = 60_000;
const at = (minutes: number) => new Date(T0 + minutes * MIN);
const GRACE = 30 * MIN;

function label(id: string, o: Partial<ScoredLabel> = {}): ScoredLabel {
  return {
    id,
    kind: 'PHANTOM_ZERO',
    ubicacion_id: 'tienda_01',
    deposito: '01',
    producto_id: '000001',
    departamento_codigo: null,
    start: at(0),
    end: at(120),
    shouldAlert: true,
    ...o,
  };
}

let seq = 0;
function alert(o: Partial<ScoredAlert> = {}): ScoredAlert {
  return {
    alert_id: `a-${++seq}`,
    ubicacion_id: 'tienda_01',
    deposito: '01',
    producto_id: '000001',
    rule: 'SELLING_AT_ZERO',
    confidence: 0.5,
    opened_at: at(30),
    ...o,
  };
}

describe('scorePhantomAlerts', () => {
  it('an alert at the first snapshot after a label ended matches it, however late that snapshot (none at night)', () => {
    const ended = label('L1', { end: at(600) }); // counted back at 16:00 Caracas, next snapshot 14 h later
    const snapshots = new Map([['tienda_01', [at(0), at(30), at(1440)]]]);
    const late = alert({ rule: 'FLIP_FLOP', opened_at: at(1440) });
    expect(scorePhantomAlerts([ended], [late], { graceMs: GRACE, snapshotTimes: snapshots }).true_positives).toBe(1);
    expect(scorePhantomAlerts([ended], [late], { graceMs: GRACE }).true_positives).toBe(0);
    const later = alert({ rule: 'FLIP_FLOP', opened_at: at(1470) });
    expect(scorePhantomAlerts([ended], [later], { graceMs: GRACE, snapshotTimes: snapshots }).true_positives).toBe(0);
  });

  it('counts an alert on a phantom zero as a true positive, with its time to detect', () => {
    const s = scorePhantomAlerts([label('L1')], [alert({ opened_at: at(45) })], { graceMs: GRACE });
    expect(s).toMatchObject({ precision: 1, recall: 1, true_positives: 1, false_positives: 0, median_ttd_minutes: 45 });
    expect(s.by_rule.SELLING_AT_ZERO).toMatchObject({
      alerts: 1,
      true_positives: 1,
      precision: 1,
      recall: 1,
      first_detections: 1,
      median_ttd_minutes: 45,
    });
    expect(s.matches[0]).toMatchObject({ label_id: 'L1', true_positive: true, ttd_minutes: 45 });
  });

  it('counts an alert on a real stockout as a false positive of that kind', () => {
    const stockout = label('S1', { kind: 'REAL_STOCKOUT', shouldAlert: false });
    const s = scorePhantomAlerts([stockout], [alert({ rule: 'UNEXPLAINED_DROP' })], { graceMs: GRACE });
    expect(s).toMatchObject({ precision: 0, recall: null, true_positives: 0, false_positives: 1 });
    expect(s.by_kind.REAL_STOCKOUT).toMatchObject({ labels: 1, should_alert: 0, false_positives: 1, labels_with_alerts: 1 });
    expect(s.by_rule.UNEXPLAINED_DROP).toMatchObject({ alerts: 1, false_positives: 1, precision: 0 });
  });

  it('counts an alert matching no label as an UNLABELLED false positive', () => {
    const s = scorePhantomAlerts(
      [label('L1')],
      [alert({ producto_id: '000002' }), alert({ ubicacion_id: 'tienda_02' }), alert({ deposito: '02' })],
      { graceMs: GRACE },
    );
    expect(s).toMatchObject({ precision: 0, recall: 0, false_positives: 3 });
    expect(s.by_kind[UNLABELLED]).toMatchObject({ labels: 0, false_positives: 3 });
    expect(s.by_kind.PHANTOM_ZERO).toMatchObject({ labels: 1, should_alert: 1, detected: 0 });
  });

  it('counts duplicate alerts on one label once for recall and each one in precision', () => {
    const alerts = [alert({ opened_at: at(30) }), alert({ rule: 'FLIP_FLOP', opened_at: at(130) }), alert({ producto_id: '000009' })];
    const s = scorePhantomAlerts([label('L1'), label('L2', { producto_id: '000002' })], alerts, { graceMs: GRACE });
    expect(s).toMatchObject({
      true_positives: 2,
      false_positives: 1,
      precision: 0.6667,
      recall: 0.5,
      duplicate_alerts: 1,
      median_ttd_minutes: 30,
    });
    expect(s.labels).toMatchObject({ should_alert: 2, considered: 2, detected: 1 });
    expect(s.by_rule.SELLING_AT_ZERO).toMatchObject({ alerts: 2, true_positives: 1, first_detections: 1, recall: 0.5 });
    expect(s.by_rule.FLIP_FLOP).toMatchObject({
      alerts: 1,
      true_positives: 1,
      first_detections: 0,
      detected_labels: 1,
      median_ttd_minutes: 130,
    });
  });

  it('matches a department glitch to every product of that department, and only those', () => {
    const glitch = label('G1', {
      kind: 'POS_GLITCH',
      producto_id: null,
      departamento_codigo: '07',
      shouldAlert: false,
      start: at(0),
      end: at(30),
    });
    const departmentOf = (_store: string, producto: string) => (producto.startsWith('07') ? '07' : '01');
    const s = scorePhantomAlerts(
      [glitch],
      [
        alert({ producto_id: '070001', opened_at: at(0) }),
        alert({ producto_id: '070002', opened_at: at(31) }),
        alert({ producto_id: '010001', opened_at: at(1) }),
      ],
      {
        graceMs: GRACE,
        departmentOf,
      },
    );
    expect(s.by_kind.POS_GLITCH).toMatchObject({ false_positives: 2, labels_with_alerts: 1 });
    expect(s.by_kind[UNLABELLED]).toMatchObject({ false_positives: 1 });
    expect(s.matches.map((m) => m.kind)).toEqual(['POS_GLITCH', 'UNLABELLED', 'POS_GLITCH']);
  });

  it('matches a deposito glitch (no product, no department) to every product of the deposito', () => {
    const glitch = label('G2', { kind: 'POS_GLITCH', producto_id: null, shouldAlert: false });
    const s = scorePhantomAlerts([glitch], [alert({ producto_id: '123456' }), alert({ producto_id: '123456', deposito: '02' })], {
      graceMs: GRACE,
    });
    expect(s.by_kind.POS_GLITCH!.false_positives).toBe(1);
    expect(s.by_kind[UNLABELLED]!.false_positives).toBe(1);
  });

  it('accepts an alert up to one grace after the label ended, not before it started nor after the grace', () => {
    const l = label('L1', { start: at(0), end: at(60) });
    const s = scorePhantomAlerts([l], [alert({ opened_at: at(90) }), alert({ opened_at: at(91) }), alert({ opened_at: at(-1) })], {
      graceMs: GRACE,
    });
    expect(s.matches.map((m) => m.true_positive)).toEqual([false, true, false]);
    expect(s.true_positives).toBe(1);
    const open = scorePhantomAlerts([label('L2', { end: null })], [alert({ opened_at: at(10_000) })], { graceMs: GRACE });
    expect(open.true_positives).toBe(1);
  });

  it('attributes an alert matching a phantom zero and a glitch to the phantom zero', () => {
    const glitch = label('G1', { kind: 'POS_GLITCH', producto_id: null, shouldAlert: false });
    const s = scorePhantomAlerts([glitch, label('L1')], [alert()], { graceMs: GRACE });
    expect(s).toMatchObject({ true_positives: 1, precision: 1 });
    expect(s.by_kind.POS_GLITCH!.false_positives).toBe(0);
  });

  it('leaves out of recall a label no snapshot saw, and reports it', () => {
    const seen = label('L1', { start: at(0), end: at(60) });
    const between = label('L2', { producto_id: '000002', start: at(65), end: at(85) });
    const snapshotTimes = new Map([['tienda_01', [at(0), at(30), at(60), at(90)]]]);
    const s = scorePhantomAlerts([seen, between], [alert({ opened_at: at(30) })], { graceMs: GRACE, snapshotTimes });
    expect(s.labels).toEqual({ total: 2, should_alert: 2, considered: 1, unobservable: 1, detected: 1 });
    expect(s.recall).toBe(1);
  });

  it('gives alerts per store per day over every store and date of the run', () => {
    const alerts = [
      alert({ opened_at: at(0) }),
      alert({ opened_at: at(60) }),
      alert({ opened_at: at(24 * 60) }),
      alert({ ubicacion_id: 'tienda_02' }),
    ];
    const s = scorePhantomAlerts([], alerts, {
      graceMs: GRACE,
      stores: ['tienda_01', 'tienda_02', 'tienda_03'],
      days: ['2026-11-30', '2026-12-01'],
    });
    expect(s.alerts_per_store_day).toEqual({ max: 2, mean: round(4 / 6), stores: 3, days: 2 });
    expect(s.precision).toBe(0);
    expect(scorePhantomAlerts([], [], { graceMs: GRACE }).precision).toBeNull();
  });
});

const round = (n: number) => Number(n.toFixed(2));

describe('alertsFromRecords', () => {
  it('merges an alert OPEN and RESOLVED records into one alert with resolved_at', () => {
    const base = {
      ubicacion_id: 'tienda_01',
      deposito: '01',
      producto_id: '000001',
      rule: 'FLIP_FLOP',
      confidence: 0.9,
      opened_at: at(30),
    };
    const alerts = alertsFromRecords([
      { ...base, alert_id: 'x', status: 'OPEN', updated_at: at(30) },
      { ...base, alert_id: 'y', status: 'OPEN', updated_at: at(40) },
      { ...base, alert_id: 'x', status: 'RESOLVED', updated_at: at(60) },
    ]);
    expect(alerts).toEqual([
      { ...base, alert_id: 'x', resolved_at: at(60) },
      { ...base, alert_id: 'y', resolved_at: null },
    ]);
  });
});
