/**
 * Stellar TLS per store, end to end through the unmodified mssql/tedious driver: the store
 * list's fields (ca_file_env, trust_server_certificate) are read by readStellarTls and mapped
 * by the extractor, and a TLS-speaking SQL Server stand-in with a self-signed certificate tells
 * whether the handshake passed (it then sees the LOGIN7 packet inside TLS).
 *
 * The stand-in is local to this test and speaks only what TDS 7.x TLS needs: a PRELOGIN answer
 * with ENCRYPTION=ON, the TLS handshake wrapped in PRELOGIN packets (one answer per message),
 * then raw TLS records. It closes the connection once the login arrives.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { duplexPair } from 'node:stream';
import { createSecureContext, TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStellarTls, type Ubicacion } from '../../core/config/ubicaciones.ts';
import { PosUnavailableError } from '../../core/errors.ts';
import { stellarInventario } from '../../extractors/stellar-inventario.ts';
import { testLogger } from '../../fixtures/services.ts';

const PRELOGIN = 0x12;
const LOGIN7 = 0x10;

function packet(type: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt8(type, 0);
  header.writeUInt8(0x01, 1); // end of message
  header.writeUInt16BE(payload.length + 8, 2);
  header.writeUInt8(1, 6);
  return Buffer.concat([header, payload]);
}

/** PRELOGIN answer: version, ENCRYPTION=ON (the server wants TLS), instance, thread id, no MARS. */
function preloginAnswer(): Buffer {
  const options: Array<[number, Buffer]> = [
    [0x00, Buffer.from([0x0f, 0x00, 0x07, 0xd0, 0x00, 0x00])],
    [0x01, Buffer.from([0x01])],
    [0x02, Buffer.from([0x00])],
    [0x03, Buffer.alloc(4)],
    [0x04, Buffer.from([0x00])],
  ];
  let offset = options.length * 5 + 1;
  const head: Buffer[] = [];
  for (const [token, data] of options) {
    const h = Buffer.alloc(5);
    h.writeUInt8(token, 0);
    h.writeUInt16BE(offset, 1);
    h.writeUInt16BE(data.length, 3);
    head.push(h);
    offset += data.length;
  }
  return Buffer.concat([...head, Buffer.from([0xff]), ...options.map(([, d]) => d)]);
}

/** Splits a byte stream into TDS messages (packets up to the end-of-message bit). */
function messages(onMessage: (type: number, payload: Buffer) => void): (chunk: Buffer) => void {
  let buffer = Buffer.alloc(0);
  let parts: Buffer[] = [];
  return (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    while (buffer.length >= 8 && buffer.length >= buffer.readUInt16BE(2)) {
      const length = buffer.readUInt16BE(2);
      parts.push(buffer.subarray(8, length));
      const type = buffer.readUInt8(0);
      const last = (buffer.readUInt8(1) & 0x01) === 1;
      buffer = buffer.subarray(length);
      if (last) {
        onMessage(type, Buffer.concat(parts));
        parts = [];
      }
    }
  };
}

interface TlsSqlServer {
  port: number;
  /** Connections whose LOGIN7 arrived inside TLS. */
  logins: number;
  close(): Promise<void>;
}

async function startTlsSqlServer(key: string, cert: string): Promise<TlsSqlServer> {
  const secureContext = createSecureContext({ key, cert });
  const sockets = new Set<Socket>();
  const state = { logins: 0 };
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const [inner, outer] = duplexPair();
    const tls = new TLSSocket(inner, { isServer: true, secureContext });
    tls.on('error', () => socket.destroy());
    let handshaking = true;
    let pending: Buffer[] = [];
    let flush: NodeJS.Immediate | undefined;
    // Handshake output goes back as one PRELOGIN message per client message; afterwards, raw.
    outer.on('data', (chunk: Buffer) => {
      if (!handshaking) return void socket.write(chunk);
      pending.push(chunk);
      clearImmediate(flush);
      flush = setImmediate(() => {
        socket.write(packet(PRELOGIN, Buffer.concat(pending)));
        pending = [];
      });
    });
    tls.on('secure', () => {
      // The server's last flight (Finished) is still to be wrapped; then the stream is raw TLS.
      setImmediate(() => setImmediate(() => (handshaking = false)));
    });
    tls.on(
      'data',
      messages((type) => {
        if (type === LOGIN7) {
          state.logins++;
          socket.destroy();
        }
      }),
    );
    let started = false;
    const handshake = messages((type, payload) => {
      if (!started) {
        started = true;
        socket.write(packet(0x04, preloginAnswer()));
        return;
      }
      if (type === PRELOGIN) outer.write(payload);
    });
    socket.on('data', (chunk: Buffer) => (handshaking ? handshake(chunk) : outer.write(chunk)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get logins() {
      return state.logins;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const dir = mkdtempSync(join(tmpdir(), 'fluxion-tls-'));
let server: TlsSqlServer;
let certFile: string;
let otherCaFile: string;

function selfSigned(name: string): { key: string; cert: string } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'pipe' },
  );
  return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
}

beforeAll(async () => {
  const own = selfSigned('stellar-legacy');
  selfSigned('another-ca');
  certFile = join(dir, 'stellar-legacy.pem');
  otherCaFile = join(dir, 'another-ca.pem');
  server = await startTlsSqlServer(own.key, own.cert);
});

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const store = (stellar: { caFileEnv?: string; trustServerCertificate?: boolean }): Ubicacion & { pos: 'stellar' } => ({
  id: 'cedi_frio',
  nombre: 'CEDI Frio',
  tipo: 'cedi',
  activa: true,
  pos: 'stellar',
  depositos: ['0101'],
  stellar: {
    host: '127.0.0.1',
    port: server.port,
    database: 'VAD10',
    userEnv: 'U',
    passwordEnv: 'P',
    encrypt: true,
    connectTimeoutMs: 10_000,
    requestTimeoutMs: 10_000,
    ...stellar,
  },
});

/** Reads the store as the extractor does; resolves to the error it ends with. */
async function attempt(u: Ubicacion & { pos: 'stellar' }, env: NodeJS.ProcessEnv): Promise<Error> {
  try {
    for await (const _ of stellarInventario(
      {
        ubicacionId: u.id,
        host: u.stellar.host,
        port: u.stellar.port,
        database: 'VAD10',
        user: 'fluxion',
        password: 'pw',
        passwordEnv: 'P',
        tls: readStellarTls(u, env),
        connectTimeoutMs: 10_000,
        requestTimeoutMs: 10_000,
        signal: new AbortController().signal,
        logger: testLogger,
      },
      '0101',
    ));
  } catch (err) {
    return err as Error;
  }
  throw new Error('the stand-in never answers a query: reading cannot succeed');
}

describe('Stellar TLS per store (a TLS SQL Server with a self-signed certificate)', () => {
  it('verifies the server against the CA file the entry names, and logs in inside TLS', async () => {
    const before = server.logins;
    const err = await attempt(store({ caFileEnv: 'STELLAR_CA_FILE_CEDI_FRIO' }), { STELLAR_CA_FILE_CEDI_FRIO: certFile });
    expect(err).toBeInstanceOf(PosUnavailableError);
    expect(err.message).not.toMatch(/certificate/i);
    expect(server.logins).toBe(before + 1);
  });

  it('refuses the server when its certificate is not signed by the given CA, or without a CA', async () => {
    const before = server.logins;
    const wrongCa = await attempt(store({ caFileEnv: 'STELLAR_CA_FILE_CEDI_FRIO' }), { STELLAR_CA_FILE_CEDI_FRIO: otherCaFile });
    expect(wrongCa).toBeInstanceOf(PosUnavailableError);
    expect(wrongCa.message).toMatch(
      /cedi_frio: Stellar 127\.0\.0\.1:\d+\/VAD10 failed while connecting: .*(self-signed certificate|unable to verify)/i,
    );
    const publicCas = await attempt(store({}), {});
    expect(publicCas.message).toMatch(/self-signed certificate/i);
    expect(server.logins).toBe(before);
  });

  it('trusts a legacy self-signed server only when the entry says trust_server_certificate', async () => {
    const before = server.logins;
    const err = await attempt(store({ trustServerCertificate: true }), {});
    expect(err.message).not.toMatch(/certificate/i);
    expect(server.logins).toBe(before + 1);
  });
});
