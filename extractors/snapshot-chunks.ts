/**
 * Builds a store's snapshot as InventorySnapshotChunk records while rows stream in. Every
 * chunk carries chunk_count and row_count, which are known only at the end, so rows are kept
 * Avro-encoded (about 110 bytes each, against about 1 KB as JS objects) and the chunks are
 * assembled once the source is exhausted. A product read twice (KLK pages shift while the
 * POS sells) keeps the last row read.
 */
import type { AvroSchema } from '../core/avro/schemas.ts';
import { createStreamedArrayEncoding, type StreamedArrayEncoding } from '../core/avro/topic-codec.ts';
import type { InventoryRow } from './inventory-row.ts';

/** A snapshot chunk as a header and rows encoded one by one (core/avro/topic-codec.ts frames them). */
export type SnapshotEncoding = StreamedArrayEncoding;

/** Splits the chunk schema into its header fields and its row type; `rows` must be last. */
export function createSnapshotEncoding(chunkSchema: AvroSchema, schemaId: number): SnapshotEncoding {
  return createStreamedArrayEncoding(chunkSchema, schemaId, 'rows');
}

export interface SnapshotIdentity {
  snapshotId: string;
  ubicacionId: string;
  source: 'KLK' | 'STELLAR';
  takenAt: Date;
}

export class SnapshotChunks {
  // Rows are Avro-encoded one after another into one growing buffer, not a Buffer each: a
  // Buffer per row cost an allocation and a copy per row plus GC (bench/extract-stages).
  private arena = Buffer.allocUnsafe(1 << 20);
  private used = 0;
  private readonly starts: number[] = [];
  /** End offset of each slot; -1 once a later read of the same product replaced it. */
  private readonly ends: number[] = [];
  private readonly slotOf = new Map<string, number>();
  duplicates = 0;

  private readonly encoding: SnapshotEncoding;
  private readonly identity: SnapshotIdentity;
  private readonly chunkSize: number;

  constructor(encoding: SnapshotEncoding, identity: SnapshotIdentity, chunkSize = 1_000) {
    this.encoding = encoding;
    this.identity = identity;
    this.chunkSize = chunkSize;
  }

  add(row: InventoryRow): void {
    let end = this.encoding.item.encode(row, this.arena, this.used);
    while (end < 0) {
      // avsc answers how many bytes were missing: grow, then encode the row again.
      const bigger = Buffer.allocUnsafe(Math.max(this.arena.length * 2, this.arena.length - end));
      this.arena.copy(bigger, 0, 0, this.used);
      this.arena = bigger;
      end = this.encoding.item.encode(row, this.arena, this.used);
    }
    const key = `${row.deposito}\u0000${row.producto_id}`;
    const previous = this.slotOf.get(key);
    if (previous !== undefined) {
      this.ends[previous] = -1; // keeps the last read, in read order
      this.duplicates++;
    }
    this.slotOf.set(key, this.starts.length);
    this.starts.push(this.used);
    this.ends.push(end);
    this.used = end;
  }

  get rowCount(): number {
    return this.slotOf.size;
  }

  /** The framed chunk values, in order; an empty snapshot is one chunk without rows. */
  build(): Buffer[] {
    const live: number[] = [];
    for (let i = 0; i < this.starts.length; i++) if (this.ends[i]! >= 0) live.push(i);
    const count = Math.max(1, Math.ceil(live.length / this.chunkSize));
    const out: Buffer[] = [];
    for (let c = 0; c < count; c++) {
      const part = live.slice(c * this.chunkSize, (c + 1) * this.chunkSize);
      let rowBytes = 0;
      for (const i of part) rowBytes += this.ends[i]! - this.starts[i]!;
      const value = this.encoding.frame(
        {
          snapshot_id: this.identity.snapshotId,
          ubicacion_id: this.identity.ubicacionId,
          source: this.identity.source,
          taken_at: this.identity.takenAt,
          chunk_index: c,
          chunk_count: count,
          row_count: live.length,
        },
        part.length,
        rowBytes,
        (target, start) => {
          let at = start;
          for (const i of part) at += this.arena.copy(target, at, this.starts[i]!, this.ends[i]!);
          return at;
        },
      );
      out.push(value);
    }
    return out;
  }
}
