/**
 * Deterministic input for the sink's tests and bench, written straight onto its topics:
 * inventory change events as the differ would emit them between cycles of `cycleRows`
 * (with products vanishing and coming back), sales lines with corrections, phantom alerts
 * opening and resolving, and run records.
 */
import { createTopicCodec } from '../../core/avro/topic-codec.ts';
import type { OutgoingRecord } from '../../core/kafka/types.ts';
import type { InventoryChange, InventoryRow, PhantomAlert, Venta } from '../../core/records.ts';
import type { EtlRun } from '../../core/etl-run.ts';
import { cycleRows, uuidFrom } from '../../fixtures/inventory-feed.ts';
import type { TestPipeline } from '../../fixtures/pipeline.ts';
import { sendTransactionsVisibly } from '../../fixtures/processor-run.ts';

export interface SinkFeedSpec {
  stores: string[];
  products: number;
  cycles: number;
  /** Sales lines per store (about a tenth are corrected once). */
  ventasPerStore: number;
  /** Alerts opened per store (each resolved, and a second opened, later). */
  alertsPerStore: number;
  start?: Date;
}

export interface SinkFeed {
  changes: InventoryChange[];
  ventas: Venta[];
  alerts: PhantomAlert[];
  runs: EtlRun[];
  /** taken_at of each cycle. */
  cycleTimes: Date[];
}

const CYCLE_MS = 30 * 60_000;

/** Whether product p is absent from store s's snapshot at cycle c (it vanishes for one cycle now and then). */
const vanished = (p: number, c: number) => c > 1 && (p * 31 + c * 7) % 53 === 0;

export function buildSinkFeed(spec: SinkFeedSpec): SinkFeed {
  const start = spec.start ?? new Date('2026-11-01T12:00:00Z');
  const cycleTimes = Array.from({ length: spec.cycles }, (_, i) => new Date(start.getTime() + i * CYCLE_MS));
  const changes: InventoryChange[] = [];
  const runs: EtlRun[] = [];
  for (let c = 1; c <= spec.cycles; c++) {
    const takenAt = cycleTimes[c - 1]!;
    for (const store of spec.stores) {
      const snapshotId = uuidFrom(`${store}/snapshot/${c}`);
      const now = cycleRows(store, c, spec.products);
      const before = c > 1 ? cycleRows(store, c - 1, spec.products) : [];
      now.forEach((row, i) => {
        const p = i + 1;
        const prev: InventoryRow | undefined = c > 1 && !vanished(p, c - 1) ? before[i] : undefined;
        const base = {
          ubicacion_id: store,
          deposito: row.deposito,
          producto_id: row.producto_id,
          snapshot_id: snapshotId,
          taken_at: takenAt,
          source: 'KLK' as const,
        };
        if (vanished(p, c)) {
          if (prev) changes.push({ ...base, op: 'd', before: prev, after: null });
          return;
        }
        if (!prev) changes.push({ ...base, op: 'c', before: null, after: row });
        else if (prev.cantidad !== row.cantidad) changes.push({ ...base, op: 'u', before: prev, after: row });
      });
      runs.push({
        run_id: uuidFrom(`run/${c}`),
        job: 'INVENTARIO',
        ubicacion_id: store,
        status: 'OK',
        rows: spec.products,
        started_at: takenAt,
        finished_at: new Date(takenAt.getTime() + 5_000),
        snapshot_id: snapshotId,
        fecha: null,
        error_class: null,
        error_message: null,
      });
    }
  }

  const ventas: Venta[] = [];
  const fecha = start.toISOString().slice(0, 10);
  for (const store of spec.stores) {
    for (let n = 1; n <= spec.ventasPerStore; n++) {
      const factura = `F${String(Math.ceil(n / 3)).padStart(7, '0')}`;
      const linea = ((n - 1) % 3) + 1;
      const at = new Date(start.getTime() + n * 1_000);
      const line = {
        ubicacion_id: store,
        fecha,
        numero_factura: factura,
        linea,
        fecha_hora: at,
        producto_id: String(1 + (n % spec.products)).padStart(6, '0'),
        cantidad: `${1 + (n % 5)}.000`,
        precio_unitario: '2.5000',
        descuento: '0.0000',
        total: `${(2.5 * (1 + (n % 5))).toFixed(4)}`,
        caja: '01',
        anulada: false,
      };
      ventas.push({ op: 'c', linea: line, fingerprint: uuidFrom(`${store}/${n}/1`), first_seen_at: at, extracted_at: at });
      if (n % 10 === 0) {
        ventas.push({
          op: 'u',
          linea: { ...line, anulada: true },
          fingerprint: uuidFrom(`${store}/${n}/2`),
          first_seen_at: at,
          extracted_at: new Date(at.getTime() + CYCLE_MS),
        });
      }
    }
  }

  const alerts: PhantomAlert[] = [];
  for (const store of spec.stores) {
    for (let a = 1; a <= spec.alertsPerStore; a++) {
      const producto_id = String(a).padStart(6, '0');
      const opened = new Date(start.getTime() + a * 60_000);
      const first = {
        alert_id: uuidFrom(`${store}/alert/${a}/1`),
        ubicacion_id: store,
        deposito: '01',
        producto_id,
        rule: 'UNEXPLAINED_DROP' as const,
        confidence: 0.75,
        status: 'OPEN' as const,
        summary: `producto ${producto_id} cayó a 0`,
        evidence: { cantidad_antes: '40.000' },
        opened_at: opened,
        updated_at: opened,
      };
      alerts.push(first);
      const later = new Date(opened.getTime() + CYCLE_MS);
      alerts.push({ ...first, status: 'RESOLVED', updated_at: later });
      alerts.push({
        ...first,
        alert_id: uuidFrom(`${store}/alert/${a}/2`),
        rule: 'FLIP_FLOP',
        confidence: 0.9,
        opened_at: later,
        updated_at: later,
      });
    }
  }
  return { changes, ventas, alerts, runs, cycleTimes };
}

/** Encoded records of the feed, placed by store, in the order the processors would write them. */
export async function sinkFeedRecords(pipeline: TestPipeline, feed: SinkFeed): Promise<Record<string, OutgoingRecord[]>> {
  const codec = <T>(topic: string) => createTopicCodec<T>(pipeline.registry, topic, pipeline.prefix + topic);
  const changes = await codec<InventoryChange>('pos.inventario.changes');
  const ventas = await codec<Venta>('pos.ventas');
  const alerts = await codec<PhantomAlert>('alerts.phantom-zeros');
  const runs = await codec<EtlRun>('ops.etl-runs');
  return {
    'pos.inventario.changes': feed.changes.map((c) => ({
      ubicacionId: c.ubicacion_id,
      key: `${c.ubicacion_id}/${c.deposito}/${c.producto_id}`,
      value: changes.encode(c),
    })),
    'pos.ventas': feed.ventas.map((v) => ({
      ubicacionId: v.linea.ubicacion_id,
      key: `${v.linea.ubicacion_id}/${v.linea.numero_factura}/${v.linea.linea}`,
      value: ventas.encode(v),
    })),
    'alerts.phantom-zeros': feed.alerts.map((a) => ({
      ubicacionId: a.ubicacion_id,
      key: `${a.ubicacion_id}/${a.deposito}/${a.producto_id}`,
      value: alerts.encode(a),
    })),
    'ops.etl-runs': feed.runs.map((r) => ({ ubicacionId: r.ubicacion_id, key: `${r.job}/${r.ubicacion_id}`, value: runs.encode(r) })),
  };
}

/** Writes the feed in transactions of at most `perTransaction` records per topic. */
export async function publishSinkFeed(pipeline: TestPipeline, feed: SinkFeed, perTransaction = 2_000): Promise<number> {
  const producer = await pipeline.kafka.producer({
    transactionalId: `sink-feed-${pipeline.prefix}${Math.random().toString(36).slice(2)}`,
  });
  let total = 0;
  try {
    for (const [topic, records] of Object.entries(await sinkFeedRecords(pipeline, feed))) {
      const batches: OutgoingRecord[][] = [];
      for (let i = 0; i < records.length; i += perTransaction) batches.push(records.slice(i, i + perTransaction));
      await sendTransactionsVisibly(pipeline.kafka, producer, pipeline.prefix + topic, batches);
      total += records.length;
    }
  } finally {
    await producer.disconnect();
  }
  return total;
}
