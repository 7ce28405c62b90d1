import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backwardIncompatibility, createAvroType, loadSubjectSchemas, type AvroSchema } from '../../core/avro/schemas.ts';
import { SchemaError } from '../../core/errors.ts';
import { SCHEMAS_DIR } from '../../core/paths.ts';
import { topicSpecs } from '../../core/topics.ts';
import { compareWithPrevious } from '../../ops/schemas.ts';
import { sampleRecords } from '../helpers/samples.ts';

describe('schemas/', () => {
  const subjects = loadSubjectSchemas();

  it('has one value schema for every Avro topic of core/topics.ts', () => {
    const avroTopics = topicSpecs()
      .filter((t) => t.avro)
      .map((t) => t.name)
      .sort();
    expect(subjects.map((s) => s.topic).sort()).toEqual(avroTopics);
  });

  it('inlines shared types so each registered schema is self-contained', () => {
    for (const s of subjects) {
      const text = JSON.stringify(s.schema);
      // a shared type is defined once, then referenced by name
      for (const name of ['"name":"InventoryRow"', '"name":"VentaLinea"', '"name":"Source"']) {
        expect(text.split(name).length - 1).toBeLessThanOrEqual(1);
      }
    }
    const changes = subjects.find((s) => s.topic === 'pos.inventario.changes')!;
    expect(JSON.stringify(changes.schema)).toContain('"name":"InventoryRow"');
  });

  it('keeps quantities and money exact (decimal), never binary floats', () => {
    const text = subjects.map((s) => JSON.stringify(s.schema)).join('\n');
    expect(text).not.toMatch(/"type":"float"/);
    for (const field of ['cantidad', 'costo', 'precio', 'precio_unitario', 'descuento', 'total']) {
      expect(text).toMatch(new RegExp(`"name":"${field}","type":(\\["null",)?\\{"type":"bytes","logicalType":"decimal"`));
    }
  });

  it('encodes the sample record of every subject', () => {
    for (const s of subjects) {
      const type = createAvroType(s.schema, s.file);
      const sample = sampleRecords()[s.topic];
      expect(sample, `sample for ${s.topic}`).toBeDefined();
      const paths: string[] = [];
      const valid = type.isValid(sample, { errorHook: (path) => paths.push(path.join('.')) });
      expect(valid, `${s.topic}: invalid at ${paths.join(', ')}`).toBe(true);
    }
  });

  it('rejects a schema file with an undocumented field, naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'schemas-'));
    cpSync(join(SCHEMAS_DIR, 'types'), join(dir, 'types'), { recursive: true });
    writeFileSync(
      join(dir, 'x-value.avsc'),
      JSON.stringify({ type: 'record', name: 'X', doc: 'x', fields: [{ name: 'a', type: 'string' }] }),
    );
    expect(() => loadSubjectSchemas(dir)).toThrow(SchemaError);
    expect(() => loadSubjectSchemas(dir)).toThrow(/x-value\.avsc: every field needs a doc: X\.a has no doc/);
  });
});

/** The part of an Avro record schema the changes below edit. */
interface RecordSchema extends AvroSchema {
  fields: Array<{ name: string; type: unknown; [key: string]: unknown }>;
}

describe('BACKWARD compatibility against the previous version', () => {
  const previous = loadSubjectSchemas();
  const withChange = (topic: string, change: (schema: RecordSchema) => void) =>
    previous.map((s) => {
      if (s.topic !== topic) return s;
      const schema = structuredClone(s.schema);
      change(schema as RecordSchema);
      return { ...s, schema };
    });

  it('accepts the schemas as they are, and a new field with a default', () => {
    expect(compareWithPrevious(previous, previous, 'git HEAD')).toEqual([]);
    const next = withChange('ops.etl-runs', (s) => s.fields.push({ name: 'host', type: ['null', 'string'], default: null, doc: 'x' }));
    expect(compareWithPrevious(next, previous, 'git HEAD')).toEqual([]);
  });

  it('refuses a new field without a default', () => {
    const next = withChange('ops.etl-runs', (s) => s.fields.push({ name: 'host', type: 'string', doc: 'x' }));
    const problems = compareWithPrevious(next, previous, 'git HEAD');
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ subject: 'ops.etl-runs-value', against: 'git HEAD' });
    expect(problems[0]!.reason).toMatch(/host/);
  });

  it('refuses a changed decimal scale and a removed subject', () => {
    const rescaled = withChange('pos.ventas.raw', (s) => {
      const linea = s.fields.find((f) => f.name === 'linea')!.type as RecordSchema;
      (linea.fields.find((f) => f.name === 'cantidad')!.type as { scale: number }).scale = 2;
    });
    expect(compareWithPrevious(rescaled, previous, 'git HEAD').map((p) => p.subject)).toEqual(['pos.ventas.raw-value']);
    const removed = previous.filter((s) => s.topic !== 'pos.ventas');
    expect(compareWithPrevious(removed, previous, 'git HEAD')[0]!.reason).toMatch(/schema file removed/);
  });

  it('decides like the Avro spec on a plain pair', () => {
    const v1 = { type: 'record', name: 'R', fields: [{ name: 'a', type: 'int' }] };
    expect(backwardIncompatibility({ ...v1, fields: [{ name: 'a', type: 'long' }] }, v1)).toBeNull(); // int promotes to long
    expect(backwardIncompatibility(v1, { ...v1, fields: [{ name: 'a', type: 'long' }] })).not.toBeNull();
  });
});
