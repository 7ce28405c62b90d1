import { describe, expect, it } from 'vitest';
import { compareAlertRecords, recordInput, replayDetector, type RecordedInput } from '../../bench/lib/phantom-replay.ts';
import type { InventoryChange, InventoryRow, Venta } from '../../core/records.ts';
import { DEFAULT_PHANTOM_CONFIG } from '../../processors/phantom-rules.ts';

const T0 = Date.parse('2026-11-30T10:00:00Z');
const at = (minutes: number) => new Date(T0 + minutes * 60_000);
const row = (deposito: string, producto_id: string, cantidad: string) =>
  ({ deposito, producto_id, cantidad, descripcion: 'X', unidad: 'UND', activo: true }) as InventoryRow;

function change(
  deposito: string,
  before: string | null,
  after: string,
  s: number,
  source: InventoryChange['source'] = 'KLK',
): RecordedInput {
  const c: InventoryChange = {
    op: before === null ? 'c' : 'u',
    ubicacion_id: 'tienda_01',
    deposito,
    producto_id: '000001',
    before: before === null ? null : row(deposito, '000001', before),
    after: row(deposito, '000001', after),
    snapshot_id: `S${s}`,
    taken_at: at(30 * s),
    source,
  };
  // Through JSON, as a recording on disk is read back.
  return JSON.parse(JSON.stringify(recordInput({ kind: 'change', change: c }))) as RecordedInput;
}

function sale(numero: string, cantidad: string, minute: number): RecordedInput {
  const linea = {
    ubicacion_id: 'tienda_01',
    fecha: '2026-11-30',
    numero_factura: numero,
    linea: 1,
    fecha_hora: at(minute),
    producto_id: '000001',
    cantidad,
    precio_unitario: '1.0000',
    descuento: '0.0000',
    total: cantidad,
    caja: '01',
    anulada: false,
  };
  const v: Venta = { op: 'c', linea, fingerprint: numero, first_seen_at: at(minute), extracted_at: at(minute) };
  return JSON.parse(JSON.stringify(recordInput({ kind: 'venta', venta: v }))) as RecordedInput;
}

describe('replayDetector', () => {
  it('opens and resolves the alerts the rules give, with the detector ids, from recorded inputs', () => {
    const inputs = [
      change('01', null, '50.000', 0),
      sale('F-1', '1.000', 10),
      change('01', '50.000', '0.000', 1),
      change('01', '0.000', '20.000', 2),
    ];
    const alerts = replayDetector(inputs, DEFAULT_PHANTOM_CONFIG);
    expect(alerts.map((a) => [a.rule, a.status, a.opened_at.toISOString(), a.updated_at.toISOString()])).toEqual([
      ['UNEXPLAINED_DROP', 'OPEN', at(30).toISOString(), at(30).toISOString()],
      ['UNEXPLAINED_DROP', 'RESOLVED', at(30).toISOString(), at(60).toISOString()],
    ]);
    expect(alerts[0]!.alert_id).toBe(alerts[1]!.alert_id);
    expect(alerts[0]!.evidence).toMatchObject({ from_quantity: '50.000', units_sold_between: '1.000' });
  });

  it('feeds a sales line to every deposito of its product, and follows the config it is given', () => {
    const inputs = [
      change('01', null, '5.000', 0),
      change('02', null, '5.000', 0),
      change('01', '5.000', '0.000', 1),
      change('02', '5.000', '0.000', 1),
      sale('F-1', '2.000', 40),
    ];
    const fired = replayDetector(inputs, DEFAULT_PHANTOM_CONFIG);
    expect(fired.map((a) => `${a.deposito} ${a.rule} ${a.status}`)).toEqual(['01 SELLING_AT_ZERO OPEN', '02 SELLING_AT_ZERO OPEN']);
    expect(replayDetector(inputs, { ...DEFAULT_PHANTOM_CONFIG, sellingAtZeroMinSales: '3.000' })).toEqual([]);
  });

  it('follows only the POS the config judges, as the detector does (followsChange)', () => {
    const stellar = [change('01', null, '50.000', 0, 'STELLAR'), change('01', '50.000', '0.000', 1, 'STELLAR')];
    expect(replayDetector(stellar, DEFAULT_PHANTOM_CONFIG)).toEqual([]);
    expect(
      replayDetector(stellar, { ...DEFAULT_PHANTOM_CONFIG, sources: ['KLK', 'STELLAR'] }).map((a) => `${a.rule} ${a.status}`),
    ).toEqual(['UNEXPLAINED_DROP OPEN']);
    // A recording made before the source was recorded replays as KLK.
    const old = change('01', null, '50.000', 0, 'STELLAR').slice(0, 9) as RecordedInput;
    expect(replayDetector([old, change('01', '50.000', '0.000', 1)], DEFAULT_PHANTOM_CONFIG)).toHaveLength(1);
  });

  it('compareAlertRecords names the records only one side wrote', () => {
    const inputs = [change('01', null, '50.000', 0), change('01', '50.000', '0.000', 1)];
    const a = replayDetector(inputs, DEFAULT_PHANTOM_CONFIG);
    expect(compareAlertRecords(a, a)).toMatchObject({ real: 1, replayed: 1, same: 1, only_real: [], only_replayed: [] });
    const other = replayDetector(inputs, { ...DEFAULT_PHANTOM_CONFIG, dropThreshold: '100.000' });
    expect(compareAlertRecords(a, other)).toMatchObject({ real: 1, replayed: 0, same: 0 });
  });
});
