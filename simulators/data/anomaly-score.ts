/**
 * Scores phantom-zero alerts against the simulator's anomaly labels (bench/phantom): which
 * alerts point at a real phantom zero, which real phantom zeros got an alert, how fast, and
 * how many alerts a store receives a day. Pure: no I/O, no clock.
 *
 * Matching. An alert matches a label when it is about the label's place and time:
 * - place: same ubicacion_id and deposito, and the label's product; a label without product
 *   (a POS glitch of a whole department or deposito) matches every product of that
 *   department (`departmentOf`) or, with no department either, of that deposito;
 * - time: the alert opened within [label.start, label.end + grace], grace being one snapshot
 *   interval (an anomaly that ends is seen to end only at the next snapshot, where FLIP_FLOP
 *   opens), or up to the store's first snapshot at or after label.end when the snapshot times
 *   are given and that is later (no snapshot at night); a label still going at the end of
 *   the run (end null) has no upper bound.
 * An alert matching several labels is attributed to one: a label that should alert first
 * (the alert is then a true positive), then a product label before a department or deposito
 * one, then the latest start, then the smaller id. An alert matching no label that should
 * alert is a false positive, counted against the kind of the label it matched, or
 * UNLABELLED when it matched none.
 *
 * Figures:
 * - precision = true positives / alerts (every alert counts, duplicates on one label too);
 * - recall = labels that should alert with at least one alert / such labels considered.
 *   A label during which no inventory snapshot of its store was taken ([start, end)) is one
 *   no rule can see: it is left out of recall when the snapshot times are given, and counted
 *   in `labels.unobservable` (the only exclusion, reported);
 * - time to detect of a label = its first attributed alert's opened_at - label.start
 *   (opened_at is event time: the snapshot's taken_at, or the sale's fecha_hora);
 * - alerts per store per day: alerts by store and store-local date (Caracas) of opened_at,
 *   over the given stores and dates (a store-day without alerts counts as 0 in the mean).
 * precision and recall are null when their denominator is 0.
 */
import { fechaCaracas } from '../../core/time.ts';
import type { AnomalyLabel } from './anomalies.ts';

/** A label as the scoring reads it: the simulator's (anomalies.ts), or one made by hand in a test. */
export type ScoredLabel = Omit<AnomalyLabel, 'kind'> & { kind: string };

/** One alert as alerts.phantom-zeros tells it: its OPEN record, and its RESOLVED one if any. */
export interface ScoredAlert {
  alert_id: string;
  ubicacion_id: string;
  deposito: string;
  producto_id: string;
  rule: string;
  confidence: number;
  opened_at: Date;
  resolved_at?: Date | null;
}

export interface ScoreOptions {
  /** Grace after label.end in which an alert still matches: one snapshot interval. */
  graceMs: number;
  /** The department of a product of a store (for labels of a whole department). */
  departmentOf?: (ubicacionId: string, productoId: string) => string | null;
  /**
   * Instants of the inventory snapshots taken, per store, in order: labels none of them saw
   * leave recall, and an alert at the first snapshot after a label ended still matches it.
   */
  snapshotTimes?: Map<string, Date[]>;
  /** The stores and the store-local dates (YYYY-MM-DD) of the run, for alerts per store per day. */
  stores?: string[];
  days?: string[];
}

export interface RuleScore {
  alerts: number;
  true_positives: number;
  false_positives: number;
  precision: number | null;
  /** Labels this rule detected / labels considered (rules may share a label: these can sum above recall). */
  recall: number | null;
  detected_labels: number;
  /** Labels whose first alert was this rule's. */
  first_detections: number;
  /** Median over the labels it detected of its first alert's time to detect. */
  median_ttd_minutes: number | null;
}

export interface KindScore {
  labels: number;
  should_alert: number;
  /** Labels of this kind (that should alert) with at least one alert. */
  detected: number;
  /** Alerts attributed to a label of this kind that should not alert. */
  false_positives: number;
  /** Labels of this kind with at least one false-positive alert. */
  labels_with_alerts: number;
}

export interface PhantomScore {
  precision: number | null;
  recall: number | null;
  median_ttd_minutes: number | null;
  alerts: number;
  true_positives: number;
  false_positives: number;
  /** Alerts beyond the first on a label already detected (counted in precision, once in recall). */
  duplicate_alerts: number;
  labels: { total: number; should_alert: number; considered: number; unobservable: number; detected: number };
  by_rule: Record<string, RuleScore>;
  by_kind: Record<string, KindScore>;
  alerts_per_store_day: { max: number; mean: number; stores: number; days: number };
  /** Each alert's attribution, for reading a run closely. */
  matches: Array<{
    alert_id: string;
    rule: string;
    label_id: string | null;
    kind: string;
    true_positive: boolean;
    ttd_minutes: number | null;
  }>;
}

export const UNLABELLED = 'UNLABELLED';

const MINUTE_MS = 60_000;
const round = (n: number, digits = 4): number => Number(n.toFixed(digits));
const share = (a: number, b: number): number | null => (b > 0 ? round(a / b) : null);

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return round(s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2, 1);
}

/** Whether the alert is about the label's place (time apart). */
function samePlace(label: ScoredLabel, alert: ScoredAlert, departmentOf: ScoreOptions['departmentOf']): boolean {
  if (label.ubicacion_id !== alert.ubicacion_id || label.deposito !== alert.deposito) return false;
  if (label.producto_id !== null) return label.producto_id === alert.producto_id;
  if (label.departamento_codigo === null) return true;
  return (departmentOf?.(alert.ubicacion_id, alert.producto_id) ?? null) === label.departamento_codigo;
}

/**
 * When an alert on a label may open at the latest: the grace after its end, or, when the
 * snapshot times are known, the first snapshot of its store at or after its end if that comes
 * later (a phantom zero counted back at night is seen back only at the morning's first snapshot,
 * where FLIP_FLOP opens).
 */
function windowEnd(label: ScoredLabel, graceMs: number, snapshotTimes: Map<string, Date[]> | undefined): number {
  const end = label.end!.getTime();
  const next = (snapshotTimes?.get(label.ubicacion_id) ?? []).find((t) => t.getTime() >= end);
  return Math.max(end + graceMs, next ? next.getTime() : -Infinity);
}

function inWindow(label: ScoredLabel, alert: ScoredAlert, graceMs: number, snapshotTimes?: Map<string, Date[]>): boolean {
  const t = alert.opened_at.getTime();
  return t >= label.start.getTime() && (label.end === null || t <= windowEnd(label, graceMs, snapshotTimes));
}

/** Orders the labels an alert matches: the one it is attributed to first (see the header). */
function preferred(a: ScoredLabel, b: ScoredLabel): number {
  if (a.shouldAlert !== b.shouldAlert) return a.shouldAlert ? -1 : 1;
  if ((a.producto_id === null) !== (b.producto_id === null)) return a.producto_id !== null ? -1 : 1;
  if (a.start.getTime() !== b.start.getTime()) return b.start.getTime() - a.start.getTime();
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Whether any snapshot of the label's store was taken while the label lasted. */
function observable(label: ScoredLabel, snapshotTimes: Map<string, Date[]> | undefined): boolean {
  if (!snapshotTimes) return true;
  const start = label.start.getTime();
  const end = label.end?.getTime() ?? Infinity;
  return (snapshotTimes.get(label.ubicacion_id) ?? []).some((t) => t.getTime() >= start && t.getTime() < end);
}

export function scorePhantomAlerts(labels: ScoredLabel[], alerts: ScoredAlert[], o: ScoreOptions): PhantomScore {
  // Labels by store: a run has thousands of alerts and hundreds of labels.
  const byStore = new Map<string, ScoredLabel[]>();
  for (const l of labels) (byStore.get(l.ubicacion_id) ?? byStore.set(l.ubicacion_id, []).get(l.ubicacion_id)!).push(l);
  const considered = new Set(labels.filter((l) => l.shouldAlert && observable(l, o.snapshotTimes)).map((l) => l.id));

  // Each label's alerts (attributed), in opening order.
  const attributed = new Map<string, ScoredAlert[]>();
  const matches: PhantomScore['matches'] = [];
  const kindFp = new Map<string, { alerts: number; labels: Set<string> }>();
  const ruleAlerts = new Map<string, { alerts: number; tp: number }>();
  let tp = 0;
  const sorted = [...alerts].sort((a, b) => a.opened_at.getTime() - b.opened_at.getTime() || (a.alert_id < b.alert_id ? -1 : 1));
  for (const alert of sorted) {
    const candidates = (byStore.get(alert.ubicacion_id) ?? []).filter(
      (l) => samePlace(l, alert, o.departmentOf) && inWindow(l, alert, o.graceMs, o.snapshotTimes),
    );
    const label = candidates.sort(preferred)[0] ?? null;
    const hit = label?.shouldAlert === true;
    const r = ruleAlerts.get(alert.rule) ?? ruleAlerts.set(alert.rule, { alerts: 0, tp: 0 }).get(alert.rule)!;
    r.alerts++;
    if (hit) {
      tp++;
      r.tp++;
      (attributed.get(label.id) ?? attributed.set(label.id, []).get(label.id)!).push(alert);
    } else {
      const kind = label?.kind ?? UNLABELLED;
      const k = kindFp.get(kind) ?? kindFp.set(kind, { alerts: 0, labels: new Set() }).get(kind)!;
      k.alerts++;
      if (label) k.labels.add(label.id);
    }
    matches.push({
      alert_id: alert.alert_id,
      rule: alert.rule,
      label_id: label?.id ?? null,
      kind: label?.kind ?? UNLABELLED,
      true_positive: hit,
      ttd_minutes: label ? round((alert.opened_at.getTime() - label.start.getTime()) / MINUTE_MS, 1) : null,
    });
  }

  // Recall and time to detect, over the labels considered.
  const labelById = new Map(labels.map((l) => [l.id, l]));
  const ttd: number[] = [];
  const ruleDetected = new Map<string, { labels: number; first: number; ttd: number[] }>();
  let detected = 0;
  let duplicates = 0;
  for (const [id, list] of attributed) {
    duplicates += list.length - 1;
    if (!considered.has(id)) continue;
    detected++;
    const start = labelById.get(id)!.start.getTime();
    ttd.push((list[0]!.opened_at.getTime() - start) / MINUTE_MS);
    const seen = new Set<string>();
    for (const a of list) {
      if (seen.has(a.rule)) continue;
      seen.add(a.rule);
      const d = ruleDetected.get(a.rule) ?? ruleDetected.set(a.rule, { labels: 0, first: 0, ttd: [] }).get(a.rule)!;
      d.labels++;
      d.ttd.push((a.opened_at.getTime() - start) / MINUTE_MS);
      if (a === list[0]) d.first++;
    }
  }

  const by_rule: Record<string, RuleScore> = {};
  for (const rule of [...ruleAlerts.keys()].sort()) {
    const r = ruleAlerts.get(rule)!;
    const d = ruleDetected.get(rule);
    by_rule[rule] = {
      alerts: r.alerts,
      true_positives: r.tp,
      false_positives: r.alerts - r.tp,
      precision: share(r.tp, r.alerts),
      recall: share(d?.labels ?? 0, considered.size),
      detected_labels: d?.labels ?? 0,
      first_detections: d?.first ?? 0,
      median_ttd_minutes: median(d?.ttd ?? []),
    };
  }

  const by_kind: Record<string, KindScore> = {};
  const kinds = new Set([...labels.map((l) => l.kind), ...kindFp.keys()]);
  for (const kind of [...kinds].sort()) {
    const of = labels.filter((l) => l.kind === kind);
    const fp = kindFp.get(kind);
    by_kind[kind] = {
      labels: of.length,
      should_alert: of.filter((l) => l.shouldAlert).length,
      detected: of.filter((l) => considered.has(l.id) && attributed.has(l.id)).length,
      false_positives: fp?.alerts ?? 0,
      labels_with_alerts: fp?.labels.size ?? 0,
    };
  }

  // Alerts per store per day, over the run's stores and dates (and any an alert names).
  const perDay = new Map<string, number>();
  for (const a of alerts) {
    const key = `${a.ubicacion_id}\u0000${fechaCaracas(a.opened_at)}`;
    perDay.set(key, (perDay.get(key) ?? 0) + 1);
  }
  const stores = new Set([...(o.stores ?? []), ...alerts.map((a) => a.ubicacion_id)]);
  const days = new Set([...(o.days ?? []), ...alerts.map((a) => fechaCaracas(a.opened_at))]);
  const storeDays = stores.size * days.size;

  const shouldAlert = labels.filter((l) => l.shouldAlert).length;
  return {
    precision: share(tp, alerts.length),
    recall: share(detected, considered.size),
    median_ttd_minutes: median(ttd),
    alerts: alerts.length,
    true_positives: tp,
    false_positives: alerts.length - tp,
    duplicate_alerts: duplicates,
    labels: {
      total: labels.length,
      should_alert: shouldAlert,
      considered: considered.size,
      unobservable: shouldAlert - considered.size,
      detected,
    },
    by_rule,
    by_kind,
    alerts_per_store_day: {
      max: Math.max(0, ...perDay.values()),
      mean: storeDays > 0 ? round(alerts.length / storeDays, 2) : 0,
      stores: stores.size,
      days: days.size,
    },
    matches,
  };
}

/**
 * The alerts of alerts.phantom-zeros records (OPEN, then RESOLVED under the same id), one per
 * alert id: its OPEN record's fields, resolved_at from its RESOLVED record's updated_at.
 */
export function alertsFromRecords(
  records: Array<{
    alert_id: string;
    ubicacion_id: string;
    deposito: string;
    producto_id: string;
    rule: string;
    confidence: number;
    status: string;
    opened_at: Date;
    updated_at: Date;
  }>,
): ScoredAlert[] {
  const byId = new Map<string, ScoredAlert>();
  for (const r of records) {
    const known = byId.get(r.alert_id);
    if (r.status === 'OPEN') {
      if (!known)
        byId.set(r.alert_id, {
          alert_id: r.alert_id,
          ubicacion_id: r.ubicacion_id,
          deposito: r.deposito,
          producto_id: r.producto_id,
          rule: r.rule,
          confidence: r.confidence,
          opened_at: r.opened_at,
          resolved_at: null,
        });
    } else if (known) {
      known.resolved_at = r.updated_at;
    } else {
      // A RESOLVED without its OPEN (never in one run): still an alert that was opened.
      byId.set(r.alert_id, {
        alert_id: r.alert_id,
        ubicacion_id: r.ubicacion_id,
        deposito: r.deposito,
        producto_id: r.producto_id,
        rule: r.rule,
        confidence: r.confidence,
        opened_at: r.opened_at,
        resolved_at: r.updated_at,
      });
    }
  }
  return [...byId.values()];
}
