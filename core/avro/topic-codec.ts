/**
 * Fluxion's one Avro codec: every record written to or read from Kafka goes through this
 * module, framed by core/avro/wire.ts. It uses avsc directly: the processors handle hundreds
 * of thousands of records per cycle, and a generic client re-validates every value. Writes use
 * the committed schema (schemas/<topic>-value.avsc) under its registered id; reads resolve any
 * registered writer schema of the record into the committed one (BACKWARD evolution), fetched
 * once per id.
 *
 * Three ways in, one format: `createTopicCodec` (a topic's values, both ways),
 * `createStreamedArrayEncoding` (a record whose last field is an array encoded item by item as
 * it streams in: the extractor's snapshot chunks), `createWriterSchemaDecoder` (any framed
 * record in its writer's own shape: tests and inspection).
 */
import avro from 'avsc';
import { SchemaError, ValidationError } from '../errors.ts';
import { subjectFor, type FluxionRegistry } from '../registry.ts';
import { createAvroType, loadSubjectSchemas, type AvroSchema } from './schemas.ts';
import { confluentFrame, confluentPayload, confluentSchemaId, CONFLUENT_HEADER_BYTES, writeConfluentHeader } from './wire.ts';

export interface TopicCodec<T> {
  readonly topic: string;
  readonly schemaId: number;
  /** The committed schema the codec writes (inlined, self-contained). */
  readonly schema: AvroSchema;
  encode(value: T): Buffer;
  /** Throws ValidationError (bad framing, bad bytes) or SchemaError (unknown schema id). */
  decode(buffer: Buffer | null): Promise<T>;
}

/** avsc types of registered schemas by id, fetched once; a failed lookup is not cached (the next record asks again). */
function typesById<R>(registry: FluxionRegistry, build: (writer: avro.Type, id: number) => R): (id: number) => Promise<R> {
  const cache = new Map<number, Promise<R>>();
  return (id) => {
    let found = cache.get(id);
    if (!found) {
      found = registry.schemaById(id).then((writer: AvroSchema) => build(createAvroType(writer, `registry schema id ${id}`), id));
      found.catch(() => cache.delete(id));
      cache.set(id, found);
    }
    return found;
  };
}

function decodeFailure(topic: string, id: number, cause: unknown): ValidationError {
  return new ValidationError(`${topic}: bytes do not decode with schema id ${id}: ${(cause as Error).message}`, {
    cause,
    context: { topic, schemaId: id },
  });
}

/** The committed schema of `schemaTopic` (schemas/<schemaTopic>-value.avsc). */
function committedSchema(schemaTopic: string): { schema: AvroSchema; file: string } {
  const committed = loadSubjectSchemas().find((s) => s.topic === schemaTopic);
  if (!committed) throw new SchemaError(`no committed schema schemas/${schemaTopic}-value.avsc`, { context: { topic: schemaTopic } });
  return committed;
}

/**
 * `schemaTopic` names the committed schema (without prefix); `topic` is where the records
 * live (with prefix), whose `<topic>-value` subject holds the registered ids.
 */
export async function createTopicCodec<T>(
  registry: FluxionRegistry,
  schemaTopic: string,
  topic: string = schemaTopic,
): Promise<TopicCodec<T>> {
  const committed = committedSchema(schemaTopic);
  const type = createAvroType(committed.schema, committed.file);
  const schemaId = await registry.lookupId(subjectFor(topic), committed.schema);
  // A resolver reads bytes written with the writer's schema into the committed shape.
  const resolverFor = typesById(registry, (writer, id) => (id === schemaId ? null : type.createResolver(writer)));

  return {
    topic,
    schemaId,
    schema: committed.schema,
    encode(value) {
      return confluentFrame(schemaId, type.toBuffer(value));
    },
    async decode(buffer) {
      const id = confluentSchemaId(buffer, topic);
      const resolver = id === schemaId ? null : await resolverFor(id);
      try {
        return (
          resolver ? type.fromBuffer(confluentPayload(buffer!), resolver as never) : type.fromBuffer(confluentPayload(buffer!))
        ) as T;
      } catch (cause) {
        throw decodeFailure(topic, id, cause);
      }
    },
  };
}

/** Decodes any framed record with the schema it was written with (its id's registered schema), whatever the topic. */
export function createWriterSchemaDecoder(registry: FluxionRegistry): { decode<T = unknown>(buffer: Buffer, topic?: string): Promise<T> } {
  const typeOf = typesById(registry, (writer) => writer);
  return {
    async decode<T>(buffer: Buffer, topic = 'record') {
      const id = confluentSchemaId(buffer, topic);
      const type = await typeOf(id);
      try {
        return type.fromBuffer(confluentPayload(buffer)) as T;
      } catch (cause) {
        throw decodeFailure(topic, id, cause);
      }
    },
  };
}

/**
 * A record whose last field is an array too large to keep as objects until it is complete (a
 * snapshot chunk's rows): items are encoded one by one as they arrive, with `item`, into the
 * caller's own buffer; `frame` then writes the other fields and the items' bytes as one framed
 * record, byte for byte what TopicCodec.encode writes for the whole value.
 */
export interface StreamedArrayEncoding {
  readonly schemaId: number;
  /** The other fields, in schema order (the record without its last field). */
  readonly head: avro.Type;
  /** One item of the last field's array. */
  readonly item: avro.Type;
  /** `copyItems(out, at)` writes the `items` encoded items (`itemBytes` bytes) at `at` and returns the offset after them. */
  frame(head: Record<string, unknown>, items: number, itemBytes: number, copyItems: (out: Buffer, at: number) => number): Buffer;
}

const LONG = avro.Type.forSchema('long');
const NO_BYTES = Buffer.alloc(0);

/** `schema`'s last field must be the array named `field`. */
export function createStreamedArrayEncoding(schema: AvroSchema, schemaId: number, field: string): StreamedArrayEncoding {
  const fields = schema.fields as Array<{ name: string; type: unknown }>;
  const last = fields[fields.length - 1];
  if (last?.name !== field)
    throw new ValidationError(`${String(schema.name)} must end with its ${field} field (it is written as the other fields + ${field})`);
  const head = createAvroType({ ...schema, fields: fields.slice(0, -1) });
  const item = createAvroType((last.type as { items: unknown }).items);
  return {
    schemaId,
    head,
    item,
    frame(values, items, itemBytes, copyItems) {
      const headBytes = head.toBuffer(values);
      // An Avro array: one block (its count, then the items), then the zero terminator.
      const blockCount = items ? LONG.toBuffer(items) : NO_BYTES;
      const out = Buffer.allocUnsafe(CONFLUENT_HEADER_BYTES + headBytes.length + blockCount.length + itemBytes + 1);
      let at = writeConfluentHeader(out, schemaId);
      at += headBytes.copy(out, at);
      at += blockCount.copy(out, at);
      at = copyItems(out, at);
      out[at] = 0;
      return out;
    },
  };
}
