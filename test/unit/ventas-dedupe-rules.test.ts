import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { VentaLinea } from '../../core/records.ts';
import { dedupeLine, isExpired, ventaKey, type DedupeEntry } from '../../processors/ventas-dedupe-rules.ts';

const line = (extra: Partial<VentaLinea> = {}): VentaLinea => ({
  ubicacion_id: 'tienda_01', fecha: '2026-11-27', numero_factura: 'F-1', linea: 1, fecha_hora: new Date('2026-11-27T13:00:00Z'),
  producto_id: '000123', cantidad: '2.000', precio_unitario: '1.2000', descuento: '0.0000', total: '2.4000', caja: '03', anulada: false, ...extra,
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
    const versions = fc.record({ linea: fc.integer({ min: 1, max: 3 }), anulada: fc.boolean(), cantidad: fc.constantFrom('1.000', '2.000') });
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
