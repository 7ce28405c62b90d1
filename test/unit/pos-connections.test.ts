/**
 * How Fluxion connects to the POS systems (docs/pos-connections.md): per-store TLS in the store
 * list, mapped onto the driver's options; CA files read at the edge with errors naming the
 * store and the variable; placeholders declared per entry; the TCP keepalive policy kept on a
 * socket whatever the driver calls afterwards. The dead-peer behaviour itself is proven in
 * test/integration/pos-keepalive.test.ts.
 */
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../core/errors.ts';
import {
  loadUbicacionesFile,
  parseUbicaciones,
  readStellarTls,
  resolveUbicacion,
  STORE_LIST_FIELDS,
  type Ubicacion,
} from '../../core/config/ubicaciones.ts';
import { projectPath } from '../../core/paths.ts';
import { stellarPoolConfig } from '../../extractors/stellar-inventario.ts';
import { deadPeerDetectionMs, pinKeepAlive, POS_KEEPALIVE } from '../../extractors/tcp-keepalive.ts';
import { problemsOf } from '../helpers/config-errors.ts';

const stellarEntry = (stellar: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({
  id: 'cedi_frio',
  nombre: 'CEDI Frio',
  tipo: 'cedi',
  activa: true,
  pos: 'stellar',
  depositos: ['0101'],
  stellar: {
    host: { local: '127.0.0.1', production: 'sql.example' },
    port: { local: 18711, production: 1433 },
    user_env: 'STELLAR_USER_CEDI_FRIO',
    password_env: 'STELLAR_PASSWORD_CEDI_FRIO',
    ...stellar,
  },
  ...extra,
});

const resolved = (stellar: Record<string, unknown> = {}, environment: 'local' | 'production' = 'production') =>
  resolveUbicacion(parseUbicaciones({ ubicaciones: [stellarEntry(stellar)] }, 't.yaml')[0]!, environment) as Ubicacion & {
    pos: 'stellar';
  };

const dir = mkdtempSync(join(tmpdir(), 'fluxion-ca-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const PEM = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';

describe('Stellar TLS per store', () => {
  it('defaults to TLS verified against the public CAs in production, none locally', () => {
    expect(readStellarTls(resolved(), {})).toEqual({ encrypt: true, trustServerCertificate: false });
    expect(readStellarTls(resolved({}, 'local'), {})).toEqual({ encrypt: false, trustServerCertificate: false });
  });

  it("reads the CA file named by the entry's variable", () => {
    const file = join(dir, 'ca.pem');
    writeFileSync(file, PEM);
    expect(readStellarTls(resolved({ ca_file_env: 'STELLAR_CA_FILE_CEDI_FRIO' }), { STELLAR_CA_FILE_CEDI_FRIO: file })).toEqual({
      encrypt: true,
      trustServerCertificate: false,
      ca: PEM,
      caFile: file,
    });
  });

  it('fails with a ConfigError naming the store and the variable when the CA is unset, missing, unreadable or not a certificate', () => {
    const u = resolved({ ca_file_env: 'STELLAR_CA_FILE_CEDI_FRIO' });
    const notPem = join(dir, 'key.txt');
    writeFileSync(notPem, 'not a certificate');
    const cases: Array<[NodeJS.ProcessEnv, RegExp]> = [
      [{}, /STELLAR_CA_FILE_CEDI_FRIO \(path of the CA file of cedi_frio\) is not set/],
      [
        { STELLAR_CA_FILE_CEDI_FRIO: join(dir, 'missing.pem') },
        /ubicacion cedi_frio: STELLAR_CA_FILE_CEDI_FRIO=".*missing\.pem": the CA file cannot be read: ENOENT/,
      ],
      [{ STELLAR_CA_FILE_CEDI_FRIO: dir }, /ubicacion cedi_frio: STELLAR_CA_FILE_CEDI_FRIO=.*: the CA file cannot be read: EISDIR/],
      [{ STELLAR_CA_FILE_CEDI_FRIO: notPem }, /ubicacion cedi_frio: STELLAR_CA_FILE_CEDI_FRIO=.*key\.txt": holds no PEM certificate/],
    ];
    for (const [env, message] of cases) {
      let caught: unknown;
      try {
        readStellarTls(u, env);
      } catch (err) {
        caught = err;
      }
      expect(caught, JSON.stringify(env)).toBeInstanceOf(ConfigError);
      expect((caught as Error).message).toMatch(message);
    }
  });

  it('validates the fields: a variable name, not both a CA and trust, nothing to verify without encrypt', () => {
    expect(problemsOf(() => parseUbicaciones({ ubicaciones: [stellarEntry({ ca_file_env: '/etc/ssl/ca.pem' })] }, 't.yaml'))).toEqual([
      expect.stringMatching(/ubicacion cedi_frio \(entry 1\): field stellar\.ca_file_env: must be the NAME of an environment variable/),
    ]);
    expect(
      problemsOf(() => parseUbicaciones({ ubicaciones: [stellarEntry({ ca_file_env: 'CA', trust_server_certificate: true })] }, 't.yaml')),
    ).toEqual([
      expect.stringMatching(/ubicacion cedi_frio \(entry 1\): field stellar\.trust_server_certificate: true together with ca_file_env/),
    ]);
    const plain = { encrypt: { local: false, production: false } };
    expect(
      problemsOf(() => parseUbicaciones({ ubicaciones: [stellarEntry({ ...plain, trust_server_certificate: true })] }, 't.yaml')),
    ).toEqual([expect.stringMatching(/field stellar\.trust_server_certificate: true but encrypt is false in both environments/)]);
    expect(problemsOf(() => parseUbicaciones({ ubicaciones: [stellarEntry({ ...plain, ca_file_env: 'CA' })] }, 't.yaml'))).toEqual([
      expect.stringMatching(/field stellar\.ca_file_env: given but encrypt is false in both environments/),
    ]);
  });

  it('maps onto the driver: encrypt, trustServerCertificate, the CA, and the keepalive connector', () => {
    const base = {
      host: 'sql.example',
      port: 1433,
      database: 'VAD10',
      user: 'u',
      password: 'p',
      connectTimeoutMs: 15_000,
      requestTimeoutMs: 300_000,
    };
    const verified = stellarPoolConfig({ ...base, tls: { encrypt: true, trustServerCertificate: false, ca: PEM } });
    expect(verified.options).toMatchObject({ encrypt: true, trustServerCertificate: false, cryptoCredentialsDetails: { ca: PEM } });
    expect(typeof verified.options!.connector).toBe('function');
    const legacy = stellarPoolConfig({ ...base, tls: { encrypt: true, trustServerCertificate: true } });
    expect(legacy.options).toMatchObject({ encrypt: true, trustServerCertificate: true });
    expect(legacy.options).not.toHaveProperty('cryptoCredentialsDetails');
    expect(stellarPoolConfig({ ...base, tls: { encrypt: false, trustServerCertificate: false } }).options).toMatchObject({
      encrypt: false,
      trustServerCertificate: false,
    });
  });
});

describe('the store list documents and marks what it holds', () => {
  const yaml = readFileSync(projectPath('config/ubicaciones.yaml'), 'utf8');
  const header = yaml.slice(0, yaml.indexOf('\nubicaciones:'));
  const all = loadUbicacionesFile(projectPath('config/ubicaciones.yaml'));

  it('documents every field an entry may hold in its header', () => {
    for (const [block, fields] of Object.entries(STORE_LIST_FIELDS)) {
      for (const field of fields) expect(header, `${block}.${field}`).toMatch(new RegExp(`\\b${field}\\b`));
    }
  });

  it('says which names, deposito codes and hosts are placeholders', () => {
    for (const u of all) {
      expect(u.placeholder, u.id).toEqual(expect.arrayContaining(['depositos', 'host']));
      // The CEDI names are the chain's own; every other name is a stand-in.
      if (u.tipo === 'tienda') expect(u.placeholder, u.id).toContain('nombre');
    }
  });

  it('accepts only known placeholder fields, each once', () => {
    expect(problemsOf(() => parseUbicaciones({ ubicaciones: [stellarEntry({}, { placeholder: ['nombre', 'port'] })] }, 't.yaml'))).toEqual(
      [expect.stringMatching(/ubicacion cedi_frio \(entry 1\): field placeholder\.1: must list only nombre, depositos, host/)],
    );
    expect(problemsOf(() => parseUbicaciones({ ubicaciones: [stellarEntry({}, { placeholder: ['host', 'host'] })] }, 't.yaml'))).toEqual([
      expect.stringMatching(/field placeholder: lists a field twice/),
    ]);
    expect(resolveUbicacion(parseUbicaciones({ ubicaciones: [stellarEntry()] }, 't.yaml')[0]!, 'production').placeholder).toEqual([]);
  });
});

describe('TCP keepalive of POS sockets', () => {
  it("is the replaced system's: 30 s idle, then every 10 s, 5 probes (80 s to detect a dead peer)", () => {
    expect(POS_KEEPALIVE).toEqual({ initialDelayMs: 30_000, intervalMs: 10_000, count: 5 });
    expect(deadPeerDetectionMs()).toBe(80_000);
  });

  it('stays on the socket when the driver sets its own keepalive afterwards', async () => {
    const server = createServer(() => undefined).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const socket = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1' });
    const calls: unknown[][] = [];
    const original = socket.setKeepAlive;
    socket.setKeepAlive = function (this: Socket, ...args: unknown[]) {
      calls.push(args);
      return (original as (...a: unknown[]) => Socket).apply(this, args);
    } as Socket['setKeepAlive'];
    pinKeepAlive(socket);
    await once(socket, 'connect');
    socket.setKeepAlive(true, 1_000); // what tedious and Node's http agent do
    socket.setKeepAlive(false);
    const policy = { enable: true, initialDelay: 30_000, interval: 10_000, count: 5 };
    expect(calls).toEqual([[policy], [policy], [policy]]);
    socket.destroy();
    server.close();
  });
});
