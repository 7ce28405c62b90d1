/**
 * The ventas dedupe against the real broker and registry: hourly re-reads of a day dropped,
 * voided and corrected lines emitted once as u, poison records in the DLQ, memory rebuilt
 * from pos.ventas.state by a new instance, and lines past the retention window tombstoned.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createTopicCodec, type TopicCodec } from '../../core/avro/topic-codec.ts';
import { confluentFrame } from '../../core/avro/wire.ts';
import { partitionForUbicacion } from '../../core/kafka/partitioning.ts';
import type { OutgoingRecord } from '../../core/kafka/types.ts';
import type { Venta, VentaLinea } from '../../core/records.ts';
import { dlqTopic } from '../../core/topics.ts';
import { counterValue } from '../../processors/runtime/metrics.ts';
import { createDedupeSpec, type VentaRaw } from '../../processors/ventas-dedupe.ts';
import { ventaKey } from '../../processors/ventas-dedupe-rules.ts';
import { pipelineSupply, type TestPipeline } from '../../fixtures/pipeline.ts';
import { startProcessor, waitForGroupEnd, type RunningProcessor } from '../../fixtures/processor-run.ts';
import { uniqueId } from '../../fixtures/services.ts';

const PARTITIONS = 3;
const STORES = ['tienda_01', 'tienda_02', 'tienda_03', 'tienda_04', 'tienda_05', 'tienda_06'];
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const RUN_ID = '1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b';

let pipeline: TestPipeline | undefined;
const running: RunningProcessor[] = [];
// A clean pipeline per test, each set up while the test before runs.
const pipelines = pipelineSupply(PARTITIONS);
afterAll(() => pipelines.close());

afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
  await pipeline?.cleanup();
  pipeline = undefined;
});

async function setUp(): Promise<{ p: TestPipeline; codec: TopicCodec<VentaRaw>; input: string }> {
  const p = await pipelines.next();
  pipeline = p;
  const input = `${p.prefix}pos.ventas.raw`;
  return { p, codec: await createTopicCodec<VentaRaw>(p.registry, 'pos.ventas.raw', input), input };
}

async function start(p: TestPipeline, group: string, retentionDays = 7): Promise<RunningProcessor> {
  const r = await startProcessor(createDedupeSpec, p, group, {
    partitions: PARTITIONS,
    config: { dedupeRetentionDays: retentionDays },
    maxBatch: 50,
  });
  running.push(r);
  return r;
}

async function stop(r: RunningProcessor): Promise<void> {
  running.splice(running.indexOf(r), 1);
  await r.stop();
  expect(await r.finished).toBeUndefined();
}

/** A store's day: `invoices` invoices of 3 lines each (invoice numbers never repeat across days). */
function day(ubicacion: string, invoices = 4, fecha = '2026-11-27'): VentaLinea[] {
  return Array.from({ length: invoices * 3 }, (_, i) => ({
    ubicacion_id: ubicacion,
    fecha,
    numero_factura: `${fecha.replaceAll('-', '')}-${String(Math.floor(i / 3) + 1).padStart(4, '0')}`,
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

/** One read as the extractor publishes it: every line of it with the same extracted_at, placed by store. */
async function publish(
  p: TestPipeline,
  codec: TopicCodec<VentaRaw>,
  lines: VentaLinea[],
  extractedAt: Date,
  extra: OutgoingRecord[] = [],
): Promise<void> {
  const producer = await p.kafka.producer();
  await producer.send(codec.topic, [
    ...lines.map((linea) => ({
      ubicacionId: linea.ubicacion_id,
      key: `${linea.ubicacion_id}/${linea.numero_factura}`,
      value: codec.encode({ linea, extracted_at: extractedAt, run_id: RUN_ID }),
    })),
    ...extra,
  ]);
  await producer.disconnect();
}

async function ventasOf(p: TestPipeline): Promise<Array<{ key: string; partition: number; venta: Venta }>> {
  const got = await p.read<Venta>('pos.ventas', { idleMs: 1_500 });
  return got.map((r) => ({ key: r.key!.toString(), partition: r.partition, venta: r.decoded }));
}

const lineCounter = (r: RunningProcessor) => r.metrics.registry.getSingleMetric('fluxion_dedupe_lines_total') as never;
const decisions = async (r: RunningProcessor) =>
  Object.fromEntries(
    await Promise.all(['new', 'updated', 'duplicate'].map(async (d) => [d, await counterValue(lineCounter(r), { decision: d })])),
  );

describe('fluxion process dedupe', () => {
  it('emits each line once as c, drops the hourly re-reads, and emits a voided and a corrected line as u with their first_seen_at', {
    timeout: 90_000,
  }, async () => {
    const { p, codec, input } = await setUp();
    const group = uniqueId('dedupe');
    const lines = STORES.flatMap((s) => day(s));
    const t0 = new Date(Date.now() - 3 * HOUR);
    await publish(p, codec, lines, t0);
    const r = await start(p, group);
    await waitForGroupEnd(p.kafka, group, [input], 60_000, false);

    let ventas = await ventasOf(p);
    expect(ventas).toHaveLength(lines.length);
    expect(
      ventas.every(
        (v) => v.venta.op === 'c' && v.venta.first_seen_at.getTime() === t0.getTime() && v.venta.extracted_at.getTime() === t0.getTime(),
      ),
    ).toBe(true);
    expect(new Set(ventas.map((v) => v.key))).toEqual(new Set(lines.map(ventaKey)));
    for (const v of ventas) expect(v.partition).toBe(partitionForUbicacion(v.venta.linea.ubicacion_id, PARTITIONS));

    // The next hourly read carries the same day: nothing new.
    await publish(p, codec, lines, new Date(t0.getTime() + HOUR));
    await waitForGroupEnd(p.kafka, group, [input], 60_000, false);
    expect(await ventasOf(p)).toHaveLength(lines.length);

    // Then a line is voided and another corrected.
    const voided = { ...lines[4]!, anulada: true };
    const corrected = { ...lines[20]!, cantidad: '1.000', total: '1.2000' };
    const t2 = new Date(t0.getTime() + 2 * HOUR);
    await publish(
      p,
      codec,
      lines.map((l, i) => (i === 4 ? voided : i === 20 ? corrected : l)),
      t2,
    );
    await waitForGroupEnd(p.kafka, group, [input], 60_000, false);
    ventas = await ventasOf(p);
    const updates = ventas.filter((v) => v.venta.op === 'u');
    expect(ventas).toHaveLength(lines.length + 2);
    expect(updates.map((u) => u.key).sort()).toEqual([ventaKey(voided), ventaKey(corrected)].sort());
    for (const u of updates) {
      expect(u.venta.first_seen_at).toEqual(t0);
      expect(u.venta.extracted_at).toEqual(t2);
      expect(u.venta.fingerprint).not.toBe(ventas.find((v) => v.key === u.key && v.venta.op === 'c')!.venta.fingerprint);
    }
    expect(updates.find((u) => u.key === ventaKey(voided))!.venta.linea.anulada).toBe(true);
    expect(updates.find((u) => u.key === ventaKey(corrected))!.venta.linea).toMatchObject({ cantidad: '1.000', total: '1.2000' });
    expect(await decisions(r)).toEqual({ new: lines.length, updated: 2, duplicate: 2 * lines.length - 2 });
    expect((await p.read(dlqTopic('pos.ventas.raw'), { raw: true, idleMs: 500 })).length).toBe(0);
  });

  it('sends poison records to pos.ventas.raw.dlq with their bytes and the reason, and keeps going', { timeout: 90_000 }, async () => {
    const { p, codec, input } = await setUp();
    const group = uniqueId('dedupe');
    const garbage = Buffer.from('not avro at all');
    const unknownId = confluentFrame(987_654, Buffer.from([2, 4, 6]));
    const zeroLine = codec.encode({ linea: { ...day('tienda_02')[0]!, linea: 0 }, extracted_at: new Date(), run_id: RUN_ID });
    const poison = (value: Buffer): OutgoingRecord => ({ ubicacionId: 'tienda_02', key: 'tienda_02/20261127-0001', value });
    const before = STORES.flatMap((s) => day(s, 2));
    const after = STORES.flatMap((s) => day(s, 4).slice(6));
    const now = new Date(Date.now() - HOUR);
    await publish(p, codec, before, now, [poison(garbage), poison(unknownId), poison(zeroLine)]);
    await publish(p, codec, after, now);
    const r = await start(p, group);
    await waitForGroupEnd(p.kafka, group, [input], 60_000, false);

    const dlq = await p.read(dlqTopic('pos.ventas.raw'), { raw: true, idleMs: 1_000 });
    expect(dlq.map((d) => d.value)).toEqual([garbage, unknownId, zeroLine]);
    expect(dlq.map((d) => d.headers.error)).toEqual([
      expect.stringMatching(/magic byte/),
      expect.stringMatching(/schema id 987654/),
      expect.stringMatching(/tienda_02\/20261127-0001\/0: linea\.linea 0 must be a line number from 1/),
    ]);
    for (const d of dlq) {
      expect(d.headers).toMatchObject({ source_topic: input, source_partition: String(partitionForUbicacion('tienda_02', PARTITIONS)) });
      expect(d.headers.source_offset).toMatch(/^\d+$/);
      expect(d.key!.toString()).toBe('tienda_02/20261127-0001');
    }
    expect(dlq.map((d) => d.headers.error_class)).toEqual(['ValidationError', 'SchemaError', 'ValidationError']);
    const ventas = await ventasOf(p);
    expect(ventas.map((v) => v.key).sort()).toEqual([...before, ...after].map(ventaKey).sort());
    expect(await counterValue(r.metrics.recordsDlq)).toBe(3);
  });

  it('rebuilds its memory from pos.ventas.state: a new instance of the group still recognises duplicates', {
    timeout: 120_000,
  }, async () => {
    const { p, codec, input } = await setUp();
    const group = uniqueId('dedupe');
    const lines = STORES.flatMap((s) => day(s, 3));
    const t0 = new Date(Date.now() - 5 * HOUR);
    await publish(p, codec, lines, t0);
    const first = await start(p, group);
    await waitForGroupEnd(p.kafka, group, [input], 60_000, false);
    await stop(first);
    expect(await ventasOf(p)).toHaveLength(lines.length);

    // While nothing runs: a re-read with two more invoices of tienda_03 and one corrected line.
    const added = day('tienda_03', 5).slice(9);
    const corrected = { ...lines[7]!, descuento: '0.2400', total: '2.1600' };
    await publish(p, codec, [...lines.map((l, i) => (i === 7 ? corrected : l)), ...added], new Date(t0.getTime() + HOUR));
    const second = await start(p, group);
    await waitForGroupEnd(p.kafka, group, [input], 60_000, false);

    const ventas = await ventasOf(p);
    const fresh = ventas.filter((v) => v.venta.extracted_at.getTime() === t0.getTime() + HOUR);
    expect(ventas).toHaveLength(lines.length + added.length + 1);
    expect(
      fresh
        .filter((v) => v.venta.op === 'c')
        .map((v) => v.key)
        .sort(),
    ).toEqual(added.map(ventaKey).sort());
    expect(fresh.filter((v) => v.venta.op === 'u').map((v) => [v.key, v.venta.first_seen_at.getTime()])).toEqual([
      [ventaKey(corrected), t0.getTime()],
    ]);
    expect(await decisions(second)).toEqual({ new: added.length, updated: 1, duplicate: lines.length - 1 });
  });

  it('forgets lines not read for the retention window: tombstones on pos.ventas.state, new again when read later', {
    timeout: 90_000,
  }, async () => {
    const { p, codec, input } = await setUp();
    const group = uniqueId('dedupe');
    const now = Date.now() - 10 * 60_000;
    // Same stores (so same partitions) for every read: the newer reads move stream time.
    const old = STORES.flatMap((s) => day(s, 2, '2026-11-24'));
    const recent = STORES.flatMap((s) => day(s, 2, '2026-11-26'));
    const today = STORES.flatMap((s) => day(s, 2));
    await publish(p, codec, old, new Date(now - 3 * DAY - HOUR));
    await publish(p, codec, recent, new Date(now - DAY));
    await publish(p, codec, today, new Date(now));
    const r = await start(p, group, 2);
    await waitForGroupEnd(p.kafka, group, [input], 60_000, false);

    const state = await p.read('pos.ventas.state', { idleMs: 1_500 });
    const last = new Map(state.map((s) => [s.key!.toString(), s]));
    const keyOf = (l: VentaLinea) => ventaKey(l);
    expect(old.map(keyOf).filter((k) => last.get(k)?.value !== null)).toEqual([]);
    expect([...recent, ...today].map(keyOf).filter((k) => !last.get(k)?.value)).toEqual([]);
    for (const s of state) expect(s.partition).toBe(partitionForUbicacion(s.key!.toString().split('/')[0]!, PARTITIONS));
    expect(await counterValue(r.metrics.registry.getSingleMetric('fluxion_dedupe_expired_total') as never)).toBe(old.length);

    // Forgotten means new: a late re-read of the old day is emitted again as c.
    const reread = new Date(now + 60_000);
    await publish(p, codec, old.slice(0, 3), reread);
    await waitForGroupEnd(p.kafka, group, [input], 60_000, false);
    const ventas = await ventasOf(p);
    expect(ventas).toHaveLength(old.length + recent.length + today.length + 3);
    const again = ventas.filter((v) => v.venta.extracted_at.getTime() === reread.getTime());
    expect(again.map((v) => [v.key, v.venta.op, v.venta.first_seen_at.getTime()])).toEqual(
      old.slice(0, 3).map((l) => [ventaKey(l), 'c', reread.getTime()]),
    );
  });
});
