/** The zstd codec kafkajs is given (core/kafka/compression.ts) and the per-topic choice (core/topics.ts). */
import { describe, expect, it } from 'vitest';
import kafkajs from 'kafkajs';
import { kafkajsCompression, zstdCodec } from '../../core/kafka/compression.ts';
import { compressionFor, topicSpecs } from '../../core/topics.ts';

describe('zstd codec', () => {
  it('round-trips a batch and shrinks repetitive Avro-like bytes', async () => {
    const rows = Buffer.from(
      Array.from({ length: 2000 }, (_, i) => `01\u0000P${String(i).padStart(6, '0')}HARINA PAN 1KG 124.000 ${i % 97}`).join(''),
    );
    const codec = zstdCodec();
    const packed = await codec.compress({ buffer: rows });
    expect(packed.length).toBeLessThan(rows.length / 3);
    expect(packed.readUInt32LE(0)).toBe(0xfd2fb528); // the zstd frame magic
    expect(Buffer.compare(await codec.decompress(packed), rows)).toBe(0);
  });

  it('is registered in kafkajs for both directions once core/kafka is loaded', async () => {
    const registered = kafkajs.CompressionCodecs[kafkajs.CompressionTypes.ZSTD]();
    const back = await registered.decompress(await registered.compress({ buffer: Buffer.from('abc') }));
    expect(back.toString()).toBe('abc');
  });
});

describe('compressionFor', () => {
  it('compresses every Avro topic with zstd, with or without prefix, and no dead-letter topic', () => {
    expect(compressionFor('pos.inventario.snapshots')).toBe('zstd');
    expect(compressionFor('t1.pos.inventario.changes')).toBe('zstd');
    expect(compressionFor('t1.pos.inventario.snapshots.dlq')).toBe('none');
    expect(compressionFor('some.other.topic')).toBe('none');
    expect(kafkajsCompression('zstd')).toBe(kafkajs.CompressionTypes.ZSTD);
    for (const s of topicSpecs('p.')) expect(s.compression).toBe(s.avro ? 'zstd' : 'none');
  });
});
