/**
 * Events and configuration for the notify rules' unit tests (test/unit/notify-rules*.test.ts):
 * runs, quarantine records and phantom-zero alerts at chosen instants.
 */
import type { PhantomAlert, QuarantineRecord } from '../../core/records.ts';
import type { EtlRun, NotifyRulesConfig } from '../../sinks/notify-rules.ts';

export const MIN = 60_000;
export const T0 = Date.UTC(2026, 10, 27, 12, 0, 0);
export const CONFIG: NotifyRulesConfig = {
  throttleMs: 60 * MIN,
  phantomStoreThreshold: 20,
  phantomWindowMs: 60 * MIN,
  maxAgeMs: 24 * 60 * MIN,
  environment: 'production',
  locale: 'en',
};

export let seq = 0;
export function run(
  store: string,
  status: 'OK' | 'FAILED',
  errorClass: string | null = null,
  atMs = T0,
  job: EtlRun['job'] = 'INVENTARIO',
): EtlRun {
  seq++;
  return {
    run_id: `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
    job,
    ubicacion_id: store,
    status,
    rows: status === 'OK' ? 1500 : 0,
    started_at: new Date(atMs - 20_000),
    finished_at: new Date(atMs),
    snapshot_id: null,
    fecha: null,
    error_class: status === 'OK' ? null : errorClass,
    error_message:
      status === 'OK' ? null : `${store}: page 1, item 42 (producto 000042): field cantidad: "12,5" is not an exact decimal(18,3)`,
  };
}
export const failed = (store: string, errorClass = 'POS_DATA', atMs = T0, job: EtlRun['job'] = 'INVENTARIO') => ({
  type: 'etl-run' as const,
  run: run(store, 'FAILED', errorClass, atMs, job),
});

export function quarantine(
  store: string,
  status: QuarantineRecord['status'] = 'QUARANTINED',
  atMs = T0,
): { type: 'quarantine'; record: QuarantineRecord } {
  return {
    type: 'quarantine',
    record: {
      snapshot_id: '6f1c2b7e-5d4a-4c3b-9a8f-0e1d2c3b4a59',
      ubicacion_id: store,
      source: 'KLK',
      taken_at: new Date(atMs),
      status,
      reason: '812 of 1500 products with stock (54.1%) dropped to 0 or vanished; the limit is 30%',
      row_count: 1500,
      chunk_count: 2,
      partition: 1,
      first_offset: 42,
      updated_at: new Date(atMs),
      note: null,
    },
  };
}

export function alert(
  store: string,
  n: number,
  openedMs = T0,
  status: PhantomAlert['status'] = 'OPEN',
  confidence = 0.9,
): { type: 'phantom-alert'; alert: PhantomAlert } {
  const producto = String(n).padStart(6, '0');
  return {
    type: 'phantom-alert',
    alert: {
      alert_id: `00000000-0000-5000-8000-${store.slice(-2)}${String(n).padStart(10, '0')}`,
      ubicacion_id: store,
      deposito: '01',
      producto_id: producto,
      rule: n % 2 ? 'UNEXPLAINED_DROP' : 'SELLING_AT_ZERO',
      confidence,
      status,
      summary: `${store} deposito 01 producto ${producto}: dropped from 50 to 0 with 1 sold`,
      evidence: {},
      opened_at: new Date(openedMs),
      updated_at: new Date(openedMs),
    },
  };
}
