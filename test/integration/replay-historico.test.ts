/**
 * `fluxion replay historico` on the real services: the rebuilt table equals the one the
 * live sink built, row for row, twice in a row; --from and --to repair their window and keep
 * the rest; a replay while the sink keeps writing loses nothing; a cancelled replay leaves
 * the live table untouched. A log that does not hold what the live table was built from (a
 * recreated, empty topic; a trimmed one; a partition gone) is refused with exit 3 and the
 * table kept; --force says how many rows go, then swaps.
 */
import { Kafka, logLevel } from 'kafkajs';
import { afterEach, describe, expect, it } from 'vitest';
import { ReplayCancelled, replayHistorico } from '../../sinks/historico-replay.ts';
import { createTestPipeline, type TestPipeline } from '../../fixtures/pipeline.ts';
import { freshDatabase, runCli, serviceEnv, testLogger, uniqueId } from '../../fixtures/services.ts';
import { buildSinkFeed, publishSinkFeed, type SinkFeed } from '../helpers/sink-feed.ts';
import { migratedDatabase, sinkTables, startSink, waitForSinkEnd, type MigratedDatabase } from '../../fixtures/sink-run.ts';

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
const CHANGES = 'pos.inventario.changes';

/** A history row's identity (key and valid_from), from a sinkTables line. */
const identity = (line: string) => {
  const r = JSON.parse(line) as unknown[];
  return JSON.stringify([r[0], r[1], r[2], r[9]]);
};

/**
 * What retention or a partial migration leaves: the partition's records before `offset`
 * deleted (its low watermark moves there). Fluxion never deletes records, so no core/kafka
 * verb exists for it; the test calls kafkajs itself.
 */
async function deleteRecordsBefore(topic: string, partition: number, offset: bigint): Promise<void> {
  const admin = new Kafka({
    clientId: 'fluxion-test-trim',
    brokers: serviceEnv().KAFKA_BROKERS.split(','),
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  try {
    // kafkajs finds the partition's leader in metadata it must have loaded first.
    await admin.fetchTopicMetadata({ topics: [topic] });
    await admin.deleteTopicRecords({ topic, partitions: [{ partition, offset: offset.toString() }] });
  } finally {
    await admin.disconnect();
  }
}

function cli(pipeline: TestPipeline, db: MigratedDatabase, args: string[]) {
  return runCli(['replay', 'historico', ...args], {
    ...serviceEnv(),
    DATABASE_URL: db.url,
    FLUXION_TOPIC_PREFIX: pipeline.prefix,
    FLUXION_TOPIC_PARTITIONS: '3',
  });
}

describe('fluxion replay historico', () => {
  it('rebuilds the very table the sink built, row for row, and a second replay changes nothing', async () => {
    const feed = buildSinkFeed({ stores: STORES, products: 500, cycles: 8, ventasPerStore: 10, alertsPerStore: 1, start: START });
    const { pipeline, db, group } = await liveHistory(feed);
    const live = await historico(db);
    expect(live.length).toBe(feed.changes.filter((c) => c.op !== 'd').length);
    const partitions = async () =>
      (
        await db.pool.query(
          `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = ` +
            `'inventario_historico'::regclass ORDER BY 1`,
        )
      ).rows.map((r) => r.relname);
    expect(await partitions()).toEqual(['inventario_historico_2026_10', 'inventario_historico_2026_11', 'inventario_historico_default']);

    // Damage it the way an operator would need a replay for.
    await db.pool.query(`DELETE FROM inventario_historico WHERE ubicacion_id = 'tienda_02'`);
    await db.pool.query(`UPDATE inventario_historico SET cantidad = 0 WHERE producto_id = '000007'`);

    // Positions of the same group on another prefix's topic are not this log's.
    for (const p of [0, 1, 2, 3]) {
      await db.pool.query(`INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset) VALUES ($1, $2, $3, 999999)`, [
        group,
        `other.${pipeline.prefix}${CHANGES}`,
        p,
      ]);
    }
    const first = await cli(pipeline, db, ['--group', group]);
    expect(first.stderr).not.toMatch(/error/i);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(
      new RegExp(`${feed.changes.length} events applied, 0 skipped, 0 rows kept; inventario_historico now has ${live.length} rows`),
    );
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
      {
        sinkGroup: group,
        batchSize: 100,
        signal: controller.signal,
        progress: () => ({ update: (n) => void (n > 200 && controller.abort()), finish: () => undefined }),
      },
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

  it(
    'refuses to swap in the history of an empty, recreated topic while sink_offsets is ahead (exit 3, table kept); --force says what ' +
      'goes',
    async () => {
      const feed = buildSinkFeed({ stores: STORES, products: 300, cycles: 3, ventasPerStore: 2, alertsPerStore: 0, start: START });
      const { pipeline, db, group } = await liveHistory(feed);
      const live = await historico(db);
      expect(live.length).toBeGreaterThan(900);
      const changesTopic = pipeline.prefix + CHANGES;

      // A partition sink_offsets knows and the topic lacks.
      await db.pool.query(`INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset) VALUES ($1, $2, 3, 40)`, [
        group,
        changesTopic,
      ]);
      const gone = await cli(pipeline, db, ['--group', group]);
      expect(gone.code).toBe(3);
      expect(gone.stderr).toContain(`${changesTopic} partition 3: offsets 0 to 39 (40 events) are missing: the topic has no partition 3`);
      expect(gone.stderr).not.toMatch(/partition [012]:/);
      expect(await historico(db)).toEqual(live);
      await db.pool.query(`DELETE FROM sink_offsets WHERE topic = $1 AND partition = 3`, [changesTopic]);

      // The reported case: the same database pointed at a cluster whose topic is empty (a new
      // prefix stands for it), sink_offsets moved with it, the default group.
      const empty = await createTestPipeline();
      cleanups.push(() => empty.cleanup());
      const defaultGroup = `${empty.prefix}fluxion-sink-postgres`;
      await db.pool.query(`UPDATE sink_offsets SET consumer_group = $1, topic = replace(topic, $2, $3) WHERE consumer_group = $4`, [
        defaultGroup,
        pipeline.prefix,
        empty.prefix,
        group,
      ]);
      const positions = (
        await db.pool.query<{ partition: number; next_offset: string }>(
          `SELECT partition, next_offset FROM sink_offsets WHERE topic = $1 AND next_offset > 0 ORDER BY partition`,
          [empty.prefix + CHANGES],
        )
      ).rows;
      expect(positions.length).toBeGreaterThan(0);

      const refused = await cli(empty, db, []);
      expect(refused.code).toBe(3);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toContain(
        `replay refused: ${empty.prefix}${CHANGES} does not hold every event inventario_historico (${live.length} rows) was built from`,
      );
      for (const { partition, next_offset } of positions) {
        expect(refused.stderr).toContain(
          `${empty.prefix}${CHANGES} partition ${partition}: offsets 0 to ${BigInt(next_offset) - 1n} (${next_offset} events) are not ` +
            `in the log, which ends at offset 0 while sink_offsets says the sink wrote up to ${next_offset}`,
        );
      }
      expect(refused.stderr).toContain('inventario_historico was left untouched');
      expect(await historico(db)).toEqual(live);
      expect((await db.pool.query(`SELECT to_regclass('inventario_historico_replay') AS t`)).rows[0].t).toBeNull();

      // A group with no position on the topic: nothing says what built the rows.
      const wrongGroup = await cli(empty, db, ['--group', 'nobody']);
      expect(wrongGroup.code).toBe(3);
      expect(wrongGroup.stderr).toContain(
        `sink_offsets holds no position of group nobody on ${empty.prefix}${CHANGES}, yet inventario_historico holds ${live.length} rows`,
      );
      expect(wrongGroup.stderr).toContain(`groups with positions on it: ${defaultGroup}`);
      expect(await historico(db)).toEqual(live);

      const forced = await cli(empty, db, ['--force']);
      expect(forced.code).toBe(0);
      expect(forced.stderr).toContain(
        `replay historico --force: ${live.length} of the ${live.length} rows of inventario_historico will be lost (the rebuilt table ` +
          `has 0); swapping it in`,
      );
      expect(forced.stdout).toMatch(
        new RegExp(
          `0 events applied, 0 skipped, 0 rows kept, ${live.length} rows lost \\(--force\\); inventario_historico now has 0 rows`,
        ),
      );
      expect(await historico(db)).toEqual([]);
    },
  );

  it('refuses a topic trimmed below the sink position (exit 3, table kept); --force deletes exactly the rows it reports', async () => {
    const feed = buildSinkFeed({ stores: STORES, products: 300, cycles: 3, ventasPerStore: 2, alertsPerStore: 0, start: START });
    const { pipeline, db, group } = await liveHistory(feed);
    const live = await historico(db);
    const changesTopic = pipeline.prefix + CHANGES;
    const admin = await pipeline.kafka.admin();
    const offsets = await admin.topicOffsets(changesTopic);
    await admin.disconnect();
    const trimmed = offsets.find((o) => BigInt(o.high) > 200n)!;
    // What retention leaves: the partition's first 120 records gone.
    await deleteRecordsBefore(changesTopic, trimmed.partition, 120n);

    const refused = await cli(pipeline, db, ['--group', group]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain(
      `${changesTopic} partition ${trimmed.partition}: offsets 0 to 119 (120 events) are no longer in the log, which now starts at ` +
        `offset 120`,
    );
    expect(refused.stderr.match(/ partition \d+: /g)).toHaveLength(1);
    expect(await historico(db)).toEqual(live);

    // --from before the log's start proves nothing (deleted events may be newer than it): refused too.
    const fromRefused = await cli(pipeline, db, ['--group', group, '--from', feed.cycleTimes[1]!.toISOString()]);
    expect(fromRefused.code).toBe(3);
    expect(fromRefused.stderr).toContain(`partition ${trimmed.partition}: offsets 0 to 119 (120 events) are no longer in the log`);

    const forced = await cli(pipeline, db, ['--group', group, '--force']);
    expect(forced.code).toBe(0);
    const after = await historico(db);
    const kept = new Set(after.map(identity));
    const lost = live.filter((l) => !kept.has(identity(l))).length;
    expect(lost).toBeGreaterThan(0);
    expect(forced.stderr).toContain(`offsets 0 to 119 (120 events) are no longer in the log`);
    expect(forced.stderr).toContain(
      `replay historico --force: ${lost} of the ${live.length} rows of inventario_historico will be lost (the rebuilt table has ` +
        `${after.length}); swapping it in`,
    );
    expect(forced.stdout).toContain(`${lost} rows lost (--force); inventario_historico now has ${after.length} rows`);
  });

  it('on a database never migrated: exit 1 naming the missing table and `fluxion migrate`', async () => {
    const pipeline = await createTestPipeline();
    cleanups.push(() => pipeline.cleanup());
    const db = await freshDatabase();
    cleanups.push(() => db.drop());
    const r = await runCli(['replay', 'historico'], {
      ...serviceEnv(),
      DATABASE_URL: db.url,
      FLUXION_TOPIC_PREFIX: pipeline.prefix,
      FLUXION_TOPIC_PARTITIONS: '3',
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/replay failed, inventario_historico was left untouched: .*does not exist \(run `fluxion migrate`\)/);
  });
});
