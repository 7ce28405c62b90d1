/**
 * Inventory snapshots for the differ's tests: deterministic rows per store and cycle, and
 * their chunk records encoded as the extractor publishes them (one transaction per store).
 */
import { createHash } from 'node:crypto';
import { createTopicCodec, type TopicCodec } from '../../core/avro/topic-codec.ts';
import type { KafkaClient, OutgoingRecord } from '../../core/kafka/types.ts';
import type { InventoryRow } from '../../core/records.ts';
import type { FluxionRegistry } from '../../core/registry.ts';
import type { SnapshotChunk } from '../../processors/snapshot-diff.ts';
import { sendTransactionsVisibly } from './processor-run.ts';

export function uuidFrom(text: string): string {
  const h = createHash('sha1').update(text).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function inventoryRow(producto: number, cantidad: string, deposito = '01'): InventoryRow {
  const id = String(producto).padStart(6, '0');
  return {
    deposito,
    producto_id: id,
    codigo_barras: `759${id}0001`,
    descripcion: `PRODUCTO ${id}`,
    departamento_codigo: '01',
    departamento_nombre: 'VIVERES',
    grupo_codigo: '0101',
    grupo_nombre: 'GRANOS',
    subgrupo_codigo: null,
    subgrupo_nombre: null,
    unidad: 'UND',
    cantidad,
    costo: '1.2500',
    precio: '2.0000',
    activo: true,
    actualizado_en: null,
  };
}

/**
 * Rows of `store` at `cycle`: `products` products whose quantity changes every cycle for
 * about `changeShare` of them (a deterministic hash decides which), never to zero.
 */
export function cycleRows(store: string, cycle: number, products: number, changeShare = 0.05): InventoryRow[] {
  const rows: InventoryRow[] = [];
  for (let p = 1; p <= products; p++) {
    let version = 0;
    for (let c = 1; c <= cycle; c++) {
      const h = createHash('sha1').update(`${store}/${p}/${c}`).digest().readUInt32BE(0) / 2 ** 32;
      if (h < changeShare) version = c;
    }
    rows.push(inventoryRow(p, `${10 + ((p * 7 + version * 13) % 90)}.000`));
  }
  return rows;
}

export interface SnapshotSpec {
  ubicacion: string;
  snapshotId: string;
  takenAt: Date;
  rows: InventoryRow[];
  chunkSize?: number;
  /** Publish only these chunk indexes (an incomplete snapshot). */
  only?: number[];
  source?: 'KLK' | 'STELLAR';
}

export function chunkRecords(codec: TopicCodec<SnapshotChunk>, s: SnapshotSpec): OutgoingRecord[] {
  const size = s.chunkSize ?? 1_000;
  const count = Math.max(1, Math.ceil(s.rows.length / size));
  const out: OutgoingRecord[] = [];
  for (let i = 0; i < count; i++) {
    if (s.only && !s.only.includes(i)) continue;
    const chunk: SnapshotChunk = {
      snapshot_id: s.snapshotId,
      ubicacion_id: s.ubicacion,
      source: s.source ?? 'KLK',
      taken_at: s.takenAt,
      chunk_index: i,
      chunk_count: count,
      row_count: s.rows.length,
      rows: s.rows.slice(i * size, (i + 1) * size),
    };
    out.push({ ubicacionId: s.ubicacion, key: s.ubicacion, value: codec.encode(chunk) });
  }
  return out;
}

export interface SnapshotFeeder {
  codec: TopicCodec<SnapshotChunk>;
  /** Publishes each snapshot in its own transaction, as the extractor does per store. */
  publish(snapshots: SnapshotSpec[]): Promise<void>;
  close(): Promise<void>;
}

export async function snapshotFeeder(kafka: KafkaClient, registry: FluxionRegistry, prefix: string): Promise<SnapshotFeeder> {
  const topic = `${prefix}pos.inventario.snapshots`;
  const codec = await createTopicCodec<SnapshotChunk>(registry, 'pos.inventario.snapshots', topic);
  const producer = await kafka.producer({ transactionalId: `test-feeder-${prefix}${Math.random().toString(36).slice(2)}` });
  return {
    codec,
    async publish(snapshots) {
      await sendTransactionsVisibly(kafka, producer, topic, snapshots.map((s) => chunkRecords(codec, s)));
    },
    close: () => producer.disconnect(),
  };
}
