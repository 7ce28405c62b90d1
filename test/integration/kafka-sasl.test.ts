/**
 * Kafka with SASL against the native broker's SASL_PLAINTEXT listener (scripts/services adds
 * it beside the PLAINTEXT one, with a SCRAM user created at format time or through the admin
 * API): SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN work for admin, transactions and consumers,
 * and wrong credentials fail within seconds with one clear error that names the mechanism and
 * the user, never the password (kafkajs would otherwise keep reconnecting).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafkaClient } from '../../core/kafka/client.ts';
import type { KafkaClient, KafkaSasl } from '../../core/kafka/types.ts';
import { KafkaAuthError } from '../../core/kafka/errors.ts';
import { topicSpecs } from '../../core/topics.ts';
import { runCli, serviceEnv, testLogger, uniqueId } from '../../fixtures/services.ts';

function saslListener(): { brokers: string[]; username: string; password: string } {
  const {
    FLUXION_LOCAL_KAFKA_SASL_BROKERS: brokers,
    FLUXION_LOCAL_KAFKA_SASL_USERNAME: username,
    FLUXION_LOCAL_KAFKA_SASL_PASSWORD: password,
  } = process.env;
  if (!brokers || !username || !password) {
    throw new Error(
      "the broker's SASL listener is not known (FLUXION_LOCAL_KAFKA_SASL_BROKERS, _USERNAME, _PASSWORD): " +
        'run `scripts/services up && eval "$(scripts/services env)"` (a broker started before the listener existed needs ' +
        '`scripts/services down kafka && scripts/services up kafka`)',
    );
  }
  return { brokers: brokers.split(','), username, password };
}

const listener = saslListener();
const WRONG = 'wrong-password-never-shown';
function client(sasl: KafkaSasl, brokers = listener.brokers): KafkaClient {
  return createKafkaClient({ brokers, clientId: 'fluxion-sasl-test', logger: testLogger, sasl });
}

async function failureOf(work: () => Promise<unknown>): Promise<{ err: Error; ms: number }> {
  const started = Date.now();
  const err = await work().then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e as Error,
  );
  return { err, ms: Date.now() - started };
}

let topic: string;
const plaintext = () =>
  createKafkaClient({ brokers: serviceEnv().KAFKA_BROKERS.split(','), clientId: 'fluxion-sasl-test-admin', logger: testLogger });

beforeAll(async () => {
  topic = uniqueId('sasl.');
});

afterAll(async () => {
  const admin = await plaintext().admin();
  const leftovers = (await admin.listTopics()).filter((t) => t === topic || t.startsWith('sasl-cli'));
  await admin.deleteTopics(leftovers).catch(() => undefined);
  await admin.disconnect();
});

describe('Kafka over SASL (the native broker)', () => {
  it('SCRAM-SHA-256: creates a topic, commits a transaction and reads it back', async () => {
    const kafka = client({ mechanism: 'scram-sha-256', username: listener.username, password: listener.password });
    const admin = await kafka.admin();
    try {
      expect((await admin.describeCluster()).brokers).toBe(1);
      await admin.createTopics([{ name: topic, partitions: 1, config: {} }]);
      const producer = await kafka.producer({ transactionalId: uniqueId('sasl-tx') });
      try {
        await producer.transaction(async (tx) =>
          tx.send(topic, [{ ubicacionId: 'tienda_01', key: 'k', value: Buffer.from('over scram') }]),
        );
      } finally {
        await producer.disconnect();
      }
      const values: string[] = [];
      await kafka.readToEnd(topic, [0], (r) => void values.push(r.value!.toString()));
      expect(values).toEqual(['over scram']);
    } finally {
      await admin.disconnect();
    }
  });

  it.each(['scram-sha-512', 'plain'] as const)('%s: the same user is accepted', async (mechanism) => {
    const admin = await client({ mechanism, username: listener.username, password: listener.password }).admin();
    try {
      expect(await admin.listTopics()).toContain(topic);
    } finally {
      await admin.disconnect();
    }
  });

  it.each([
    ['scram-sha-256', listener.username],
    ['scram-sha-512', 'nobody-here'],
    ['plain', listener.username],
  ] as const)('%s with wrong credentials (user %s): a clear KafkaAuthError within seconds, no password', async (mechanism, username) => {
    const kafka = client({ mechanism, username, password: WRONG });
    for (const connect of [() => kafka.admin(), () => kafka.producer(), () => kafka.consumer({ groupId: uniqueId('sasl-g') })]) {
      const { err, ms } = await failureOf(connect);
      expect(err).toBeInstanceOf(KafkaAuthError);
      expect(err.message).toContain(
        `refused SASL ${mechanism.toUpperCase()} authentication for user "${username}": check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD`,
      );
      expect(err.message).not.toContain(WRONG);
      expect(ms).toBeLessThan(5_000);
    }
  });

  it('a SASL client pointed at the PLAINTEXT port fails fast too', async () => {
    const kafka = client(
      { mechanism: 'scram-sha-256', username: listener.username, password: listener.password },
      serviceEnv().KAFKA_BROKERS.split(','),
    );
    const { err, ms } = await failureOf(() => kafka.admin());
    expect(err).toBeInstanceOf(KafkaAuthError);
    expect(err.message).toMatch(
      new RegExp(
        /^Kafka at 127\.0\.0\.1:\d+ does not speak SASL on that listener \(is it a PLAINTEXT port\?\): /.source +
          /KAFKA_SASL_MECHANISM=scram-sha-256 needs a SASL listener/.source,
      ),
    );
    expect(ms).toBeLessThan(5_000);
  });

  it('a client without SASL at the SASL port fails fast; the doctor says the listener may need it', async () => {
    const kafka = createKafkaClient({ brokers: listener.brokers, clientId: 'fluxion-sasl-test', logger: testLogger });
    // ApiVersions is answered before authentication, the next request gets the connection closed.
    const { ms } = await failureOf(async () => {
      const admin = await kafka.admin();
      try {
        await admin.listTopics();
      } finally {
        await admin.disconnect();
      }
    });
    expect(ms).toBeLessThan(5_000);
    const doctor = await runCli(['doctor', '--skip-stores'], { KAFKA_BROKERS: listener.brokers.join(',') });
    expect(doctor.code).toBe(1);
    expect(doctor.stdout).toMatch(
      new RegExp(
        /^kafka .* FAIL .*the broker closed the connection: /.source +
          /does this listener need authentication \(KAFKA_SASL_MECHANISM\) or TLS \(KAFKA_SSL=true\)\?$/.source,
        'm',
      ),
    );
  });

  it('the CLI takes KAFKA_SASL_* from the environment; wrong credentials exit 1 with one clear line', async () => {
    const prefix = `${uniqueId('sasl-cli')}.`;
    const env = {
      KAFKA_BROKERS: listener.brokers.join(','),
      KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
      KAFKA_SASL_USERNAME: listener.username,
      KAFKA_SASL_PASSWORD: listener.password,
      FLUXION_TOPIC_PREFIX: prefix,
    };
    const ok = await runCli(['topics', 'ensure'], env);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`topics: ${topicSpecs().length} created, 0 updated, 0 unchanged`);
    expect(ok.stdout + ok.stderr).not.toContain(listener.password);

    const started = Date.now();
    const bad = await runCli(['topics', 'ensure'], { ...env, KAFKA_SASL_PASSWORD: WRONG });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(
      `fluxion: Kafka at ${listener.brokers.join(',')} refused SASL SCRAM-SHA-512 authentication for user "${listener.username}"`,
    );
    expect(bad.stdout + bad.stderr).not.toContain(WRONG);

    const doctor = await runCli(['doctor', '--skip-stores'], { ...env, KAFKA_SASL_PASSWORD: WRONG });
    expect(doctor.code).toBe(1);
    expect(doctor.stdout).toMatch(
      new RegExp(
        `^kafka\\s+${listener.brokers[0]!.replace(/\./g, '\\.')} \\(SASL SCRAM-SHA-512 as ${listener.username}\\)\\s+FAIL .*refused ` +
          `SASL SCRAM-SHA-512 authentication`,
        'm',
      ),
    );
    expect(doctor.stdout + doctor.stderr).not.toContain(WRONG);
  });
});
