/**
 * `fluxion replay historico` on the real services: the rebuilt table equals the one the
 * live sink built, row for row, twice in a row; --from and --to repair their window and keep
 * the rest; a replay while the sink keeps writing loses nothing; a cancelled replay leaves
 * the live table untouched.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ReplayCancelled, replayHistorico } from '../../sinks/historico-replay.ts';
import { createTestPipeline, type TestPipeline } from '../helpers/pipeline.ts';
import { runCli, serviceEnv, testLogger, uniqueId } from '../helpers/services.ts';
import { buildSinkFeed, publishSinkFeed, type SinkFeed } from '../helpers/sink-feed.ts';
import { migratedDatabase, sinkTables, startSink, waitForSinkEnd, type MigratedDatabase } from '../helpers/sink-run.ts';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

const STORES = ['tienda_01', 'tienda_02', 'tienda_03'];
// Starts two hours before a month ends, so the history spans two monthly partitions.
const START = new Date('2026-10-31T22:00:00Z');

async function liveHistory(feed: SinkFeed): Promise<{ pipeline: TestPipeline; db: MigratedDatabase; group: string }> {
  const pipeline = await createTestPipeline();
  cleanups.push(() => pipeline.cleanup());
  const db = await migratedDatabase();
  cleanups.push(() => db.drop());
  await publishSinkFeed(pipeline, feed, 700);
  const group = uniqueId('sink');
  const sink = startSink(pipeline, db.pool, group, { maxBatch: 500 });
  cleanups.push(() => sink.stop());
  await waitForSinkEnd(pipeline, db.pool, group);
  return { pipeline, db, group };
}

const historico = async (db: MigratedDatabase) => (await sinkTables(db.pool)).inventario_historico!;

function cli(pipeline: TestPipeline, db: MigratedDatabase, args: string[]) {
  return runCli(['replay', 'historico', ...args], { ...serviceEnv(), DATABASE_URL: db.url, FLUXION_TOPIC_PREFIX: pipeline.prefix, FLUXION_TOPIC_PARTITIONS: '3' });
}

describe('fluxion replay historico', () => {
  it('rebuilds the very table the sink built, row for row, and a second replay changes nothing', async () => {
    const feed = buildSinkFeed({ stores: STORES, products: 500, cycles: 8, ventasPerStore: 10, alertsPerStore: 1, start: START });
    const { pipeline, db, group } = await liveHistory(feed);
    const live = await historico(db);
    expect(live.length).toBe(feed.changes.filter((c) => c.op !== 'd').length);
    const partitions = async () => (await db.pool.query(`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'inventario_historico'::regclass ORDER BY 1`)).rows.map((r) => r.relname);
    expect(await partitions()).toEqual(['inventario_historico_2026_10', 'inventario_historico_2026_11', 'inventario_historico_default']);

    // Damage it the way an operator would need a replay for.
    await db.pool.query(`DELETE FROM inventario_historico WHERE ubicacion_id = 'tienda_02'`);
    await db.pool.query(`UPDATE inventario_historico SET cantidad = 0 WHERE producto_id = '000007'`);

    const first = await cli(pipeline, db, ['--group', group]);
    expect(first.stderr).not.toMatch(/error/i);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`${feed.changes.length} events applied, 0 skipped, 0 rows kept; inventario_historico now has ${live.length} rows`));
    expect(await historico(db)).toEqual(live);
    expect(await partitions()).toEqual(['inventario_historico_2026_10', 'inventario_historico_2026_11', 'inventario_historico_default']);

    const second = await cli(pipeline, db, ['--group', group]);
    expect(second.code).toBe(0);
    expect(await historico(db)).toEqual(live);
    // The live sink keeps writing into the swapped-in table; inventario_al reads it.
    const at = feed.cycleTimes[3]!;
    expect(Number((await db.pool.query(`SELECT count(*) AS n FROM inventario_al($1, 'tienda_01')`, [at])).rows[0].n)).toBeGreaterThan(400);
    expect((await db.pool.query(`SELECT to_regclass('inventario_historico_replay') AS t`)).rows[0].t).toBeNull();
  });

  it('--from repairs the history from an instant on and keeps the older rows; --to repairs up to an instant', async () => {
    const feed = buildSinkFeed({ stores: STORES, products: 400, cycles: 8, ventasPerStore: 10, alertsPerStore: 1, start: START });
    const { pipeline, db, group } = await liveHistory(feed);
    const live = await historico(db);
    const from = feed.cycleTimes[4]!;
    // An old row, damaged on purpose, must survive a --from replay: the older history is kept.
    await db.pool.query(`UPDATE inventario_historico SET cantidad = 999 WHERE producto_id = '000003' AND valid_from < $1`, [from]);
    const oldDamage = await historico(db);
    await db.pool.query(`DELETE FROM inventario_historico WHERE valid_from >= $1`, [from]);
    await db.pool.query(`UPDATE inventario_historico SET valid_to = NULL WHERE valid_to >= $1`, [from]);

    const r = await cli(pipeline, db, ['--group', group, '--from', from.toISOString()]);
    expect(r.code).toBe(0);
    expect(await historico(db)).toEqual(oldDamage);

    // --to: the window before it is rebuilt (repairing the damage), the rows from it on kept.
    const to = feed.cycleTimes[5]!;
    await db.pool.query(`DELETE FROM inventario_historico WHERE valid_from < $1 AND ubicacion_id = 'tienda_03'`, [to]);
    const r2 = await cli(pipeline, db, ['--group', group, '--to', to.toISOString()]);
    expect(r2.code).toBe(0);
    expect(await historico(db)).toEqual(live);

    const bad = await cli(pipeline, db, ['--group', group, '--from', '2026-11-01T00:00:00']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--from must be an instant with its offset/);
  });

  it('catches up with a sink writing during the replay, and a cancelled replay leaves the table untouched', async () => {
    const feed = buildSinkFeed({ stores: STORES, products: 600, cycles: 6, ventasPerStore: 10, alertsPerStore: 1, start: START });
    const { pipeline, db, group } = await liveHistory(feed);
    const before = await historico(db);

    // Cancelled after its first events: no shadow table left, the live one as it was.
    const controller = new AbortController();
    const cancelled = replayHistorico(
      { kafka: pipeline.kafka, registry: pipeline.registry, pool: db.pool, logger: testLogger, topicPrefix: pipeline.prefix },
      { sinkGroup: group, batchSize: 100, signal: controller.signal, progress: () => ({ update: (n) => void (n > 200 && controller.abort()), finish: () => undefined }) },
    );
    await expect(cancelled).rejects.toBeInstanceOf(ReplayCancelled);
    expect(await historico(db)).toEqual(before);
    expect((await db.pool.query(`SELECT to_regclass('inventario_historico_replay') AS t`)).rows[0].t).toBeNull();

    // More cycles arrive while a replay runs; the sink writes them into whichever table is live.
    const later = buildSinkFeed({ stores: STORES, products: 600, cycles: 10, ventasPerStore: 10, alertsPerStore: 1, start: START });
    const extra = { ...later, changes: later.changes.filter((c) => c.taken_at >= later.cycleTimes[6]!), ventas: [], alerts: [], runs: [] };
    const replaying = replayHistorico(
      { kafka: pipeline.kafka, registry: pipeline.registry, pool: db.pool, logger: testLogger, topicPrefix: pipeline.prefix },
      { sinkGroup: group, batchSize: 200 },
    );
    await publishSinkFeed(pipeline, extra, 300);
    const result = await replaying;
    expect(result.skipped).toBe(0);
    await waitForSinkEnd(pipeline, db.pool, group);

    // The reference: everything the topic holds, written by an undisturbed sink elsewhere.
    const reference = await migratedDatabase();
    cleanups.push(() => reference.drop());
    const refGroup = uniqueId('sink-ref');
    const ref = startSink(pipeline, reference.pool, refGroup);
    cleanups.push(() => ref.stop());
    await waitForSinkEnd(pipeline, reference.pool, refGroup);
    expect(await historico(db)).toEqual(await historico(reference));
  });
});
