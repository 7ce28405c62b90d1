/**
 * Issue 15, item 1, the other half: an error waiting cannot cure still ends a long-running
 * process at once, non-zero, with a message naming the cause (the shared broker; nothing
 * restarted): its input topics do not exist (`topics ensure` never ran or failed), or the
 * brokers refuse its credentials.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { loadSubjectSchemas } from '../../core/avro/schemas.ts';
import { createRegistry } from '../../core/registry.ts';
import { registerSchemas } from '../../ops/schemas.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';
import { runCli, serviceEnv, testLogger, uniqueId } from '../../fixtures/services.ts';

const pipelines: TestPipeline[] = [];
afterAll(async () => {
  for (const p of pipelines) await p.cleanup();
});

describe('a non-retriable Kafka error ends the process', () => {
  it('exits 1 naming the topics when they do not exist at start', { timeout: 90_000 }, async () => {
    // The schemas are registered, the topics never created.
    const prefix = `${uniqueId('nt')}.`;
    await registerSchemas(createRegistry({ url: serviceEnv().SCHEMA_REGISTRY_URL }), loadSubjectSchemas(), prefix, testLogger);
    const env = { FLUXION_TOPIC_PREFIX: prefix, FLUXION_TOPIC_PARTITIONS: '3' };
    const started = Date.now();
    const [differ, dedupe] = await Promise.all([runCli(['process', 'differ'], env), runCli(['process', 'dedupe'], env)]);
    // The differ finds them missing when its consumer starts, the dedupe when it reads their partition counts.
    expect(differ.code, differ.stderr).toBe(1);
    expect(differ.stderr).toContain(
      `fluxion: processor differ: topic ${prefix}pos.inventario.snapshots does not exist: run \`fluxion topics ensure\``,
    );
    expect(dedupe.code, dedupe.stderr).toBe(1);
    expect(dedupe.stderr).toContain(
      `fluxion: missing topics among ${prefix}pos.ventas.raw, ${prefix}pos.ventas.state: run \`fluxion topics ensure\``,
    );
    for (const r of [differ, dedupe]) expect(r.stderr).not.toMatch(/Kafka is failing: retrying|unexpected error/);
    // At once, not after a retry episode.
    expect(Date.now() - started).toBeLessThan(45_000);
  });

  it('exits 1 naming the mechanism and the user when the brokers refuse the credentials', { timeout: 90_000 }, async () => {
    const { FLUXION_LOCAL_KAFKA_SASL_BROKERS: brokers, FLUXION_LOCAL_KAFKA_SASL_USERNAME: username } = process.env;
    if (!brokers || !username)
      throw new Error(
        'the broker\'s SASL listener is not known (FLUXION_LOCAL_KAFKA_SASL_BROKERS, _USERNAME): run `eval "$(scripts/services env)"`',
      );
    const pipeline = await createTestPipeline(3);
    pipelines.push(pipeline);
    const result = await runCli(['notify'], {
      FLUXION_TOPIC_PREFIX: pipeline.prefix,
      KAFKA_BROKERS: brokers,
      KAFKA_SASL_MECHANISM: 'scram-sha-256',
      KAFKA_SASL_USERNAME: username,
      KAFKA_SASL_PASSWORD: 'not-the-password',
      SENDGRID_API_KEY: '',
      FLUXION_NOTIFY_TO: 'ops@lagranja.example',
    });
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toMatch(
      /fluxion: notifier: consumer stopped: Kafka at .* refused SASL SCRAM-SHA-256 authentication for user "fluxion"/,
    );
    expect(result.stderr).not.toContain('not-the-password');
    expect(result.stderr).not.toMatch(/Kafka is failing: retrying/);
  });
});
