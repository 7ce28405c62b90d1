import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { VentaLinea } from '../../core/records.ts';
import {
  advanceStreamTime,
  crossesHour,
  dedupeLine,
  dedupeStep,
  expiredKeys,
  isExpired,
  refreshIntervalMs,
  ubicacionOfKey,
  ventaKey,
  ventaRawProblem,
  type DedupeEntry,
} from '../../processors/ventas-dedupe-rules.ts';

const line = (extra: Partial<VentaLinea> = {}): VentaLinea => ({
  ubicacion_id: 'tienda_01',
  fecha: '2026-11-27',
  numero_factura: 'F-1',
  linea: 1,
  fecha_hora: new Date('2026-11-27T13:00:00Z'),
  producto_id: '000123',
  cantidad: '2.000',
  precio_unitario: '1.2000',
  descuento: '0.0000',
  total: '2.4000',
  caja: '03',
  anulada: false,
  ...extra,
});
const t = (h: number) => new Date(Date.UTC(2026, 10, 27, h));

describe('dedupeLine', () => {
  it('emits a new line once, drops its re-reads, and emits a voided or corrected version as u', () => {
    const first = dedupeLine(undefined, line(), t(14));
    expect(first.decision).toBe('new');
    expect(first.output).toMatchObject({ op: 'c', first_seen_at: t(14), extracted_at: t(14) });
    const again = dedupeLine(first.next, line(), t(15));
    expect(again).toMatchObject({ decision: 'duplicate', output: null });
    expect(again.next.last_seen_at).toBe(t(15).getTime());
    const voided = dedupeLine(again.next, line({ anulada: true }), t(16));
    expect(voided.decision).toBe('updated');
    expect(voided.output).toMatchObject({ op: 'u', linea: { anulada: true }, first_seen_at: t(14), extracted_at: t(16) });
    const corrected = dedupeLine(voided.next, line({ anulada: true, cantidad: '1.000', total: '1.2000' }), t(17));
    expect(corrected.decision).toBe('updated');
    expect(dedupeLine(corrected.next, line({ anulada: true, cantidad: '1.000', total: '1.2000' }), t(18)).decision).toBe('duplicate');
  });

  it('keys lines by store, invoice and line number', () => {
    expect(ventaKey(line({ linea: 2 }))).toBe('tienda_01/F-1/2');
  });

  it('outputs exactly one c per key and a u only when content changed (property)', () => {
    const versions = fc.record({
      linea: fc.integer({ min: 1, max: 3 }),
      anulada: fc.boolean(),
      cantidad: fc.constantFrom('1.000', '2.000'),
    });
    fc.assert(
      fc.property(fc.array(versions, { maxLength: 40 }), (reads) => {
        const state = new Map<string, DedupeEntry>();
        const last = new Map<string, string>();
        const ops: string[] = [];
        reads.forEach((r, i) => {
          const l = line({ linea: r.linea, anulada: r.anulada, cantidad: r.cantidad });
          const k = ventaKey(l);
          const d = dedupeLine(state.get(k), l, t(i % 20));
          state.set(k, d.next);
          const content = `${r.anulada}/${r.cantidad}`;
          if (!last.has(k)) expect(d.output?.op).toBe('c');
          else if (last.get(k) !== content) expect(d.output?.op).toBe('u');
          else expect(d.output).toBeNull();
          last.set(k, content);
          if (d.output) ops.push(`${k}:${d.output.op}`);
        });
        for (const k of last.keys()) expect(ops.filter((o) => o === `${k}:c`)).toHaveLength(1);
      }),
      { numRuns: 300 },
    );
  });
});

describe('isExpired', () => {
  it('forgets a line not seen for the retention window', () => {
    const entry = { fingerprint: 'x', first_seen_at: t(0).getTime(), last_seen_at: t(10).getTime() };
    expect(isExpired(entry, new Date(t(10).getTime() + 7 * 86_400_000))).toBe(false);
    expect(isExpired(entry, new Date(t(10).getTime() + 7 * 86_400_000 + 1))).toBe(true);
    expect(isExpired(entry, new Date(t(10).getTime() + 2 * 86_400_000 + 1), 2)).toBe(true);
  });
});

describe('dedupeStep', () => {
  const window = { retentionDays: 7, refreshMs: refreshIntervalMs(7) };
  const day = 86_400_000;

  it('records new and changed lines, and a duplicate only once its read is a refresh interval later', () => {
    const first = dedupeStep(undefined, line(), t(8), window);
    expect(first).toMatchObject({ decision: 'new', record: { first_seen_at: t(8).getTime(), last_seen_at: t(8).getTime() } });
    expect(dedupeStep(first.record!, line(), t(13), window)).toMatchObject({ decision: 'duplicate', output: null, record: null });
    expect(dedupeStep(first.record!, line(), t(14), window)).toMatchObject({
      decision: 'duplicate',
      output: null,
      record: { first_seen_at: t(8).getTime(), last_seen_at: t(14).getTime() },
    });
    const voided = dedupeStep(first.record!, line({ anulada: true }), t(9), window);
    expect(voided).toMatchObject({
      decision: 'updated',
      output: { op: 'u', first_seen_at: t(8) },
      record: { first_seen_at: t(8).getTime(), last_seen_at: t(9).getTime() },
    });
    expect(voided.record!.fingerprint).not.toBe(first.record!.fingerprint);
  });

  it('decides a line whose entry is past the window as new, whether or not the sweep removed it', () => {
    const old: DedupeEntry = {
      fingerprint: dedupeStep(undefined, line(), t(0), window).record!.fingerprint,
      first_seen_at: t(0).getTime(),
      last_seen_at: t(0).getTime(),
    };
    const later = new Date(t(0).getTime() + 7 * day + 1);
    const again = dedupeStep(old, line(), later, window);
    expect(again).toMatchObject({
      decision: 'new',
      output: { op: 'c', first_seen_at: later },
      record: { first_seen_at: later.getTime() },
    });
    expect(dedupeStep(undefined, line(), later, window)).toEqual(again);
    expect(dedupeStep(old, line(), new Date(t(0).getTime() + 7 * day), window).decision).toBe('duplicate');
  });

  it('refreshes at most every 6 h, and within a quarter of a short window', () => {
    expect(refreshIntervalMs(7)).toBe(6 * 3_600_000);
    expect(refreshIntervalMs(0.5)).toBe(3 * 3_600_000);
  });
});

describe('sweep helpers', () => {
  it('runs the sweep when stream time enters a new hour (and on the first line)', () => {
    expect(crossesHour(-Infinity, t(3).getTime())).toBe(true);
    expect(crossesHour(t(3).getTime(), t(3).getTime() + 3_599_999)).toBe(false);
    expect(crossesHour(t(3).getTime() + 3_599_999, t(4).getTime())).toBe(true);
  });

  it('lists the lines not read for the window', () => {
    const entry = (h: number): DedupeEntry => ({ fingerprint: 'x', first_seen_at: t(h).getTime(), last_seen_at: t(h).getTime() });
    const lines = new Map([
      ['a/F/1', entry(0)],
      ['a/F/2', entry(5)],
      ['b/F/1', entry(1)],
    ]);
    expect(expiredKeys(lines, t(0).getTime() + 2 * 86_400_000 + 3_600_000 + 1, 2)).toEqual(['a/F/1', 'b/F/1']);
    expect(expiredKeys(lines, t(5).getTime(), 2)).toEqual([]);
  });

  it('leaves out the line whose step runs the sweep: its store entry is the one it replaces', () => {
    const entry = (h: number): DedupeEntry => ({ fingerprint: 'x', first_seen_at: t(h).getTime(), last_seen_at: t(h).getTime() });
    const lines = new Map([
      ['a/F/1', entry(0)],
      ['b/F/1', entry(1)],
    ]);
    expect(expiredKeys(lines, t(0).getTime() + 3 * 86_400_000, 2, 'a/F/1')).toEqual(['b/F/1']);
  });

  it('moves stream time only forward and only with a record, sweeping when it enters a new hour', () => {
    const rec = (ms: number): DedupeEntry => ({ fingerprint: 'x', first_seen_at: ms, last_seen_at: ms });
    const h3 = t(3).getTime();
    expect(advanceStreamTime(-Infinity, null)).toEqual({ streamTime: -Infinity, sweep: false });
    expect(advanceStreamTime(-Infinity, rec(h3))).toEqual({ streamTime: h3, sweep: true });
    expect(advanceStreamTime(h3, rec(h3 + 60_000))).toEqual({ streamTime: h3 + 60_000, sweep: false });
    // A record of an older read (a late duplicate refreshed) leaves stream time where it was.
    expect(advanceStreamTime(h3 + 60_000, rec(h3 - 3_600_000))).toEqual({ streamTime: h3 + 60_000, sweep: false });
    expect(advanceStreamTime(h3 + 3_599_999, rec(t(4).getTime()))).toEqual({ streamTime: t(4).getTime(), sweep: true });
    // Nothing recorded (a duplicate within the refresh interval): no sweep, even past the hour.
    expect(advanceStreamTime(h3, null)).toEqual({ streamTime: h3, sweep: false });
  });

  it('finds the store of a key, also when the invoice number holds a slash', () => {
    expect(ubicacionOfKey(ventaKey(line({ numero_factura: 'A/77', linea: 3 })))).toBe('tienda_01');
  });
});

describe('ventaRawProblem', () => {
  it.each([
    [{ ubicacion_id: 'Tienda 1' }, 'linea.ubicacion_id', 'Tienda 1'],
    [{ ubicacion_id: 'a/b' }, 'linea.ubicacion_id', 'a/b'],
    [{ numero_factura: '  ' }, 'linea.numero_factura', '  '],
    [{ linea: 0 }, 'linea.linea', 0],
    [{ fecha_hora: new Date(Number.NaN) }, 'linea.fecha_hora', 'Invalid Date'],
  ])('names the field and value of %o', (bad, field, value) => {
    expect(ventaRawProblem({ linea: line(bad as Partial<VentaLinea>), extracted_at: t(14) })).toMatchObject({ field, value });
  });

  it('accepts a usable line, whatever its extraction instant', () => {
    expect(ventaRawProblem({ linea: line({ numero_factura: 'A/77' }), extracted_at: t(14) })).toBeNull();
    expect(ventaRawProblem({ linea: line(), extracted_at: new Date(Date.UTC(2030, 0, 1)) })).toBeNull();
    expect(ventaRawProblem({ linea: line(), extracted_at: new Date(Number.NaN) })).toMatchObject({ field: 'extracted_at' });
  });
});
