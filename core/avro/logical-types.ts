/**
 * Avro logical types for avsc, which otherwise ignores `logicalType` (a decimal would be raw
 * bytes, a timestamp a bare number). Producers and consumers must share these, so every
 * Avro type in Fluxion is built through core/avro/schemas.ts with `assertLogicalTypes`.
 *
 * JS representations: decimal <-> exact string with exactly `scale` decimals ("124.000"),
 * timestamp-millis <-> Date, date <-> "YYYY-MM-DD", uuid <-> lower-case string.
 */
import avro from 'avsc';

const { LogicalType } = avro.types;
type Schema = Record<string, unknown>;

const DECIMAL_TEXT = /^([+-]?)(\d+)(?:\.(\d+))?$/;

/** Why `value` is not an exact decimal fitting (precision, scale); null when it fits. */
export function decimalProblem(value: unknown, precision: number, scale: number): string | null {
  if (typeof value !== 'string') return `expected a decimal string, got ${typeof value}`;
  const m = DECIMAL_TEXT.exec(value);
  if (!m) return `"${value}" is not a decimal number`;
  const frac = m[3] ?? '';
  // Extra decimals are accepted only when they are zeros: nothing is ever rounded.
  if (frac.length > scale && /[^0]/.test(frac.slice(scale))) return `"${value}" has more than ${scale} decimals`;
  const intDigits = (m[2] ?? '').replace(/^0+/, '').length;
  if (intDigits + scale > precision) return `"${value}" has more than ${precision - scale} integer digits`;
  return null;
}

/** Parses a decimal string into its unscaled integer at `scale`; throws on bad input. */
export function toUnscaled(value: string, precision: number, scale: number): bigint {
  const problem = decimalProblem(value, precision, scale);
  if (problem) throw new RangeError(problem);
  const m = DECIMAL_TEXT.exec(value)!;
  const frac = (m[3] ?? '').slice(0, scale).padEnd(scale, '0');
  const unscaled = BigInt((m[2] ?? '0') + frac);
  return m[1] === '-' ? -unscaled : unscaled;
}

/** Formats an unscaled integer as a decimal string with exactly `scale` decimals. */
export function fromUnscaled(unscaled: bigint, scale: number): string {
  const negative = unscaled < 0n;
  const digits = (negative ? -unscaled : unscaled).toString().padStart(scale + 1, '0');
  const text = scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  return negative ? `-${text}` : text;
}

function bigintToTwosComplement(n: bigint): Buffer {
  // Minimal big-endian two's complement, as the Avro spec requires for decimal bytes.
  let hex = (n < 0n ? -n : n).toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let bytes = Buffer.from(hex, 'hex');
  if (n >= 0n) {
    if (bytes.length === 0 || (bytes[0]! & 0x80) !== 0) bytes = Buffer.concat([Buffer.from([0]), bytes]);
    return bytes;
  }
  const width = bytes.length + ((bytes[0]! & 0x80) !== 0 || bytes.length === 0 ? 1 : 0);
  let value = (1n << BigInt(width * 8)) + n;
  const out = Buffer.alloc(width);
  for (let i = width - 1; i >= 0; i--) {
    out[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  // Drop redundant leading 0xff bytes while the sign stays right.
  let start = 0;
  while (start < out.length - 1 && out[start] === 0xff && (out[start + 1]! & 0x80) !== 0) start++;
  return out.subarray(start);
}

function twosComplementToBigint(buf: Buffer): bigint {
  if (buf.length === 0) return 0n;
  let value = BigInt(`0x${buf.toString('hex')}`);
  if ((buf[0]! & 0x80) !== 0) value -= 1n << BigInt(buf.length * 8);
  return value;
}

export class DecimalType extends LogicalType {
  precision: number;
  scale: number;

  constructor(schema: Schema, opts?: unknown) {
    super(schema as never, opts);
    const precision = schema.precision;
    const scale = schema.scale ?? 0;
    if (typeof precision !== 'number' || !Number.isInteger(precision) || precision < 1) {
      throw new Error(`decimal needs an integer precision >= 1, got ${JSON.stringify(precision)}`);
    }
    if (typeof scale !== 'number' || !Number.isInteger(scale) || scale < 0 || scale > precision) {
      throw new Error(`decimal scale must be an integer in [0, precision], got ${JSON.stringify(scale)}`);
    }
    if (this.underlyingType.typeName !== 'bytes') throw new Error('decimal must annotate bytes');
    this.precision = precision;
    this.scale = scale;
  }

  protected override _fromValue(buf: Buffer): string {
    return fromUnscaled(twosComplementToBigint(buf), this.scale);
  }

  protected override _toValue(value: unknown): Buffer | undefined {
    if (decimalProblem(value, this.precision, this.scale) !== null) return undefined;
    return bigintToTwosComplement(toUnscaled(value as string, this.precision, this.scale));
  }

  protected override _resolve(type: avro.Type): ((v: unknown) => unknown) | undefined {
    // Same scale and no more digits: the bytes mean the same number for the reader.
    if (type instanceof DecimalType && type.scale === this.scale && type.precision <= this.precision) {
      return (v) => v;
    }
    return undefined;
  }

  protected override _export(attrs: avro.Schema): void {
    if (typeof attrs !== 'object' || attrs === null) return;
    Object.assign(attrs, { precision: this.precision, scale: this.scale });
  }
}

export class TimestampMillisType extends LogicalType {
  protected override _fromValue(ms: number): Date {
    return new Date(ms);
  }
  protected override _toValue(value: unknown): number | undefined {
    if (value instanceof Date && !Number.isNaN(value.getTime())) return value.getTime();
    return undefined;
  }
  protected override _resolve(type: avro.Type): ((v: unknown) => unknown) | undefined {
    if (type instanceof TimestampMillisType) return (v) => v;
    if (type.typeName === 'long') return (v) => new Date(v as number);
    return undefined;
  }
}

const MS_PER_DAY = 86_400_000;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;

export class DateType extends LogicalType {
  protected override _fromValue(days: number): string {
    return new Date(days * MS_PER_DAY).toISOString().slice(0, 10);
  }
  protected override _toValue(value: unknown): number | undefined {
    if (typeof value !== 'string' || !ISO_DATE.test(value)) return undefined;
    const ms = Date.parse(`${value}T00:00:00Z`);
    // Date.parse rolls 2026-02-31 over to March: compare back to refuse impossible dates.
    if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== value) return undefined;
    return ms / MS_PER_DAY;
  }
  protected override _resolve(type: avro.Type): ((v: unknown) => unknown) | undefined {
    return type instanceof DateType ? (v) => v : undefined;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class UuidType extends LogicalType {
  protected override _fromValue(value: string): string {
    return value;
  }
  protected override _toValue(value: unknown): string | undefined {
    return typeof value === 'string' && UUID.test(value) ? value : undefined;
  }
  protected override _resolve(type: avro.Type): ((v: unknown) => unknown) | undefined {
    return type instanceof UuidType || type.typeName === 'string' ? (v) => v : undefined;
  }
}

export const LOGICAL_TYPES = {
  decimal: DecimalType,
  'timestamp-millis': TimestampMillisType,
  date: DateType,
  uuid: UuidType,
} as const;
