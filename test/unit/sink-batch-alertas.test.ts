/**
 * The sink's batch plans for alertas (sinks/sink-batch.ts): resolve before open, one OPEN alert
 * per product, and a dismissed alert that does not reopen on the same evidence (ventas and
 * etl_runs: sink-batch.test.ts).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PhantomAlert } from '../../core/records.ts';
import { ALERTAS_COLUMNS, mergeAlerta, planAlertas, rowsOf, type AlertaRow, type AlertasPlan } from '../../sinks/sink-batch.ts';
import { at, caught, split, sorted, cutsArb } from '../helpers/sink-batch-model.ts';

// ---------------------------------------------------------------------------------------------

type AlertTable = Map<string, ReturnType<typeof mergeAlerta>>;

/** Upserts on alert_id (merged as writeAlertas does), checking alertas_una_abierta after every row as PostgreSQL does. */
function upsertAlertas(table: AlertTable, rows: readonly AlertaRow[]): void {
  for (const r of rows) {
    table.set(r.alert_id, mergeAlerta(table.get(r.alert_id), r));
    const open = [...table.values()].filter(
      (a) => a.estado === 'OPEN' && a.ubicacion_id === r.ubicacion_id && a.deposito === r.deposito && a.producto_id === r.producto_id,
    );
    if (open.length > 1) throw new Error(`duplicate key value violates unique constraint "alertas_una_abierta" (${r.producto_id})`);
  }
}

function applyAlertas(table: AlertTable, plan: AlertasPlan, order: 'resolved-first' | 'open-first' = 'resolved-first'): AlertTable {
  const next = new Map(table);
  const resolved = rowsOf(ALERTAS_COLUMNS, plan.resolved);
  const open = rowsOf(ALERTAS_COLUMNS, plan.open);
  for (const group of order === 'resolved-first' ? [resolved, open] : [open, resolved]) upsertAlertas(next, group);
  return next;
}

const alert = (alert_id: string, status: 'OPEN' | 'RESOLVED', extra: Partial<PhantomAlert> = {}): PhantomAlert => ({
  alert_id,
  ubicacion_id: 'tienda_01',
  deposito: '01',
  producto_id: '000123',
  rule: 'SELLING_AT_ZERO',
  confidence: 0.9,
  status,
  summary: 'sold 5 units while recorded at 0',
  evidence: { cantidad: '0.000', vendido_desde: '5.000' },
  opened_at: at('2026-11-27T14:00:00Z'),
  updated_at: at('2026-11-27T14:30:00Z'),
  ...extra,
});

describe('planAlertas', () => {
  it('resolving first lets a product close one alert and open the next in one batch; the other order cannot', () => {
    const table: AlertTable = new Map();
    upsertAlertas(table, rowsOf(ALERTAS_COLUMNS, planAlertas([alert('a1', 'OPEN')]).open));
    const plan = planAlertas([
      alert('a1', 'OPEN', { confidence: 0.95 }),
      alert('a1', 'RESOLVED'),
      alert('a2', 'OPEN', { rule: 'FLIP_FLOP' }),
    ]);
    expect(plan.resolved.alert_id).toEqual(['a1']);
    expect(plan.open.alert_id).toEqual(['a2']);
    expect(plan.resolved.evidencia).toEqual(['{"cantidad":"0.000","vendido_desde":"5.000"}']);
    expect([...applyAlertas(table, plan).values()].map((a) => [a.alert_id, a.estado])).toEqual([
      ['a1', 'RESOLVED'],
      ['a2', 'OPEN'],
    ]);
    expect(() => applyAlertas(table, plan, 'open-first')).toThrow(/alertas_una_abierta/);
  });

  it('refuses two different alerts both left OPEN for one product', () => {
    const err = caught(() => planAlertas([alert('a1', 'OPEN'), alert('a2', 'OPEN', { producto_id: '000999' }), alert('a3', 'OPEN')]));
    expect(err).toMatchObject({ topic: 'alerts.phantom-zeros', key: 'tienda_01/01/000123', field: 'status', index: 2 });
    expect(err.message).toMatch(/a1 and a3 both end this batch OPEN/);
  });

  it('refuses an alert that moves to another product, and a confidence outside [0, 1]', () => {
    expect(caught(() => planAlertas([alert('a1', 'OPEN'), alert('a1', 'RESOLVED', { deposito: '02' })]))).toMatchObject({
      field: 'alert_id',
      index: 1,
      key: 'tienda_01/02/000123',
    });
    expect(caught(() => planAlertas([alert('a1', 'OPEN', { confidence: 1.5 })]))).toMatchObject({ field: 'confidence', index: 0 });
  });

  it('RESOLVED records carry resuelta_en (their updated_at); OPEN records none', () => {
    const plan = planAlertas([
      alert('a1', 'RESOLVED', { updated_at: at('2026-11-27T16:00:00Z') }),
      alert('a2', 'OPEN', { producto_id: '000124' }),
    ]);
    expect(plan.resolved.resuelta_en).toEqual([at('2026-11-27T16:00:00Z')]);
    expect(plan.open.resuelta_en).toEqual([null]);
  });

  it('no alert_id twice across both groups, and a consistent alert stream in any batches never breaks the index (property)', () => {
    // a detector per product: at most one open alert, resolved before the next one opens
    const actionArb = fc.record({
      producto: fc.constantFrom('000001', '000002'),
      action: fc.constantFrom('open', 'update', 'resolve'),
      confidence: fc.double({ min: 0, max: 1, noNaN: true }),
    });
    const streamOf = (actions: Array<{ producto: string; action: string; confidence: number }>) => {
      const open = new Map<string, string>();
      let seq = 0;
      const out: PhantomAlert[] = [];
      for (const a of actions) {
        const current = open.get(a.producto);
        if (a.action === 'resolve' && current) {
          out.push(alert(current, 'RESOLVED', { producto_id: a.producto, confidence: a.confidence }));
          open.delete(a.producto);
        } else if (current) {
          out.push(alert(current, 'OPEN', { producto_id: a.producto, confidence: a.confidence }));
        } else if (a.action !== 'resolve') {
          const id = `a${++seq}`;
          open.set(a.producto, id);
          out.push(alert(id, 'OPEN', { producto_id: a.producto, confidence: a.confidence }));
        }
      }
      return out;
    };
    fc.assert(
      fc.property(fc.array(actionArb, { maxLength: 30 }), fc.nat({ max: 30 }), cutsArb, (actions, prefix, cuts) => {
        const stream = streamOf(actions);
        const head = stream.slice(0, prefix);
        const tail = stream.slice(prefix);
        const table: AlertTable = new Map();
        for (const a of head) upsertAlertas(table, rowsOf(ALERTAS_COLUMNS, planAlertas([a])[a.status === 'OPEN' ? 'open' : 'resolved']));
        const byOne = new Map(table);
        for (const a of tail) upsertAlertas(byOne, rowsOf(ALERTAS_COLUMNS, planAlertas([a])[a.status === 'OPEN' ? 'open' : 'resolved']));
        let batched = table;
        for (const batch of split(tail, cuts)) {
          const plan = planAlertas(batch);
          const ids = [...plan.resolved.alert_id, ...plan.open.alert_id];
          expect(new Set(ids).size).toBe(ids.length);
          batched = applyAlertas(batched, plan);
        }
        expect(sorted(batched)).toEqual(sorted(byOne));
      }),
      { numRuns: 500 },
    );
  });
});

describe('mergeAlerta: a dismissed alert does not reopen on the same evidence', () => {
  const row = (status: 'OPEN' | 'RESOLVED', extra: Partial<PhantomAlert> = {}): AlertaRow =>
    rowsOf(ALERTAS_COLUMNS, planAlertas([alert('a1', status, extra)])[status === 'OPEN' ? 'open' : 'resolved'])[0]!;
  const dismiss = (table: AlertTable, id: string) => table.set(id, { ...table.get(id)!, estado: 'DESCARTADA' });

  it('a row not dismissed follows the record, as before', () => {
    expect(mergeAlerta(undefined, row('OPEN'))).toEqual(row('OPEN'));
    expect(mergeAlerta({ estado: 'OPEN', resuelta_en: null }, row('RESOLVED'))).toEqual(row('RESOLVED'));
  });

  it(
    "the detector's next OPEN (new confidence), a redelivered OPEN and the RESOLVED all leave it DESCARTADA; the evidence and " +
      'resuelta_en follow',
    () => {
      const table: AlertTable = new Map();
      upsertAlertas(table, [row('OPEN')]);
      dismiss(table, 'a1');
      upsertAlertas(table, [row('OPEN', { confidence: 0.97, updated_at: at('2026-11-27T15:00:00Z') })]);
      expect(table.get('a1')).toMatchObject({
        estado: 'DESCARTADA',
        confianza: 0.97,
        actualizada_en: at('2026-11-27T15:00:00Z'),
        resuelta_en: null,
      });
      upsertAlertas(table, [row('RESOLVED', { updated_at: at('2026-11-27T16:00:00Z') })]);
      expect(table.get('a1')).toMatchObject({ estado: 'DESCARTADA', resuelta_en: at('2026-11-27T16:00:00Z') });
      // The OPEN replayed after a crash keeps both the dismissal and the resolution.
      upsertAlertas(table, [row('OPEN')]);
      expect(table.get('a1')).toMatchObject({ estado: 'DESCARTADA', resuelta_en: at('2026-11-27T16:00:00Z') });
    },
  );

  it("a new episode (a new alert_id) opens beside a dismissed alert of the product: it does not hold alertas_una_abierta's slot", () => {
    const table: AlertTable = new Map();
    upsertAlertas(table, [row('OPEN')]);
    dismiss(table, 'a1');
    const next = applyAlertas(table, planAlertas([alert('a2', 'OPEN', { rule: 'FLIP_FLOP' })]));
    expect([...next.values()].map((a) => [a.alert_id, a.estado])).toEqual([
      ['a1', 'DESCARTADA'],
      ['a2', 'OPEN'],
    ]);
  });

  it('whatever the batching and wherever an operator dismisses, a dismissed alert stays DESCARTADA and the index holds (property)', () => {
    // One product's detector: OPEN, updates, RESOLVED, next episode...; `dismiss` marks the
    // records after which an operator dismisses the alert they belong to.
    const stepArb = fc.record({ action: fc.constantFrom('open', 'update', 'resolve'), dismiss: fc.boolean() });
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 25 }), cutsArb, (steps, cuts) => {
        const stream: Array<{ record: PhantomAlert; dismissAfter: boolean }> = [];
        let open: string | null = null;
        let seq = 0;
        for (const s of steps) {
          if (s.action === 'resolve' && open) {
            stream.push({ record: alert(open, 'RESOLVED'), dismissAfter: false });
            open = null;
          } else if (s.action !== 'resolve') {
            open ??= `a${++seq}`;
            stream.push({ record: alert(open, 'OPEN', { confidence: (seq % 10) / 10 }), dismissAfter: s.dismiss });
          }
        }
        // Dismissals land between batches (the operator's UPDATE and the sink's transaction
        // take the row lock in turn); the batches are cut at each dismissal and at `cuts`.
        const table: AlertTable = new Map();
        const dismissed = new Set<string>();
        for (const part of split(stream, cuts)) {
          let batch: PhantomAlert[] = [];
          const flush = () => {
            if (batch.length) for (const [k, v] of applyAlertas(table, planAlertas(batch))) table.set(k, v);
            batch = [];
          };
          for (const { record, dismissAfter } of part) {
            batch.push(record);
            if (dismissAfter) {
              flush();
              const row = table.get(record.alert_id);
              if (row?.estado === 'OPEN') {
                dismiss(table, record.alert_id);
                dismissed.add(record.alert_id);
              }
            }
          }
          flush();
        }
        for (const id of dismissed) expect(table.get(id)!.estado).toBe('DESCARTADA');
        for (const [id, r] of table)
          if (!dismissed.has(id)) expect(r.estado).toBe(stream.filter((x) => x.record.alert_id === id).at(-1)!.record.status);
      }),
      { numRuns: 500 },
    );
  });
});
