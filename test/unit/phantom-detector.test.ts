import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createTopicCodec } from '../../core/avro/topic-codec.ts';
import { confluentFrame } from '../../core/avro/wire.ts';
import { loadConfig } from '../../cli/config.ts';
import { ConfigError, SchemaError, ValidationError } from '../../core/errors.ts';
import type { ConsumedRecord } from '../../core/kafka/types.ts';
import { createLogger } from '../../core/logger.ts';
import type { FluxionRegistry } from '../../core/registry.ts';
import {
  createPhantomSpec,
  type InventoryChange,
  type PhantomAlert,
  type PhantomInput,
  type PhantomStateRecord,
  type Venta,
} from '../../processors/phantom-detector.ts';
import { DEFAULT_PHANTOM_CONFIG, type PhantomConfig } from '../../processors/phantom-rules.ts';
import { createRuntimeMetrics } from '../../processors/runtime/metrics.ts';
import type { Output, StreamProcessorSpec } from '../../processors/runtime/stream-processor.ts';
import { at, change, row, venta } from '../helpers/phantom-events.ts';

describe('the processor around the steps (no Kafka: a registry that knows one id per subject)', () => {
  const PREFIX = 'unit.';
  const topics = {
    changes: `${PREFIX}pos.inventario.changes`,
    ventas: `${PREFIX}pos.ventas`,
    alerts: `${PREFIX}alerts.phantom-zeros`,
    state: `${PREFIX}alerts.phantom-zeros.state`,
  };
  const ids: Record<string, number> = {
    [`${topics.changes}-value`]: 1,
    [`${topics.ventas}-value`]: 2,
    [`${topics.alerts}-value`]: 3,
    [`${topics.state}-value`]: 4,
  };
  const lookups: string[] = [];
  const registry = {
    url: 'http://registry.invalid',
    async lookupId(subject: string) {
      lookups.push(subject);
      return ids[subject]!;
    },
    async schemaById(id: number): Promise<never> {
      throw new SchemaError(`schema id ${id} is not registered`);
    },
  } as unknown as FluxionRegistry;
  const metrics = () => createRuntimeMetrics();
  const deps = (m = metrics(), phantom: PhantomConfig = DEFAULT_PHANTOM_CONFIG) => ({
    kafka: {} as never,
    registry,
    logger: createLogger({ level: 'silent' }),
    topicPrefix: PREFIX,
    partitions: 1,
    config: { ...loadConfig({}).processors, phantom },
    metrics: m,
  });
  const codecs = async () => ({
    change: await createTopicCodec<InventoryChange>(registry, 'pos.inventario.changes', topics.changes),
    venta: await createTopicCodec<Venta>(registry, 'pos.ventas', topics.ventas),
    alert: await createTopicCodec<PhantomAlert>(registry, 'alerts.phantom-zeros', topics.alerts),
    state: await createTopicCodec<PhantomStateRecord>(registry, 'alerts.phantom-zeros.state', topics.state),
  });
  let offset = 0;
  const record = (topic: string, key: string, value: Buffer | null, partition = 0): ConsumedRecord => ({
    topic,
    partition,
    offset: String(offset++),
    key: Buffer.from(key),
    value,
    headers: {},
    timestamp: '0',
  });
  type Spec = StreamProcessorSpec<PhantomInput>;
  /** snapshot_id is an Avro uuid: the labels of the step tests become UUIDs on the wire. */
  const encChange = (k: { change: { encode(c: InventoryChange): Buffer } }, c: InventoryChange) => {
    const x = createHash('sha1').update(c.snapshot_id).digest('hex');
    return k.change.encode({
      ...c,
      snapshot_id: `${x.slice(0, 8)}-${x.slice(8, 12)}-4${x.slice(13, 16)}-a${x.slice(17, 20)}-${x.slice(20, 32)}`,
    });
  };
  /** Runs one input record through decode and process, as the runtime does. */
  const run = async (spec: Spec, r: ConsumedRecord) =>
    spec.process(await spec.decode(r), {
      topic: r.topic,
      partition: r.partition,
      offset: r.offset,
      key: r.key,
      headers: r.headers,
      timestamp: r.timestamp,
    });
  const at2 = (deposito: string, c: InventoryChange): InventoryChange => ({
    ...c,
    deposito,
    before: c.before && { ...c.before, deposito },
    after: c.after && { ...c.after, deposito },
  });

  it('checks the thresholds before any I/O', async () => {
    lookups.length = 0;
    await expect(createPhantomSpec(deps(metrics(), { ...DEFAULT_PHANTOM_CONFIG, dropSalesShare: 2 }))).rejects.toThrow(ConfigError);
    expect(lookups).toEqual([]);
  });

  it('a sales line feeds every deposito of its producto in its store, and only there', async () => {
    const spec = await createPhantomSpec(deps());
    const k = await codecs();
    for (const d of ['1301', '1302']) {
      await run(spec, record(topics.changes, 'x', encChange(k, at2(d, change(null, '5.000', 0)))));
      await run(spec, record(topics.changes, 'x', encChange(k, at2(d, change('5.000', '0.000', 30)))));
    }
    const other = { ...change(null, '0.000', 0), ubicacion_id: 'tienda_02' };
    await run(spec, record(topics.changes, 'x', encChange(k, other)));
    const out = await run(spec, record(topics.ventas, 'x', k.venta.encode(venta('F-1', '2.000', 40))));
    const alerts = await Promise.all(out.filter((o) => o.topic === topics.alerts).map((o) => k.alert.decode(o.value)));
    expect(alerts.map((a) => [a.ubicacion_id, a.deposito, a.rule, a.status])).toEqual([
      ['tienda_01', '1301', 'SELLING_AT_ZERO', 'OPEN'],
      ['tienda_01', '1302', 'SELLING_AT_ZERO', 'OPEN'],
    ]);
    expect(out.filter((o) => o.topic === topics.state).map((o) => [o.key, o.ubicacionId])).toEqual([
      ['tienda_01/1301/000123', 'tienda_01'],
      ['tienda_01/1302/000123', 'tienda_01'],
    ]);
    // A sale of a product whose stock was never seen changes nothing and writes nothing.
    expect(
      await run(
        spec,
        record(
          topics.ventas,
          'x',
          k.venta.encode({ ...venta('F-2', '1.000', 41), linea: { ...venta('F-2', '1.000', 41).linea, producto_id: '999' } }),
        ),
      ),
    ).toEqual([]);
  });

  it('follows only the POS named in sources: a Stellar product dropping to 0 writes nothing unless stellar is judged', async () => {
    const k = await codecs();
    const stellar = (c: InventoryChange): InventoryChange => ({ ...c, ubicacion_id: 'cedi_01', source: 'STELLAR' });
    const drop = [stellar(change(null, '50.000', 0)), stellar(change('50.000', '0.000', 30))];
    const klkOnly = await createPhantomSpec(deps());
    for (const c of drop) expect(await run(klkOnly, record(topics.changes, 'x', encChange(k, c)))).toEqual([]);
    const both = await createPhantomSpec(deps(metrics(), { ...DEFAULT_PHANTOM_CONFIG, sources: ['KLK', 'STELLAR'] }));
    const out = [];
    for (const c of drop) out.push(...(await run(both, record(topics.changes, 'x', encChange(k, c)))));
    const alerts = await Promise.all(out.filter((o) => o.topic === topics.alerts).map((o) => k.alert.decode(o.value)));
    expect(alerts.map((a) => [a.ubicacion_id, a.rule, a.status])).toEqual([['cedi_01', 'UNEXPLAINED_DROP', 'OPEN']]);
  });

  it('a new instance loads the state records (tombstones and unreadable ones included) and resolves under the same id', async () => {
    const m1 = metrics();
    const first = await createPhantomSpec(deps(m1));
    const k = await codecs();
    const stateTopic: ConsumedRecord[] = [];
    const keep = (out: Output[]) => {
      for (const o of out) if (o.topic === topics.state) stateTopic.push(record(topics.state, String(o.key), o.value));
      return out;
    };
    keep(await run(first, record(topics.changes, 'x', encChange(k, change(null, '5.000', 0)))));
    keep(await run(first, record(topics.changes, 'x', encChange(k, change('5.000', '0.000', 30)))));
    const opened = keep(await run(first, record(topics.ventas, 'x', k.venta.encode(venta('F-1', '2.000', 40)))));
    const openAlert = await k.alert.decode(opened.find((o) => o.topic === topics.alerts)!.value);
    const vanished = { ...change(null, '3.000', 0), producto_id: '000555', after: { ...row('3.000'), producto_id: '000555' } };
    keep(await run(first, record(topics.changes, 'x', encChange(k, vanished))));
    keep(
      await run(
        first,
        record(topics.changes, 'x', encChange(k, { ...vanished, op: 'd', before: vanished.after, after: null, snapshot_id: 'gone' })),
      ),
    );
    expect(stateTopic.at(-1)).toMatchObject({ key: Buffer.from('tienda_01/01/000555'), value: null });
    expect((await m1.registry.getSingleMetric('fluxion_phantom_open_alerts')!.get()).values[0]!.value).toBe(1);
    stateTopic.push(
      record(
        topics.state,
        'tienda_01/01/000777',
        k.state.encode({ ubicacion_id: 'tienda_01', state_json: '{"stock":"0.000"}', open_alert_id: null }),
      ),
    );

    const m2 = metrics();
    const second = await createPhantomSpec(deps(m2));
    for (const r of stateTopic) await second.state!.load(r);
    expect((await m2.registry.getSingleMetric('fluxion_phantom_open_alerts')!.get()).values[0]!.value).toBe(1);
    const out = await run(second, record(topics.changes, 'x', encChange(k, change('0.000', '9.000', 60))));
    const resolved = await k.alert.decode(out.find((o) => o.topic === topics.alerts)!.value);
    expect(resolved).toMatchObject({ alert_id: openAlert.alert_id, status: 'RESOLVED', opened_at: at(40) });
    // The vanished product is forgotten: its sales feed nothing.
    const gone = venta('F-9', '1.000', 61);
    expect(
      await run(second, record(topics.ventas, 'x', k.venta.encode({ ...gone, linea: { ...gone.linea, producto_id: '000555' } }))),
    ).toEqual([]);

    // reset forgets the partition: the same change is news again.
    second.state!.reset(0);
    expect((await m2.registry.getSingleMetric('fluxion_phantom_open_alerts')!.get()).values[0]!.value).toBe(0);
    const again = await run(second, record(topics.changes, 'x', encChange(k, change('9.000', '0.000', 90))));
    expect(JSON.parse((await k.state.decode(again.find((o) => o.topic === topics.state)!.value)).state_json)).toMatchObject({
      changes: 1,
      zero: { from: { snapshotId: null, quantity: '9.000' } },
    });
  });

  it('decode refuses bad bytes, unknown schema ids, invalid changes and foreign topics', async () => {
    const spec = await createPhantomSpec(deps());
    const k = await codecs();
    await expect(spec.decode(record(topics.changes, 'x', Buffer.from('not avro at all')))).rejects.toThrow(ValidationError);
    await expect(spec.decode(record(topics.ventas, 'x', confluentFrame(99, Buffer.from([1]))))).rejects.toThrow(SchemaError);
    await expect(spec.decode(record(topics.changes, 'x', encChange(k, { ...change('1.000', '2.000', 0), after: null })))).rejects.toThrow(
      /op u without after/,
    );
    await expect(spec.decode(record(`${PREFIX}pos.ventas.raw`, 'x', k.venta.encode(venta('F-1', '1.000', 0))))).rejects.toThrow(
      /not an input/,
    );
    expect(await spec.decode(record(topics.ventas, 'x', k.venta.encode(venta('F-1', '1.000', 0))))).toMatchObject({
      kind: 'venta',
      venta: { linea: { numero_factura: 'F-1' } },
    });
  });
});
