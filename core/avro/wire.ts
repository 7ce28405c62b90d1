/**
 * The Confluent wire format, the one place it is written and read: magic byte 0, the schema id
 * as a big-endian int32, then the Avro bytes. core/avro/topic-codec.ts frames every record
 * Fluxion writes with it; tests frame hand-made bytes with confluentFrame.
 */
import { ValidationError } from '../errors.ts';

export const CONFLUENT_HEADER_BYTES = 5;

/** Writes the header at the start of `out`; returns where the Avro bytes start. */
export function writeConfluentHeader(out: Buffer, schemaId: number): number {
  out.writeUInt8(0, 0);
  out.writeInt32BE(schemaId, 1);
  return CONFLUENT_HEADER_BYTES;
}

export function confluentFrame(schemaId: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(CONFLUENT_HEADER_BYTES + payload.length);
  payload.copy(out, writeConfluentHeader(out, schemaId));
  return out;
}

/** The schema id of a framed record of `topic`; a ValidationError when the bytes are not framed. */
export function confluentSchemaId(buffer: Buffer | null, topic: string): number {
  if (!buffer || buffer.length < CONFLUENT_HEADER_BYTES)
    throw new ValidationError(`${topic}: a record of ${buffer?.length ?? 0} bytes is not Confluent-framed Avro`, { context: { topic } });
  if (buffer[0] !== 0)
    throw new ValidationError(`${topic}: magic byte ${buffer[0]} is not 0 (not Confluent-framed Avro)`, { context: { topic } });
  return buffer.readInt32BE(1);
}

/** The Avro bytes of a framed record (after confluentSchemaId accepted it). */
export function confluentPayload(buffer: Buffer): Buffer {
  return buffer.subarray(CONFLUENT_HEADER_BYTES);
}
