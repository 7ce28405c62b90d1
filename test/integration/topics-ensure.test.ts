import { afterAll, describe, expect, it } from 'vitest';
import { createKafkaClient } from '../../core/kafka/client.ts';
import { topicSpecs } from '../../core/topics.ts';
import { runCli, serviceEnv, testLogger, uniqueId } from '../../fixtures/services.ts';

const prefix = `${uniqueId('ensure')}.`;
const kafka = createKafkaClient({ brokers: serviceEnv().KAFKA_BROKERS.split(','), clientId: 'fluxion-test', logger: testLogger });

afterAll(async () => {
  const admin = await kafka.admin();
  await admin.deleteTopics(topicSpecs(prefix).map((t) => t.name)).catch(() => undefined);
  await admin.disconnect();
});

describe('fluxion topics ensure', () => {
  const env = { FLUXION_TOPIC_PREFIX: prefix, FLUXION_TOPIC_PARTITIONS: '3' };

  it('creates every topic with its partitions, retention and compaction, then changes nothing', async () => {
    const first = await runCli(['topics', 'ensure'], env);
    expect(first.stderr).not.toMatch(/"level":"(error|fatal)"/);
    expect(first.code).toBe(0);
    const specs = topicSpecs(prefix);
    expect(first.stdout).toContain(`topics: ${specs.length} created, 0 updated, 0 unchanged`);

    const admin = await kafka.admin();
    try {
      const described = await admin.describeTopics(specs.map((s) => s.name));
      for (const spec of specs) {
        const d = described.find((t) => t.name === spec.name)!;
        expect(d.partitions, spec.name).toBe(3);
        for (const [k, v] of Object.entries(spec.config)) expect(d.config[k], `${spec.name} ${k}`).toBe(v);
      }
      const byName = (n: string) => described.find((t) => t.name === prefix + n)!.config;
      expect(byName('pos.inventario.state')['cleanup.policy']).toBe('compact');
      expect(byName('pos.inventario.changes')['retention.ms']).toBe('-1');
      expect(byName('pos.inventario.snapshots')['retention.ms']).toBe(String(7 * 86_400_000));
    } finally {
      await admin.disconnect();
    }

    const second = await runCli(['topics', 'ensure'], env);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain(`topics: 0 created, 0 updated, ${specs.length} unchanged`);
  });

  it("puts a drifted config back and keeps the topic's other settings", async () => {
    const name = `${prefix}pos.ventas.raw`;
    const admin = await kafka.admin();
    try {
      await admin.alterTopicConfig(name, { 'retention.ms': '1000', 'max.message.bytes': '2000000' });
      const result = await runCli(['topics', 'ensure'], env);
      expect(result.code).toBe(0);
      expect(result.stdout).toContain(`updated   ${name} retention.ms`);
      const [d] = await admin.describeTopics([name]);
      expect(d!.config['retention.ms']).toBe(String(7 * 86_400_000));
      expect(d!.config['max.message.bytes']).toBe('2000000');
    } finally {
      await admin.disconnect();
    }
  });

  it('refuses to change a partition count, saying why, with exit code 1', async () => {
    const result = await runCli(['topics', 'ensure'], { ...env, FLUXION_TOPIC_PARTITIONS: '6' });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /refusing to change partition counts.*pos\.inventario\.snapshots has 3 partitions, the configuration says 6/,
    );
  });

  it('fails with exit code 2 and a hint when KAFKA_BROKERS is missing', async () => {
    const result = await runCli(['topics', 'ensure'], { KAFKA_BROKERS: '' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('KAFKA_BROKERS is not set: start the local services with `scripts/services up`');
  });
});
