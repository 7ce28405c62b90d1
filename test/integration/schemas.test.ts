/**
 * Every record of docs/architecture.md (schemas/*.avsc) through the real schema registry:
 * written by our codec (core/avro/topic-codec.ts), read by an independent client
 * (@kafkajs/confluent-schema-registry), and BACKWARD compatibility enforced by the registry.
 */
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { describe, expect, it } from 'vitest';
import { AVRO_TYPE_OPTIONS, loadSubjectSchemas } from '../../core/avro/schemas.ts';
import { createTopicCodec } from '../../core/avro/topic-codec.ts';
import { SchemaError } from '../../core/errors.ts';
import type { InventoryChange, InventoryRow } from '../../core/records.ts';
import { createRegistry, subjectFor } from '../../core/registry.ts';
import { checkAgainstRegistry, registerSchemas } from '../../ops/schemas.ts';
import { sampleRecords } from '../helpers/samples.ts';
import { runCli, serviceEnv, testLogger, uniqueId } from '../../fixtures/services.ts';

const url = () => serviceEnv().SCHEMA_REGISTRY_URL;

describe('fluxion schemas register', () => {
  it('registers every subject under <topic>-value, and a second run gives the same ids', async () => {
    const prefix = `${uniqueId('reg')}.`;
    const first = await runCli(['schemas', 'register'], { FLUXION_TOPIC_PREFIX: prefix });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const subjects = loadSubjectSchemas();
    expect(first.stdout).toContain(`schemas: ${subjects.length} registered`);
    const ids = (out: string) => Object.fromEntries([...out.matchAll(/^(\S+-value)\tid (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
    expect(Object.keys(ids(first.stdout)).sort()).toEqual(subjects.map((s) => subjectFor(prefix + s.topic)).sort());

    const second = await runCli(['schemas', 'register'], { FLUXION_TOPIC_PREFIX: prefix });
    expect(second.code).toBe(0);
    expect(ids(second.stdout)).toEqual(ids(first.stdout));

    const registry = createRegistry({ url: url() });
    for (const s of subjects) {
      const latest = await registry.latestSchema(subjectFor(prefix + s.topic));
      expect(latest?.version, s.topic).toBe(1);
    }
  });

  it('passes `schemas check` against the registry and git when nothing changed', async () => {
    const prefix = `${uniqueId('chk')}.`;
    expect((await runCli(['schemas', 'register'], { FLUXION_TOPIC_PREFIX: prefix })).code).toBe(0);
    const check = await runCli(['schemas', 'check'], { FLUXION_TOPIC_PREFIX: prefix });
    expect(check.stderr).toBe('');
    expect(check.stdout).toMatch(/schemas: \d+ checked, 0 incompatible/);
    expect(check.code).toBe(0);
  });
});

describe('records through the registry', () => {
  it('round-trips every record, written by the topic codec, read by @kafkajs/confluent-schema-registry, exactly', async () => {
    const prefix = `${uniqueId('rt')}.`;
    const registry = createRegistry({ url: url() });
    const registered = await registerSchemas(registry, loadSubjectSchemas(), prefix, testLogger);
    // A consumer built independently, with the same avsc options, decodes what we encode.
    const consumerSide = new SchemaRegistry({ host: url() }, { [SchemaType.AVRO]: { ...AVRO_TYPE_OPTIONS } } as never);
    const samples = sampleRecords();
    for (const { subject, id } of registered) {
      const topic = subject.slice(prefix.length, -'-value'.length);
      const sample = samples[topic];
      const wire = (await createTopicCodec(registry, topic, prefix + topic)).encode(sample);
      expect(wire[0], `${topic}: magic byte`).toBe(0);
      expect(wire.readInt32BE(1), `${topic}: schema id`).toBe(id);
      const decoded = await consumerSide.decode(wire);
      expect(decoded, topic).toEqual(sample);
    }
  });

  it('keeps decimals exact and refuses a value its schema cannot hold', async () => {
    const prefix = `${uniqueId('dec')}.`;
    const registry = createRegistry({ url: url() });
    const registered = await registerSchemas(registry, loadSubjectSchemas(), prefix, testLogger);
    const changes = registered.find((r) => r.subject.endsWith('pos.inventario.changes-value'))!;
    const sample = sampleRecords()['pos.inventario.changes'] as InventoryChange & { after: InventoryRow };
    const extreme = { ...sample, after: { ...sample.after, cantidad: '-999999999999999.999', costo: '0.0001' } };
    const codec = await createTopicCodec<InventoryChange>(registry, 'pos.inventario.changes', `${prefix}pos.inventario.changes`);
    expect(codec.schemaId).toBe(changes.id);
    const back = await codec.decode(codec.encode(extreme));
    expect(back.after!.cantidad).toBe('-999999999999999.999');
    expect(back.after!.costo).toBe('0.0001');
    expect(() => codec.encode({ ...sample, after: { ...sample.after, cantidad: '1.0005' } })).toThrow();
  });
});

describe('BACKWARD compatibility in the registry', () => {
  it('refuses to register an incompatible change, and `check` reports it', async () => {
    const prefix = `${uniqueId('inc')}.`;
    const registry = createRegistry({ url: url() });
    const schemas = loadSubjectSchemas();
    await registerSchemas(registry, schemas, prefix, testLogger);

    const etl = schemas.find((s) => s.topic === 'ops.etl-runs')!;
    const incompatible = {
      ...etl,
      schema: {
        ...etl.schema,
        fields: [...(etl.schema.fields as object[]), { name: 'host', type: 'string', doc: 'new, without default' }],
      },
    };
    const problems = await checkAgainstRegistry(registry, [incompatible], prefix);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.subject).toBe(subjectFor(`${prefix}ops.etl-runs`));

    const error = await registerSchemas(registry, [incompatible], prefix, testLogger).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SchemaError);
    expect((error as Error).message).toMatch(
      /ops\.etl-runs-value\.avsc is not BACKWARD-compatible with the registered .*ops\.etl-runs-value/,
    );
    // Bypassing our own check, the registry itself refuses (HTTP 409).
    await expect(registry.register(subjectFor(`${prefix}ops.etl-runs`), incompatible.schema)).rejects.toThrow(/refused .* not compatible/);
    expect((await registry.latestSchema(subjectFor(`${prefix}ops.etl-runs`)))?.version).toBe(1);

    const compatible = {
      ...etl,
      schema: {
        ...etl.schema,
        fields: [...(etl.schema.fields as object[]), { name: 'host', type: ['null', 'string'], default: null, doc: 'new, optional' }],
      },
    };
    expect(await checkAgainstRegistry(registry, [compatible], prefix)).toEqual([]);
    await registerSchemas(registry, [compatible], prefix, testLogger);
    expect((await registry.latestSchema(subjectFor(`${prefix}ops.etl-runs`)))?.version).toBe(2);
  });

  it('says where the registry is when it does not answer', async () => {
    const registry = createRegistry({ url: 'http://127.0.0.1:1' });
    await expect(registry.latestSchema('x-value')).rejects.toThrow(
      /schema registry at http:\/\/127\.0\.0\.1:1 did not answer GET \/subjects\/x-value\/versions\/latest/,
    );
  });
});
