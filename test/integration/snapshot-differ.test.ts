/**
 * The snapshot differ against the real broker and registry: changes between snapshots,
 * incomplete snapshots never applied, quarantine and release through the CLI, poison records
 * in the DLQ, and state rebuilt from pos.inventario.state by a new instance and on a
 * partition assignment; a stale snapshot recorded once and never applied, told apart from
 * the older snapshots a restart reads again.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { confluentFrame } from '../../core/avro/wire.ts';
import { partitionForUbicacion } from '../../core/kafka/partitioning.ts';
import type { QuarantineRecord } from '../../core/records.ts';
import { dlqTopic } from '../../core/topics.ts';
import { createStreamProcessor } from '../../processors/runtime/stream-processor.ts';
import { counterValue, createRuntimeMetrics } from '../../processors/runtime/metrics.ts';
import { createDifferSpec } from '../../processors/snapshot-differ.ts';
import { applyChanges, rowKey, unpackRow, type Change, type StoreState } from '../../processors/snapshot-diff.ts';
import { cycleRows, inventoryRow, snapshotFeeder, uuidFrom, type SnapshotFeeder } from '../../fixtures/inventory-feed.ts';
import { pipelineSupply, type TestPipeline } from '../../fixtures/pipeline.ts';
import { processorConfig, startProcessor, waitForGroupEnd } from '../../fixtures/processor-run.ts';
import { runCli, uniqueId } from '../../fixtures/services.ts';

const STORES = ['tienda_01', 'tienda_02', 'tienda_03', 'tienda_04'];
let pipeline: TestPipeline;
let feeder: SnapshotFeeder;
// One pipeline per describe; the second one is set up while the first describe runs.
const pipelines = pipelineSupply(3);
afterAll(() => pipelines.close());

beforeAll(async () => {
  pipeline = await pipelines.next();
  feeder = await snapshotFeeder(pipeline.kafka, pipeline.registry, pipeline.prefix);
});

afterAll(async () => {
  await feeder?.close();
  await pipeline?.cleanup();
});

const at = (cycle: number) => new Date(Date.UTC(2026, 10, 27, 12, 0, 0) + cycle * 1_800_000);
const snap = (ubicacion: string, cycle: number, rows = cycleRows(ubicacion, cycle, 240), label = '') => ({
  ubicacion,
  snapshotId: uuidFrom(`${pipeline.prefix}${ubicacion}/${cycle}${label}`),
  takenAt: at(cycle),
  rows,
  chunkSize: 50,
});

type ChangeRecord = Change & { taken_at: Date };

async function changesOf(ubicacion?: string): Promise<ChangeRecord[]> {
  const got = await pipeline.read<ChangeRecord>('pos.inventario.changes', { idleMs: 1_500 });
  return got.map((r) => r.decoded).filter((c) => !ubicacion || c.ubicacion_id === ubicacion);
}

function fold(changes: ChangeRecord[], ubicacion: string): Map<string, string> {
  const state = applyChanges(
    new Map() as StoreState,
    changes.filter((c) => c.ubicacion_id === ubicacion),
  );
  return new Map([...state].map(([k, packed]) => [k, unpackRow(packed).cantidad]));
}

describe('fluxion process differ', () => {
  it('turns consecutive snapshots into c/u/d changes, skips incomplete ones, quarantines mass zeros until released, DLQs poison, and ' +
    'rebuilds its state', {
    timeout: 240_000,
  }, async () => {
    const group = uniqueId('differ');
    let running = await startProcessor(createDifferSpec, pipeline, group, { maxBatch: 7 });
    const inputs = [`${pipeline.prefix}pos.inventario.snapshots`];

    // Cycle 1: every product is new.
    await feeder.publish(STORES.map((s) => snap(s, 1)));
    await waitForGroupEnd(pipeline.kafka, group, inputs);
    let changes = await changesOf();
    expect(changes.filter((c) => c.op === 'c')).toHaveLength(STORES.length * 240);

    // Cycle 2: ~5% changed, one product vanished and one new in tienda_01.
    const rows2 = cycleRows('tienda_01', 2, 240).filter((r) => r.producto_id !== '000007');
    rows2.push(inventoryRow(999, '5.000'));
    await feeder.publish([snap('tienda_01', 2, rows2), ...STORES.slice(1).map((s) => snap(s, 2))]);
    await waitForGroupEnd(pipeline.kafka, group, inputs);
    changes = await changesOf();
    const cycle2 = changes.filter((c) => c.taken_at.getTime() === at(2).getTime());
    const expectedUpdates = STORES.map((s) => {
      const before = cycleRows(s, 1, 240);
      const after = cycleRows(s, 2, 240);
      return after.filter((r, i) => r.cantidad !== before[i]!.cantidad && !(s === 'tienda_01' && r.producto_id === '000007')).length;
    }).reduce((a, b) => a + b, 0);
    expect(cycle2.filter((c) => c.op === 'u')).toHaveLength(expectedUpdates);
    expect(expectedUpdates).toBeGreaterThan(0);
    expect(cycle2.filter((c) => c.op === 'd').map((c) => `${c.ubicacion_id}/${c.producto_id}`)).toEqual(['tienda_01/000007']);
    expect(cycle2.filter((c) => c.op === 'c').map((c) => `${c.ubicacion_id}/${c.producto_id}`)).toEqual(['tienda_01/000999']);
    for (const u of cycle2.filter((c) => c.op === 'u')) expect(u.before!.cantidad).not.toBe(u.after!.cantidad);
    expect(fold(changes, 'tienda_01')).toEqual(new Map(rows2.map((r) => [rowKey(r.deposito, r.producto_id), r.cantidad])));

    // An incomplete snapshot (1 of 5 chunks) superseded by a newer one: never applied.
    const broken = snap(
      'tienda_02',
      3,
      cycleRows('tienda_02', 3, 240).map((r) => ({ ...r, cantidad: '1.000' })),
      'broken',
    );
    await feeder.publish([{ ...broken, only: [0] }, snap('tienda_02', 4)]);
    await waitForGroupEnd(pipeline.kafka, group, inputs);
    changes = await changesOf('tienda_02');
    expect(changes.some((c) => c.snapshot_id === broken.snapshotId)).toBe(false);
    expect(fold(changes, 'tienda_02')).toEqual(
      new Map(cycleRows('tienda_02', 4, 240).map((r) => [rowKey(r.deposito, r.producto_id), r.cantidad])),
    );
    expect(
      await counterValue(running.metrics.registry.getSingleMetric('fluxion_differ_snapshots_total') as never, { outcome: 'dropped' }),
    ).toBe(1);

    // Poison: garbage bytes, an unknown schema id, a schema-valid chunk with chunk_count -1.
    const poisonProducer = await pipeline.kafka.producer();
    const negative = feeder.codec.encode({
      snapshot_id: uuidFrom('neg'),
      ubicacion_id: 'tienda_03',
      source: 'KLK',
      taken_at: at(5),
      chunk_index: 0,
      chunk_count: -1,
      row_count: 0,
      rows: [],
    });
    await poisonProducer.send(inputs[0]!, [
      { ubicacionId: 'tienda_03', key: 'tienda_03', value: Buffer.from('not avro at all') },
      { ubicacionId: 'tienda_03', key: 'tienda_03', value: confluentFrame(987_654, Buffer.from([2, 4, 6])) },
      { ubicacionId: 'tienda_03', key: 'tienda_03', value: negative },
    ]);
    await poisonProducer.disconnect();

    // Mass zeros in tienda_03 (80% of its products at 0): quarantined, not applied.
    const zeroed = cycleRows('tienda_03', 5, 240).map((r, i) => (i % 5 === 0 ? r : { ...r, cantidad: '0.000' }));
    const mass = snap('tienda_03', 5, zeroed);
    await feeder.publish([mass, snap('tienda_04', 5)]);
    await waitForGroupEnd(pipeline.kafka, group, inputs);
    expect((await changesOf('tienda_03')).some((c) => c.snapshot_id === mass.snapshotId)).toBe(false);
    expect((await changesOf('tienda_04')).some((c) => c.taken_at.getTime() === at(5).getTime())).toBe(true);

    const dlq = await pipeline.read(dlqTopic('pos.inventario.snapshots'), { raw: true, idleMs: 1_000 });
    expect(dlq).toHaveLength(3);
    expect(dlq[0]!.value!.toString()).toBe('not avro at all');
    expect(dlq.map((r) => r.headers.error)).toEqual([
      expect.stringMatching(/magic byte/),
      expect.stringMatching(/schema id 987654/),
      expect.stringMatching(/chunk_count -1/),
    ]);
    expect(dlq.every((r) => r.headers.source_topic === inputs[0] && r.headers.source_offset !== undefined)).toBe(true);

    // A new instance rebuilds its state from the topic: the same snapshot again is no change.
    await running.stop();
    expect(await running.finished).toBeUndefined();
    running = await startProcessor(createDifferSpec, pipeline, group, { maxBatch: 7 });
    const before = (await changesOf()).length;
    await feeder.publish([snap('tienda_01', 6, rows2)]);
    await waitForGroupEnd(pipeline.kafka, group, inputs);
    expect((await changesOf()).length).toBe(before);

    // The operator's view and release, through the CLI.
    const env = { FLUXION_TOPIC_PREFIX: pipeline.prefix, LOG_LEVEL: 'warn' };
    const listed = await runCli(['quarantine', 'list'], env);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(mass.snapshotId);
    expect(listed.stdout).toMatch(/tienda_03 .*QUARANTINED .*80\.0% > 30%/);
    expect(listed.stdout).toContain('quarantine: 1 waiting for a decision');
    const bogus = await runCli(['quarantine', 'release', uuidFrom('nothing')], env);
    expect(bogus.code).toBe(1);
    expect(bogus.stderr).toMatch(/is not in quarantine/);
    const released = await runCli(['quarantine', 'release', mass.snapshotId, '--note', 'inventario físico confirmado'], env);
    expect(released.code, released.stderr).toBe(0);
    expect(released.stdout).toMatch(/released \(5 chunks sent again\)/);
    await waitForGroupEnd(pipeline.kafka, group, inputs);
    const t3 = await changesOf('tienda_03');
    expect(t3.filter((c) => c.snapshot_id === mass.snapshotId && c.op === 'u').length).toBeGreaterThan(150);
    expect(fold(t3, 'tienda_03')).toEqual(new Map(zeroed.map((r) => [rowKey(r.deposito, r.producto_id), r.cantidad])));
    const after = await runCli(['quarantine', 'list', '--all', '--json'], env);
    expect(
      after.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual([expect.objectContaining({ snapshot_id: mass.snapshotId, status: 'RELEASED', note: 'inventario físico confirmado' })]);

    // A second instance joins: partitions move, and each instance loads the state of the
    // partitions it is given before processing them (identical snapshots: no change).
    const second = await startProcessor(createDifferSpec, pipeline, group, { maxBatch: 7 });
    // Until the rebalance is over (both members, the group stable), instead of a fixed 6 s.
    const admin = await pipeline.kafka.admin();
    try {
      for (const deadline = Date.now() + 60_000; ; await new Promise((r) => setTimeout(r, 200))) {
        const [g] = await admin.describeGroups([group]);
        if (g?.state === 'Stable' && g.members === 2) break;
        if (Date.now() > deadline) throw new Error(`group ${group} not stable with 2 members in 60 s: ${JSON.stringify(g)}`);
      }
    } finally {
      await admin.disconnect();
    }
    const count = (await changesOf()).length;
    await feeder.publish([
      snap('tienda_01', 7, rows2),
      snap('tienda_02', 7, cycleRows('tienda_02', 4, 240)),
      snap('tienda_03', 7, zeroed),
      snap('tienda_04', 7, cycleRows('tienda_04', 5, 240)),
    ]);
    await waitForGroupEnd(pipeline.kafka, group, inputs);
    expect((await changesOf()).length).toBe(count);
    await Promise.all([running.stop(), second.stop()]);
  });
});

describe('fluxion process differ: stale snapshots', () => {
  let p2: TestPipeline;
  let feeder2: SnapshotFeeder;
  beforeAll(async () => {
    p2 = await pipelines.next(true);
    feeder2 = await snapshotFeeder(p2.kafka, p2.registry, p2.prefix);
  });
  afterAll(async () => {
    await feeder2?.close();
    await p2?.cleanup();
  });

  /** A differ whose log lines (debug and up) are kept, to read what it said. */
  async function startLogged(group: string) {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const metrics = createRuntimeMetrics();
    const spec = await createDifferSpec({
      kafka: p2.kafka,
      registry: p2.registry,
      logger,
      topicPrefix: p2.prefix,
      partitions: 3,
      config: processorConfig(),
      metrics,
    });
    const processor = createStreamProcessor(
      spec,
      { kafka: p2.kafka, logger, metrics },
      { groupId: group, sessionTimeoutMs: 3_000, maxBatch: 7, transactionTimeoutMs: 15_000 },
    );
    const finished = processor.run().then(
      () => undefined,
      (err: unknown) => err,
    );
    const outcome = (o: string) =>
      counterValue(metrics.registry.getSingleMetric('fluxion_differ_snapshots_total') as never, { outcome: o });
    return { lines, outcome, finished, stop: () => processor.stop() };
  }

  async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  it('records a snapshot older than the applied one as STALE once, never applies or releases it, ' +
    'and does not call the older snapshots a restart reads again stale', {
    timeout: 180_000,
  }, async () => {
    // Two stores on one partition: the held one's incomplete snapshot holds the partition's
    // committed offset back, so a restart reads everything after it again.
    const candidates = Array.from({ length: 20 }, (_, i) => `tienda_${String(i + 1).padStart(2, '0')}`);
    const held = candidates[0]!;
    const store = candidates.find((c) => c !== held && partitionForUbicacion(c, 3) === partitionForUbicacion(held, 3))!;
    const id = (label: string) => uuidFrom(`${p2.prefix}${label}`);
    const y1 = { ubicacion: store, snapshotId: id('y1'), takenAt: at(1), rows: cycleRows(store, 1, 120), chunkSize: 40 };
    const y2 = { ubicacion: store, snapshotId: id('y2'), takenAt: at(3), rows: cycleRows(store, 3, 120), chunkSize: 40 };
    // Taken between the two but read after the second (a delayed run): stale.
    const y0 = {
      ubicacion: store,
      snapshotId: id('y0'),
      takenAt: at(2),
      rows: cycleRows(store, 2, 120).map((r) => ({ ...r, cantidad: '1.000' })),
      chunkSize: 40,
    };
    const group = uniqueId('differ-stale');
    const first = await startLogged(group);
    await feeder2.publish([
      { ubicacion: held, snapshotId: id('h1'), takenAt: at(1), rows: cycleRows(held, 1, 120), chunkSize: 40, only: [0] },
      y1,
      y2,
      y0,
    ]);
    await until('the stale snapshot', async () => (await first.outcome('stale')) === 1);
    expect(await first.outcome('applied')).toBe(2);

    const quarantine = async () => (await p2.read<QuarantineRecord>('pos.inventario.quarantine', { idleMs: 1_000 })).map((r) => r.decoded);
    const recorded = await quarantine();
    expect(recorded).toEqual([
      expect.objectContaining({
        snapshot_id: y0.snapshotId,
        ubicacion_id: store,
        status: 'STALE',
        taken_at: at(2),
        updated_at: at(3),
        row_count: 120,
        chunk_count: 3,
        reason:
          `stale: taken at ${at(2).toISOString()}, before snapshot ${y2.snapshotId} (taken at ${at(3).toISOString()}) which was already ` +
          `applied`,
      }),
    ]);
    const warned = first.lines.filter((l) => l.msg?.toString().startsWith('stale snapshot, not applied'));
    expect(warned).toEqual([
      expect.objectContaining({
        level: 40,
        ubicacion: store,
        snapshot: y0.snapshotId,
        taken_at: at(2).toISOString(),
        applied_snapshot: y2.snapshotId,
        applied_taken_at: at(3).toISOString(),
      }),
    ]);
    expect((await changesOf2(store)).some((c) => c.snapshot_id === y0.snapshotId)).toBe(false);

    // A restart reads y1, y2 and y0 again (the committed offset is before them): nothing new.
    await first.stop();
    const second = await startLogged(group);
    await until('the second instance to read past y0', async () =>
      second.lines.some((l) => l.msg === 'snapshot already decided: skipped' && l.snapshot === y0.snapshotId),
    );
    expect(second.lines.filter((l) => l.msg === 'snapshot already decided: skipped').map((l) => [l.snapshot, l.why])).toEqual([
      [y1.snapshotId, 'read-before-applied'],
      [y2.snapshotId, 'applied'],
      [y0.snapshotId, 'decided'],
    ]);
    // The held store's next snapshot supersedes its incomplete one: offsets move to the end.
    await feeder2.publish([{ ubicacion: held, snapshotId: id('h2'), takenAt: at(2), rows: cycleRows(held, 2, 120), chunkSize: 40 }]);
    await waitForGroupEnd(p2.kafka, group, [`${p2.prefix}pos.inventario.snapshots`]);
    expect(await second.outcome('stale')).toBe(0);
    expect(await second.outcome('applied')).toBe(1);
    expect(await quarantine()).toHaveLength(1);
    const changes = await changesOf2(store);
    expect(changes.filter((c) => c.snapshot_id === y1.snapshotId)).toHaveLength(120);
    expect(changes.some((c) => c.snapshot_id === y0.snapshotId)).toBe(false);

    // Listed with --all (and counted without it), and never releasable.
    const env = { FLUXION_TOPIC_PREFIX: p2.prefix, LOG_LEVEL: 'warn' };
    const listed = await runCli(['quarantine', 'list'], env);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain('quarantine: 0 waiting for a decision');
    expect(listed.stdout).toContain('quarantine: 1 stale snapshot(s) recorded');
    const all = await runCli(['quarantine', 'list', '--all'], env);
    expect(all.stdout).toMatch(new RegExp(`${y0.snapshotId} +${store} .*STALE .*before snapshot ${y2.snapshotId}`));
    const release = await runCli(['quarantine', 'release', y0.snapshotId], env);
    expect(release.code).toBe(1);
    expect(release.stderr).toMatch(/is STALE and can never be released/);
    await second.stop();
    expect(await second.finished).toBeUndefined();
  });

  async function changesOf2(ubicacion: string): Promise<ChangeRecord[]> {
    return (await p2.read<ChangeRecord>('pos.inventario.changes', { idleMs: 1_500 }))
      .map((r) => r.decoded)
      .filter((c) => c.ubicacion_id === ubicacion);
  }
});
