/**
 * The differ's state store across restarts (processors/runtime/state-store.ts): a restart of
 * the same group on the same FLUXION_STATE_DIR reads only the tail of pos.inventario.state
 * past its checkpoint, and diffs exactly as a differ rebuilt from the whole changelog does.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntimeMetrics } from '../../processors/runtime/metrics.ts';
import { diffSnapshot, packRow, packSnapshot, rowKey, type Change } from '../../processors/snapshot-diff.ts';
import { createDifferSpec } from '../../processors/snapshot-differ.ts';
import { cycleRows, snapshotFeeder, uuidFrom, type SnapshotFeeder } from '../../fixtures/inventory-feed.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';
import { processorConfig, runCountingLoads, waitForGroupEnd } from '../../fixtures/processor-run.ts';
import { testLogger, uniqueId } from '../../fixtures/services.ts';

const STORES = ['tienda_01', 'tienda_02', 'tienda_03', 'tienda_04', 'tienda_05', 'tienda_06'];
let pipeline: TestPipeline;
let feeder: SnapshotFeeder;
const dirs: string[] = [];

beforeAll(async () => {
  pipeline = await createTestPipeline(3);
  feeder = await snapshotFeeder(pipeline.kafka, pipeline.registry, pipeline.prefix);
});

afterAll(async () => {
  await feeder?.close();
  await pipeline?.cleanup();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const at = (cycle: number) => new Date(Date.UTC(2026, 11, 3, 12, 0, 0) + cycle * 1_800_000);
const snap = (ubicacion: string, cycle: number) => ({
  ubicacion,
  snapshotId: uuidFrom(`${pipeline.prefix}${ubicacion}/${cycle}`),
  takenAt: at(cycle),
  rows: cycleRows(ubicacion, cycle, 200),
  chunkSize: 50,
});

/** A differ whose state loads are counted (records of pos.inventario.state handed to `load`). */
async function startCounted(group: string, stateDir: string) {
  const metrics = createRuntimeMetrics();
  const spec = await createDifferSpec({
    kafka: pipeline.kafka,
    registry: pipeline.registry,
    logger: testLogger,
    topicPrefix: pipeline.prefix,
    partitions: 3,
    config: processorConfig({ stateDir }),
    metrics,
  });
  const stateTopic = `${pipeline.prefix}pos.inventario.state`;
  return runCountingLoads(spec, pipeline, metrics, group, stateTopic);
}

/** What cycle `cycle` must produce: the pure diff of the previous cycle's rows against its own. */
function expectedChanges(cycle: number): string[] {
  const out: Change[] = [];
  for (const s of STORES) {
    const before = new Map(cycleRows(s, cycle - 1, 200).map((r) => [rowKey(r.deposito, r.producto_id), packRow(r)]));
    const x = snap(s, cycle);
    out.push(
      ...diffSnapshot(
        before,
        packSnapshot({ snapshot_id: x.snapshotId, ubicacion_id: s, source: 'KLK', taken_at: x.takenAt, rows: x.rows }),
      ).changes,
    );
  }
  return sorted(out);
}

const sorted = (changes: Change[]) =>
  changes
    .map((c) => `${c.ubicacion_id}/${c.deposito}/${c.producto_id} ${c.op} ${c.before?.cantidad ?? '-'} -> ${c.after?.cantidad ?? '-'}`)
    .sort();

async function changesOf(cycle: number): Promise<Change[]> {
  const got = await pipeline.read<Change & { taken_at: Date }>('pos.inventario.changes', { idleMs: 1_500 });
  return got.map((r) => r.decoded).filter((c) => c.taken_at.getTime() === at(cycle).getTime());
}

describe('differ state store', () => {
  it('a restart on the same state directory loads only the changelog tail, and diffs as a full rebuild does', {
    timeout: 240_000,
  }, async () => {
    const group = uniqueId('differ-store');
    const stateDir = mkdtempSync(join(tmpdir(), 'differ-state-'));
    dirs.push(stateDir);
    const inputs = [`${pipeline.prefix}pos.inventario.snapshots`];

    let running = await startCounted(group, stateDir);
    await feeder.publish(STORES.map((s) => snap(s, 1)));
    await waitForGroupEnd(pipeline.kafka, group, inputs);
    await feeder.publish(STORES.map((s) => snap(s, 2)));
    await waitForGroupEnd(pipeline.kafka, group, inputs);
    await running.stop();
    expect(await running.finished).toBeUndefined();
    const stateRecords = (await pipeline.read('pos.inventario.state', { raw: true, idleMs: 1_000 })).length;
    // Cycle 1 wrote every row (200 a store) and each cycle an applied record per store.
    expect(stateRecords).toBeGreaterThan(STORES.length * 200);

    // The restart reads only what came after the last checkpoint: the state records of the
    // last transaction (each transaction's checkpoint is the changelog end before it). Cycle 2
    // wrote about 11 records a store (5% of 200 rows changed, and the applied record).
    running = await startCounted(group, stateDir);
    await feeder.publish(STORES.map((s) => snap(s, 3)));
    await waitForGroupEnd(pipeline.kafka, group, inputs);
    await running.stop();
    expect(await running.finished).toBeUndefined();
    expect(running.loaded()).toBeLessThanOrEqual(STORES.length * 20);
    expect(expectedChanges(3).length).toBeGreaterThan(STORES.length);
    expect(sorted(await changesOf(3))).toEqual(expectedChanges(3));

    // The same group on a new directory: no checkpoint, so the whole changelog is read, and
    // the next cycle diffs the same.
    const stateNow = (await pipeline.read('pos.inventario.state', { raw: true, idleMs: 1_000 })).length;
    const freshDir = mkdtempSync(join(tmpdir(), 'differ-state-fresh-'));
    dirs.push(freshDir);
    running = await startCounted(group, freshDir);
    await feeder.publish(STORES.map((s) => snap(s, 4)));
    await waitForGroupEnd(pipeline.kafka, group, inputs);
    await running.stop();
    expect(await running.finished).toBeUndefined();
    expect(running.loaded()).toBe(stateNow);
    expect(sorted(await changesOf(4))).toEqual(expectedChanges(4));
  });
});
