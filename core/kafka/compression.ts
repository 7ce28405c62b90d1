/**
 * Record-batch compression. kafkajs has gzip built in and only a hook for the others; zstd
 * comes from Node's own zlib (Node >= 23.8), so no native npm package is needed. The codec is
 * registered when this module loads, and core/kafka/connection.ts imports it: every producer and
 * every consumer in Fluxion (processors, sink, notifier, tests' readers) can then write and
 * read zstd batches. Which topic is compressed, and how, is declared in core/topics.ts.
 */
import { zstdCompress, zstdDecompress, constants } from 'node:zlib';
import { promisify } from 'node:util';
import kafkajs from 'kafkajs';

// kafkajs is CommonJS and its codec table is not a named export Node can see.
const { CompressionCodecs, CompressionTypes } = kafkajs;

export type Compression = 'none' | 'gzip' | 'zstd';

/** zstd level 3 (its default): bench/compression.ts measured it against gzip and level 1. */
export const ZSTD_LEVEL = 3;

const compress = promisify(zstdCompress);
const decompress = promisify(zstdDecompress);

/** kafkajs's codec interface: compress gets its Encoder (the batch's records), decompress the bytes. */
export const zstdCodec = () => ({
  compress: (encoder: { buffer: Buffer }) => compress(encoder.buffer, { params: { [constants.ZSTD_c_compressionLevel]: ZSTD_LEVEL } }),
  decompress: (buffer: Buffer) => decompress(buffer),
});

CompressionCodecs[CompressionTypes.ZSTD] = zstdCodec;

export function kafkajsCompression(c: Compression): kafkajs.CompressionTypes {
  return c === 'zstd' ? CompressionTypes.ZSTD : c === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
}
