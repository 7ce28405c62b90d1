/**
 * Builds a store's snapshot as InventorySnapshotChunk records while rows stream in. Every
 * chunk carries chunk_count and row_count, which are known only at the end, so rows are kept
 * Avro-encoded (about 110 bytes each, against about 1 KB as JS objects) and the chunks are
 * assembled once the source is exhausted. A product read twice (KLK pages shift while the
 * POS sells) keeps the last row read.
 */
import avro from 'avsc';
import type { AvroSchema } from '../core/avro/schemas.ts';
import { createAvroType } from '../core/avro/schemas.ts';
import { confluentFrame } from '../core/avro/wire.ts';
import { ValidationError } from '../core/errors.ts';
import type { InventoryRow } from './inventory-row.ts';

export interface SnapshotEncoding {
  schemaId: number;
  header: avro.Type;
  row: avro.Type;
}

const LONG = avro.Type.forSchema('long');

/** Splits the chunk schema into its header fields and its row type; `rows` must be last. */
export function createSnapshotEncoding(chunkSchema: AvroSchema, schemaId: number): SnapshotEncoding {
  const fields = chunkSchema.fields as Array<{ name: string; type: unknown }>;
  const last = fields[fields.length - 1];
  if (last?.name !== 'rows') throw new ValidationError('InventorySnapshotChunk must end with its rows field (chunks are assembled as header + rows)');
  const rowSchema = (last.type as { items: unknown }).items;
  return {
    schemaId,
    header: createAvroType({ ...chunkSchema, fields: fields.slice(0, -1) }),
    row: createAvroType(rowSchema),
  };
}

export interface SnapshotIdentity {
  snapshotId: string;
  ubicacionId: string;
  source: 'KLK' | 'STELLAR';
  takenAt: Date;
}

export class SnapshotChunks {
  private readonly rows = new Map<string, Buffer>();
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
    const key = `${row.deposito}\u0000${row.producto_id}`;
    if (this.rows.delete(key)) this.duplicates++; // re-insert: keeps the last read, in read order
    this.rows.set(key, this.encoding.row.toBuffer(row));
  }

  get rowCount(): number {
    return this.rows.size;
  }

  /** The framed chunk values, in order; an empty snapshot is one chunk without rows. */
  build(): Buffer[] {
    const encoded = [...this.rows.values()];
    const count = Math.max(1, Math.ceil(encoded.length / this.chunkSize));
    const out: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      const part = encoded.slice(i * this.chunkSize, (i + 1) * this.chunkSize);
      const header = this.encoding.header.toBuffer({
        snapshot_id: this.identity.snapshotId,
        ubicacion_id: this.identity.ubicacionId,
        source: this.identity.source,
        taken_at: this.identity.takenAt,
        chunk_index: i,
        chunk_count: count,
        row_count: encoded.length,
      });
      // Avro array: one block (count, items) then the zero terminator.
      const rows = part.length ? Buffer.concat([LONG.toBuffer(part.length), ...part, LONG.toBuffer(0)]) : LONG.toBuffer(0);
      out.push(confluentFrame(this.encoding.schemaId, Buffer.concat([header, rows])));
    }
    return out;
  }
}
