/**
 * The Avro schemas of schemas/*.avsc: one file per subject (TopicNameStrategy:
 * `<topic>-value`), with shared named types in schemas/types/ inlined at load so that every
 * registered schema is self-contained.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import avro from 'avsc';
import { SchemaError } from '../errors.ts';
import { SCHEMAS_DIR } from '../paths.ts';
import { LOGICAL_TYPES } from './logical-types.ts';

export type AvroSchema = Record<string, unknown>;

export interface SubjectSchema {
  /** Topic the schema is the value of, without any environment prefix. */
  topic: string;
  /** Self-contained schema (shared types inlined). */
  schema: AvroSchema;
  file: string;
}

export const AVRO_TYPE_OPTIONS = { logicalTypes: LOGICAL_TYPES, assertLogicalTypes: true } as const;

const PRIMITIVES = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string']);

function parseJsonFile(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (cause) {
    throw new SchemaError(`${file}: not valid JSON: ${(cause as Error).message}`, { cause, context: { file } });
  }
}

function isNamedSchema(doc: unknown): doc is AvroSchema & { name: string } {
  return typeof doc === 'object' && doc !== null && !Array.isArray(doc) && typeof (doc as AvroSchema).name === 'string';
}

function fullName(schema: AvroSchema, enclosingNamespace: string | undefined): string {
  const name = String(schema.name);
  if (name.includes('.')) return name;
  const ns = (schema.namespace as string | undefined) ?? enclosingNamespace;
  return ns ? `${ns}.${name}` : name;
}

/** Shared named types (records, enums) of schemas/types, by full name. */
export function loadSharedTypes(dir: string = join(SCHEMAS_DIR, 'types')): Map<string, AvroSchema> {
  const shared = new Map<string, AvroSchema>();
  for (const entry of readdirSync(dir)
    .filter((f) => f.endsWith('.avsc'))
    .sort()) {
    const file = join(dir, entry);
    const doc = parseJsonFile(file);
    if (!isNamedSchema(doc))
      throw new SchemaError(`${file}: a shared type must be a named Avro type (record, enum or fixed)`, { context: { file } });
    shared.set(fullName(doc, undefined), doc);
  }
  return shared;
}

/**
 * Replaces references to shared types by their definitions, the first time each is used
 * (Avro requires a name to be defined once, then referenced).
 */
export function inlineSharedTypes(schema: unknown, shared: Map<string, AvroSchema>): unknown {
  const defined = new Set<string>();
  const walk = (node: unknown, ns: string | undefined): unknown => {
    if (typeof node === 'string') {
      if (PRIMITIVES.has(node)) return node;
      const full = node.includes('.') ? node : ns ? `${ns}.${node}` : node;
      const target = shared.get(full) ?? shared.get(node);
      if (!target || defined.has(full) || defined.has(node)) return node;
      return walk(structuredClone(target), ns);
    }
    if (Array.isArray(node)) return node.map((branch) => walk(branch, ns));
    if (typeof node !== 'object' || node === null) return node;
    const obj = { ...(node as AvroSchema) };
    let innerNs = ns;
    if (isNamedSchema(obj)) {
      const full = fullName(obj, ns);
      defined.add(full);
      innerNs = full.includes('.') ? full.slice(0, full.lastIndexOf('.')) : ns;
    }
    if (Array.isArray(obj.fields)) {
      obj.fields = (obj.fields as AvroSchema[]).map((f) => ({ ...f, type: walk(f.type, innerNs) }));
    }
    if (obj.items !== undefined) obj.items = walk(obj.items, innerNs);
    if (obj.values !== undefined) obj.values = walk(obj.values, innerNs);
    if (typeof obj.type === 'object' && obj.type !== null) obj.type = walk(obj.type, innerNs);
    return obj;
  };
  return walk(schema, undefined);
}

/** Builds an avsc type with Fluxion's logical types; a bad schema names its file. */
export function createAvroType(schema: unknown, file = '(inline schema)'): avro.Type {
  try {
    // A fresh options object each time: avsc keeps its registry of named types in it.
    return avro.Type.forSchema(schema as avro.Schema, { ...AVRO_TYPE_OPTIONS } as never);
  } catch (cause) {
    throw new SchemaError(`${file}: invalid Avro schema: ${(cause as Error).message}`, { cause, context: { file } });
  }
}

function docProblems(schema: unknown, path: string, out: string[]): void {
  if (Array.isArray(schema)) {
    for (const branch of schema) docProblems(branch, path, out);
    return;
  }
  if (typeof schema !== 'object' || schema === null) return;
  const s = schema as AvroSchema;
  if (s.type === 'record' && Array.isArray(s.fields)) {
    for (const f of s.fields as AvroSchema[]) {
      if (typeof f.doc !== 'string' || f.doc.trim() === '') out.push(`${path}.${String(f.name)} has no doc`);
      docProblems(f.type, `${path}.${String(f.name)}`, out);
    }
  }
  if (s.items) docProblems(s.items, `${path}[]`, out);
  if (s.values) docProblems(s.values, `${path}{}`, out);
}

/** Loads every subject schema, inlined and checked (parses with avsc, every field has a doc). */
export function loadSubjectSchemas(dir: string = SCHEMAS_DIR): SubjectSchema[] {
  const shared = loadSharedTypes(join(dir, 'types'));
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('-value.avsc'))
    .sort();
  return files.map((entry) => {
    const file = join(dir, entry);
    const schema = inlineSharedTypes(parseJsonFile(file), shared) as AvroSchema;
    createAvroType(schema, file);
    const undocumented: string[] = [];
    docProblems(schema, String(schema.name), undocumented);
    if (undocumented.length) throw new SchemaError(`${file}: every field needs a doc: ${undocumented.join('; ')}`, { context: { file } });
    return { topic: basename(entry, '-value.avsc'), schema, file };
  });
}

/**
 * Why data written with `previous` cannot be read with `next` (BACKWARD compatibility, the
 * registry's default), or null when it can. Decided by avsc's schema resolution, which
 * follows the Avro spec's rules (defaults for added fields, promotions, enum symbols).
 */
export function backwardIncompatibility(next: unknown, previous: unknown): string | null {
  const reader = createAvroType(next);
  const writer = createAvroType(previous);
  try {
    reader.createResolver(writer);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}
