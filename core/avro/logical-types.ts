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

/**
 * Parses a decimal string once: its unscaled integer at `scale` (a number while it has at
 * most 15 digits, which every real quantity and price has: exact and about 5x faster than
 * BigInt; a bigint beyond), or the reason it does not fit (precision, scale).
 */
function parseDecimal(value: unknown, precision: number, scale: number): number | bigint | string {
  if (typeof value !== 'string') return `expected a decimal string, got ${typeof value}`;
  const fast = plainUnscaled(value, precision, scale);
  if (fast !== undefined) return fast;
  const m = DECIMAL_TEXT.exec(value);
  if (!m) return `"${value}" is not a decimal number`;
  const frac = m[3] ?? '';
  // Extra decimals are accepted only when they are zeros: nothing is ever rounded.
  if (frac.length > scale && /[^0]/.test(frac.slice(scale))) return `"${value}" has more than ${scale} decimals`;
  let int = m[2]!;
  if (int.length > 1 && int.startsWith('0')) int = int.replace(/^0+(?=\d)/, '');
  const intDigits = int === '0' ? 0 : int.length;
  if (intDigits + scale > precision) return `"${value}" has more than ${precision - scale} integer digits`;
  const digits = int + (frac.length >= scale ? frac.slice(0, scale) : frac.padEnd(scale, '0'));
  const negative = m[1] === '-';
  if (digits.length <= 15) {
    const n = Number(digits);
    return negative && n !== 0 ? -n : n;
  }
  const big = BigInt(digits);
  return negative ? -big : big;
}

/**
 * The common case of parseDecimal without a regex or intermediate strings (the extractor
 * encodes three decimals a row, 1.1 million a chain cycle): "[-]digits[.digits]" with at most
 * `scale` decimals and at most 15 significant digits once scaled, fitting the precision.
 * undefined for anything else, which parseDecimal's general path then accepts or refuses
 * with its reason; test/unit/logical-types.test.ts checks the two agree on arbitrary text.
 */
function plainUnscaled(v: string, precision: number, scale: number): number | undefined {
  const len = v.length;
  let i = v.charCodeAt(0) === 45 /* - */ ? 1 : 0;
  const negative = i === 1;
  if (len === i || len > 17) return undefined;
  let n = 0;
  let intDigits = 0; // without leading zeros
  let fracDigits = -1; // -1 until the dot
  for (; i < len; i++) {
    const c = v.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (fracDigits >= 0) fracDigits++;
      else if (intDigits > 0 || c !== 48) intDigits++;
      n = n * 10 + (c - 48);
    } else if (c === 46 /* . */ && fracDigits < 0 && i > (negative ? 1 : 0)) {
      fracDigits = 0;
    } else {
      return undefined;
    }
  }
  if (fracDigits === 0 || fracDigits > scale || intDigits + scale > precision || intDigits + scale > 15) return undefined;
  for (let k = Math.max(fracDigits, 0); k < scale; k++) n *= 10;
  return negative && n !== 0 ? -n : n;
}

/** Why `value` is not an exact decimal fitting (precision, scale); null when it fits. */
export function decimalProblem(value: unknown, precision: number, scale: number): string | null {
  const parsed = parseDecimal(value, precision, scale);
  return typeof parsed === 'string' ? parsed : null;
}

/** Parses a decimal string into its unscaled integer at `scale`; throws on bad input. */
export function toUnscaled(value: string, precision: number, scale: number): bigint {
  const parsed = parseDecimal(value, precision, scale);
  if (typeof parsed === 'string') throw new RangeError(parsed);
  return BigInt(parsed);
}

/** Formats an unscaled integer as a decimal string with exactly `scale` decimals. */
export function fromUnscaled(unscaled: bigint | number, scale: number): string {
  const negative = unscaled < 0;
  const digits = (negative ? -unscaled : unscaled).toString().padStart(scale + 1, '0');
  const text = scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  return negative ? `-${text}` : text;
}

/** Re-formats a valid decimal string to exactly `scale` decimals ("124" -> "124.000"). */
export function normalizeDecimal(value: string, precision: number, scale: number): string {
  const parsed = parseDecimal(value, precision, scale);
  if (typeof parsed === 'string') throw new RangeError(parsed);
  return fromUnscaled(parsed, scale);
}

/** Minimal big-endian two's complement of a safe integer, without BigInt. */
function numberToTwosComplement(n: number): Buffer {
  // Up to 6 bytes (every quantity and price): Buffer's own writer, one allocation.
  for (let width = 1, half = 128; width <= 6; width++, half *= 256) {
    if (n >= -half && n < half) {
      const out = Buffer.allocUnsafe(width);
      out.writeIntBE(n, 0, width);
      return out;
    }
  }
  const bytes: number[] = [];
  let v = n;
  for (;;) {
    const b = ((v % 256) + 256) % 256;
    bytes.push(b);
    v = Math.floor(v / 256);
    if ((v === 0 && (b & 0x80) === 0) || (v === -1 && (b & 0x80) !== 0)) break;
  }
  return Buffer.from(bytes.reverse());
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
    // Up to 6 bytes (48 bits) the value is a safe integer: no BigInt needed.
    if (buf.length > 0 && buf.length <= 6) return fromUnscaled(buf.readIntBE(0, buf.length), this.scale);
    return fromUnscaled(twosComplementToBigint(buf), this.scale);
  }

  protected override _toValue(value: unknown): Buffer | undefined {
    const parsed = parseDecimal(value, this.precision, this.scale);
    if (typeof parsed === 'string') return undefined;
    return typeof parsed === 'number' ? numberToTwosComplement(parsed) : bigintToTwosComplement(parsed);
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
