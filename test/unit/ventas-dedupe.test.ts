/**
 * The dedupe processor's spec without services: a fake registry and topic layout, records fed
 * to decode/process as the runtime would, and the state topic simulated as the list of state
 * records written. The property at the heart of it: a run restarted anywhere (state read back
 * from that list, compacted or not) writes exactly what an uninterrupted run writes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../cli/config.ts';
import { ValidationError } from '../../core/errors.ts';
import type { ConsumedRecord, KafkaClient } from '../../core/kafka/types.ts';
import { partitionForUbicacion } from '../../core/kafka/partitioning.ts';
import { createLogger } from '../../core/logger.ts';
import type { Venta, VentaLinea } from '../../core/records.ts';
import type { FluxionRegistry } from '../../core/registry.ts';
import { createTopicCodec } from '../../core/avro/topic-codec.ts';
import { counterValue, createRuntimeMetrics, type RuntimeMetrics } from '../../processors/runtime/metrics.ts';
import type { Output, StreamProcessorSpec } from '../../processors/runtime/stream-processor.ts';
import { createDedupeSpec, type VentaRaw, type VentaStateRecord } from '../../processors/ventas-dedupe.ts';
import { ventaKey } from '../../processors/ventas-dedupe-rules.ts';

const PARTITIONS = 3;
const STORES = ['tienda_01', 'tienda_02', 'tienda_03', 'tienda_04', 'tienda_05'];
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const logger = createLogger({ level: 'silent' });
const SCHEMA_IDS: Record<string, number> = { 'pos.ventas.raw-value': 11, 'pos.ventas-value': 12, 'pos.ventas.state-value': 13 };
const registry = {
  lookupId: async (subject: string) => SCHEMA_IDS[subject] ?? 99,
  schemaById: async (id: number) => {
    throw new Error(`unknown schema id ${id}`);
  },
} as unknown as FluxionRegistry;
const kafka = {
  admin: async () => ({
    describeTopics: async (names: string[]) => names.map((name) => ({ name, partitions: PARTITIONS, config: {} })),
    disconnect: async () => undefined,
  }),
} as unknown as KafkaClient;

const rawCodec = await createTopicCodec<VentaRaw>(registry, 'pos.ventas.raw');
const ventaCodec = await createTopicCodec<Venta>(registry, 'pos.ventas');
const stateCodec = await createTopicCodec<VentaStateRecord>(registry, 'pos.ventas.state');

async function dedupe(retentionDays = 7, metrics: RuntimeMetrics = createRuntimeMetrics()): Promise<StreamProcessorSpec<VentaRaw>> {
  return (await createDedupeSpec({
    kafka,
    registry,
    logger,
    topicPrefix: '',
    partitions: PARTITIONS,
    config: { ...loadConfig({}).processors, dedupeRetentionDays: retentionDays },
    metrics,
  })) as StreamProcessorSpec<VentaRaw>;
}

const BASE = Date.UTC(2026, 0, 1, 10, 30);
const line = (ubicacion: string, factura: string, n: number, extra: Partial<VentaLinea> = {}): VentaLinea => ({
  ubicacion_id: ubicacion,
  fecha: '2026-01-01',
  numero_factura: factura,
  linea: n,
  fecha_hora: new Date(BASE - HOUR),
  producto_id: '000123',
  cantidad: '2.000',
  precio_unitario: '1.2000',
  descuento: '0.0000',
  total: '2.4000',
  caja: '03',
  anulada: false,
  ...extra,
});

let offset = 0;
function rawRecord(
  linea: VentaLinea,
  extractedAt: number,
  partition = partitionForUbicacion(linea.ubicacion_id, PARTITIONS),
): ConsumedRecord {
  const value = rawCodec.encode({ linea, extracted_at: new Date(extractedAt), run_id: '1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b' });
  return {
    topic: 'pos.ventas.raw',
    partition,
    offset: String(offset++),
    key: Buffer.from(`${linea.ubicacion_id}/${linea.numero_factura}`),
    value,
    headers: {},
    timestamp: '0',
  };
}

/** What the runtime does with one record: outputs, or the DLQ on a throw. */
async function feed(spec: StreamProcessorSpec<VentaRaw>, record: ConsumedRecord): Promise<Output[]> {
  try {
    const input = await spec.decode(record);
    return await spec.process(input, {
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      key: record.key,
      headers: {},
      timestamp: '0',
    });
  } catch (err) {
    return [{ topic: 'pos.ventas.raw.dlq', ubicacionId: '', key: record.key, value: Buffer.from((err as Error).message) }];
  }
}

async function feedAll(spec: StreamProcessorSpec<VentaRaw>, records: ConsumedRecord[]): Promise<Output[]> {
  const out: Output[] = [];
  for (const r of records) out.push(...(await feed(spec, r)));
  return out;
}

/** Loads a state log (the state outputs written so far) as the runtime would read it from the topic. */
async function load(spec: StreamProcessorSpec<VentaRaw>, log: Output[], compacted = false): Promise<void> {
  let records = log.filter((o) => o.topic === 'pos.ventas.state');
  if (compacted) {
    // As the log cleaner leaves it at worst: each key's last record where it was written, tombstones gone.
    const last = new Map(records.map((o, i) => [String(o.key), i]));
    records = records.filter((o, i) => last.get(String(o.key)) === i && o.value !== null);
  }
  let n = 0;
  for (const o of records) {
    await spec.state!.load({
      topic: 'pos.ventas.state',
      partition: partitionForUbicacion(o.ubicacionId, PARTITIONS),
      offset: String(n++),
      key: Buffer.from(String(o.key)),
      value: o.value,
      headers: {},
      timestamp: '0',
    });
  }
}

const ventas = async (out: Output[]) =>
  Promise.all(
    out
      .filter((o) => o.topic === 'pos.ventas')
      .map(async (o) => ({ key: String(o.key), ubicacionId: o.ubicacionId, ...(await ventaCodec.decode(o.value)) })),
  );
const stateOf = (out: Output[]) => out.filter((o) => o.topic === 'pos.ventas.state');

describe('dedupe spec', () => {
  it('emits c once per line, drops re-reads, emits u for a voided line, and places everything by store', async () => {
    const spec = await dedupe();
    const day = STORES.flatMap((s) => [line(s, 'F-1', 1), line(s, 'F-1', 2), line(s, 'F-2', 1)]);
    const first = await feedAll(
      spec,
      day.map((l) => rawRecord(l, BASE)),
    );
    const again = await feedAll(
      spec,
      day.map((l) => rawRecord(l, BASE + HOUR)),
    );
    const voided = await feed(spec, rawRecord(line('tienda_02', 'F-1', 2, { anulada: true }), BASE + 2 * HOUR));

    const created = await ventas(first);
    expect(created.map((v) => v.op)).toEqual(day.map(() => 'c'));
    expect(created.map((v) => v.key)).toEqual(day.map(ventaKey));
    expect(created.every((v) => v.ubicacionId === v.linea.ubicacion_id && v.first_seen_at.getTime() === BASE)).toBe(true);
    expect(stateOf(first)).toHaveLength(day.length);
    expect(again).toEqual([]);
    const [u] = await ventas(voided);
    expect(u).toMatchObject({
      op: 'u',
      key: 'tienda_02/F-1/2',
      ubicacionId: 'tienda_02',
      first_seen_at: new Date(BASE),
      extracted_at: new Date(BASE + 2 * HOUR),
      linea: { anulada: true },
    });
    expect(stateOf(voided).map((o) => [o.key, o.ubicacionId])).toEqual([['tienda_02/F-1/2', 'tienda_02']]);
    const state = await stateCodec.decode(stateOf(voided)[0]!.value);
    expect(state).toMatchObject({ ubicacion_id: 'tienda_02', first_seen_at: new Date(BASE), last_seen_at: new Date(BASE + 2 * HOUR) });
  });

  it("rewrites a duplicate's state only once its read is 6 h past the recorded one", async () => {
    const spec = await dedupe();
    const l = line('tienda_01', 'F-9', 1);
    await feed(spec, rawRecord(l, BASE));
    const hourly = await feedAll(
      spec,
      [1, 2, 3, 4, 5].map((h) => rawRecord(l, BASE + h * HOUR)),
    );
    expect(hourly).toEqual([]);
    const sixth = await feed(spec, rawRecord(l, BASE + 6 * HOUR));
    expect(sixth).toHaveLength(1);
    expect(await stateCodec.decode(sixth[0]!.value)).toMatchObject({
      first_seen_at: new Date(BASE),
      last_seen_at: new Date(BASE + 6 * HOUR),
    });
  });

  it('tombstones lines not read for the window when stream time enters a new hour, placed by store', async () => {
    const metrics = createRuntimeMetrics();
    const spec = await dedupe(2, metrics);
    const p = partitionForUbicacion('tienda_01', PARTITIONS);
    const sameP = STORES.find((s) => s !== 'tienda_01' && partitionForUbicacion(s, PARTITIONS) === p);
    const old = [line('tienda_01', 'F-1', 1), line('tienda_01', 'F-1', 2), ...(sameP ? [line(sameP, 'F-7', 1)] : [])];
    await feedAll(
      spec,
      old.map((l) => rawRecord(l, BASE)),
    );
    await feed(spec, rawRecord(line('tienda_01', 'F-5', 1), BASE + 2 * DAY - 10 * 60_000));
    // Past the window, but in the hour of the last sweep: not swept yet.
    expect(stateOf(await feed(spec, rawRecord(line('tienda_01', 'F-6', 1), BASE + 2 * DAY + 1))).filter((o) => o.value === null)).toEqual(
      [],
    );
    const swept = await feed(spec, rawRecord(line('tienda_01', 'F-8', 1), BASE + 2 * DAY + HOUR));
    const tombstones = stateOf(swept).filter((o) => o.value === null);
    expect(tombstones.map((o) => [o.key, o.ubicacionId]).sort()).toEqual(old.map((l) => [ventaKey(l), l.ubicacion_id]).sort());
    expect(await counterValue(metrics.registry.getSingleMetric('fluxion_dedupe_expired_total') as never)).toBe(old.length);
    // Lines of other partitions are left alone (their stream time did not move).
    const other = STORES.find((s) => partitionForUbicacion(s, PARTITIONS) !== p)!;
    expect(stateOf(await feed(spec, rawRecord(line(other, 'F-1', 1), BASE)))).toHaveLength(1);
  });

  it('decides a line past the window as new even before the sweep forgot it', async () => {
    const spec = await dedupe(1);
    const l = line('tienda_01', 'F-1', 1);
    const hour = Math.floor(BASE / HOUR) * HOUR;
    await feed(spec, rawRecord(l, hour + 30 * 60_000));
    // Enters a new hour: sweeps, but F-1/1 is 20 minutes short of the window then.
    expect(
      stateOf(await feed(spec, rawRecord(line('tienda_01', 'F-2', 1), hour + DAY + 10 * 60_000))).filter((o) => o.value === null),
    ).toEqual([]);
    const again = await feed(spec, rawRecord(l, hour + DAY + 50 * 60_000));
    expect(await ventas(again)).toMatchObject([{ op: 'c', first_seen_at: new Date(hour + DAY + 50 * 60_000) }]);
  });

  it('rebuilds its memory from the state records: a new instance recognises duplicates, changes and tombstoned lines', async () => {
    const first = await dedupe(2);
    const a = line('tienda_03', 'F-1', 1);
    const b = line('tienda_03', 'F-1', 2);
    const c = line('tienda_03', 'F-3', 1);
    const log = [...(await feedAll(first, [rawRecord(a, BASE), rawRecord(b, BASE), rawRecord(c, BASE + 3 * DAY)]))];
    expect(log.some((o) => o.value === null)).toBe(true);
    const second = await dedupe(2);
    await load(second, log);
    const out = await feedAll(second, [
      rawRecord(c, BASE + 3 * DAY + 1),
      rawRecord({ ...c, cantidad: '1.000' }, BASE + 3 * DAY + 2),
      rawRecord(a, BASE + 3 * DAY + 3),
    ]);
    expect((await ventas(out)).map((v) => [v.key, v.op])).toEqual([
      ['tienda_03/F-3/1', 'u'],
      ['tienda_03/F-1/1', 'c'],
    ]);
  });

  it('forgets a partition on reset, and keeps the others', async () => {
    const spec = await dedupe();
    const a = line('tienda_01', 'F-1', 1);
    const other = STORES.find((s) => partitionForUbicacion(s, PARTITIONS) !== partitionForUbicacion('tienda_01', PARTITIONS))!;
    const b = line(other, 'F-1', 1);
    await feedAll(spec, [rawRecord(a, BASE), rawRecord(b, BASE)]);
    spec.state!.reset(partitionForUbicacion('tienda_01', PARTITIONS));
    expect((await ventas(await feedAll(spec, [rawRecord(a, BASE + 1), rawRecord(b, BASE + 1)]))).map((v) => v.key)).toEqual([ventaKey(a)]);
  });

  it('sends lines it cannot use to the DLQ, naming store, field and value', async () => {
    const spec = await dedupe();
    const cases: Array<[ConsumedRecord, RegExp]> = [
      [rawRecord(line('tienda_01', 'F-1', 0), BASE), /tienda_01\/F-1\/0: linea\.linea 0 must be a line number from 1/],
      [rawRecord(line('Tienda 1', 'F-1', 1), BASE, 0), /linea\.ubicacion_id "Tienda 1"/],
      [
        rawRecord(line('tienda_01', 'F-1', 1), BASE, (partitionForUbicacion('tienda_01', PARTITIONS) + 1) % PARTITIONS),
        /belong on partition/,
      ],
    ];
    for (const [record, message] of cases) {
      const err = await spec.decode(record).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as Error).message).toMatch(message);
    }
    expect(
      ((await spec.decode(rawRecord(line('tienda_01', 'F-1', 0), BASE)).catch((e: unknown) => e)) as ValidationError).context,
    ).toMatchObject({ ubicacion: 'tienda_01', field: 'linea.linea', value: 0 });
  });

  it('counts lines by decision', async () => {
    const metrics = createRuntimeMetrics();
    const spec = await dedupe(7, metrics);
    const l = line('tienda_01', 'F-1', 1);
    await feedAll(spec, [
      rawRecord(l, BASE),
      rawRecord(l, BASE + HOUR),
      rawRecord(l, BASE + 2 * HOUR),
      rawRecord({ ...l, anulada: true }, BASE + 3 * HOUR),
    ]);
    const counter = metrics.registry.getSingleMetric('fluxion_dedupe_lines_total') as never;
    expect([
      await counterValue(counter, { decision: 'new' }),
      await counterValue(counter, { decision: 'duplicate' }),
      await counterValue(counter, { decision: 'updated' }),
    ]).toEqual([1, 2, 1]);
    // A second spec on the same registry shares the counters instead of failing to register.
    await dedupe(7, metrics);
  });

  it('writes exactly what an uninterrupted run writes when restarted anywhere (property)', { timeout: 60_000 }, async () => {
    // Few lines and steps around the window (1.5 days; duplicates recorded every 6 h), so
    // lines come back just before and just after they expire, and between sweeps.
    const keys = STORES.slice(0, 3).flatMap((s) => [line(s, 'F-1', 1), line(s, 'F/2', 1)]);
    const read = fc.record({
      key: fc.nat({ max: keys.length - 1 }),
      version: fc.constantFrom(0, 0, 0, 1, 2),
      // Mostly forward, sometimes a little back (runs of two stores committing out of order).
      step: fc.constantFrom(0, 20 * 60_000, HOUR, 3 * HOUR, 7 * HOUR, 12 * HOUR, DAY, 1.5 * DAY, -5 * 60_000),
      restart: fc.nat({ max: 4 }),
      compacted: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(read, { minLength: 1, maxLength: 80 }), async (reads) => {
        let t = BASE;
        const records = reads.map((r) => {
          t += r.step;
          const l = keys[r.key]!;
          return rawRecord(r.version === 0 ? l : { ...l, cantidad: `${r.version}.000`, anulada: r.version === 2 }, t);
        });
        const whole = await feedAll(await dedupe(1.5), records);

        let spec = await dedupe(1.5);
        const pieces: Output[] = [];
        for (let i = 0; i < records.length; i++) {
          if (reads[i]!.restart === 0) {
            spec = await dedupe(1.5);
            await load(spec, pieces, reads[i]!.compacted);
          }
          pieces.push(...(await feed(spec, records[i]!)));
        }
        const bytes = (out: Output[]) =>
          out.map((o) => `${o.topic} ${String(o.key)} ${o.ubicacionId} ${o.value?.toString('hex') ?? 'null'}`);
        expect(bytes(pieces)).toEqual(bytes(whole));
        expect(whole.some((o) => o.topic.endsWith('.dlq'))).toBe(false);
      }),
      { numRuns: 100 },
    );
  });
});
