/**
 * The anomalies a simulated POS suffers, and their labels: the truth a phantom-zero detector
 * is scored against. StoreSimulation (store-simulation.ts) keeps the books (physical stock)
 * and the POS's recorded stock equal except where one of these is going on:
 *
 * - PHANTOM_ZERO: the POS records 0 while the shelf holds stock, and the product keeps
 *   selling, until a count sets recorded := physical. The only kind a detector should alert on.
 * - POS_GLITCH: a whole department (or deposito) reads 0 for 30 simulated minutes (one
 *   snapshot), then reads right again.
 * - REAL_STOCKOUT: physical stock reached 0 by sales (or started at 0); nothing sells until the
 *   department's next receipt.
 * - LATE_SALES: sales lines posted 30 simulated minutes after the stock moved.
 * - COUNT_CORRECTION: a loss the POS did not record (recorded above physical by a few units),
 *   until a count sets recorded := physical: the jump, possibly to 0, is at `end`.
 *
 * What is decided here is pure and seeded: how many anomalies of each kind start in a window
 * (Poisson with the configured rates over the store's opening hours) and their durations. Which
 * rows they hit is the simulation's choice (it knows the stock).
 */
import type { Rng } from './prng.ts';

export type AnomalyKind = 'PHANTOM_ZERO' | 'POS_GLITCH' | 'REAL_STOCKOUT' | 'LATE_SALES' | 'COUNT_CORRECTION';

export interface AnomalyLabel {
  /** Deterministic: kind, store, deposito, product (or department, or `*`), start. */
  id: string;
  kind: AnomalyKind;
  ubicacion_id: string;
  deposito: string;
  /** null for a department- or deposito-wide glitch. */
  producto_id: string | null;
  /** The glitching department; null for every other kind and a deposito-wide glitch. */
  departamento_codigo: string | null;
  start: Date;
  /** null while it is going on. */
  end: Date | null;
  /** Whether a phantom-zero detector should alert on it: PHANTOM_ZERO only. */
  shouldAlert: boolean;
}

export interface AnomalyRates {
  /** Expected phantom zeros per store per simulated day (started during opening hours). */
  phantomZeroPerDay: number;
  /** Expected POS glitches (a department or deposito reads 0 for 30 minutes) per store per day. */
  posGlitchPerDay: number;
  /** Expected unrecorded losses later corrected by a count, per store per day. */
  countCorrectionPerDay: number;
  /** Share (0..1) of sales lines posted 30 simulated minutes after the sale. */
  lateSalesShare: number;
}

/** Small, realistic rates: what every StoreSimulation gets unless told otherwise. */
export const DEFAULT_ANOMALY_RATES: Readonly<AnomalyRates> = Object.freeze({
  phantomZeroPerDay: 2,
  posGlitchPerDay: 0.1,
  countCorrectionPerDay: 1,
  lateSalesShare: 0.01,
});

/** No anomaly at all: recorded stock always equals physical stock, every line posted at once. */
export const NO_ANOMALIES: Readonly<AnomalyRates> = Object.freeze({
  phantomZeroPerDay: 0,
  posGlitchPerDay: 0,
  countCorrectionPerDay: 0,
  lateSalesShare: 0,
});

/** How late a late-posted line is: one 30-minute read cycle. */
export const LATE_SALES_DELAY_MS = 30 * 60_000;
/** How long a POS glitch lasts: one 30-minute read window. */
export const POS_GLITCH_MS = 30 * 60_000;
/** A phantom zero lasts until a count, 2 to 30 hours after it started. */
const PHANTOM_HOURS: [number, number] = [2, 30];
/** An unrecorded loss is found by a count 4 to 48 hours later. */
const COUNT_HOURS: [number, number] = [4, 48];

/** The rates with the defaults filled in; throws naming a rate that is not a number >= 0 (or a share above 1). */
export function anomalyRates(partial: Partial<AnomalyRates> = {}): AnomalyRates {
  const rates = { ...DEFAULT_ANOMALY_RATES, ...partial };
  for (const [name, value] of Object.entries(rates)) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0)
      throw new RangeError(`anomalies.${name} must be a number >= 0, got ${String(value)}`);
  }
  if (rates.lateSalesShare > 1) throw new RangeError(`anomalies.lateSalesShare is a share (0..1), got ${rates.lateSalesShare}`);
  return rates;
}

/** Knuth's Poisson draw: the rates are small, so a few iterations. */
export function poisson(rng: Rng, mean: number): number {
  if (mean <= 0) return 0;
  const limit = Math.exp(-mean);
  let k = 0;
  for (let p = rng.next(); p > limit; p *= rng.next()) k++;
  return k;
}

export type StartedKind = 'PHANTOM_ZERO' | 'POS_GLITCH' | 'COUNT_CORRECTION';

export interface PlannedAnomaly {
  kind: StartedKind;
  /** Position of its start in the window's opening time, in [0, 1). */
  at: number;
  /** Planned duration (ms): until the count, or the glitch's read window. */
  durationMs: number;
}

/**
 * The anomalies that start in a window holding `openMs` of opening time, for a store open
 * `openPerDayMs` a day, in the order they start.
 */
export function planAnomalies(rng: Rng, rates: AnomalyRates, openMs: number, openPerDayMs: number): PlannedAnomaly[] {
  if (openMs <= 0 || openPerDayMs <= 0) return [];
  const days = openMs / openPerDayMs;
  const planned: PlannedAnomaly[] = [];
  const add = (kind: StartedKind, perDay: number, duration: () => number) => {
    for (let n = poisson(rng, perDay * days); n > 0; n--) planned.push({ kind, at: rng.next(), durationMs: duration() });
  };
  add('PHANTOM_ZERO', rates.phantomZeroPerDay, () => hours(rng, PHANTOM_HOURS));
  add('POS_GLITCH', rates.posGlitchPerDay, () => POS_GLITCH_MS);
  add('COUNT_CORRECTION', rates.countCorrectionPerDay, () => hours(rng, COUNT_HOURS));
  return planned.sort((a, b) => a.at - b.at);
}

/** A phantom zero's default duration when one is injected by hand (injectPhantomZero). */
export function phantomDurationMs(rng: Rng): number {
  return hours(rng, PHANTOM_HOURS);
}

function hours(rng: Rng, [min, max]: [number, number]): number {
  return Math.round((min + rng.next() * (max - min)) * 3_600_000);
}

/** Whole seconds, UTC, no milliseconds: `2026-11-27T14:05:00Z`. */
function isoSecond(d: Date): string {
  return `${d.toISOString().slice(0, 19)}Z`;
}

export function labelId(kind: AnomalyKind, ubicacionId: string, deposito: string, what: string | null, start: Date): string {
  return `${kind}:${ubicacionId}:${deposito}:${what ?? '*'}:${isoSecond(start)}`;
}

export function newLabel(
  kind: AnomalyKind,
  ubicacionId: string,
  deposito: string,
  productoId: string | null,
  departamentoCodigo: string | null,
  start: Date,
): AnomalyLabel {
  return {
    id: labelId(kind, ubicacionId, deposito, productoId ?? departamentoCodigo, start),
    kind,
    ubicacion_id: ubicacionId,
    deposito,
    producto_id: productoId,
    departamento_codigo: departamentoCodigo,
    start,
    end: null,
    shouldAlert: kind === 'PHANTOM_ZERO',
  };
}

/** Labels as JSON (dates as ISO strings), e.g. for the KLK simulator's /_control/anomalias. */
export function labelsToJson(labels: readonly AnomalyLabel[]): string {
  return JSON.stringify(labels);
}

/** The labels of labelsToJson (or of the endpoint's `labels`), dates back as Dates; throws naming a malformed label. */
export function labelsFromJson(value: unknown): AnomalyLabel[] {
  const list = typeof value === 'string' ? (JSON.parse(value) as unknown) : value;
  if (!Array.isArray(list)) throw new TypeError('anomaly labels: expected an array');
  return list.map((raw, i) => {
    const l = raw as Record<string, unknown>;
    const date = (v: unknown, field: string): Date => {
      const d = new Date(String(v));
      if (typeof v !== 'string' || Number.isNaN(d.getTime()))
        throw new TypeError(`anomaly label ${i}: ${field} is not an ISO instant: ${String(v)}`);
      return d;
    };
    if (typeof l.id !== 'string' || typeof l.kind !== 'string' || typeof l.ubicacion_id !== 'string' || typeof l.deposito !== 'string')
      throw new TypeError(`anomaly label ${i}: id, kind, ubicacion_id and deposito are strings`);
    return {
      id: l.id,
      kind: l.kind as AnomalyKind,
      ubicacion_id: l.ubicacion_id,
      deposito: l.deposito,
      producto_id: (l.producto_id as string | null) ?? null,
      departamento_codigo: (l.departamento_codigo as string | null) ?? null,
      start: date(l.start, 'start'),
      end: l.end === null || l.end === undefined ? null : date(l.end, 'end'),
      shouldAlert: l.shouldAlert === true,
    };
  });
}
