import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createTopicCodec } from '../../core/avro/topic-codec.ts';
import { confluentFrame } from '../../core/avro/wire.ts';
import { loadConfig } from '../../core/config/environment.ts';
import { ConfigError, SchemaError, ValidationError } from '../../core/errors.ts';
import type { ConsumedRecord } from '../../core/kafka/types.ts';
import { createLogger } from '../../core/logger.ts';
import type { InventoryRow, VentaLinea } from '../../core/records.ts';
import type { FluxionRegistry } from '../../core/registry.ts';
import {
  alertId,
  checkChange,
  createPhantomSpec,
  entryFromState,
  packEntry,
  unpackEntry,
  MAX_REMEMBERED_LINES,
  phantomConfigProblems,
  phantomKey,
  stateJson,
  stepChange,
  stepSale,
  type DetectorEntry,
  type InventoryChange,
  type PhantomAlert,
  type PhantomInput,
  type PhantomStateRecord,
  type Venta,
} from '../../processors/phantom-detector.ts';
import { DEFAULT_PHANTOM_CONFIG, type PhantomConfig, type PhantomRule, type PhantomSource } from '../../processors/phantom-rules.ts';
import { createRuntimeMetrics } from '../../processors/runtime/metrics.ts';
import type { Output, StreamProcessorSpec } from '../../processors/runtime/stream-processor.ts';

const T0 = Date.parse('2026-11-02T10:00:00Z');
const MIN = 60_000;
const at = (minutes: number) => new Date(T0 + minutes * MIN);
const REF = { ubicacion_id: 'tienda_01', deposito: '01', producto_id: '000123' };
const KEY = phantomKey(REF);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const row = (cantidad: string): InventoryRow => ({
  deposito: REF.deposito,
  producto_id: REF.producto_id,
  codigo_barras: null,
  descripcion: 'HARINA PAN 1KG',
  departamento_codigo: null,
  departamento_nombre: null,
  grupo_codigo: null,
  grupo_nombre: null,
  subgrupo_codigo: null,
  subgrupo_nombre: null,
  unidad: 'UND',
  cantidad,
  costo: null,
  precio: null,
  activo: true,
  actualizado_en: null,
});

let snapshotSeq = 0;
const change = (before: string | null, after: string | null, m: number, snapshot_id = `snap-${++snapshotSeq}`): InventoryChange => ({
  op: before === null ? 'c' : after === null ? 'd' : 'u',
  ...REF,
  before: before === null ? null : row(before),
  after: after === null ? null : row(after),
  snapshot_id,
  taken_at: at(m),
  source: 'KLK',
});

const venta = (numero: string, cantidad: string, m: number, extra: Partial<VentaLinea> & { op?: 'c' | 'u' } = {}): Venta => {
  const { op = 'c', ...linea } = extra;
  return {
    op,
    linea: {
      ubicacion_id: REF.ubicacion_id,
      fecha: '2026-11-02',
      numero_factura: numero,
      linea: 1,
      fecha_hora: at(m),
      producto_id: REF.producto_id,
      cantidad,
      precio_unitario: '1.0000',
      descuento: '0.0000',
      total: `${cantidad}0`,
      caja: '01',
      anulada: false,
      ...linea,
    },
    fingerprint: `fp-${numero}-${cantidad}-${linea.anulada ?? false}`,
    first_seen_at: at(m),
    extracted_at: at(m),
  };
};

type Ev = { kind: 'change'; c: InventoryChange } | { kind: 'venta'; v: Venta };

/** Folds events through the detector from nothing, as the processor does for one product. */
function fold(events: Ev[], config: PhantomConfig = DEFAULT_PHANTOM_CONFIG, roundTrip = false) {
  let entry: DetectorEntry | undefined;
  const alerts: PhantomAlert[][] = [];
  const writes: Array<DetectorEntry | null> = [];
  for (const ev of events) {
    // As after a restart (the state record read back), and as the processor keeps it in memory.
    if (roundTrip && entry) entry = unpackEntry(packEntry(entryFromState({ ubicacion_id: REF.ubicacion_id, state_json: stateJson(entry), open_alert_id: entry.openAlertId })));
    let step;
    if (ev.kind === 'change') step = stepChange(REF, entry, ev.c, config);
    else if (entry) step = stepSale(entry, ev.v, config);
    else step = { entry: null, alerts: [], write: false };
    alerts.push(step.alerts);
    if (step.write) writes.push(step.entry);
    entry = step.entry ?? undefined;
  }
  return { entry, alerts, all: alerts.flat(), writes };
}

const c = (x: InventoryChange): Ev => ({ kind: 'change', c: x });
const v = (x: Venta): Ev => ({ kind: 'venta', v: x });

describe('alert ids', () => {
  it('are version-5 shaped UUIDs, the same for the same alert and different for anything else', () => {
    const open = { rule: 'SELLING_AT_ZERO' as const, openedAtMs: T0, snapshotId: 's1' };
    const id = alertId(KEY, open, 0);
    expect(id).toMatch(UUID);
    expect(alertId(KEY, { ...open }, 0)).toBe(id);
    const others = [
      alertId(KEY, open, 1),
      alertId(KEY, { ...open, rule: 'FLIP_FLOP' }, 0),
      alertId(KEY, { ...open, openedAtMs: T0 + 1 }, 0),
      alertId(KEY, { ...open, snapshotId: 's2' }, 0),
      alertId('tienda_01/01/000124', open, 0),
    ];
    expect(new Set([id, ...others]).size).toBe(6);
  });
});

describe('alerts of one product', () => {
  it('SELLING_AT_ZERO opens with the store, deposito and producto, evidence and the event time; stock back resolves the same id', () => {
    const { all } = fold([c(change(null, '5.000', 0)), c(change('5.000', '0.000', 30, 'z1')), v(venta('F-1', '2.000', 40)), c(change('0.000', '7.000', 60, 'back'))]);
    expect(all.map((a) => [a.rule, a.status])).toEqual([
      ['SELLING_AT_ZERO', 'OPEN'],
      ['SELLING_AT_ZERO', 'RESOLVED'],
    ]);
    const [open, resolved] = all as [PhantomAlert, PhantomAlert];
    expect(open).toMatchObject({ ...REF, opened_at: at(40), updated_at: at(40) });
    expect(open.alert_id).toMatch(UUID);
    expect(open.evidence).toMatchObject({ zero_snapshot_id: 'z1', units_sold_since_zero: '2.000', trigger: 'venta F-1/1 (op c)' });
    expect(open.summary).toBe('tienda_01 deposito 01 producto 000123: 2.000 units sold since snapshot z1 recorded stock 0.000');
    expect(resolved.alert_id).toBe(open.alert_id);
    expect(resolved).toMatchObject({ opened_at: at(40), updated_at: at(60), confidence: open.confidence });
    expect(resolved.evidence).toMatchObject({ reason: 'stock_back', quantity: '7.000', trigger: 'inventario snapshot back (op u)' });
  });

  it('a void (op u) takes back the units the line counted, resolving the alert it opened', () => {
    const events = [c(change(null, '5.000', 0)), c(change('5.000', '0.000', 30)), v(venta('F-1', '2.000', 40)), v(venta('F-1', '2.000', 40, { op: 'u', anulada: true }))];
    const { alerts, entry } = fold(events);
    expect(alerts[2]!.map((a) => a.status)).toEqual(['OPEN']);
    expect(alerts[3]!.map((a) => [a.status, a.evidence.reason])).toEqual([['RESOLVED', 'rule_no_longer_holds']]);
    expect(alerts[3]![0]!.alert_id).toBe(alerts[2]![0]!.alert_id);
    expect(entry!.state.zero!.salesAfter).toBe('0.000');
    expect(entry!.ventas).toEqual({ 'F-1/1': ['0.000', at(40).getTime()] });
  });

  it('a corrected line counts its difference, and the same line read twice counts once', () => {
    const { entry } = fold([
      c(change(null, '5.000', 0)),
      c(change('5.000', '0.000', 30)),
      v(venta('F-1', '2.000', 40)),
      v(venta('F-1', '2.000', 40)),
      v(venta('F-1', '3.000', 40, { op: 'u' })),
      v(venta('F-2', '-1.000', 41)),
    ]);
    expect(entry!.state.zero!.salesAfter).toBe('2.000');
    expect(entry!.state.zero!.saleEventsAfter).toBe(2);
  });

  it('forgets counted lines when the rules restart their totals, so a later void of one takes nothing back', () => {
    const { entry } = fold([
      c(change(null, '50.000', 0)),
      v(venta('F-1', '4.000', 10)),
      c(change('50.000', '46.000', 30)),
      v(venta('F-1', '4.000', 10, { op: 'u', anulada: true })),
      v(venta('F-2', '1.000', 35)),
    ]);
    // F-1 is timed before the last positive snapshot: the rules ignore it, and it was forgotten.
    expect(entry!.ventas).toEqual({ 'F-2/1': ['1.000', at(35).getTime()] });
    expect(entry!.state.salesSincePositive).toBe('1.000');
  });

  it('a reopening of the same rule gets a new id', () => {
    const { all } = fold([
      c(change(null, '5.000', 0)),
      c(change('5.000', '0.000', 30)),
      v(venta('F-1', '2.000', 40)),
      v(venta('F-2', '-2.000', 40)), // a return in the same second: no longer selling at zero
      v(venta('F-3', '2.000', 40)),
    ]);
    expect(all.map((a) => a.status)).toEqual(['OPEN', 'RESOLVED', 'OPEN']);
    expect(all[1]!.alert_id).toBe(all[0]!.alert_id);
    expect(all[2]!.alert_id).not.toBe(all[0]!.alert_id);
    expect(all[2]!.opened_at).toEqual(all[0]!.opened_at);
  });

  it('RESOLVED is never timed before it opened, even when the void that resolves it is', () => {
    const never = fold([c(change(null, '5.000', 0)), c(change('5.000', '0.000', 30)), v(venta('F-1', '1.000', 50)), v(venta('F-0', '1.000', 40, { op: 'u', anulada: true }))]);
    // F-0 was never counted: its void takes nothing back.
    expect(never.all.map((a) => a.status)).toEqual(['OPEN']);
    const late = fold([c(change(null, '5.000', 0)), c(change('5.000', '0.000', 30)), v(venta('F-0', '0.500', 40)), v(venta('F-1', '0.500', 50)), v(venta('F-0', '0.500', 40, { op: 'u', anulada: true }))]);
    const [open, resolved] = late.all;
    expect(open).toMatchObject({ status: 'OPEN', opened_at: at(50) });
    expect(resolved).toMatchObject({ status: 'RESOLVED', opened_at: at(50), updated_at: at(50) });
    expect(resolved!.evidence.resolved_at).toBe(at(40).toISOString());
  });
});

describe('state records', () => {
  it('a vanished product is a tombstone; one never seen writes nothing; a redelivered snapshot writes nothing', () => {
    const gone = fold([c(change(null, '5.000', 0)), c(change('5.000', null, 30))]);
    expect(gone.writes.at(-1)).toBeNull();
    expect(gone.entry).toBeUndefined();
    const unknown = stepChange(REF, undefined, change('5.000', null, 30), DEFAULT_PHANTOM_CONFIG);
    expect(unknown).toEqual({ entry: null, alerts: [], write: false });
    const first = change(null, '5.000', 0, 'same');
    const entry = stepChange(REF, undefined, first, DEFAULT_PHANTOM_CONFIG).entry!;
    expect(stepChange(REF, entry, { ...first, op: 'u', before: row('5.000') }, DEFAULT_PHANTOM_CONFIG)).toEqual({ entry, alerts: [], write: false });
  });

  it('a vanished product with an open alert resolves it and is then forgotten', () => {
    const { all, writes } = fold([c(change(null, '50.000', 0)), c(change('50.000', '0.000', 30)), c(change('0.000', null, 60))]);
    expect(all.map((a) => [a.rule, a.status, a.evidence.reason])).toEqual([
      ['UNEXPLAINED_DROP', 'OPEN', undefined],
      ['UNEXPLAINED_DROP', 'RESOLVED', 'product_vanished'],
    ]);
    expect(writes.at(-1)).toBeNull();
  });

  it('round-trips through state_json with the open alert id, and refuses what it did not write', () => {
    const { entry } = fold([c(change(null, '5.000', 0)), c(change('5.000', '0.000', 30)), v(venta('F-1', '2.000', 40))]);
    const back = entryFromState({ ubicacion_id: REF.ubicacion_id, state_json: stateJson(entry!), open_alert_id: entry!.openAlertId });
    expect(back).toEqual(entry);
    expect(unpackEntry(packEntry(entry!))).toEqual(entry);
    expect(JSON.parse(stateJson(entry!))).toMatchObject({ v: 1, quantity: '0.000', detector: { deposito: '01', producto_id: '000123', opened: 1 } });
    for (const state_json of ['{', '{"stock":"0.000"}', '{"v":1,"changes":1}', 'null']) {
      expect(() => entryFromState({ ubicacion_id: 'tienda_01', state_json, open_alert_id: null })).toThrow(ValidationError);
    }
  });
});

describe('input checks', () => {
  it('refuses changes the rules cannot read', () => {
    const ok = change('5.000', '4.000', 0);
    expect(() => checkChange(ok)).not.toThrow();
    expect(() => checkChange({ ...ok, after: null })).toThrow(/op u without after/);
    expect(() => checkChange({ ...ok, op: 'd' })).toThrow(/op d with an after row/);
    expect(() => checkChange({ ...ok, after: { ...row('4.000'), producto_id: '999' } })).toThrow(/after is the row of 01\/999/);
    expect(() => checkChange({ ...ok, deposito: '' })).toThrow(ValidationError);
  });

  it('names every bad threshold, and the defaults have none', () => {
    expect(phantomConfigProblems(DEFAULT_PHANTOM_CONFIG)).toEqual([]);
    const problems = phantomConfigProblems({
      flipFlopRecovery: 1.5, flipFlopWindowSnapshots: 0, dropThreshold: '10', dropSalesShare: 0, dropRecentFallFactor: 0, sellingAtZeroMinSales: '-1.000',
      sellingAtZeroMinMinutes: -5, rules: ['SELLING_AT_ZERO', 'GHOST' as PhantomRule], sources: ['KLK', 'SAP' as PhantomSource],
    });
    expect(problems).toHaveLength(8);
    expect(problems.join('\n')).toMatch(/flipFlopRecovery.*1\.5[\s\S]*dropSalesShare[\s\S]*flipFlopWindowSnapshots[\s\S]*dropThreshold[\s\S]*sellingAtZeroMinSales[\s\S]*sellingAtZeroMinMinutes.*-5[\s\S]*rules.*GHOST[\s\S]*sources.*SAP/);
  });
});

describe('properties', () => {
  const qty = fc.oneof(fc.constantFrom('0.000', '-1.000', '5.000', '10.000', '50.000', '8.000'), fc.integer({ min: -5_000, max: 60_000 }).map((n) => (n / 1000).toFixed(3)));
  const saleQty = fc.oneof(fc.constantFrom('1.000', '0.500', '-1.000', '5.000'), fc.integer({ min: -3_000, max: 20_000 }).map((n) => (n / 1000).toFixed(3)));
  type Raw = { kind: 'inv'; after: string | null; m: number } | { kind: 'sale'; line: number; cantidad: string; m: number; anulada: boolean };
  const rawArb: fc.Arbitrary<Raw> = fc.oneof(
    fc.record({ kind: fc.constant('inv' as const), after: fc.option(qty, { freq: 8 }), m: fc.integer({ min: 0, max: 600 }) }),
    fc.record({ kind: fc.constant('sale' as const), line: fc.integer({ min: 1, max: 6 }), cantidad: saleQty, m: fc.integer({ min: -60, max: 600 }), anulada: fc.boolean() }),
  );
  /** Real-looking streams: befores chained, a line keeps its time, later versions of a line are op u. */
  function events(raw: Raw[]): Ev[] {
    let last: string | null = null;
    const lines = new Map<number, number>();
    return raw.map((r, i) => {
      if (r.kind === 'inv') {
        const ev = change(last, r.after, r.m, `s${i}`);
        last = r.after;
        return c(ev);
      }
      const m = lines.get(r.line) ?? r.m;
      const op = lines.has(r.line) ? 'u' : 'c';
      lines.set(r.line, m);
      return v(venta(`F-${r.line}`, r.cantidad, m, { op, anulada: r.anulada }));
    });
  }
  const sum = (xs: string[]) => xs.reduce((a, x) => a + BigInt(x.replace('.', '')), 0n).toString();
  const units = (x: string) => BigInt(x.replace('.', '')).toString();

  it('the remembered lines always add up to the sales the rules counted', () => {
    fc.assert(
      fc.property(fc.array(rawArb, { maxLength: 50 }), (raw) => {
        let entry: DetectorEntry | undefined;
        for (const ev of events(raw)) {
          const step = ev.kind === 'change' ? stepChange(REF, entry, ev.c, DEFAULT_PHANTOM_CONFIG) : entry ? stepSale(entry, ev.v, DEFAULT_PHANTOM_CONFIG) : null;
          if (step) entry = step.entry ?? undefined;
          if (!entry) continue;
          const s = entry.state;
          const counted = s.zero ? (BigInt(units(s.zero.salesBefore)) + BigInt(units(s.zero.salesAfter))).toString() : units(s.salesSincePositive);
          expect(sum(Object.values(entry.ventas).map(([u]) => u))).toBe(counted);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('alerts alternate OPEN then RESOLVED of the same id, ids never repeat, and a state round trip changes nothing', () => {
    fc.assert(
      fc.property(fc.array(rawArb, { maxLength: 50 }), (raw) => {
        const evs = events(raw);
        const { all } = fold(evs);
        let open: PhantomAlert | null = null;
        const opened = new Set<string>();
        for (const a of all) {
          expect(a.alert_id).toMatch(UUID);
          if (a.status === 'OPEN') {
            expect(open).toBeNull();
            expect(opened.has(a.alert_id)).toBe(false);
            opened.add(a.alert_id);
            open = a;
          } else {
            expect(a.alert_id).toBe(open?.alert_id);
            expect(a.rule).toBe(open?.rule);
            expect(a.opened_at).toEqual(open?.opened_at);
            expect(a.updated_at.getTime()).toBeGreaterThanOrEqual(a.opened_at.getTime());
            open = null;
          }
        }
        expect(fold(events(raw), DEFAULT_PHANTOM_CONFIG, true).all).toEqual(all);
      }),
      { numRuns: 300 },
    );
  });

  it(`remembers at most ${MAX_REMEMBERED_LINES} lines, forgetting the oldest`, () => {
    let entry = fold([c(change(null, '5.000', 0)), c(change('5.000', '0.000', 1))]).entry!;
    for (let i = 0; i <= MAX_REMEMBERED_LINES; i++) entry = stepSale(entry, venta(`F-${i}`, '1.000', 2 + i / 1000), DEFAULT_PHANTOM_CONFIG).entry!;
    expect(Object.keys(entry.ventas)).toHaveLength(MAX_REMEMBERED_LINES);
    expect(entry.ventas['F-0/1']).toBeUndefined();
    expect(entry.ventas[`F-${MAX_REMEMBERED_LINES}/1`]).toBeDefined();
  });
});

describe('the processor around the steps (no Kafka: a registry that knows one id per subject)', () => {
  const PREFIX = 'unit.';
  const topics = { changes: `${PREFIX}pos.inventario.changes`, ventas: `${PREFIX}pos.ventas`, alerts: `${PREFIX}alerts.phantom-zeros`, state: `${PREFIX}alerts.phantom-zeros.state` };
  const ids: Record<string, number> = { [`${topics.changes}-value`]: 1, [`${topics.ventas}-value`]: 2, [`${topics.alerts}-value`]: 3, [`${topics.state}-value`]: 4 };
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
  const record = (topic: string, key: string, value: Buffer | null, partition = 0): ConsumedRecord => ({ topic, partition, offset: String(offset++), key: Buffer.from(key), value, headers: {}, timestamp: '0' });
  type Spec = StreamProcessorSpec<PhantomInput>;
  /** snapshot_id is an Avro uuid: the labels of the step tests become UUIDs on the wire. */
  const encChange = (k: { change: { encode(c: InventoryChange): Buffer } }, c: InventoryChange) => {
    const x = createHash('sha1').update(c.snapshot_id).digest('hex');
    return k.change.encode({ ...c, snapshot_id: `${x.slice(0, 8)}-${x.slice(8, 12)}-4${x.slice(13, 16)}-a${x.slice(17, 20)}-${x.slice(20, 32)}` });
  };
  /** Runs one input record through decode and process, as the runtime does. */
  const run = async (spec: Spec, r: ConsumedRecord) => spec.process(await spec.decode(r), { topic: r.topic, partition: r.partition, offset: r.offset, key: r.key, headers: r.headers, timestamp: r.timestamp });
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
    expect(await run(spec, record(topics.ventas, 'x', k.venta.encode({ ...venta('F-2', '1.000', 41), linea: { ...venta('F-2', '1.000', 41).linea, producto_id: '999' } })))).toEqual([]);
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
    keep(await run(first, record(topics.changes, 'x', encChange(k, { ...vanished, op: 'd', before: vanished.after, after: null, snapshot_id: 'gone' }))));
    expect(stateTopic.at(-1)).toMatchObject({ key: Buffer.from('tienda_01/01/000555'), value: null });
    expect((await m1.registry.getSingleMetric('fluxion_phantom_open_alerts')!.get()).values[0]!.value).toBe(1);
    stateTopic.push(record(topics.state, 'tienda_01/01/000777', k.state.encode({ ubicacion_id: 'tienda_01', state_json: '{"stock":"0.000"}', open_alert_id: null })));

    const m2 = metrics();
    const second = await createPhantomSpec(deps(m2));
    for (const r of stateTopic) await second.state!.load(r);
    expect((await m2.registry.getSingleMetric('fluxion_phantom_open_alerts')!.get()).values[0]!.value).toBe(1);
    const out = await run(second, record(topics.changes, 'x', encChange(k, change('0.000', '9.000', 60))));
    const resolved = await k.alert.decode(out.find((o) => o.topic === topics.alerts)!.value);
    expect(resolved).toMatchObject({ alert_id: openAlert.alert_id, status: 'RESOLVED', opened_at: at(40) });
    // The vanished product is forgotten: its sales feed nothing.
    const gone = venta('F-9', '1.000', 61);
    expect(await run(second, record(topics.ventas, 'x', k.venta.encode({ ...gone, linea: { ...gone.linea, producto_id: '000555' } })))).toEqual([]);

    // reset forgets the partition: the same change is news again.
    second.state!.reset(0);
    expect((await m2.registry.getSingleMetric('fluxion_phantom_open_alerts')!.get()).values[0]!.value).toBe(0);
    const again = await run(second, record(topics.changes, 'x', encChange(k, change('9.000', '0.000', 90))));
    expect(JSON.parse((await k.state.decode(again.find((o) => o.topic === topics.state)!.value)).state_json)).toMatchObject({ changes: 1, zero: { from: { snapshotId: null, quantity: '9.000' } } });
  });

  it('decode refuses bad bytes, unknown schema ids, invalid changes and foreign topics', async () => {
    const spec = await createPhantomSpec(deps());
    const k = await codecs();
    await expect(spec.decode(record(topics.changes, 'x', Buffer.from('not avro at all')))).rejects.toThrow(ValidationError);
    await expect(spec.decode(record(topics.ventas, 'x', confluentFrame(99, Buffer.from([1]))))).rejects.toThrow(SchemaError);
    await expect(spec.decode(record(topics.changes, 'x', encChange(k, { ...change('1.000', '2.000', 0), after: null })))).rejects.toThrow(/op u without after/);
    await expect(spec.decode(record(`${PREFIX}pos.ventas.raw`, 'x', k.venta.encode(venta('F-1', '1.000', 0))))).rejects.toThrow(/not an input/);
    expect(await spec.decode(record(topics.ventas, 'x', k.venta.encode(venta('F-1', '1.000', 0))))).toMatchObject({ kind: 'venta', venta: { linea: { numero_factura: 'F-1' } } });
  });
});
