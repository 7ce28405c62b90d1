/**
 * The dedupe's entries as its state store holds them (encodeEntry/decodeEntry), and what the
 * spec does with a store value it cannot read: the record fails and the store is unchanged.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createTopicCodec } from '../../core/avro/topic-codec.ts';
import { loadConfig } from '../../cli/config.ts';
import type { KafkaClient } from '../../core/kafka/client.ts';
import { partitionForUbicacion } from '../../core/kafka/partitioning.ts';
import { createLogger } from '../../core/logger.ts';
import type { VentaLinea } from '../../core/records.ts';
import type { FluxionRegistry } from '../../core/registry.ts';
import { createRuntimeMetrics } from '../../processors/runtime/metrics.ts';
import { memoryStateStore, StateStoreError, type StateStore } from '../../processors/runtime/state-store.ts';
import type { ProcessorContext, StreamProcessorSpec } from '../../processors/runtime/stream-processor.ts';
import { createDedupeSpec, type VentaRaw } from '../../processors/ventas-dedupe.ts';
import { decodeEntry, encodeEntry, ventaKey } from '../../processors/ventas-dedupe-rules.ts';

const PARTITIONS = 3;
const HOUR = 3_600_000;
const registry = {
  lookupId: async () => 11,
  schemaById: async (id: number) => Promise.reject(new Error(`unknown schema id ${id}`)),
} as unknown as FluxionRegistry;
const kafka = {
  admin: async () => ({
    describeTopics: async (names: string[]) => names.map((name) => ({ name, partitions: PARTITIONS, config: {} })),
    disconnect: async () => undefined,
  }),
} as unknown as KafkaClient;

describe('dedupe entry encoding', () => {
  it('decodes what it encodes, in 45 bytes for instants up to 2059', () => {
    const fingerprint = fc.stringMatching(/^[A-Za-z0-9_-]{27}$/);
    const instant = fc.integer({ min: -8.64e15, max: 8.64e15 });
    fc.assert(
      fc.property(fingerprint, instant, instant, (f, first, last) => {
        const text = encodeEntry({ fingerprint: f, first_seen_at: first, last_seen_at: last });
        expect(decodeEntry(text)).toEqual({ fingerprint: f, first_seen_at: first, last_seen_at: last });
        expect(Buffer.byteLength(text)).toBeLessThanOrEqual(27 + 2 + 2 * 12);
      }),
    );
    // Instants up to 2059 take 8 base-36 digits: 45 bytes (with its key, about 75 a line).
    expect(
      encodeEntry({ fingerprint: 'a'.repeat(27), first_seen_at: Date.UTC(2026, 0, 1), last_seen_at: Date.UTC(2059, 0, 1) }),
    ).toHaveLength(45);
  });

  it('refuses text that is not an entry', () => {
    for (const text of ['', 'abc', 'abc 1', 'abc 1 2 3', ' 1 2', 'abc 1.5 2', 'abc 1 x!', 'abc zzzzzzzzzzzzzz 1', '{"fingerprint":"abc"}'])
      expect(decodeEntry(text), text).toBeNull();
  });
});

const rawCodec = await createTopicCodec<VentaRaw>(registry, 'pos.ventas.raw');

describe('dedupe spec on a state store', () => {
  const line = (factura: string): VentaLinea => ({
    ubicacion_id: 'tienda_01',
    fecha: '2026-01-01',
    numero_factura: factura,
    linea: 1,
    fecha_hora: new Date(Date.UTC(2026, 0, 1, 9)),
    producto_id: '000123',
    cantidad: '2.000',
    precio_unitario: '1.2000',
    descuento: '0.0000',
    total: '2.4000',
    caja: '03',
    anulada: false,
  });
  const partition = partitionForUbicacion('tienda_01', PARTITIONS);
  const BASE = Date.UTC(2026, 0, 1, 10, 30);

  async function setUp(): Promise<{
    spec: StreamProcessorSpec<VentaRaw>;
    store: StateStore;
    feed: (l: VentaLinea, at: number) => Promise<unknown>;
  }> {
    const config = { ...loadConfig({}).processors, dedupeRetentionDays: 1 };
    const spec = (await createDedupeSpec({
      kafka,
      registry,
      logger: createLogger({ level: 'silent' }),
      topicPrefix: '',
      partitions: PARTITIONS,
      config,
      metrics: createRuntimeMetrics(),
    })) as StreamProcessorSpec<VentaRaw>;
    const store = memoryStateStore(partition);
    let offset = 0;
    const feed = async (l: VentaLinea, at: number) => {
      const record = {
        topic: 'pos.ventas.raw',
        partition,
        offset: String(offset++),
        key: null,
        value: rawCodec.encode({ linea: l, extracted_at: new Date(at), run_id: '1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b' }),
        headers: {},
        timestamp: '0',
      };
      const ctx: ProcessorContext = {
        topic: record.topic,
        partition,
        offset: record.offset,
        key: null,
        headers: {},
        timestamp: '0',
        store,
      };
      return spec.process(await spec.decode(record), ctx);
    };
    return { spec, store, feed };
  }

  it('fails a record whose line has an unreadable stored value, naming the key and the fix, and writes nothing', async () => {
    const { store, feed } = await setUp();
    store.put(`l/${ventaKey(line('F-1'))}`, 'not-an-entry');
    store.flush();
    const err = await feed(line('F-1'), BASE).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateStoreError);
    expect((err as Error).message).toMatch(/key "l\/tienda_01\/F-1\/1" cannot be read; stop the dedupe and wipe its state store/);
    expect(store.pending).toBe(0);
  });

  it('fails the record whose sweep meets an unreadable value, before writing its own line', async () => {
    const { store, feed } = await setUp();
    expect(await feed(line('F-1'), BASE)).toHaveLength(2);
    store.flush();
    store.put(`l/${ventaKey(line('F-0'))}`, 'x 1');
    store.flush();
    // Same hour: no sweep, the line is written.
    expect(await feed(line('F-2'), BASE + 60_000)).toHaveLength(2);
    store.flush();
    // A new hour: the sweep reads every line of the store and meets the bad one.
    const err = await feed(line('F-3'), BASE + HOUR).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateStoreError);
    expect((err as Error).message).toMatch(/key "l\/tienda_01\/F-0\/1" cannot be read/);
    expect(store.pending).toBe(0);
    expect(store.get(`l/${ventaKey(line('F-3'))}`)).toBeUndefined();
  });
});
