/**
 * Encodes and decodes one topic's values in the Confluent wire format with avsc directly:
 * the processors handle hundreds of thousands of records per cycle, and the generic client
 * re-validates every value. Writes use the committed schema (schemas/<topic>-value.avsc)
 * under its registered id; reads resolve any registered writer schema of the record into
 * the committed one (BACKWARD evolution), fetched once per id.
 */
import type avro from 'avsc';
import { SchemaError, ValidationError } from '../errors.ts';
import { subjectFor, type FluxionRegistry } from '../registry.ts';
import { createAvroType, loadSubjectSchemas, type AvroSchema } from './schemas.ts';

export interface TopicCodec<T> {
  readonly topic: string;
  readonly schemaId: number;
  encode(value: T): Buffer;
  /** Throws ValidationError (bad framing, bad bytes) or SchemaError (unknown schema id). */
  decode(buffer: Buffer | null): Promise<T>;
}

/**
 * `schemaTopic` names the committed schema (without prefix); `topic` is where the records
 * live (with prefix), whose `<topic>-value` subject holds the registered ids.
 */
export async function createTopicCodec<T>(registry: FluxionRegistry, schemaTopic: string, topic: string = schemaTopic): Promise<TopicCodec<T>> {
  const committed = loadSubjectSchemas().find((s) => s.topic === schemaTopic);
  if (!committed) throw new SchemaError(`no committed schema schemas/${schemaTopic}-value.avsc`, { context: { topic: schemaTopic } });
  const type = createAvroType(committed.schema, committed.file);
  const schemaId = await registry.lookupId(subjectFor(topic), committed.schema);
  const readers = new Map<number, Promise<avro.Type | avro.Resolver>>();
  readers.set(schemaId, Promise.resolve(type));

  function readerFor(id: number): Promise<avro.Type | avro.Resolver> {
    let reader = readers.get(id);
    if (!reader) {
      reader = registry.schemaById(id).then((writer: AvroSchema) => {
        const writerType = createAvroType(writer, `registry schema id ${id}`);
        // A resolver reads bytes written with the writer's schema into the committed shape.
        return type.createResolver(writerType);
      });
      // A failed lookup is not cached: the next record with this id asks again.
      reader.catch(() => readers.delete(id));
      readers.set(id, reader);
    }
    return reader;
  }

  return {
    topic,
    schemaId,
    encode(value) {
      const payload = type.toBuffer(value);
      const out = Buffer.allocUnsafe(5 + payload.length);
      out.writeUInt8(0, 0);
      out.writeInt32BE(schemaId, 1);
      payload.copy(out, 5);
      return out;
    },
    async decode(buffer) {
      if (!buffer || buffer.length < 5) throw new ValidationError(`${topic}: a record of ${buffer?.length ?? 0} bytes is not Confluent-framed Avro`, { context: { topic } });
      if (buffer[0] !== 0) throw new ValidationError(`${topic}: magic byte ${buffer[0]} is not 0 (not Confluent-framed Avro)`, { context: { topic } });
      const id = buffer.readInt32BE(1);
      const reader = await readerFor(id);
      try {
        if (reader === type) return type.fromBuffer(buffer.subarray(5)) as T;
        return type.fromBuffer(buffer.subarray(5), reader as never) as T;
      } catch (cause) {
        throw new ValidationError(`${topic}: bytes do not decode with schema id ${id}: ${(cause as Error).message}`, { cause, context: { topic, schemaId: id } });
      }
    },
  };
}
