import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createAvroType } from '../../core/avro/schemas.ts';
import { decimalProblem, fromUnscaled, toUnscaled } from '../../core/avro/logical-types.ts';

const record = (fields: unknown[]) => createAvroType({ type: 'record', name: 'T', fields });
const decimal = (precision: number, scale: number) => ({ type: 'bytes', logicalType: 'decimal', precision, scale });

describe('decimal logical type', () => {
  const t = record([{ name: 'q', type: decimal(18, 3) }]);
  const roundTrip = (q: string) => (t.fromBuffer(t.toBuffer({ q })) as { q: string }).q;

  it('round-trips exact values, padding to the scale', () => {
    expect(roundTrip('0.001')).toBe('0.001');
    expect(roundTrip('-3.000')).toBe('-3.000');
    expect(roundTrip('99999999999999.999')).toBe('99999999999999.999');
    expect(roundTrip('-99999999999999.999')).toBe('-99999999999999.999');
    expect(roundTrip('124')).toBe('124.000');
    expect(roundTrip('-128.000')).toBe('-128.000');
    expect(roundTrip('0')).toBe('0.000');
    expect(roundTrip('1.2500')).toBe('1.250'); // a trailing zero beyond the scale loses nothing
  });

  it('encodes byte boundaries and the 15/16-digit switch to BigInt identically', () => {
    const big = record([{ name: 'q', type: decimal(30, 0) }]);
    const viaBig = (q: string) => (big.fromBuffer(big.toBuffer({ q })) as { q: string }).q;
    for (const q of [
      '127',
      '128',
      '-128',
      '-129',
      '255',
      '256',
      '-32768',
      '-32769',
      '8388607',
      '-8388608',
      '999999999999999',
      '1000000000000000',
      '-9007199254740991',
      '9007199254740993',
      '-140737488355328',
      '140737488355328',
    ]) {
      expect(viaBig(q)).toBe(q);
    }
    expect(roundTrip('-0.000')).toBe('0.000');
  });

  it('refuses what it cannot hold exactly, naming the problem', () => {
    expect(t.isValid({ q: '1.0001' })).toBe(false);
    expect(t.isValid({ q: '999999999999999.999' })).toBe(true);
    expect(t.isValid({ q: '1000000000000000.000' })).toBe(false);
    expect(t.isValid({ q: '1e3' })).toBe(false);
    expect(t.isValid({ q: 1.5 })).toBe(false);
    expect(decimalProblem('1.0001', 18, 3)).toBe('"1.0001" has more than 3 decimals');
    expect(decimalProblem('12,5', 18, 3)).toBe('"12,5" is not a decimal number');
    expect(decimalProblem('1000', 5, 3)).toBe('"1000" has more than 2 integer digits');
  });

  it('round-trips any value within precision (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 38 }).chain((p) => fc.tuple(fc.constant(p), fc.integer({ min: 0, max: p }))),
        fc.bigInt(),
        ([p, s], raw) => {
          const limit = 10n ** BigInt(p);
          const unscaled = raw % limit;
          const text = fromUnscaled(unscaled, s);
          const type = record([{ name: 'q', type: decimal(p, s) }]);
          const back = (type.fromBuffer(type.toBuffer({ q: text })) as { q: string }).q;
          expect(back).toBe(text);
          expect(toUnscaled(back, p, s)).toBe(unscaled);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('accepts, refuses and encodes arbitrary text exactly as the Avro spec reading does (property)', () => {
    // The reference: the decimal grammar by regex and BigInt arithmetic, no shortcuts. The
    // implementation has a fast path for plain text; both must agree on every input.
    const reference = (v: string, p: number, s: number): bigint | null => {
      const m = /^([+-]?)(\d+)(?:\.(\d+))?$/.exec(v);
      if (!m) return null;
      const frac = m[3] ?? '';
      if (frac.length > s && /[^0]/.test(frac.slice(s))) return null;
      const int = BigInt(m[2]!);
      if (int !== 0n && int.toString().length + s > p) return null;
      const unscaled = int * 10n ** BigInt(s) + BigInt((frac.slice(0, s) || '0').padEnd(s, '0') || '0');
      return m[1] === '-' ? -unscaled : unscaled;
    };
    const text = fc.stringMatching(/^[-+]?[0-9.]{0,3}[0-9]{0,16}(\.[0-9]{0,6})?[-.a]?$/);
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }).chain((p) => fc.tuple(fc.constant(p), fc.integer({ min: 0, max: Math.min(p, 6) }))),
        text,
        ([p, s], v) => {
          const expected = reference(v, p, s);
          expect(decimalProblem(v, p, s) === null).toBe(expected !== null);
          if (expected === null) return;
          expect(toUnscaled(v, p, s)).toBe(expected);
          const type = record([{ name: 'q', type: decimal(p, s) }]);
          expect((type.fromBuffer(type.toBuffer({ q: v })) as { q: string }).q).toBe(fromUnscaled(expected, s));
        },
      ),
      { numRuns: 3000, seed: 20261129 },
    );
  });
});

describe('timestamp-millis, date and uuid logical types', () => {
  const t = record([
    { name: 'at', type: { type: 'long', logicalType: 'timestamp-millis' } },
    { name: 'fecha', type: { type: 'int', logicalType: 'date' } },
    { name: 'id', type: { type: 'string', logicalType: 'uuid' } },
  ]);
  const ok = { at: new Date('2026-11-27T14:30:00.123Z'), fecha: '2026-11-27', id: '0b8a3f7e-1111-4222-8333-444455556666' };

  it('round-trips a Date, a YYYY-MM-DD string and a uuid', () => {
    const back = t.fromBuffer(t.toBuffer(ok)) as typeof ok;
    expect(back.at).toBeInstanceOf(Date);
    expect(back.at.toISOString()).toBe('2026-11-27T14:30:00.123Z');
    expect(back.fecha).toBe('2026-11-27');
    expect(back.id).toBe(ok.id);
  });

  it('refuses numbers for timestamps, impossible dates and non-uuids', () => {
    expect(t.isValid({ ...ok, at: Date.now() })).toBe(false);
    expect(t.isValid({ ...ok, at: new Date('nope') })).toBe(false);
    expect(t.isValid({ ...ok, fecha: '2026-02-30' })).toBe(false);
    expect(t.isValid({ ...ok, fecha: '27/11/2026' })).toBe(false);
    expect(t.isValid({ ...ok, id: 'snapshot-1' })).toBe(false);
  });
});
