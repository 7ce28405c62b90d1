/**
 * The Stellar POS stand-in: a TDS 7.4 server (plain TCP, no TLS) that the unmodified
 * `mssql`/tedious driver talks to as if it were the store's SQL Server with database VAD10.
 * One store per server. It answers the login and the session `set` batch, and runs every
 * SELECT it receives (a SQL batch, or an sp_executesql RPC with its bound parameters such as
 * the inventory query's @codigo_deposito) on the store's VAD10 tables: translated by
 * tsql-translate.ts, executed by SQLite in vad10-database.ts. What the translation does not
 * know, and any other request, gets a SQL Server-style error.
 *
 * Results are streamed row by row with real backpressure: SQLite steps only as rows are
 * encoded, packets are written as they fill, and the server awaits 'drain' whenever the
 * socket asks it to, so a client that pauses stops the server. Faults (simulators/faults.ts)
 * are read at every request: latencyMs, dropConnectionAfterRows, stallAfterRows, and the data
 * faults of servedInventario applied to an inventory-shaped answer (statements.ts).
 *
 * A stalled answer models a VPN that stopped passing traffic: nothing more is sent on that
 * connection, not even the acknowledgement of a cancel (attention); the client must give up
 * on its own deadline and close the connection.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { pino } from 'pino';
import type { Logger } from '../../core/logger.ts';
import type { StoreSimulation } from '../data/store-simulation.ts';
import type { FaultControl, StoreFaults } from '../faults.ts';
import { DEPOSITO_PARAM, hasDataFaults, inventarioFaultRewrite, inventarioShape } from './statements.ts';
import {
  isSessionSettings,
  parseParamDeclarations,
  translateTsql,
  TsqlError,
  UNSUPPORTED,
  type ParamDeclaration,
  type Translation,
} from './tsql-translate.ts';
import { Vad10Database } from './vad10-database.ts';
import {
  buildPreloginResponse,
  colMetadataToken,
  CUR_CMD,
  DEFAULT_PACKET_SIZE,
  DONE_STATUS,
  doneInProcToken,
  doneProcToken,
  doneToken,
  ENCRYPT,
  envChangeCollation,
  envChangeDatabase,
  envChangePacketSize,
  errorToken,
  loginAckToken,
  MessageAssembler,
  PACKET_STATUS,
  PACKET_TYPE,
  PacketBuilder,
  parseLogin7,
  parsePrelogin,
  parseRpc,
  parseSqlBatch,
  returnStatusToken,
  rowToken,
  TdsProtocolError,
  type CellValue,
  type RpcParam,
  type ServerMessage,
  type TdsMessage,
} from './tds-protocol.ts';

export interface StellarSimulatorOptions {
  /** One store per server. */
  simulation: StoreSimulation;
  /** Looked up by simulation.ubicacionId at each request. */
  faults: FaultControl;
  /** LOGIN7 credentials to accept; others get error 18456 "Login failed for user '...'". */
  user: string;
  password: string;
  /** Default 'VAD10'. */
  database?: string;
  logger?: Logger;
}

export interface StellarSimulator {
  port: number;
  host: string;
  close(): Promise<void>;
  /** Number of open client connections. */
  connections(): number;
  /**
   * Inventory rows (results with codigo_producto and cantidad) handed to client sockets since
   * the server started (tests check backpressure).
   */
  rowsWritten(): number;
}

const SERVER_NAME = 'STELLAR-SIM';

interface Shared {
  options: Required<Pick<StellarSimulatorOptions, 'database'>> & StellarSimulatorOptions;
  database: Vad10Database;
  log: Logger;
  stats: { rows: number };
}

function serverError(m: Omit<ServerMessage, 'serverName'>): ServerMessage {
  return { serverName: SERVER_NAME, lineNumber: 1, ...m };
}

/** Resolves when the socket can take more ('drain') or is gone ('close'). */
function drained(socket: Socket): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/** One reply message, written packet by packet as its tokens are produced. */
class ReplyWriter {
  private readonly socket: Socket;
  private readonly builder: PacketBuilder;
  private mustWait = false;

  constructor(socket: Socket, spid: number) {
    this.socket = socket;
    this.builder = new PacketBuilder(PACKET_TYPE.TABULAR_RESULT, { packetSize: DEFAULT_PACKET_SIZE, spid });
  }

  /** Adds tokens; true when the socket's buffer is full and the caller should `drain()`. */
  push(bytes: Buffer): boolean {
    for (const packet of this.builder.push(bytes)) this.send(packet);
    return this.mustWait;
  }

  async drain(): Promise<void> {
    if (!this.mustWait) return;
    await drained(this.socket);
    this.mustWait = false;
  }

  /** The last packet (EOM). */
  async end(bytes?: Buffer): Promise<void> {
    if (bytes) this.push(bytes);
    this.send(this.builder.end());
    await this.drain();
  }

  /** Sends what is pending without EOM and waits until the kernel has it: before a cut. */
  async flushPartial(): Promise<void> {
    const packet = this.builder.flushPartial();
    if (packet === null || this.socket.destroyed) return;
    await new Promise<void>((resolve) => this.socket.write(packet, () => resolve()));
  }

  private send(packet: Buffer): void {
    if (this.socket.destroyed) return;
    if (!this.socket.write(packet)) this.mustWait = true;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function findParam(params: RpcParam[], name: string): RpcParam | undefined {
  const wanted = name.toLowerCase();
  return params.find((p) => p.name.toLowerCase() === wanted);
}

/** One client connection: PRELOGIN, LOGIN7, then requests answered one at a time. */
class TdsSession {
  private readonly socket: Socket;
  private readonly shared: Shared;
  private readonly spid: number;
  private readonly log: Logger;
  private readonly assembler = new MessageAssembler();
  private readonly queue: TdsMessage[] = [];
  private readonly closed: Promise<void>;
  private state: 'prelogin' | 'login' | 'ready' | 'rejected' = 'prelogin';
  private user = '';
  private pumping = false;
  private attentionPending = false;
  /** The request being answered; `cancelled` is set by an attention from the client. */
  private current: { cancelled: boolean } | undefined;

  constructor(socket: Socket, shared: Shared, spid: number) {
    this.socket = socket;
    this.shared = shared;
    this.spid = spid;
    this.log = shared.log.child({ spid, remote: `${socket.remoteAddress}:${socket.remotePort}` });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.log.debug({ err }, 'client socket error'));
    socket.once('close', () => this.log.debug('client disconnected'));
    this.log.debug('client connected');
  }

  private get gone(): boolean {
    return this.socket.destroyed;
  }

  private onData(chunk: Buffer): void {
    let messages: TdsMessage[];
    try {
      messages = this.assembler.push(chunk);
    } catch (err) {
      this.log.warn({ err }, 'malformed TDS from client: closing the connection');
      this.socket.destroy();
      return;
    }
    for (const message of messages) {
      if (message.type === PACKET_TYPE.ATTENTION) {
        this.attentionPending = true;
        if (this.current) this.current.cancelled = true;
        this.log.debug('attention (cancel) received');
      } else {
        this.queue.push(message);
      }
    }
    void this.pump();
  }

  /** Answers queued messages in order; an attention is acknowledged once its request ended. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.gone) {
        const message = this.queue.shift();
        if (message) {
          this.current = { cancelled: this.attentionPending };
          await this.handle(message);
          this.current = undefined;
        } else if (this.attentionPending) {
          this.attentionPending = false;
          // A message of its own, after the cancelled request's reply ended.
          await this.reply([doneToken(DONE_STATUS.ATTN)]);
        } else {
          break;
        }
      }
    } catch (err) {
      this.log.warn({ err }, 'failed answering a client: closing the connection');
      this.socket.destroy();
    } finally {
      this.pumping = false;
    }
  }

  private async reply(tokens: Buffer[]): Promise<void> {
    const writer = new ReplyWriter(this.socket, this.spid);
    await writer.end(Buffer.concat(tokens));
  }

  private unexpected(message: TdsMessage): void {
    this.log.warn({ type: message.type, state: this.state }, 'unexpected TDS message: closing the connection');
    this.socket.destroy();
  }

  private async handle(message: TdsMessage): Promise<void> {
    switch (this.state) {
      case 'prelogin':
        if (message.type !== PACKET_TYPE.PRELOGIN) return this.unexpected(message);
        parsePrelogin(message.payload);
        // NOT_SUP: the client stays in plaintext (it must not insist on encryption).
        await this.reply([buildPreloginResponse({ encryption: ENCRYPT.NOT_SUP })]);
        this.state = 'login';
        return;
      case 'login':
        if (message.type !== PACKET_TYPE.LOGIN7) return this.unexpected(message);
        return this.login(message);
      case 'rejected':
        return this.unexpected(message);
      case 'ready':
        return this.request(message);
    }
  }

  private async login(message: TdsMessage): Promise<void> {
    const { options } = this.shared;
    const login = parseLogin7(message.payload);
    const errors: ServerMessage[] = [];
    if (login.database && login.database.toLowerCase() !== options.database.toLowerCase()) {
      errors.push(
        serverError({
          number: 4060,
          state: 1,
          class: 11,
          message: `Cannot open database "${login.database}" requested by the login. The login failed.`,
        }),
      );
    }
    // Login names compare case-insensitively (CI server collation); passwords exactly.
    if (login.userName.toLowerCase() !== options.user.toLowerCase() || login.password !== options.password || errors.length > 0) {
      errors.push(serverError({ number: 18456, state: 1, class: 14, message: `Login failed for user '${login.userName}'.` }));
      this.log.info({ user: login.userName, database: login.database }, 'login rejected');
      this.state = 'rejected';
      await this.reply([...errors.map(errorToken), doneToken(DONE_STATUS.ERROR)]);
      return;
    }
    this.user = login.userName;
    this.state = 'ready';
    this.log.debug({ user: login.userName, app: login.appName }, 'login accepted');
    await this.reply([
      envChangeDatabase(options.database, 'master'),
      envChangeCollation(),
      loginAckToken(),
      envChangePacketSize(DEFAULT_PACKET_SIZE),
      doneToken(DONE_STATUS.FINAL),
    ]);
  }

  private faults(): StoreFaults {
    return this.shared.options.faults.get(this.shared.options.simulation.ubicacionId);
  }

  private async request(message: TdsMessage): Promise<void> {
    if (message.type !== PACKET_TYPE.SQL_BATCH && message.type !== PACKET_TYPE.RPC) {
      // Transaction manager requests, bulk loads...: answered with an error, the session lives on.
      this.log.info({ type: message.type }, 'unsupported request type');
      const error = serverError({
        number: 4002,
        state: 1,
        class: 16,
        message:
          `The incoming tabular data stream (TDS) protocol stream is incorrect: message type ` +
          `0x${message.type.toString(16).padStart(2, '0')} is not supported here.`,
      });
      await this.reply([errorToken(error), doneToken(DONE_STATUS.ERROR)]);
      return;
    }
    if (message.status & PACKET_STATUS.IGNORE) {
      // The client abandoned this message before finishing it: nothing runs.
      await this.reply([doneToken(DONE_STATUS.FINAL)]);
      return;
    }
    const faults = this.faults();
    if (faults.latencyMs) {
      await Promise.race([sleep(faults.latencyMs), this.closed]);
      if (this.gone) return;
    }
    if (this.current?.cancelled) {
      await this.reply([doneToken(DONE_STATUS.FINAL)]);
      return;
    }
    if (message.type === PACKET_TYPE.SQL_BATCH) return this.batch(parseSqlBatch(message.payload));
    let rpc: ReturnType<typeof parseRpc>;
    try {
      rpc = parseRpc(message.payload);
    } catch (err) {
      if (!(err instanceof TdsProtocolError)) throw err;
      // A parameter this server cannot read: SQL Server's answer to a malformed RPC stream.
      const error = serverError({
        number: 8009,
        state: 1,
        class: 16,
        message: `The incoming tabular data stream (TDS) remote procedure call (RPC) protocol stream is incorrect. ${err.message}`,
      });
      await this.reply([errorToken(error), doneProcToken(DONE_STATUS.ERROR)]);
      return;
    }
    if (rpc.procedure.toLowerCase() !== 'sp_executesql') {
      this.log.info({ procedure: rpc.procedure }, 'unknown stored procedure');
      const error = serverError({ number: 2812, state: 62, class: 16, message: `Could not find stored procedure '${rpc.procedure}'.` });
      await this.reply([errorToken(error), doneProcToken(DONE_STATUS.ERROR)]);
      return;
    }
    const statement = findParam(rpc.params, '@statement') ?? rpc.params[0];
    if (!statement || typeof statement.value !== 'string') {
      const error = serverError({
        number: 214,
        state: 2,
        class: 16,
        message: "Procedure expects parameter '@statement' of type 'ntext/nchar/nvarchar'.",
        procName: 'sp_executesql',
      });
      await this.reply([errorToken(error), doneProcToken(DONE_STATUS.ERROR)]);
      return;
    }
    await this.executeSql(statement.value, rpc.params);
  }

  private async batch(sql: string): Promise<void> {
    if (isSessionSettings(sql)) {
      await this.reply([doneToken(DONE_STATUS.FINAL, CUR_CMD.SET)]);
      return;
    }
    await this.run(sql, [], new Map(), 'batch');
  }

  private async executeSql(sql: string, params: RpcParam[]): Promise<void> {
    const fail = (error: Omit<ServerMessage, 'serverName'>) => this.reply(errorTokens('rpc', error));
    if (isSessionSettings(sql)) {
      await this.reply([doneInProcToken(DONE_STATUS.MORE, CUR_CMD.SET), returnStatusToken(0), doneProcToken(DONE_STATUS.FINAL)]);
      return;
    }
    const declaration = (findParam(params, '@params') ?? params[1])?.value;
    let declared: ParamDeclaration[];
    try {
      declared = typeof declaration === 'string' ? parseParamDeclarations(declaration) : [];
    } catch (err) {
      if (!(err instanceof TsqlError)) throw err;
      return fail(asMessage(err));
    }
    const values = new Map<string, unknown>();
    for (const p of params.slice(2)) if (p.name !== '') values.set(p.name.toLowerCase(), p.value);
    const missing = declared.find((d) => !values.has(d.name));
    if (missing)
      return fail({
        number: 8178,
        state: 1,
        class: 16,
        message: `The parameterized query expects the parameter '${missing.name}', which was not supplied.`,
      });
    await this.run(sql, declared, values, 'rpc');
  }

  /** Translates a statement, runs it on the store's VAD10 tables and streams the rows. */
  private async run(sql: string, declared: ParamDeclaration[], values: Map<string, unknown>, mode: 'batch' | 'rpc'): Promise<void> {
    const { simulation } = this.shared.options;
    const faults = this.faults();
    let translation: Translation;
    try {
      translation = translateTsql(sql, this.shared.database, declared);
    } catch (err) {
      if (!(err instanceof TsqlError)) throw err;
      this.log.info({ number: err.number, err: { message: err.message }, sql: sql.slice(0, 200) }, 'statement refused');
      await this.reply(errorTokens(mode, asMessage(err)));
      return;
    }
    const depositoValue = values.get(DEPOSITO_PARAM);
    const log = depositoValue === undefined ? this.log : this.log.child({ deposito: depositoValue });
    let rewrite: ((row: CellValue[]) => CellValue[]) | null = (row) => row;
    if (hasDataFaults(faults)) {
      const deposito = this.shared.database.deposito(depositoValue);
      const truth = deposito !== undefined && simulation.depositos.includes(deposito) ? simulation.stellarInventario(deposito) : [];
      rewrite = inventarioFaultRewrite(translation.columns, truth, faults);
    }
    const columns = translation.columns;
    const counted = inventarioShape(columns) !== undefined;
    const rows = rewrite === null ? [][Symbol.iterator]() : this.shared.database.rows(translation, values);
    const writer = new ReplyWriter(this.socket, this.spid);
    let sent = 0;
    // Transport faults cut the answer once `sent` rows are out (checked after the last row too).
    const cut = async (): Promise<boolean> => {
      if (faults.dropConnectionAfterRows !== undefined && sent >= faults.dropConnectionAfterRows) {
        await writer.flushPartial();
        log.info({ rows: sent }, 'fault: dropping the connection');
        this.socket.destroy();
        return true;
      }
      if (faults.stallAfterRows !== undefined && sent >= faults.stallAfterRows) {
        await writer.flushPartial();
        log.info({ rows: sent }, 'fault: stalling the answer');
        await this.closed;
        return true;
      }
      return false;
    };
    try {
      writer.push(colMetadataToken(columns));
      for (;;) {
        if (this.gone) return;
        if (await cut()) return;
        if (this.current?.cancelled) {
          log.debug({ rows: sent }, 'statement cancelled by the client');
          await writer.end(doneToken(DONE_STATUS.FINAL));
          return;
        }
        let next: IteratorResult<CellValue[]>;
        try {
          next = rows.next();
        } catch (err) {
          // Mid-answer (an overflow, the engine): SQL Server sends the error after the rows so far.
          const m =
            err instanceof TsqlError
              ? asMessage(err)
              : {
                  number: UNSUPPORTED,
                  state: 1,
                  class: 16,
                  message: `The Stellar simulator's SQL engine failed: ${(err as Error).message}`,
                };
          log.warn({ number: m.number, err: { message: m.message }, rows: sent }, 'statement failed');
          await writer.end(Buffer.concat(errorTokens(mode, m)));
          return;
        }
        if (next.done) break;
        const mustWait = writer.push(rowToken(columns, rewrite!(next.value)));
        sent++;
        if (counted) this.shared.stats.rows++;
        if (mustWait) await writer.drain();
      }
      if (this.gone || (await cut())) return;
      const done = DONE_STATUS.COUNT;
      await writer.end(
        Buffer.concat(
          mode === 'batch'
            ? [doneToken(done, CUR_CMD.SELECT, sent)]
            : [doneInProcToken(DONE_STATUS.MORE | done, CUR_CMD.SELECT, sent), returnStatusToken(0), doneProcToken(DONE_STATUS.FINAL)],
        ),
      );
      log.debug({ rows: sent, user: this.user }, 'statement answered');
    } finally {
      rows.return?.(undefined);
    }
  }
}

/** A refused statement's reply: the error, then the DONE tokens a batch or an RPC ends with. */
function errorTokens(mode: 'batch' | 'rpc', m: Omit<ServerMessage, 'serverName'>): Buffer[] {
  const error = errorToken(serverError(m));
  return mode === 'batch'
    ? [error, doneToken(DONE_STATUS.ERROR)]
    : [error, doneInProcToken(DONE_STATUS.ERROR), doneProcToken(DONE_STATUS.ERROR)];
}

function asMessage(err: TsqlError): Omit<ServerMessage, 'serverName'> {
  return { number: err.number, state: err.state, class: err.class, message: err.message, lineNumber: err.lineNumber };
}

/** Starts a Stellar simulator for one store; resolves once it listens. */
export async function startStellarSimulator(
  options: StellarSimulatorOptions & { port?: number; host?: string },
): Promise<StellarSimulator> {
  if (!options.simulation) throw new TypeError('startStellarSimulator: simulation is required');
  if (!options.faults) throw new TypeError('startStellarSimulator: faults is required');
  if (!options.user) throw new TypeError('startStellarSimulator: user is required');
  if (typeof options.password !== 'string') throw new TypeError('startStellarSimulator: password is required');
  const host = options.host ?? '127.0.0.1';
  const database = options.database ?? 'VAD10';
  const log = (options.logger ?? pino({ enabled: false })).child({
    component: 'stellar-simulator',
    ubicacion: options.simulation.ubicacionId,
  });
  const shared: Shared = {
    options: { ...options, database },
    database: new Vad10Database(options.simulation),
    log,
    stats: { rows: 0 },
  };
  const sockets = new Set<Socket>();
  let nextSpid = 51;
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    new TdsSession(socket, shared, nextSpid);
    nextSpid = nextSpid >= 32_000 ? 51 : nextSpid + 1;
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'server error'));
  const port = (server.address() as AddressInfo).port;
  log.info({ host, port, database }, 'Stellar simulator listening');
  let closing: Promise<void> | undefined;
  return {
    port,
    host,
    connections: () => sockets.size,
    rowsWritten: () => shared.stats.rows,
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => {
          shared.database.close();
          log.info('Stellar simulator closed');
          resolve();
        });
      });
      return closing;
    },
  };
}
