/**
 * Secure connections without services: TLS, SASL and registry basic-auth settings validated at
 * the edge (each problem names its variable, secrets never shown or enumerable), their mapping
 * onto kafkajs, SASL failures turned into one clear error, the loud warning for unverified
 * TLS, and registry basic auth against an in-process server.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { kafkaClientOptions, registryOptions } from '../../cli/context.ts';
import { loadConfig } from '../../cli/config.ts';
import {
  createKafkaClient,
  kafkaAuthError,
  KafkaAuthError,
  kafkajsSecurity,
  saslFailureOf,
  tlsCertificateFailureOf,
} from '../../core/kafka/client.ts';
import { createRegistry, RegistryAuthError } from '../../core/registry.ts';
import { problemsOf } from '../helpers/config-errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'fluxion-kafka-security-'));
const PEM = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ==\n-----END CERTIFICATE-----\n';
const caFile = join(dir, 'ca.pem');
writeFileSync(caFile, PEM);
const notPem = join(dir, 'not.pem');
writeFileSync(notPem, 'hello');

describe('Kafka TLS settings', () => {
  it('are off by default', () => {
    const c = loadConfig({});
    expect(c.kafka.ssl).toBeUndefined();
    expect(c.kafka.sasl).toBeUndefined();
    expect(c.schemaRegistryAuth).toBeUndefined();
  });

  it('KAFKA_SSL=true verifies against the system CAs; a CA file is read at load', () => {
    expect(loadConfig({ KAFKA_SSL: 'true' }).kafka.ssl).toEqual({ rejectUnauthorized: true });
    expect(loadConfig({ KAFKA_SSL: 'TRUE', KAFKA_SSL_CA_FILE: caFile }).kafka.ssl).toEqual({ rejectUnauthorized: true, ca: PEM, caFile });
    expect(loadConfig({ KAFKA_SSL: 'false' }).kafka.ssl).toBeUndefined();
    expect(loadConfig({ KAFKA_SSL: 'true', KAFKA_SSL_REJECT_UNAUTHORIZED: 'false' }).kafka.ssl).toEqual({ rejectUnauthorized: false });
  });

  it('names the variable of every bad TLS setting', () => {
    expect(problemsOf(() => loadConfig({ KAFKA_SSL: 'yes' }))).toEqual(['KAFKA_SSL="yes": must be true or false']);
    expect(problemsOf(() => loadConfig({ KAFKA_SSL: 'true', KAFKA_SSL_REJECT_UNAUTHORIZED: 'no' }))).toEqual([
      'KAFKA_SSL_REJECT_UNAUTHORIZED="no": must be true or false',
    ]);
    expect(problemsOf(() => loadConfig({ KAFKA_SSL: 'true', KAFKA_SSL_CA_FILE: join(dir, 'missing.pem') }))[0]).toMatch(
      /^KAFKA_SSL_CA_FILE=".*missing\.pem": cannot be read: ENOENT/,
    );
    expect(problemsOf(() => loadConfig({ KAFKA_SSL: 'true', KAFKA_SSL_CA_FILE: notPem }))).toEqual([
      `KAFKA_SSL_CA_FILE=${JSON.stringify(notPem)}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    ]);
    expect(problemsOf(() => loadConfig({ KAFKA_SSL_CA_FILE: caFile, KAFKA_SSL_REJECT_UNAUTHORIZED: 'false' }))).toEqual([
      'KAFKA_SSL_CA_FILE is set but KAFKA_SSL is not true: set KAFKA_SSL=true to connect over TLS, or unset KAFKA_SSL_CA_FILE',
      'KAFKA_SSL_REJECT_UNAUTHORIZED=false is set but KAFKA_SSL is not true: it only applies to TLS connections',
    ]);
  });
});

describe('Kafka SASL settings', () => {
  const sasl = { KAFKA_SASL_MECHANISM: 'SCRAM-SHA-256', KAFKA_SASL_USERNAME: 'fluxion', KAFKA_SASL_PASSWORD: 'pw-not-for-logs' };

  it('takes the mechanism in any case and hides the password from dumps', () => {
    const c = loadConfig(sasl);
    expect(c.kafka.sasl).toMatchObject({ mechanism: 'scram-sha-256', username: 'fluxion' });
    expect(c.kafka.sasl!.password).toBe('pw-not-for-logs');
    expect(JSON.stringify(c)).not.toContain('pw-not-for-logs');
    expect(Object.keys(c.kafka.sasl!)).toEqual(['mechanism', 'username']);
    for (const m of ['plain', 'scram-sha-512']) expect(loadConfig({ ...sasl, KAFKA_SASL_MECHANISM: m }).kafka.sasl!.mechanism).toBe(m);
  });

  it('names the variable of every bad SASL setting, never showing the password', () => {
    expect(problemsOf(() => loadConfig({ ...sasl, KAFKA_SASL_MECHANISM: 'gssapi' }))).toEqual([
      'KAFKA_SASL_MECHANISM="gssapi": must be plain, scram-sha-256 or scram-sha-512',
    ]);
    expect(problemsOf(() => loadConfig({ KAFKA_SASL_MECHANISM: 'plain' }))).toEqual([
      'KAFKA_SASL_USERNAME is not set: KAFKA_SASL_MECHANISM=plain needs a user and KAFKA_SASL_PASSWORD',
      "KAFKA_SASL_PASSWORD is not set: KAFKA_SASL_MECHANISM=plain needs the user's password",
    ]);
    const noMechanism = problemsOf(() => loadConfig({ KAFKA_SASL_USERNAME: 'fluxion', KAFKA_SASL_PASSWORD: 'pw-not-for-logs' }));
    expect(noMechanism).toEqual([
      'KAFKA_SASL_MECHANISM is not set but KAFKA_SASL_USERNAME is: set it to plain, scram-sha-256 or scram-sha-512',
    ]);
    expect(noMechanism.join()).not.toContain('pw-not-for-logs');
  });
});

describe('schema registry basic auth settings', () => {
  it('needs both the user and the password', () => {
    const c = loadConfig({
      SCHEMA_REGISTRY_URL: 'https://sr.example',
      SCHEMA_REGISTRY_USERNAME: 'svc',
      SCHEMA_REGISTRY_PASSWORD: 'sr-pw',
    });
    expect(c.schemaRegistryAuth).toMatchObject({ username: 'svc' });
    expect(JSON.stringify(c)).not.toContain('sr-pw');
    expect(registryOptions(c)).toEqual({ url: 'https://sr.example', username: 'svc', password: 'sr-pw' });
    expect(problemsOf(() => loadConfig({ SCHEMA_REGISTRY_USERNAME: 'svc' }))).toEqual([
      'SCHEMA_REGISTRY_PASSWORD is not set: SCHEMA_REGISTRY_USERNAME is, and basic auth needs both',
    ]);
    expect(problemsOf(() => loadConfig({ SCHEMA_REGISTRY_PASSWORD: 'sr-pw' }))).toEqual([
      'SCHEMA_REGISTRY_USERNAME is not set: SCHEMA_REGISTRY_PASSWORD is, and basic auth needs both',
    ]);
  });

  it('refuses credentials inside the URL without echoing the password', () => {
    const problems = problemsOf(() => loadConfig({ SCHEMA_REGISTRY_URL: 'https://svc:sr-pw@sr.example/' }));
    expect(problems).toEqual([
      'SCHEMA_REGISTRY_URL="https://svc:***@sr.example/": must not hold credentials: put them in SCHEMA_REGISTRY_USERNAME and ' +
        'SCHEMA_REGISTRY_PASSWORD',
    ]);
  });
});

describe('the Kafka client options', () => {
  it('pass TLS and SASL from the configuration to kafkajs', () => {
    const c = loadConfig({
      KAFKA_BROKERS: 'b1:9093',
      KAFKA_SSL: 'true',
      KAFKA_SSL_CA_FILE: caFile,
      KAFKA_SASL_MECHANISM: 'scram-sha-512',
      KAFKA_SASL_USERNAME: 'u',
      KAFKA_SASL_PASSWORD: 'p',
    });
    const options = kafkaClientOptions(c, pino({ enabled: false }));
    expect(options).toMatchObject({
      brokers: ['b1:9093'],
      ssl: { ca: PEM, rejectUnauthorized: true },
      sasl: { mechanism: 'scram-sha-512', username: 'u' },
    });
    expect(kafkajsSecurity(options)).toEqual({
      ssl: { ca: [PEM], rejectUnauthorized: true },
      sasl: { mechanism: 'scram-sha-512', username: 'u', password: 'p' },
    });
    expect(kafkajsSecurity({ ssl: { rejectUnauthorized: false } })).toEqual({ ssl: { rejectUnauthorized: false } });
    expect(kafkajsSecurity({})).toEqual({});
  });

  it("warns loudly when the brokers' certificates are not verified, and about PLAIN without TLS", () => {
    const lines: string[] = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write: (chunk, _enc, cb) => {
          lines.push(String(chunk));
          cb();
        },
      }),
    );
    createKafkaClient({ brokers: ['b1:9093'], clientId: 't', logger, ssl: { rejectUnauthorized: false } });
    createKafkaClient({ brokers: ['b1:9093'], clientId: 't', logger, sasl: { mechanism: 'plain', username: 'u', password: 'p' } });
    const logged = lines.map((l) => JSON.parse(l) as { level: number; msg: string });
    expect(logged).toHaveLength(2);
    expect(logged[0]).toMatchObject({
      level: 40,
      msg: expect.stringContaining("KAFKA_SSL_REJECT_UNAUTHORIZED=false: the Kafka brokers' TLS certificates are NOT verified"),
    });
    expect(logged[1]).toMatchObject({ level: 40, msg: expect.stringContaining('SASL PLAIN without TLS') });
  });
});

describe('SASL failures', () => {
  const sasl = { mechanism: 'scram-sha-256' as const, username: 'fluxion', password: 'hunter2-secret' };
  // What kafkajs 2.2.4 throws from connect(): its retrier wraps the authenticator's error.
  const kafkajsError = (inner: Record<string, unknown>) =>
    Object.assign(new Error(String(inner.message)), {
      name: 'KafkaJSNonRetriableError',
      retriable: false,
      cause: Object.assign(new Error(String(inner.message)), inner),
    });

  it('become one KafkaAuthError naming the mechanism and the user, never the password', () => {
    const err = kafkaAuthError(
      kafkajsError({
        name: 'KafkaJSSASLAuthenticationError',
        message:
          'SASL SCRAM SHA256 authentication failed: Authentication failed during authentication due to invalid credentials with SASL ' +
          'mechanism SCRAM-SHA-256 hunter2-secret',
      }),
      ['127.0.0.1:19094'],
      sasl,
    );
    expect(err).toBeInstanceOf(KafkaAuthError);
    expect(err!.code).toBe('KAFKA_AUTH');
    expect(err!.retriable).toBe(false);
    expect(err!.message).toMatch(
      new RegExp(
        /^Kafka at 127\.0\.0\.1:19094 refused SASL SCRAM-SHA-256 authentication for user "fluxion": /.source +
          /check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD/.source,
      ),
    );
    expect(err!.message).not.toContain('hunter2-secret');
    expect(JSON.stringify(err!.context)).not.toContain('hunter2-secret');
  });

  it('tell a listener without SASL and an unsupported mechanism apart', () => {
    expect(
      kafkaAuthError(
        kafkajsError({
          name: 'KafkaJSProtocolError',
          type: 'ILLEGAL_SASL_STATE',
          message: 'Request is not valid given the current SASL state',
        }),
        ['h:1'],
        sasl,
      )!.message,
    ).toContain('does not speak SASL on that listener');
    expect(
      kafkaAuthError(
        kafkajsError({ name: 'KafkaJSSASLAuthenticationError', message: 'SASL SCRAM-SHA-256 mechanism is not supported by the server' }),
        ['h:1'],
        sasl,
      )!.message,
    ).toContain('does not accept SASL SCRAM-SHA-256: check KAFKA_SASL_MECHANISM');
  });

  it('a broker certificate that does not verify is named (it is not a SASL failure)', () => {
    const wrapped = Object.assign(new Error('Connection error: self-signed certificate in certificate chain'), {
      name: 'KafkaJSNumberOfRetriesExceeded',
      cause: Object.assign(new Error('Connection error'), { name: 'KafkaJSConnectionError', code: 'SELF_SIGNED_CERT_IN_CHAIN' }),
    });
    expect(tlsCertificateFailureOf(wrapped)).toBe('SELF_SIGNED_CERT_IN_CHAIN');
    expect(kafkaAuthError(wrapped, ['h:1'], sasl)).toBeUndefined();
    expect(tlsCertificateFailureOf(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBeUndefined();
  });

  it('leave other errors alone', () => {
    expect(saslFailureOf(Object.assign(new Error('Connection error'), { name: 'KafkaJSConnectionError' }))).toBeUndefined();
    expect(kafkaAuthError(new Error('x'), ['h:1'], sasl)).toBeUndefined();
  });
});

describe('schema registry basic auth (in-process registry)', () => {
  it('sends the credentials and turns a refusal into a clear error naming the variables', async () => {
    const seen: Array<string | undefined> = [];
    const server = createServer((req, res) => {
      seen.push(req.headers.authorization);
      if (req.headers.authorization !== `Basic ${Buffer.from('svc:right').toString('base64')}`) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"error_code":401,"message":"Unauthorized"}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('["a-value","b-value"]');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      expect(await createRegistry({ url, username: 'svc', password: 'right' }).listSubjects()).toEqual(['a-value', 'b-value']);
      const wrong = await createRegistry({ url, username: 'svc', password: 'wrong-pw' })
        .listSubjects()
        .catch((e: unknown) => e);
      expect(wrong).toBeInstanceOf(RegistryAuthError);
      expect((wrong as Error).message).toBe(
        `schema registry at ${url} refused user "svc" (HTTP 401): check SCHEMA_REGISTRY_USERNAME and SCHEMA_REGISTRY_PASSWORD`,
      );
      const anonymous = await createRegistry({ url })
        .listSubjects()
        .catch((e: unknown) => e);
      expect((anonymous as Error).message).toBe(
        `schema registry at ${url} requires authentication (HTTP 401): set SCHEMA_REGISTRY_USERNAME and SCHEMA_REGISTRY_PASSWORD`,
      );
      expect(seen).toEqual([
        `Basic ${Buffer.from('svc:right').toString('base64')}`,
        `Basic ${Buffer.from('svc:wrong-pw').toString('base64')}`,
        undefined,
      ]);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
