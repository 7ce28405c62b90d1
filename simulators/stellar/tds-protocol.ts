/**
 * Pure TDS 7.4 encoding and decoding: what the Stellar simulator needs to talk to the
 * unmodified `mssql`/tedious driver (docs/pos-contracts.md, and the MS-TDS protocol). No I/O
 * here: packets are framed and reassembled, requests parsed and tokens built as Buffers.
 *
 * Byte order: packet header length, PRELOGIN offsets/lengths and the LOGINACK TDS version
 * are big-endian; everything else is little-endian.
 */
import iconv from 'iconv-lite';
import { FluxionError, type FluxionErrorOptions } from '../../core/errors.ts';

/** A client sent bytes that are not the TDS we understand (or are cut short). */
export class TdsProtocolError extends FluxionError {
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'TDS_PROTOCOL', ...options });
  }
}

// ---------------------------------------------------------------------------------------
// Constants

export const PACKET_TYPE = {
  SQL_BATCH: 0x01,
  RPC: 0x03,
  TABULAR_RESULT: 0x04,
  ATTENTION: 0x06,
  LOGIN7: 0x10,
  PRELOGIN: 0x12,
} as const;

export const PACKET_STATUS = {
  NORMAL: 0x00,
  EOM: 0x01,
  /** Client-to-server: the message was abandoned; do not execute it. */
  IGNORE: 0x02,
  RESET_CONNECTION: 0x08,
  RESET_CONNECTION_SKIP_TRAN: 0x10,
} as const;

export const PACKET_HEADER_SIZE = 8;
/** The packet size tedious asks for in LOGIN7, and the one the simulator confirms. */
export const DEFAULT_PACKET_SIZE = 4096;
/** Largest packet TDS allows (tedious's own limit as well). */
export const MAX_PACKET_SIZE = 32_767;

export const TOKEN = {
  RETURNSTATUS: 0x79,
  COLMETADATA: 0x81,
  ERROR: 0xaa,
  INFO: 0xab,
  LOGINACK: 0xad,
  ROW: 0xd1,
  ENVCHANGE: 0xe3,
  DONE: 0xfd,
  DONEPROC: 0xfe,
  DONEINPROC: 0xff,
} as const;

export const DONE_STATUS = {
  FINAL: 0x0000,
  MORE: 0x0001,
  ERROR: 0x0002,
  INXACT: 0x0004,
  COUNT: 0x0010,
  ATTN: 0x0020,
  SRVERROR: 0x0100,
} as const;

/** CurCmd values SQL Server puts in DONE tokens. */
export const CUR_CMD = { NONE: 0x00, SELECT: 0xc1, SET: 0xba, EXECUTE: 0xe0 } as const;

export const ENVCHANGE_TYPE = { DATABASE: 1, LANGUAGE: 2, PACKET_SIZE: 4, SQL_COLLATION: 7 } as const;

export const TDS_VERSION_7_4 = 0x74000004;

/** PRELOGIN ENCRYPTION values. */
export const ENCRYPT = { OFF: 0x00, ON: 0x01, NOT_SUP: 0x02, REQ: 0x03 } as const;

const PRELOGIN_OPTION = { VERSION: 0x00, ENCRYPTION: 0x01, INSTOPT: 0x02, THREADID: 0x03, MARS: 0x04, TERMINATOR: 0xff } as const;

/** SQL_Latin1_General_CP1_CI_AS: LCID 0x0409, flags 0xD0 (CI, AS, KS, WS), sort id 52. */
export const COLLATION_SQL_LATIN1_CP1_CI_AS: Buffer = Buffer.from([0x09, 0x04, 0xd0, 0x00, 0x34]);
/** The code page of that collation: varchar bytes on the wire are CP1252, not latin1. */
export const VARCHAR_CODEPAGE = 'cp1252';

/** Type ids of TYPE_INFO (MS-TDS 2.2.5.4). */
export const TYPE_ID = {
  GUIDN: 0x24,
  INTN: 0x26,
  DATEN: 0x28,
  TIMEN: 0x29,
  DATETIME2N: 0x2a,
  DATETIMEOFFSETN: 0x2b,
  BITN: 0x68,
  DECIMALN: 0x6a,
  NUMERICN: 0x6c,
  FLTN: 0x6d,
  MONEYN: 0x6e,
  DATETIMN: 0x6f,
  BIGVARBINARY: 0xa5,
  BIGVARCHAR: 0xa7,
  BIGBINARY: 0xad,
  BIGCHAR: 0xaf,
  NVARCHAR: 0xe7,
  NCHAR: 0xef,
} as const;

/** Procedures an RPC may name by id instead of by name (ProcIDSwitch 0xFFFF). */
export const SPECIAL_PROCEDURES: Readonly<Record<number, string>> = {
  1: 'sp_cursor',
  2: 'sp_cursoropen',
  3: 'sp_cursorprepare',
  4: 'sp_cursorexecute',
  5: 'sp_cursorprepexec',
  6: 'sp_cursorunprepare',
  7: 'sp_cursorfetch',
  8: 'sp_cursoroption',
  9: 'sp_cursorclose',
  10: 'sp_executesql',
  11: 'sp_prepare',
  12: 'sp_execute',
  13: 'sp_prepexec',
  14: 'sp_prepexecrpc',
  15: 'sp_unprepare',
};

const NULL_U16 = 0xffff;
const PLP_NULL = 0xffffffffffffffffn;
/** Upper bound for one reassembled client message: nothing legitimate comes close. */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Packets

export interface TdsMessage {
  type: number;
  /** Status of the last packet (EOM, and IGNORE when the client abandoned the message). */
  status: number;
  /** Status of the first packet (RESET_CONNECTION lives there). */
  firstStatus: number;
  payload: Buffer;
}

export function packetHeader(type: number, status: number, length: number, spid = 0, packetId = 1): Buffer {
  const h = Buffer.alloc(PACKET_HEADER_SIZE);
  h.writeUInt8(type, 0);
  h.writeUInt8(status, 1);
  h.writeUInt16BE(length, 2);
  h.writeUInt16BE(spid, 4);
  h.writeUInt8(packetId & 0xff, 6);
  h.writeUInt8(0, 7); // window, always 0
  return h;
}

/**
 * Cuts one outgoing message into packets of at most `packetSize` bytes (header included),
 * the EOM bit on the last packet only. Bytes are pushed as they are produced; complete
 * packets come back at once, the last one from `end()`. A packet is emitted only when more
 * bytes than fit are pending, so the final packet is never empty.
 */
export class PacketBuilder {
  private readonly type: number;
  private readonly capacity: number;
  private readonly spid: number;
  private chunks: Buffer[] = [];
  private pending = 0;
  private packetId = 1;

  constructor(type: number, options: { packetSize?: number; spid?: number } = {}) {
    const packetSize = options.packetSize ?? DEFAULT_PACKET_SIZE;
    if (packetSize <= PACKET_HEADER_SIZE || packetSize > MAX_PACKET_SIZE) throw new RangeError(`packet size ${packetSize} out of range`);
    this.type = type;
    this.capacity = packetSize - PACKET_HEADER_SIZE;
    this.spid = options.spid ?? 0;
  }

  /** Bytes waiting for the next packet. */
  get pendingBytes(): number {
    return this.pending;
  }

  /** Adds bytes of the message; returns the packets completed by them (never the last). */
  push(bytes: Buffer): Buffer[] {
    if (bytes.length === 0) return [];
    this.chunks.push(bytes);
    this.pending += bytes.length;
    if (this.pending <= this.capacity) return [];
    const all = Buffer.concat(this.chunks, this.pending);
    const packets: Buffer[] = [];
    let offset = 0;
    while (all.length - offset > this.capacity) {
      packets.push(this.packet(all.subarray(offset, offset + this.capacity), PACKET_STATUS.NORMAL));
      offset += this.capacity;
    }
    const rest = all.subarray(offset);
    this.chunks = [rest];
    this.pending = rest.length;
    return packets;
  }

  /**
   * The pending bytes as a packet without EOM, or null when nothing is pending: used when a
   * fault cuts a message short, so the client does receive what was "sent" before the cut.
   */
  flushPartial(): Buffer | null {
    if (this.pending === 0) return null;
    const packet = this.packet(Buffer.concat(this.chunks, this.pending), PACKET_STATUS.NORMAL);
    this.chunks = [];
    this.pending = 0;
    return packet;
  }

  /** The last packet (EOM); the builder is then ready for the next message. */
  end(): Buffer {
    const packet = this.packet(Buffer.concat(this.chunks, this.pending), PACKET_STATUS.EOM);
    this.chunks = [];
    this.pending = 0;
    this.packetId = 1;
    return packet;
  }

  private packet(data: Buffer, status: number): Buffer {
    const header = packetHeader(this.type, status, data.length + PACKET_HEADER_SIZE, this.spid, this.packetId);
    this.packetId = (this.packetId + 1) & 0xff;
    return Buffer.concat([header, data]);
  }
}

/** A whole message as packets (EOM only on the last). */
export function splitIntoPackets(type: number, payload: Buffer, options: { packetSize?: number; spid?: number } = {}): Buffer[] {
  const builder = new PacketBuilder(type, options);
  return [...builder.push(payload), builder.end()];
}

/**
 * Reassembles client messages from a TCP byte stream: packets may arrive split or
 * several per chunk, and a message may span packets (EOM marks its last one).
 */
export class MessageAssembler {
  private buffer: Buffer = Buffer.alloc(0);
  private parts: Buffer[] = [];
  private partsLength = 0;
  private type: number | undefined;
  private firstStatus = 0;

  /** Feeds bytes; returns the messages they complete, in order. Throws TdsProtocolError. */
  push(chunk: Buffer): TdsMessage[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const messages: TdsMessage[] = [];
    while (this.buffer.length >= PACKET_HEADER_SIZE) {
      const length = this.buffer.readUInt16BE(2);
      if (length < PACKET_HEADER_SIZE || length > MAX_PACKET_SIZE) throw new TdsProtocolError(`bad TDS packet length ${length}`);
      if (this.buffer.length < length) break;
      const type = this.buffer.readUInt8(0);
      const status = this.buffer.readUInt8(1);
      const data = this.buffer.subarray(PACKET_HEADER_SIZE, length);
      this.buffer = this.buffer.subarray(length);
      if (this.type === undefined) {
        this.type = type;
        this.firstStatus = status;
      } else if (this.type !== type) {
        throw new TdsProtocolError(`packet of type 0x${type.toString(16)} inside a message of type 0x${this.type.toString(16)}`);
      }
      this.parts.push(data);
      this.partsLength += data.length;
      if (this.partsLength > MAX_MESSAGE_BYTES) throw new TdsProtocolError(`client message over ${MAX_MESSAGE_BYTES} bytes`);
      if (status & PACKET_STATUS.EOM) {
        messages.push({ type, status, firstStatus: this.firstStatus, payload: Buffer.concat(this.parts, this.partsLength) });
        this.parts = [];
        this.partsLength = 0;
        this.type = undefined;
      }
    }
    if (this.buffer.length === 0) this.buffer = Buffer.alloc(0);
    return messages;
  }
}

// ---------------------------------------------------------------------------------------
// A bounds-checked little reader for request payloads

class Reader {
  readonly buf: Buffer;
  offset: number;
  constructor(buf: Buffer, offset = 0) {
    this.buf = buf;
    this.offset = offset;
  }
  get remaining(): number {
    return this.buf.length - this.offset;
  }
  need(n: number, what: string): void {
    if (this.remaining < n) throw new TdsProtocolError(`truncated TDS data reading ${what}`);
  }
  u8(what = 'a byte'): number {
    this.need(1, what);
    return this.buf.readUInt8(this.offset++);
  }
  u16(what = 'a USHORT'): number {
    this.need(2, what);
    const v = this.buf.readUInt16LE(this.offset);
    this.offset += 2;
    return v;
  }
  u32(what = 'a DWORD'): number {
    this.need(4, what);
    const v = this.buf.readUInt32LE(this.offset);
    this.offset += 4;
    return v;
  }
  u64(what = 'a ULONGLONG'): bigint {
    this.need(8, what);
    const v = this.buf.readBigUInt64LE(this.offset);
    this.offset += 8;
    return v;
  }
  bytes(n: number, what = 'bytes'): Buffer {
    this.need(n, what);
    const v = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }
  /** B_VARCHAR: a byte of length in characters, then UCS-2. */
  bVarchar(what = 'a name'): string {
    const chars = this.u8(what);
    return this.bytes(chars * 2, what).toString('utf16le');
  }
}

// ---------------------------------------------------------------------------------------
// PRELOGIN

export interface PreloginOptions {
  version?: { major: number; minor: number; build: number; subbuild: number };
  encryption?: number;
  mars?: number;
}

export function parsePrelogin(payload: Buffer): PreloginOptions {
  const result: PreloginOptions = {};
  let offset = 0;
  for (;;) {
    if (offset >= payload.length) throw new TdsProtocolError('PRELOGIN without terminator');
    const token = payload.readUInt8(offset);
    if (token === PRELOGIN_OPTION.TERMINATOR) break;
    if (offset + 5 > payload.length) throw new TdsProtocolError('truncated PRELOGIN option list');
    const at = payload.readUInt16BE(offset + 1);
    const length = payload.readUInt16BE(offset + 3);
    if (at + length > payload.length) throw new TdsProtocolError('PRELOGIN option beyond the payload');
    if (token === PRELOGIN_OPTION.VERSION && length >= 6) {
      result.version = {
        major: payload.readUInt8(at),
        minor: payload.readUInt8(at + 1),
        build: payload.readUInt16BE(at + 2),
        subbuild: payload.readUInt16BE(at + 4),
      };
    } else if (token === PRELOGIN_OPTION.ENCRYPTION && length >= 1) {
      result.encryption = payload.readUInt8(at);
    } else if (token === PRELOGIN_OPTION.MARS && length >= 1) {
      result.mars = payload.readUInt8(at);
    }
    offset += 5;
  }
  return result;
}

/** The server's PRELOGIN answer: VERSION, ENCRYPTION, INSTOPT, THREADID, MARS, terminator. */
export function buildPreloginResponse(options: { version?: [number, number, number, number]; encryption?: number } = {}): Buffer {
  const [major, minor, build, subbuild] = options.version ?? [16, 0, 1000, 0];
  const version = Buffer.alloc(6);
  version.writeUInt8(major, 0);
  version.writeUInt8(minor, 1);
  version.writeUInt16BE(build, 2);
  version.writeUInt16BE(subbuild, 4);
  const entries: Array<[number, Buffer]> = [
    [PRELOGIN_OPTION.VERSION, version],
    [PRELOGIN_OPTION.ENCRYPTION, Buffer.from([options.encryption ?? ENCRYPT.NOT_SUP])],
    [PRELOGIN_OPTION.INSTOPT, Buffer.from([0x00])],
    [PRELOGIN_OPTION.THREADID, Buffer.alloc(0)],
    [PRELOGIN_OPTION.MARS, Buffer.from([0x00])],
  ];
  const head = Buffer.alloc(entries.length * 5 + 1);
  let dataOffset = head.length;
  entries.forEach(([token, data], i) => {
    head.writeUInt8(token, i * 5);
    head.writeUInt16BE(dataOffset, i * 5 + 1);
    head.writeUInt16BE(data.length, i * 5 + 3);
    dataOffset += data.length;
  });
  head.writeUInt8(PRELOGIN_OPTION.TERMINATOR, entries.length * 5);
  return Buffer.concat([head, ...entries.map(([, data]) => data)]);
}

// ---------------------------------------------------------------------------------------
// LOGIN7

export interface Login7 {
  tdsVersion: number;
  packetSize: number;
  clientPid: number;
  hostName: string;
  userName: string;
  password: string;
  appName: string;
  serverName: string;
  libraryName: string;
  language: string;
  database: string;
}

/**
 * LOGIN7 carries the password "scrambled": every byte of its UCS-2 form has its nibbles
 * swapped and is then XORed with 0xA5. Not encryption, just obfuscation.
 */
export function scramblePassword(password: string): Buffer {
  const bytes = Buffer.from(password, 'utf16le');
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    bytes[i] = (((b << 4) & 0xf0) | (b >> 4)) ^ 0xa5;
  }
  return bytes;
}

export function descramblePassword(scrambled: Buffer): string {
  const bytes = Buffer.from(scrambled);
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]! ^ 0xa5;
    bytes[i] = ((b << 4) & 0xf0) | (b >> 4);
  }
  return bytes.toString('utf16le');
}

/** Offsets of the (ib, cch) pairs in LOGIN7's fixed part. */
const LOGIN7_FIELDS = {
  hostName: 36,
  userName: 40,
  password: 44,
  appName: 48,
  serverName: 52,
  libraryName: 60,
  language: 64,
  database: 68,
} as const;
const LOGIN7_FIXED_LENGTH = 94;

export function parseLogin7(payload: Buffer): Login7 {
  if (payload.length < LOGIN7_FIXED_LENGTH) throw new TdsProtocolError(`LOGIN7 of ${payload.length} bytes is shorter than its fixed part`);
  const field = (at: number): Buffer => {
    const ib = payload.readUInt16LE(at);
    const cch = payload.readUInt16LE(at + 2);
    if (ib + cch * 2 > payload.length) throw new TdsProtocolError(`LOGIN7 field at ${at} points beyond the payload`);
    return payload.subarray(ib, ib + cch * 2);
  };
  const text = (at: number) => field(at).toString('utf16le');
  return {
    tdsVersion: payload.readUInt32LE(4),
    packetSize: payload.readUInt32LE(8),
    clientPid: payload.readUInt32LE(16),
    hostName: text(LOGIN7_FIELDS.hostName),
    userName: text(LOGIN7_FIELDS.userName),
    password: descramblePassword(field(LOGIN7_FIELDS.password)),
    appName: text(LOGIN7_FIELDS.appName),
    serverName: text(LOGIN7_FIELDS.serverName),
    libraryName: text(LOGIN7_FIELDS.libraryName),
    language: text(LOGIN7_FIELDS.language),
    database: text(LOGIN7_FIELDS.database),
  };
}

/**
 * A minimal LOGIN7 (no SSPI, no feature extension), as a client would send it: for tests of
 * `parseLogin7` and for scripted clients.
 */
export function buildLogin7(login: Partial<Login7> & { userName: string; password: string }): Buffer {
  const values: Record<keyof typeof LOGIN7_FIELDS, Buffer> = {
    hostName: Buffer.from(login.hostName ?? 'localhost', 'utf16le'),
    userName: Buffer.from(login.userName, 'utf16le'),
    password: scramblePassword(login.password),
    appName: Buffer.from(login.appName ?? 'fluxion', 'utf16le'),
    serverName: Buffer.from(login.serverName ?? '', 'utf16le'),
    libraryName: Buffer.from(login.libraryName ?? 'fluxion', 'utf16le'),
    language: Buffer.from(login.language ?? '', 'utf16le'),
    database: Buffer.from(login.database ?? '', 'utf16le'),
  };
  const fixed = Buffer.alloc(LOGIN7_FIXED_LENGTH);
  fixed.writeUInt32LE(login.tdsVersion ?? TDS_VERSION_7_4, 4);
  fixed.writeUInt32LE(login.packetSize ?? DEFAULT_PACKET_SIZE, 8);
  fixed.writeUInt32LE(login.clientPid ?? 0, 16);
  let dataOffset = LOGIN7_FIXED_LENGTH;
  const data: Buffer[] = [];
  // Every (ib, cch) pair in order, unused ones pointing at the current end with length 0.
  for (let at = 36; at <= 68; at += 4) {
    const name = (Object.keys(LOGIN7_FIELDS) as Array<keyof typeof LOGIN7_FIELDS>).find((k) => LOGIN7_FIELDS[k] === at);
    const value = name ? values[name] : Buffer.alloc(0);
    fixed.writeUInt16LE(dataOffset, at);
    fixed.writeUInt16LE(value.length / 2, at + 2);
    data.push(value);
    dataOffset += value.length;
  }
  for (const at of [78, 82, 86]) fixed.writeUInt16LE(dataOffset, at); // SSPI, AtchDBFile, ChangePassword: empty
  const out = Buffer.concat([fixed, ...data]);
  out.writeUInt32LE(out.length, 0);
  return out;
}

// ---------------------------------------------------------------------------------------
// Requests: SQL_BATCH and RPC

/** Skips ALL_HEADERS (mandatory since TDS 7.2): a DWORD total length, headers included. */
function skipAllHeaders(payload: Buffer): number {
  if (payload.length < 4) throw new TdsProtocolError('request without ALL_HEADERS');
  const total = payload.readUInt32LE(0);
  if (total < 4 || total > payload.length) throw new TdsProtocolError(`bad ALL_HEADERS length ${total}`);
  return total;
}

export function parseSqlBatch(payload: Buffer): string {
  const start = skipAllHeaders(payload);
  if ((payload.length - start) % 2 !== 0) throw new TdsProtocolError('SQL_BATCH text is not UCS-2');
  return payload.toString('utf16le', start);
}

export type ParamValue = string | number | bigint | boolean | Buffer | null;

export interface RpcParam {
  /** With the '@', as sent ('' for positional parameters). */
  name: string;
  status: number;
  typeId: number;
  value: ParamValue;
}

export interface RpcRequest {
  /** The procedure's name, or the special procedure's name when sent by id. */
  procedure: string;
  procId: number | null;
  optionFlags: number;
  params: RpcParam[];
}

/** Reads a PLP value (varchar(max) and friends): total length, chunks, a zero terminator. */
function readPlp(r: Reader, what: string): Buffer | null {
  const total = r.u64(what);
  if (total === PLP_NULL) return null;
  const chunks: Buffer[] = [];
  for (;;) {
    const length = r.u32(what);
    if (length === 0) break;
    chunks.push(r.bytes(length, what));
  }
  return Buffer.concat(chunks);
}

function readUnsignedLE(bytes: Buffer): bigint {
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
  return v;
}

function readParamValue(r: Reader, typeId: number, what: string): ParamValue {
  switch (typeId) {
    case TYPE_ID.INTN: {
      r.u8(what); // max length
      const length = r.u8(what);
      if (length === 0) return null;
      const b = r.bytes(length, what);
      if (length === 1) return b.readUInt8(0);
      if (length === 2) return b.readInt16LE(0);
      if (length === 4) return b.readInt32LE(0);
      if (length === 8) {
        const v = b.readBigInt64LE(0);
        return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
      }
      throw new TdsProtocolError(`bad INTN length ${length} in ${what}`);
    }
    case TYPE_ID.BITN: {
      r.u8(what);
      const length = r.u8(what);
      return length === 0 ? null : r.bytes(length, what).readUInt8(0) !== 0;
    }
    case TYPE_ID.FLTN: {
      r.u8(what);
      const length = r.u8(what);
      if (length === 0) return null;
      const b = r.bytes(length, what);
      if (length === 4) return b.readFloatLE(0);
      if (length === 8) return b.readDoubleLE(0);
      throw new TdsProtocolError(`bad FLTN length ${length} in ${what}`);
    }
    case TYPE_ID.DECIMALN:
    case TYPE_ID.NUMERICN: {
      r.u8(what); // max length
      r.u8(what); // precision
      const scale = r.u8(what);
      const length = r.u8(what);
      if (length === 0) return null;
      return decodeDecimal(r.bytes(length, what), scale);
    }
    case TYPE_ID.NVARCHAR:
    case TYPE_ID.NCHAR:
    case TYPE_ID.BIGVARCHAR:
    case TYPE_ID.BIGCHAR: {
      const maxLength = r.u16(what);
      r.bytes(5, what); // collation: the server's own (CP1252) is assumed for varchar
      const unicode = typeId === TYPE_ID.NVARCHAR || typeId === TYPE_ID.NCHAR;
      let bytes: Buffer | null;
      if (maxLength === NULL_U16) {
        bytes = readPlp(r, what);
      } else {
        const length = r.u16(what);
        bytes = length === NULL_U16 ? null : r.bytes(length, what);
      }
      if (bytes === null) return null;
      return unicode ? bytes.toString('utf16le') : iconv.decode(bytes, VARCHAR_CODEPAGE);
    }
    case TYPE_ID.BIGVARBINARY:
    case TYPE_ID.BIGBINARY: {
      const maxLength = r.u16(what);
      if (maxLength === NULL_U16) return readPlp(r, what);
      const length = r.u16(what);
      return length === NULL_U16 ? null : Buffer.from(r.bytes(length, what));
    }
    case TYPE_ID.GUIDN:
    case TYPE_ID.DATETIMN:
    case TYPE_ID.MONEYN:
    case TYPE_ID.DATEN: {
      if (typeId !== TYPE_ID.DATEN) r.u8(what);
      const length = r.u8(what);
      return length === 0 ? null : Buffer.from(r.bytes(length, what));
    }
    case TYPE_ID.TIMEN:
    case TYPE_ID.DATETIME2N:
    case TYPE_ID.DATETIMEOFFSETN: {
      r.u8(what); // scale
      const length = r.u8(what);
      return length === 0 ? null : Buffer.from(r.bytes(length, what));
    }
    default:
      throw new TdsProtocolError(`${what}: data type 0x${typeId.toString(16).padStart(2, '0')} is unknown`, {
        context: { sqlNumber: 8009 },
      });
  }
}

export function parseRpc(payload: Buffer): RpcRequest {
  const r = new Reader(payload, skipAllHeaders(payload));
  const nameLength = r.u16('the procedure name');
  let procedure: string;
  let procId: number | null = null;
  if (nameLength === 0xffff) {
    procId = r.u16('the procedure id');
    procedure = SPECIAL_PROCEDURES[procId] ?? `#${procId}`;
  } else {
    procedure = r.bytes(nameLength * 2, 'the procedure name').toString('utf16le');
  }
  const optionFlags = r.u16('the RPC option flags');
  const params: RpcParam[] = [];
  while (r.remaining > 0) {
    const next = payload.readUInt8(r.offset);
    if (next === 0x80 || next === 0xff || next === 0xfe) throw new TdsProtocolError('batched RPC calls are not supported');
    const name = r.bVarchar('a parameter name');
    const what = `parameter ${params.length + 1} (${name || 'positional'})`;
    const status = r.u8(what);
    const typeId = r.u8(what);
    params.push({ name, status, typeId, value: readParamValue(r, typeId, what) });
  }
  return { procedure, procId, optionFlags, params };
}

// ---------------------------------------------------------------------------------------
// Values
//
// Each encoder writes into a buffer at an offset and returns the next offset, so a row is
// built in one allocation; the Buffer-returning helpers wrap them for single values.

const DECIMAL_TEXT = /^([+-]?)(\d+)(?:\.(\d*))?$/;
/** Below this a magnitude times 10 plus a digit stays an exact JS integer (< 2^53). */
const SMALL_LIMIT = Math.floor((Number.MAX_SAFE_INTEGER - 9) / 10);
/** Characters where CP1252 and latin1 differ (0x80-0x9F) or that latin1 lacks (> 0xFF). */
const NOT_LATIN1_SAFE = /[\x80-\x9f\u0100-\uffff]/;

/** Bytes of a DECIMALN value's length: 5, 9, 13 or 17 by precision. */
export function decimalLength(precision: number): number {
  if (!Number.isInteger(precision) || precision < 1 || precision > 38) throw new RangeError(`decimal precision ${precision} out of 1..38`);
  if (precision <= 9) return 5;
  if (precision <= 19) return 9;
  if (precision <= 28) return 13;
  return 17;
}

export function isDecimalText(value: string): boolean {
  return DECIMAL_TEXT.test(value);
}

/**
 * Writes a DECIMALN value (length byte included) from an exact decimal string: sign byte (1
 * positive, 0 negative) and the unsigned little-endian magnitude x 10^scale, computed from
 * the digits (BigInt beyond 2^53) so nothing is ever rounded. Null is the single byte 0.
 * Throws RangeError when the text is not a decimal, has more decimals than `scale` (other
 * than trailing zeros) or does not fit `precision`.
 */
export function writeDecimal(buf: Buffer, offset: number, value: string | null, precision: number, scale: number): number {
  const length = decimalLength(precision);
  if (value === null) return buf.writeUInt8(0, offset);
  // One pass over the characters (this runs for every decimal of every row).
  let i = 0;
  let negative = false;
  const first = value.charCodeAt(0);
  if (first === 0x2d || first === 0x2b) {
    negative = first === 0x2d;
    i = 1;
  }
  let intDigits = 0;
  let fracDigits = 0;
  let dot = false;
  let small = 0;
  let big: bigint | undefined;
  const add = (d: number) => {
    if (big === undefined && small <= SMALL_LIMIT) small = small * 10 + d;
    else big = (big ?? BigInt(small)) * 10n + BigInt(d);
  };
  for (; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x2e && !dot && intDigits > 0) {
      dot = true;
      continue;
    }
    if (c < 0x30 || c > 0x39) throw new RangeError(`"${value}" is not a decimal number`);
    const d = c - 0x30;
    if (!dot) {
      intDigits++;
    } else if (fracDigits >= scale) {
      if (d !== 0) throw new RangeError(`"${value}" has more than ${scale} decimals`);
      continue; // trailing zeros beyond the scale change nothing
    } else {
      fracDigits++;
    }
    add(d);
  }
  if (intDigits === 0) throw new RangeError(`"${value}" is not a decimal number`);
  for (; fracDigits < scale; fracDigits++) add(0);
  const fits = big === undefined ? precision > 15 || small < 10 ** precision : big < 10n ** BigInt(precision);
  if (!fits) throw new RangeError(`"${value}" does not fit decimal(${precision},${scale})`);
  const zero = big === undefined ? small === 0 : big === 0n;
  offset = buf.writeUInt8(length, offset);
  offset = buf.writeUInt8(negative && !zero ? 0 : 1, offset);
  const end = offset + length - 1;
  buf.fill(0, offset, end);
  if (big === undefined) {
    buf.writeUInt32LE(small % 0x1_0000_0000, offset);
    if (length > 5) buf.writeUInt32LE(Math.floor(small / 0x1_0000_0000), offset + 4);
  } else {
    let rest = big;
    for (let j = offset; j < end; j++) {
      buf[j] = Number(rest & 0xffn);
      rest >>= 8n;
    }
  }
  return end;
}

export function encodeDecimal(value: string | null, precision: number, scale: number): Buffer {
  const buf = Buffer.alloc(1 + decimalLength(precision));
  return buf.subarray(0, writeDecimal(buf, 0, value, precision, scale));
}

/** The exact decimal string of a DECIMALN value (sign byte + magnitude, no length byte). */
export function decodeDecimal(bytes: Buffer, scale: number): string {
  if (bytes.length < 2) throw new TdsProtocolError('decimal value too short');
  const negative = bytes.readUInt8(0) === 0;
  const digits = readUnsignedLE(bytes.subarray(1))
    .toString()
    .padStart(scale + 1, '0');
  const text = scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  return negative && /[1-9]/.test(digits) ? `-${text}` : text;
}

/**
 * A varchar value: USHORT byte length (0xFFFF for NULL), then the text in CP1252 (a real
 * CP1252 encoder: latin1 differs at 0x80-0x9F, e.g. the euro sign).
 */
export function writeVarchar(buf: Buffer, offset: number, value: string | null, maxLength = 8000): number {
  if (value === null) return buf.writeUInt16LE(NULL_U16, offset);
  let length: number;
  if (!NOT_LATIN1_SAFE.test(value)) {
    // CP1252 and latin1 agree on 0x00-0x7F and 0xA0-0xFF (Ñ, Ú, É...): the fast path.
    if (value.length > maxLength) throw new RangeError(`"${value}" is longer than varchar(${maxLength})`);
    length = buf.write(value, offset + 2, 'latin1');
  } else {
    const bytes = iconv.encode(value, VARCHAR_CODEPAGE);
    if (bytes.length > maxLength) throw new RangeError(`"${value}" is longer than varchar(${maxLength})`);
    length = bytes.copy(buf, offset + 2);
  }
  buf.writeUInt16LE(length, offset);
  return offset + 2 + length;
}

export function encodeVarchar(value: string | null, maxLength = 8000): Buffer {
  const buf = Buffer.alloc(2 + (value === null ? 0 : value.length * 2));
  return buf.subarray(0, writeVarchar(buf, 0, value, maxLength));
}

/** An nvarchar value: USHORT byte length (0xFFFF for NULL), then UCS-2. */
export function writeNvarchar(buf: Buffer, offset: number, value: string | null, maxChars = 4000): number {
  if (value === null) return buf.writeUInt16LE(NULL_U16, offset);
  if (value.length > maxChars) throw new RangeError(`"${value}" is longer than nvarchar(${maxChars})`);
  const length = buf.write(value, offset + 2, 'utf16le');
  buf.writeUInt16LE(length, offset);
  return offset + 2 + length;
}

export function encodeNvarchar(value: string | null, maxChars = 4000): Buffer {
  const buf = Buffer.alloc(2 + (value === null ? 0 : value.length * 2));
  return buf.subarray(0, writeNvarchar(buf, 0, value, maxChars));
}

export function encodeBit(value: boolean | null): Buffer {
  return value === null ? Buffer.from([0]) : Buffer.from([1, value ? 1 : 0]);
}

export function encodeInt(value: number | null): Buffer {
  if (value === null) return Buffer.from([0]);
  const out = Buffer.alloc(5);
  out.writeUInt8(4, 0);
  out.writeInt32LE(value, 1);
  return out;
}

// ---------------------------------------------------------------------------------------
// Result columns and rows

export type ColumnType =
  | { kind: 'varchar'; length: number }
  | { kind: 'nvarchar'; length: number }
  | { kind: 'decimal'; precision: number; scale: number }
  | { kind: 'bit' }
  | { kind: 'int' };

export interface ColumnDef {
  name: string;
  type: ColumnType;
  nullable: boolean;
}

export type CellValue = string | number | boolean | null;

function typeInfo(type: ColumnType): Buffer {
  switch (type.kind) {
    case 'varchar': {
      const b = Buffer.alloc(3);
      b.writeUInt8(TYPE_ID.BIGVARCHAR, 0);
      b.writeUInt16LE(type.length, 1);
      return Buffer.concat([b, COLLATION_SQL_LATIN1_CP1_CI_AS]);
    }
    case 'nvarchar': {
      const b = Buffer.alloc(3);
      b.writeUInt8(TYPE_ID.NVARCHAR, 0);
      b.writeUInt16LE(type.length * 2, 1);
      return Buffer.concat([b, COLLATION_SQL_LATIN1_CP1_CI_AS]);
    }
    case 'decimal':
      return Buffer.from([TYPE_ID.DECIMALN, decimalLength(type.precision), type.precision, type.scale]);
    case 'bit':
      return Buffer.from([TYPE_ID.BITN, 1]);
    case 'int':
      return Buffer.from([TYPE_ID.INTN, 4]);
  }
}

/** B_VARCHAR: a byte of length in characters, then UCS-2. */
function bVarchar(text: string): Buffer {
  if (text.length > 255) throw new RangeError(`"${text.slice(0, 20)}..." is too long for B_VARCHAR`);
  return Buffer.concat([Buffer.from([text.length]), Buffer.from(text, 'utf16le')]);
}

/** US_VARCHAR: a USHORT of length in characters, then UCS-2. */
function usVarchar(text: string): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16LE(text.length, 0);
  return Buffer.concat([len, Buffer.from(text, 'utf16le')]);
}

export function colMetadataToken(columns: readonly ColumnDef[]): Buffer {
  const head = Buffer.alloc(3);
  head.writeUInt8(TOKEN.COLMETADATA, 0);
  head.writeUInt16LE(columns.length, 1);
  const parts: Buffer[] = [head];
  for (const c of columns) {
    const fixed = Buffer.alloc(6);
    fixed.writeUInt32LE(0, 0); // UserType
    fixed.writeUInt16LE(c.nullable ? 0x0001 : 0x0000, 4); // Flags: fNullable
    parts.push(fixed, typeInfo(c.type), bVarchar(c.name));
  }
  return Buffer.concat(parts);
}

/** Largest encoding of one value of the type (length prefix included). */
function maxCellSize(type: ColumnType): number {
  switch (type.kind) {
    case 'varchar':
      return 2 + type.length;
    case 'nvarchar':
      return 2 + type.length * 2;
    case 'decimal':
      return 1 + decimalLength(type.precision);
    case 'bit':
      return 2;
    case 'int':
      return 5;
  }
}

const maxRowSizes = new WeakMap<readonly ColumnDef[], number>();

function maxRowSize(columns: readonly ColumnDef[]): number {
  let size = maxRowSizes.get(columns);
  if (size === undefined) {
    size = 1 + columns.reduce((sum, c) => sum + maxCellSize(c.type), 0);
    maxRowSizes.set(columns, size);
  }
  return size;
}

function writeCell(buf: Buffer, offset: number, column: ColumnDef, value: CellValue): number {
  if (value === null && !column.nullable) throw new RangeError(`column ${column.name} is NOT NULL`);
  const t = column.type;
  switch (t.kind) {
    case 'varchar':
      return writeVarchar(buf, offset, value === null ? null : String(value), t.length);
    case 'nvarchar':
      return writeNvarchar(buf, offset, value === null ? null : String(value), t.length);
    case 'decimal':
      return writeDecimal(buf, offset, value === null ? null : String(value), t.precision, t.scale);
    case 'bit':
      return encodeBit(value === null ? null : Boolean(value)).copy(buf, offset) + offset;
    case 'int':
      return encodeInt(value === null ? null : Number(value)).copy(buf, offset) + offset;
  }
}

/** A ROW token: the values in column order, each in its column's wire format. */
export function rowToken(columns: readonly ColumnDef[], values: readonly CellValue[]): Buffer {
  if (values.length !== columns.length) throw new RangeError(`row of ${values.length} values for ${columns.length} columns`);
  const buf = Buffer.allocUnsafe(maxRowSize(columns));
  let offset = buf.writeUInt8(TOKEN.ROW, 0);
  for (let i = 0; i < columns.length; i++) offset = writeCell(buf, offset, columns[i]!, values[i]!);
  return buf.subarray(0, offset);
}

// ---------------------------------------------------------------------------------------
// Other tokens

function doneLike(token: number, status: number, curCmd: number, rowCount: number | bigint): Buffer {
  const b = Buffer.alloc(13);
  b.writeUInt8(token, 0);
  b.writeUInt16LE(status, 1);
  b.writeUInt16LE(curCmd, 3);
  b.writeBigUInt64LE(BigInt(rowCount), 5);
  return b;
}

export function doneToken(status: number, curCmd: number = CUR_CMD.NONE, rowCount: number | bigint = 0): Buffer {
  return doneLike(TOKEN.DONE, status, curCmd, rowCount);
}

export function doneInProcToken(status: number, curCmd: number = CUR_CMD.NONE, rowCount: number | bigint = 0): Buffer {
  return doneLike(TOKEN.DONEINPROC, status, curCmd, rowCount);
}

export function doneProcToken(status: number, curCmd: number = CUR_CMD.EXECUTE, rowCount: number | bigint = 0): Buffer {
  return doneLike(TOKEN.DONEPROC, status, curCmd, rowCount);
}

export function returnStatusToken(value: number): Buffer {
  const b = Buffer.alloc(5);
  b.writeUInt8(TOKEN.RETURNSTATUS, 0);
  b.writeInt32LE(value, 1);
  return b;
}

export interface ServerMessage {
  number: number;
  state: number;
  /** Severity: 11-16 user errors, 14 login failures. */
  class: number;
  message: string;
  serverName?: string;
  procName?: string;
  lineNumber?: number;
}

function infoOrError(token: number, m: ServerMessage): Buffer {
  const head = Buffer.alloc(6);
  head.writeUInt32LE(m.number, 0);
  head.writeUInt8(m.state, 4);
  head.writeUInt8(m.class, 5);
  const line = Buffer.alloc(4);
  line.writeUInt32LE(m.lineNumber ?? 1, 0);
  const body = Buffer.concat([head, usVarchar(m.message), bVarchar(m.serverName ?? ''), bVarchar(m.procName ?? ''), line]);
  const prefix = Buffer.alloc(3);
  prefix.writeUInt8(token, 0);
  prefix.writeUInt16LE(body.length, 1);
  return Buffer.concat([prefix, body]);
}

export function errorToken(m: ServerMessage): Buffer {
  return infoOrError(TOKEN.ERROR, m);
}

export function infoToken(m: ServerMessage): Buffer {
  return infoOrError(TOKEN.INFO, m);
}

function envChange(type: number, newValue: Buffer, oldValue: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from([type]), newValue, oldValue]);
  const prefix = Buffer.alloc(3);
  prefix.writeUInt8(TOKEN.ENVCHANGE, 0);
  prefix.writeUInt16LE(body.length, 1);
  return Buffer.concat([prefix, body]);
}

export function envChangeDatabase(newDatabase: string, oldDatabase = 'master'): Buffer {
  return envChange(ENVCHANGE_TYPE.DATABASE, bVarchar(newDatabase), bVarchar(oldDatabase));
}

export function envChangePacketSize(newSize: number, oldSize = newSize): Buffer {
  return envChange(ENVCHANGE_TYPE.PACKET_SIZE, bVarchar(String(newSize)), bVarchar(String(oldSize)));
}

/** The collation ENVCHANGE: without it tedious refuses varchar parameters. B_VARBYTE values. */
export function envChangeCollation(collation: Buffer = COLLATION_SQL_LATIN1_CP1_CI_AS): Buffer {
  return envChange(ENVCHANGE_TYPE.SQL_COLLATION, Buffer.concat([Buffer.from([collation.length]), collation]), Buffer.from([0]));
}

export function loginAckToken(
  options: { tdsVersion?: number; progName?: string; version?: [number, number, number, number] } = {},
): Buffer {
  const [major, minor, buildHi, buildLo] = options.version ?? [16, 0, 0x03, 0xe8];
  const head = Buffer.alloc(5);
  head.writeUInt8(1, 0); // interface: SQL_TSQL
  head.writeUInt32BE(options.tdsVersion ?? TDS_VERSION_7_4, 1);
  const body = Buffer.concat([head, bVarchar(options.progName ?? 'Microsoft SQL Server'), Buffer.from([major, minor, buildHi, buildLo])]);
  const prefix = Buffer.alloc(3);
  prefix.writeUInt8(TOKEN.LOGINACK, 0);
  prefix.writeUInt16LE(body.length, 1);
  return Buffer.concat([prefix, body]);
}
