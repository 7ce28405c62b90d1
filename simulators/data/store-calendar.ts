/**
 * When a simulated store sells and when it receives goods, in America/Caracas time (UTC-4
 * all year, core/time.ts): sales only during opening hours (08:00-20:00 by default), so a
 * simulated week has nights without sales; receipts by department on a fixed cadence (fresh
 * departments every day, dry goods every two or three days), before the store opens.
 */
import { hashSeed, mixIndex } from './prng.ts';

/** Caracas hours, 0 <= open < close <= 24. */
export interface OpeningHours {
  open: number;
  close: number;
}

export const DEFAULT_OPENING_HOURS: Readonly<OpeningHours> = Object.freeze({ open: 8, close: 20 });

const CARACAS_OFFSET_MS = 4 * 3_600_000;
const DAY_MS = 86_400_000;

export function checkOpeningHours(h: OpeningHours): OpeningHours {
  if (!(Number.isFinite(h.open) && Number.isFinite(h.close) && h.open >= 0 && h.close <= 24 && h.open < h.close)) {
    throw new RangeError(`openingHours must be Caracas hours with 0 <= open < close <= 24, got ${JSON.stringify(h)}`);
  }
  return { open: h.open, close: h.close };
}

export function openMsPerDay(h: OpeningHours): number {
  return (h.close - h.open) * 3_600_000;
}

/** The opening intervals [a, b) (epoch ms) within [from, to). */
export function openIntervals(from: number, to: number, h: OpeningHours): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const firstDay = Math.floor((from - CARACAS_OFFSET_MS) / DAY_MS) * DAY_MS + CARACAS_OFFSET_MS;
  for (let day = firstDay; day < to; day += DAY_MS) {
    const a = Math.max(from, day + h.open * 3_600_000);
    const b = Math.min(to, day + h.close * 3_600_000);
    if (a < b) out.push([a, b]);
  }
  return out;
}

/** The instant `offset` ms into the opening time of `intervals` (their total length, when beyond). */
export function instantInOpenTime(intervals: Array<[number, number]>, offset: number): number {
  let left = offset;
  for (const [a, b] of intervals) {
    if (left < b - a) return a + left;
    left -= b - a;
  }
  const last = intervals.at(-1);
  return last ? last[1] - 1 : 0;
}

/** Days between two receipts of a department: fresh goods daily, the rest less often. */
export function cadenceDays(departamentoCodigo: string): number {
  switch (departamentoCodigo) {
    case '000001': // CHARCUTERÍA
    case '000002': // FRUTAS Y VERDURAS
    case '000004': // CARNICERÍA
    case '000007': // PANADERÍA
      return 1;
    case '000005': // BEBIDAS
      return 2;
    case '000017': // PROCURA
      return 7;
    default:
      return 3;
  }
}

/**
 * The receipts of one department in one deposito within [from, to): on its cadence, from a
 * day and a time drawn from (seed, deposito, department), in the two hours before opening
 * (from midnight when the store opens before 02:00).
 */
export function receiptsBetween(
  from: number,
  to: number,
  h: OpeningHours,
  seed: string,
  deposito: string,
  departamentoCodigo: string,
): number[] {
  const key = mixIndex(hashSeed(`receipts:${seed}:${deposito}:${departamentoCodigo}`), 0);
  const cadence = cadenceDays(departamentoCodigo);
  const minute = Math.max(0, h.open * 60 - 120) + (key % 90);
  const dayOffset = (key >>> 8) % cadence;
  const out: number[] = [];
  const firstDay = Math.floor((from - CARACAS_OFFSET_MS) / DAY_MS);
  for (let day = firstDay; day * DAY_MS + CARACAS_OFFSET_MS < to; day++) {
    if ((((day - dayOffset) % cadence) + cadence) % cadence !== 0) continue;
    const at = day * DAY_MS + CARACAS_OFFSET_MS + minute * 60_000;
    if (at >= from && at < to) out.push(at);
  }
  return out;
}
