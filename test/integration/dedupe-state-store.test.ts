/**
 * The ventas dedupe's state store across restarts (processors/runtime/state-store.ts): a
 * restart of the same group on the same FLUXION_STATE_DIR reads only the tail of
 * pos.ventas.state past its checkpoint, still recognises the lines read before it, and keeps
 * the partition's stream time, which that tail alone does not give back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTopicCodec, type TopicCodec } from '../../core/avro/topic-codec.ts';
import type { Venta, VentaLinea } from '../../core/records.ts';
import { counterValue, createRuntimeMetrics } from '../../processors/runtime/metrics.ts';
import { createDedupeSpec, type VentaRaw } from '../../processors/ventas-dedupe.ts';
import { ventaKey } from '../../processors/ventas-dedupe-rules.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';
import { processorConfig, runCountingLoads, waitForGroupEnd } from '../../fixtures/processor-run.ts';
import { testLogger, uniqueId } from '../../fixtures/services.ts';

const PARTITIONS = 3;
const STORES = ['tienda_01', 'tienda_02', 'tienda_03', 'tienda_04', 'tienda_05', 'tienda_06'];
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const RUN_ID = '1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b';
let pipeline: TestPipeline;
let codec: TopicCodec<VentaRaw>;
const dirs: string[] = [];

beforeAll(async () => {
  pipeline = await createTestPipeline(PARTITIONS);
  codec = await createTopicCodec<VentaRaw>(pipeline.registry, 'pos.ventas.raw', `${pipeline.prefix}pos.ventas.raw`);
});

afterAll(async () => {
  await pipeline?.cleanup();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** `invoices` invoices of 3 lines of a store, numbered from `prefix`. */
function lines(ubicacion: string, prefix: string, invoices: number): VentaLinea[] {
  return Array.from({ length: invoices * 3 }, (_, i) => ({
    ubicacion_id: ubicacion,
    fecha: '2026-11-27',
    numero_factura: `${prefix}-${String(Math.floor(i / 3) + 1).padStart(4, '0')}`,
    linea: (i % 3) + 1,
    fecha_hora: new Date(Date.UTC(2026, 10, 27, 12, i)),
    producto_id: String(100 + i).padStart(6, '0'),
    cantidad: '2.000',
    precio_unitario: '1.2000',
    descuento: '0.0000',
    total: '2.4000',
    caja: '03',
    anulada: false,
  }));
}

async function publish(batch: VentaLinea[], extractedAt: number): Promise<void> {
  const producer = await pipeline.kafka.producer();
  await producer.send(
    codec.topic,
    batch.map((linea) => ({
      ubicacionId: linea.ubicacion_id,
      key: `${linea.ubicacion_id}/${linea.numero_factura}`,
      value: codec.encode({ linea, extracted_at: new Date(extractedAt), run_id: RUN_ID }),
    })),
  );
  await producer.disconnect();
}

/** A dedupe (retention 1 day) whose state loads are counted (records of pos.ventas.state handed to `load`). */
async function startCounted(group: string, stateDir: string) {
  const metrics = createRuntimeMetrics();
  const spec = await createDedupeSpec({
    kafka: pipeline.kafka,
    registry: pipeline.registry,
    logger: testLogger,
    topicPrefix: pipeline.prefix,
    partitions: PARTITIONS,
    config: processorConfig({ stateDir, dedupeRetentionDays: 1 }),
    metrics,
  });
  const run = runCountingLoads(spec, pipeline, metrics, group);
  const counter = (name: string) => metrics.registry.getSingleMetric(name) as never;
  const decisions = async () =>
    Object.fromEntries(
      await Promise.all(
        ['new', 'updated', 'duplicate'].map(async (d) => [d, await counterValue(counter('fluxion_dedupe_lines_total'), { decision: d })]),
      ),
    );
  return { ...run, decisions, expired: () => counterValue(counter('fluxion_dedupe_expired_total')) };
}

const inputs = () => [`${pipeline.prefix}pos.ventas.raw`];

async function ventasAt(extractedAt: number): Promise<Array<[string, string, number]>> {
  const got = await pipeline.read<Venta>('pos.ventas', { idleMs: 1_500 });
  return got
    .filter((r) => r.decoded.extracted_at.getTime() === extractedAt)
    .map((r) => [r.key!.toString(), r.decoded.op, r.decoded.first_seen_at.getTime()] as [string, string, number])
    .sort();
}

/** The state topic's last record per key: true when it is a tombstone. */
async function tombstoned(): Promise<Map<string, boolean>> {
  const state = await pipeline.read('pos.ventas.state', { raw: true, idleMs: 1_000 });
  return new Map(state.map((r) => [r.key!.toString(), r.value === null]));
}

describe('dedupe state store', () => {
  it('a restart on the same state directory loads only the changelog tail, dedupes the lines read before it and keeps its stream time', {
    timeout: 240_000,
  }, async () => {
    const group = uniqueId('dedupe-store');
    const stateDir = mkdtempSync(join(tmpdir(), 'dedupe-state-'));
    dirs.push(stateDir);
    const h0 = Math.floor((Date.now() - 3 * DAY) / HOUR) * HOUR;
    // `old` lines of tienda_01 expire (1 day) in the first minutes of hour h0 + 24.
    const old = lines('tienda_01', 'OLD', 2);
    const bulk = STORES.flatMap((s) => lines(s, 'BULK', 20));
    const one = (invoice: string) => lines('tienda_01', invoice, 1)[0]!;
    const [b, e, c, d] = [one('B'), one('E'), one('C'), one('D')];

    let running = await startCounted(group, stateDir);
    const steps: Array<[VentaLinea[], number]> = [
      [old, h0 + 5 * 60_000],
      [bulk, h0 + 12 * HOUR],
      // Enters hour h0 + 24 (a sweep: `old` is 3 minutes short of the window then).
      [[b], h0 + DAY + 2 * 60_000],
      // A late read (another run committing late): its state record is the changelog's last,
      // with a last_seen_at an hour behind the partition's stream time.
      [[e], h0 + DAY - 30 * 60_000],
    ];
    for (const [batch, at] of steps) {
      await publish(batch, at);
      await waitForGroupEnd(pipeline.kafka, group, inputs(), 60_000, false);
    }
    await running.stop();
    expect(await running.finished).toBeUndefined();
    expect(await running.decisions()).toEqual({ new: old.length + bulk.length + 2, updated: 0, duplicate: 0 });
    const stateRecords = (await pipeline.read('pos.ventas.state', { raw: true, idleMs: 1_000 })).length;
    expect(stateRecords).toBe(old.length + bulk.length + 2);

    // Restart: only the tail past the checkpoint is loaded (per partition, the state records
    // of its last transaction: at most a batch of 50, one on tienda_01's), yet the bulk read
    // 12 h before the restart is recognised, and a corrected line keeps the first_seen_at
    // recorded before it.
    running = await startCounted(group, stateDir);
    const second = h0 + DAY + 10 * 60_000;
    const corrected = { ...bulk[7]!, descuento: '0.2400', total: '2.1600' };
    const bulk2 = bulk.map((l, i) => (i === 7 ? corrected : l));
    await publish([...bulk2, c], second);
    await waitForGroupEnd(pipeline.kafka, group, inputs(), 60_000, false);
    expect(running.loaded()).toBeLessThanOrEqual(2 * 50 + 1);
    expect(running.loaded()).toBeLessThan(stateRecords / 3);
    expect(await running.decisions()).toEqual({ new: 1, updated: 1, duplicate: bulk.length - 1 });
    expect(await ventasAt(second)).toEqual(
      [
        [ventaKey(c), 'c', second],
        [ventaKey(corrected), 'u', h0 + 12 * HOUR],
      ].sort(),
    );
    // `old` is past the window now, but stream time is still in the hour of the last sweep
    // (h0 + 24, kept by the store): no sweep yet. Rebuilt from the tail alone (e's
    // last_seen_at, hour h0 + 23), stream time would have entered a new hour and swept here.
    const before = await tombstoned();
    expect(old.map((l) => before.get(ventaKey(l)))).toEqual(old.map(() => false));
    expect(await running.expired()).toBe(0);

    // The next hour sweeps: `old` is tombstoned, scanned from the store on disk.
    await publish([d], h0 + DAY + HOUR + 5 * 60_000);
    await waitForGroupEnd(pipeline.kafka, group, inputs(), 60_000, false);
    await running.stop();
    expect(await running.finished).toBeUndefined();
    const after = await tombstoned();
    expect(old.map((l) => after.get(ventaKey(l)))).toEqual(old.map(() => true));
    expect([...bulk2, b, e, c, d].filter((l) => after.get(ventaKey(l)) !== false)).toEqual([]);
    expect(await running.expired()).toBe(old.length);

    // The same group on a new directory: no checkpoint, so the whole changelog is read, and
    // a re-read of every line still known is dropped.
    const stateNow = (await pipeline.read('pos.ventas.state', { raw: true, idleMs: 1_000 })).length;
    const freshDir = mkdtempSync(join(tmpdir(), 'dedupe-state-fresh-'));
    dirs.push(freshDir);
    running = await startCounted(group, freshDir);
    const third = h0 + DAY + HOUR + 10 * 60_000;
    await publish([...bulk2, b, e, c, d], third);
    await waitForGroupEnd(pipeline.kafka, group, inputs(), 60_000, false);
    await running.stop();
    expect(await running.finished).toBeUndefined();
    expect(running.loaded()).toBe(stateNow);
    expect(await running.decisions()).toEqual({ new: 0, updated: 0, duplicate: bulk.length + 4 });
    expect(await ventasAt(third)).toEqual([]);
  });
});
