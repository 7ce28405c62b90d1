import { createRequire } from 'node:module';
import fc from 'fast-check';
import iconv from 'iconv-lite';
import { describe, expect, it } from 'vitest';
import { INVENTARIO_COLUMNS, OUT_OF_RANGE_CANTIDAD } from '../../simulators/stellar/statements.ts';
import {
  buildLogin7,
  buildPreloginResponse,
  colMetadataToken,
  decodeDecimal,
  descramblePassword,
  doneInProcToken,
  DONE_STATUS,
  encodeDecimal,
  encodeNvarchar,
  encodeVarchar,
  ENCRYPT,
  envChangeCollation,
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
  rowToken,
  scramblePassword,
  splitIntoPackets,
  TdsProtocolError,
  TOKEN,
  TYPE_ID,
} from '../../simulators/stellar/tds-protocol.ts';

/** What tedious computes from a DECIMALN of length 9 (its value parser, restated). */
function asTediousReadsIt(bytes: Buffer, scale: number): number | null {
  if (bytes[0] === 0) return null;
  const sign = bytes[1] === 1 ? 1 : -1;
  const low = bytes.readUInt32LE(2);
  const high = bytes.readUInt32LE(6);
  return ((0x100000000 * high + low) * sign) / 10 ** scale;
}

describe('DECIMALN', () => {
  it('encodes sign and little-endian magnitude x 10^scale, length 9 for precision 18', () => {
    expect([...encodeDecimal('12.345', 18, 3)]).toEqual([9, 1, 0x39, 0x30, 0, 0, 0, 0, 0, 0]); // 12345 = 0x3039
    expect([...encodeDecimal('-12.345', 18, 3)]).toEqual([9, 0, 0x39, 0x30, 0, 0, 0, 0, 0, 0]);
    expect([...encodeDecimal('0.000', 18, 3)]).toEqual([9, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect([...encodeDecimal('-0.000', 18, 3)]).toEqual([9, 1, 0, 0, 0, 0, 0, 0, 0, 0]); // no negative zero
    expect([...encodeDecimal('0', 18, 4)]).toEqual([9, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect([...encodeDecimal(null, 18, 3)]).toEqual([0]);
    expect(encodeDecimal('1', 9, 2).length).toBe(6); // length 5
    expect(encodeDecimal('1', 28, 2).length).toBe(14); // length 13
    expect(encodeDecimal('1', 38, 2).length).toBe(18); // length 17
  });

  it('pads to the scale and accepts only trailing zeros beyond it', () => {
    expect(decodeDecimal(encodeDecimal('124', 18, 3).subarray(1), 3)).toBe('124.000');
    expect(decodeDecimal(encodeDecimal('1.2500', 18, 3).subarray(1), 3)).toBe('1.250');
    expect(() => encodeDecimal('1.0001', 18, 3)).toThrow(/more than 3 decimals/);
  });

  it('refuses text that is not a decimal, or too big for the precision', () => {
    expect(() => encodeDecimal('12,5', 18, 3)).toThrow(/not a decimal/);
    expect(() => encodeDecimal('1e3', 18, 3)).toThrow(/not a decimal/);
    expect(() => encodeDecimal('', 18, 3)).toThrow(/not a decimal/);
    expect(() => encodeDecimal('.5', 18, 3)).toThrow(/not a decimal/);
    expect(() => encodeDecimal('1000000000000000.000', 18, 3)).toThrow(/does not fit/);
    expect(decodeDecimal(encodeDecimal(OUT_OF_RANGE_CANTIDAD, 18, 3).subarray(1), 3)).toBe('999999999999999.999');
  });

  it('round-trips exactly at every precision, beyond 2^53 included (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 38 }).chain((p) => fc.tuple(fc.constant(p), fc.integer({ min: 0, max: p }))),
        fc.bigInt(),
        ([p, s], raw) => {
          const unscaled = raw % 10n ** BigInt(p);
          const digits = (unscaled < 0n ? -unscaled : unscaled).toString().padStart(s + 1, '0');
          const text = `${unscaled < 0n ? '-' : ''}${s === 0 ? digits : `${digits.slice(0, -s)}.${digits.slice(-s)}`}`;
          const bytes = encodeDecimal(text, p, s);
          const expected = unscaled === 0n ? text.replace('-', '') : text;
          expect(decodeDecimal(bytes.subarray(1), s)).toBe(expected);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('reaches the client as the JS number of the exact text while it has at most 15 digits (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 15n) + 1n, max: 10n ** 15n - 1n }), fc.constantFrom(3, 4), (unscaled, scale) => {
        const digits = (unscaled < 0n ? -unscaled : unscaled).toString().padStart(scale + 1, '0');
        const text = `${unscaled < 0n ? '-' : ''}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
        expect(asTediousReadsIt(encodeDecimal(text, 18, scale), scale)).toBe(Number(text));
      }),
      { numRuns: 1000 },
    );
  });
});

describe('varchar (CP1252) and nvarchar', () => {
  it('encodes accents as CP1252 bytes, with a USHORT byte length', () => {
    expect(encodeVarchar('AZÚCAR').toString('hex')).toBe('0600' + '415ada434152');
    expect(encodeVarchar('PIÑA').toString('hex')).toBe('0400' + '5049d141');
    expect(encodeVarchar('CHARCUTERÍA').subarray(2).toString('hex')).toBe(Buffer.from('CHARCUTER\xcdA', 'latin1').toString('hex'));
    expect(iconv.decode(encodeVarchar('DOÑA ROSA CAFÉ').subarray(2), 'cp1252')).toBe('DOÑA ROSA CAFÉ');
  });

  it('uses a real CP1252 encoder where latin1 differs (0x80-0x9F)', () => {
    expect(encodeVarchar('€ – “x”').subarray(2).toString('hex')).toBe('80209620937894');
    expect(iconv.decode(encodeVarchar('Precio € 5').subarray(2), 'cp1252')).toBe('Precio € 5');
  });

  it('writes NULL as 0xFFFF and refuses text longer than the column', () => {
    expect(encodeVarchar(null).toString('hex')).toBe('ffff');
    expect(encodeVarchar('').toString('hex')).toBe('0000');
    expect(() => encodeVarchar('ABCDEF', 5)).toThrow(/longer than varchar\(5\)/);
    expect(() => encodeVarchar('ÑÑÑÑÑÑ', 5)).toThrow(/longer than varchar\(5\)/);
  });

  it('encodes nvarchar as UCS-2 with a byte length', () => {
    expect(encodeNvarchar('Ñ').toString('hex')).toBe('0200d100');
    expect(encodeNvarchar(null).toString('hex')).toBe('ffff');
  });
});

describe('packets', () => {
  const payload = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251));

  it('splits a message into packets of at most 4096 bytes, EOM only on the last', () => {
    const packets = splitIntoPackets(PACKET_TYPE.TABULAR_RESULT, payload, { spid: 51 });
    expect(packets.map((p) => p.length)).toEqual([4096, 4096, 10_000 - 2 * 4088 + 8]);
    expect(packets.map((p) => p.readUInt8(1))).toEqual([PACKET_STATUS.NORMAL, PACKET_STATUS.NORMAL, PACKET_STATUS.EOM]);
    expect(packets.map((p) => p.readUInt16BE(2))).toEqual(packets.map((p) => p.length)); // big-endian length
    expect(packets.map((p) => p.readUInt16BE(4))).toEqual([51, 51, 51]);
    expect(packets.map((p) => p.readUInt8(6))).toEqual([1, 2, 3]);
    expect(Buffer.concat(packets.map((p) => p.subarray(8))).equals(payload)).toBe(true);
  });

  it('never ends a message with an empty packet when it fills packets exactly', () => {
    const packets = splitIntoPackets(PACKET_TYPE.TABULAR_RESULT, Buffer.alloc(4088 * 2));
    expect(packets.map((p) => p.length)).toEqual([4096, 4096]);
    expect(packets[1]!.readUInt8(1)).toBe(PACKET_STATUS.EOM);
  });

  it('emits full packets as rows are pushed, a partial one on demand, and restarts ids per message', () => {
    const builder = new PacketBuilder(PACKET_TYPE.TABULAR_RESULT);
    const out: Buffer[] = [];
    for (let i = 0; i < 100; i++) out.push(...builder.push(Buffer.alloc(100, i)));
    expect(out).toHaveLength(2); // 10,000 bytes: two full packets, 1,824 bytes pending
    expect(builder.pendingBytes).toBe(10_000 - 2 * 4088);
    const partial = builder.flushPartial()!;
    expect(partial.readUInt8(1)).toBe(PACKET_STATUS.NORMAL);
    expect(partial.length).toBe(8 + 1824);
    expect(builder.flushPartial()).toBeNull();
    const last = builder.end();
    expect(last.readUInt8(1)).toBe(PACKET_STATUS.EOM);
    expect(last.readUInt8(6)).toBe(4);
    expect(builder.end().readUInt8(6)).toBe(1);
  });

  it('reassembles messages from arbitrary chunks, an attention being a message of its own', () => {
    const big = splitIntoPackets(PACKET_TYPE.RPC, payload);
    const attention = splitIntoPackets(PACKET_TYPE.ATTENTION, Buffer.alloc(0));
    const small = splitIntoPackets(PACKET_TYPE.SQL_BATCH, Buffer.from('hi'));
    const stream = Buffer.concat([...big, ...attention, ...small]);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 5000 }), { maxLength: 30 }), (cuts) => {
        const assembler = new MessageAssembler();
        const messages = [];
        let at = 0;
        for (const size of [...cuts, stream.length]) {
          messages.push(...assembler.push(stream.subarray(at, Math.min(stream.length, at + size))));
          at = Math.min(stream.length, at + size);
        }
        expect(messages.map((m) => m.type)).toEqual([PACKET_TYPE.RPC, PACKET_TYPE.ATTENTION, PACKET_TYPE.SQL_BATCH]);
        expect(messages[0]!.payload.equals(payload)).toBe(true);
        expect(messages[1]!.payload.length).toBe(0);
        expect(messages[2]!.payload.toString()).toBe('hi');
      }),
      { numRuns: 200 },
    );
  });

  it('refuses impossible packet lengths and mixed types', () => {
    expect(() => new MessageAssembler().push(Buffer.from([0x01, 0x01, 0x00, 0x04, 0, 0, 1, 0]))).toThrow(TdsProtocolError);
    const first = splitIntoPackets(PACKET_TYPE.RPC, Buffer.alloc(5000))[0]!;
    const other = splitIntoPackets(PACKET_TYPE.SQL_BATCH, Buffer.alloc(4))[0]!;
    expect(() => new MessageAssembler().push(Buffer.concat([first, other]))).toThrow(/inside a message/);
  });
});

describe('PRELOGIN and LOGIN7', () => {
  it('answers PRELOGIN with ENCRYPTION=NOT_SUP', () => {
    const options = parsePrelogin(buildPreloginResponse());
    expect(options.encryption).toBe(ENCRYPT.NOT_SUP);
    expect(options.version?.major).toBe(16);
    expect(options.mars).toBe(0);
  });

  it('descrambles LOGIN7 passwords (nibbles swapped, XOR 0xA5)', () => {
    // 'a' is 61 00 in UCS-2: swapped 16 00, XOR A5 gives B3 A5.
    expect(scramblePassword('a').toString('hex')).toBe('b3a5');
    expect(descramblePassword(Buffer.from('b3a5', 'hex'))).toBe('a');
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), (password) => {
        expect(descramblePassword(scramblePassword(password))).toBe(password);
      }),
    );
  });

  it('parses the LOGIN7 the real tedious client sends', () => {
    const require = createRequire(import.meta.url);
    type Payload = { userName?: string; password?: string; database?: string; appName?: string; hostname?: string; toBuffer(): Buffer };
    const Login7Payload = require('tedious/lib/login7-payload.js') as new (o: Record<string, number>) => Payload;
    const payload = new Login7Payload({
      tdsVersion: 0x74000004,
      packetSize: 4096,
      clientProgVer: 0,
      clientPid: 42,
      connectionId: 0,
      clientTimeZone: 0,
      clientLcid: 0x409,
    });
    payload.userName = 'stellar_ro';
    payload.password = 'Contraseña€1';
    payload.database = 'VAD10';
    payload.appName = 'fluxion';
    payload.hostname = 'host';
    const login = parseLogin7(payload.toBuffer());
    expect(login).toMatchObject({
      tdsVersion: 0x74000004,
      packetSize: 4096,
      clientPid: 42,
      userName: 'stellar_ro',
      password: 'Contraseña€1',
      database: 'VAD10',
      appName: 'fluxion',
      hostName: 'host',
    });
  });

  it('round-trips its own LOGIN7 and refuses a truncated one', () => {
    const login = parseLogin7(buildLogin7({ userName: 'u', password: 'p@ss', database: 'VAD10' }));
    expect(login).toMatchObject({ userName: 'u', password: 'p@ss', database: 'VAD10', tdsVersion: 0x74000004 });
    expect(() => parseLogin7(Buffer.alloc(40))).toThrow(TdsProtocolError);
  });
});

/** ALL_HEADERS as tedious sends it: total length, one transaction descriptor header. */
function allHeaders(): Buffer {
  const b = Buffer.alloc(22);
  b.writeUInt32LE(22, 0);
  b.writeUInt32LE(18, 4);
  b.writeUInt16LE(2, 8);
  b.writeUInt32LE(1, 18);
  return b;
}

function bVarchar(s: string): Buffer {
  return Buffer.concat([Buffer.from([s.length]), Buffer.from(s, 'utf16le')]);
}

describe('requests', () => {
  it('reads a SQL_BATCH after its ALL_HEADERS', () => {
    expect(parseSqlBatch(Buffer.concat([allHeaders(), Buffer.from('set nocount on', 'utf16le')]))).toBe('set nocount on');
  });

  it('reads an sp_executesql RPC: nvarchar, PLP nvarchar(max), varchar in CP1252, int, null', () => {
    const collation = Buffer.from([0x09, 0x04, 0xd0, 0x00, 0x34]);
    const u16 = (n: number) => {
      const b = Buffer.alloc(2);
      b.writeUInt16LE(n);
      return b;
    };
    const statement = 'SELECT 1';
    const longText = 'x'.repeat(5000);
    const plp = Buffer.alloc(8 + 4);
    plp.writeBigUInt64LE(0xfffffffffffffffen, 0);
    plp.writeUInt32LE(longText.length * 2, 8);
    const payload = Buffer.concat([
      allHeaders(),
      Buffer.from([0xff, 0xff, 10, 0, 0, 0]), // ProcID 10 = sp_executesql, no option flags
      bVarchar('@statement'),
      Buffer.from([0, TYPE_ID.NVARCHAR]),
      u16(8000),
      collation,
      u16(statement.length * 2),
      Buffer.from(statement, 'utf16le'),
      bVarchar('@params'),
      Buffer.from([0, TYPE_ID.NVARCHAR]),
      u16(0xffff),
      collation,
      plp,
      Buffer.from(longText, 'utf16le'),
      Buffer.alloc(4),
      bVarchar('@codigo_deposito'),
      Buffer.from([0, TYPE_ID.BIGVARCHAR]),
      u16(10),
      collation,
      u16(4),
      iconv.encode('PIÑA', 'cp1252'),
      bVarchar('@n'),
      Buffer.from([0, TYPE_ID.INTN, 4, 4]),
      Buffer.from([0x2a, 0, 0, 0]),
      bVarchar('@nothing'),
      Buffer.from([0, TYPE_ID.BIGVARCHAR]),
      u16(10),
      collation,
      u16(0xffff),
    ]);
    const rpc = parseRpc(payload);
    expect(rpc.procedure).toBe('sp_executesql');
    expect(rpc.params.map((p) => [p.name, p.value])).toEqual([
      ['@statement', 'SELECT 1'],
      ['@params', longText],
      ['@codigo_deposito', 'PIÑA'],
      ['@n', 42],
      ['@nothing', null],
    ]);
    expect(() => parseRpc(payload.subarray(0, payload.length - 3))).toThrow(TdsProtocolError);
  });

  it('names an unknown parameter type as SQL Server would (8009)', () => {
    const payload = Buffer.concat([allHeaders(), Buffer.from([0xff, 0xff, 10, 0, 0, 0]), bVarchar('@x'), Buffer.from([0, 0xf1, 0])]);
    expect(() => parseRpc(payload)).toThrow(/data type 0xf1 is unknown/);
  });
});

describe('tokens', () => {
  it('DONE-family tokens are 13 bytes: status, curcmd, 64-bit row count', () => {
    const t = doneInProcToken(DONE_STATUS.MORE | DONE_STATUS.COUNT, 0xc1, 40_000);
    expect(t.length).toBe(13);
    expect(t.readUInt8(0)).toBe(TOKEN.DONEINPROC);
    expect(t.readUInt16LE(1)).toBe(0x11);
    expect(t.readBigUInt64LE(5)).toBe(40_000n);
  });

  it('ERROR carries number, state, class, message, server, procedure and line', () => {
    const t = errorToken({ number: 18456, state: 1, class: 14, message: "Login failed for user 'x'.", serverName: 'S', lineNumber: 1 });
    expect(t.readUInt8(0)).toBe(TOKEN.ERROR);
    expect(t.readUInt16LE(1)).toBe(t.length - 3);
    expect(t.readUInt32LE(3)).toBe(18456);
    expect(t.readUInt16LE(9)).toBe("Login failed for user 'x'.".length);
  });

  it('LOGINACK carries the TDS version big-endian; the collation ENVCHANGE is SQL_Latin1_General_CP1_CI_AS', () => {
    expect(loginAckToken().readUInt32BE(4)).toBe(0x74000004);
    expect(envChangeCollation().toString('hex')).toBe('e30800' + '07' + '05' + '0904d00034' + '00');
  });

  it('COLMETADATA and ROW of the inventory query match its 13 columns', () => {
    const meta = colMetadataToken(INVENTARIO_COLUMNS);
    expect(meta.readUInt8(0)).toBe(TOKEN.COLMETADATA);
    expect(meta.readUInt16LE(1)).toBe(13);
    // As vad10-database.ts hands a row over: exact decimal text of the column's scale.
    const cells = ['000123', null, 'AZÚCAR MONTAÑA 1KG', '000003', 'VÍVERES', null, null, null, null, 'UND', '-2.000', '1.2300', null];
    const token = rowToken(INVENTARIO_COLUMNS, cells);
    expect(token.readUInt8(0)).toBe(TOKEN.ROW);
    expect(token.subarray(1, 9).toString('hex')).toBe(`0600${Buffer.from('000123').toString('hex')}`);
    expect(token.subarray(9, 11).toString('hex')).toBe('ffff'); // codigo_barras NULL
    expect(() =>
      rowToken(
        INVENTARIO_COLUMNS,
        cells.map((c, i) => (i === 2 ? null : c)),
      ),
    ).toThrow(/NOT NULL/);
  });
});
