/**
 * Checks of single POS values, shared by the inventory and sales boundaries. Each failure is
 * a PosDataError naming the store, the place in the answer, the product, the field and the
 * value, and nothing of the row is published.
 */
import { decimalProblem, normalizeDecimal } from '../core/avro/logical-types.ts';
import { PosDataError } from '../core/errors.ts';

export interface RowPlace {
  ubicacionId: string;
  /** Where in the answer, for the message: "page 3, item 17" or "row 1204". */
  place: string;
  /** The row's product, once known. */
  productoId?: string;
}

export const CODE = /^[0-9A-Za-z._-]{1,20}$/;
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;
const MAX_TEXT = 200;

export function fail(at: RowPlace, field: string, value: unknown, problem: string): never {
  const who = at.productoId ? ` (producto ${at.productoId})` : '';
  const shown =
    typeof value === 'string'
      ? JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value)
      : (JSON.stringify(value) ?? String(value));
  throw new PosDataError(`${at.ubicacionId}: ${at.place}${who}: field ${field}: ${shown} ${problem}`, {
    context: { ubicacion: at.ubicacionId, field, value, place: at.place },
  });
}

export function textValue(at: RowPlace, field: string, v: unknown, nullable: boolean): string | null {
  if (v === null || v === undefined) return nullable ? null : fail(at, field, v, 'is missing');
  if (typeof v !== 'string') return fail(at, field, v, 'is not text');
  if (v.length > MAX_TEXT) return fail(at, field, v, `is longer than ${MAX_TEXT} characters`);
  // Avro carries it, but PostgreSQL text cannot hold U+0000: refused here, not at the sink.
  if (v.includes('\u0000')) return fail(at, field, v, 'contains a NUL character (U+0000)');
  return v;
}

export function codeValue(at: RowPlace, field: string, v: unknown): string {
  if (typeof v !== 'string' || !CODE.test(v)) return fail(at, field, v, 'is not a code (1-20 of A-Z, a-z, 0-9, . _ -)');
  return v;
}

/** An exact decimal(18, scale), returned padded to its scale ("124" -> "124.000"). */
export function decimalValue(at: RowPlace, field: string, v: unknown, scale: number, nullable: boolean): string | null {
  if (v === null || v === undefined) return nullable ? null : fail(at, field, v, 'is missing');
  const problem = decimalProblem(v, 18, scale);
  if (problem) return fail(at, field, v, `is not an exact decimal(18,${scale}): ${problem}`);
  return normalizeDecimal(v as string, 18, scale);
}

export function booleanValue(at: RowPlace, field: string, v: unknown): boolean {
  if (typeof v !== 'boolean') return fail(at, field, v, 'is not true or false');
  return v;
}

export function instantValue(at: RowPlace, field: string, v: unknown, nullable: boolean): Date | null {
  if (v instanceof Date && !Number.isNaN(v.getTime())) return v;
  if (v === null || v === undefined) return nullable ? null : fail(at, field, v, 'is missing');
  if (typeof v !== 'string' || !ISO_INSTANT.test(v) || Number.isNaN(Date.parse(v)))
    return fail(at, field, v, 'is not an ISO 8601 instant with offset');
  return new Date(v);
}
