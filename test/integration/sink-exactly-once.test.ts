/**
 * Exactly once into PostgreSQL (docs/architecture.md, Guarantees): `kill -9` of
 * `fluxion sink postgres` at random instants, 20 times, then one undisturbed instance to the
 * end, leaves every table exactly as an undisturbed sink left its own database from the same
 * topics.
 *
 * The seed is printed; rerun one with KILL_SEED=<seed>. KILL_LOG_FILE=<path> keeps the
 * children's logs.
 */
import { appendFileSync } from 'node:fs';
import { afterEach, expect, it } from 'vitest';
import { startGatedFluxion } from '../helpers/gated-fluxion.ts';
import { seededRandom } from '../helpers/kill-harness.ts';
import { createTestPipeline } from '../../fixtures/pipeline.ts';
import { serviceEnv, uniqueId } from '../../fixtures/services.ts';
import { buildSinkFeed, publishSinkFeed } from '../helpers/sink-feed.ts';
import { migratedDatabase, sinkTables, startSink, waitForSinkEnd } from '../../fixtures/sink-run.ts';

const KILLS = 20;
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('leaves PostgreSQL exactly as an undisturbed sink after 20 kill -9 at random instants', { timeout: 400_000 }, async () => {
  const seed = Number(process.env.KILL_SEED ?? Math.floor(Math.random() * 1_000_000));
  console.log(`sink exactly-once test: kill seed ${seed} (rerun with KILL_SEED=${seed})`);
  const random = seededRandom(seed);
  const pipeline = await createTestPipeline();
  cleanups.push(() => pipeline.cleanup());
  const stores = ['tienda_01', 'tienda_02', 'tienda_03', 'tienda_04', 'tienda_05', 'tienda_06'];
  const feed = buildSinkFeed({ stores, products: 2_000, cycles: 8, ventasPerStore: 3_000, alertsPerStore: 20 });
  const records = await publishSinkFeed(pipeline, feed, 1_000);

  // Both databases at once; then the reference, an undisturbed in-process sink on its own
  // database, runs while the killed run does (they share only the topics, read by two groups).
  const [reference, killed] = await Promise.all([migratedDatabase(), migratedDatabase()]);
  cleanups.push(
    () => reference.drop(),
    () => killed.drop(),
  );
  const refGroup = uniqueId('sink-ref');
  // Big transactions here, small ones in the killed run: batching must not change the tables either.
  const ref = startSink(pipeline, reference.pool, refGroup, { maxBatch: 2_000 });
  const referenceRun = (async () => {
    await waitForSinkEnd(pipeline, reference.pool, refGroup, 300_000);
    await ref.stop();
    expect(await ref.finished).toBeUndefined();
  })();
  cleanups.push(() => ref.stop());
  referenceRun.catch(() => undefined);

  // The killed run: `fluxion sink postgres` children on another database, killed at random.
  const group = uniqueId('sink-kill');
  const env = {
    ...process.env,
    ...serviceEnv(),
    DATABASE_URL: killed.url,
    FLUXION_TOPIC_PREFIX: pipeline.prefix,
    FLUXION_TOPIC_PARTITIONS: '3',
    // The broker's minimum (scripts/services.d/kafka/server.properties.template): a restarted
    // instance joins once the killed one's session expired, so this is paid at every kill.
    FLUXION_SESSION_TIMEOUT_MS: '1000',
    FLUXION_SINK_MAX_BATCH: '20',
    LOG_LEVEL: process.env.KILL_CHILD_LOG_LEVEL ?? 'info',
  };
  let stderrTail = '';
  // Each instance is spawned loaded and waiting at its gate (test/helpers/gated-fluxion.ts)
  // while the one before it works; go() starts it once the one before was killed.
  const start = () => {
    const g = startGatedFluxion(['sink', 'postgres', '--group', group, '--no-abc'], env);
    let working = false;
    g.child.stderr!.on('data', (d: Buffer) => {
      const text = d.toString();
      if (process.env.KILL_LOG_FILE) appendFileSync(process.env.KILL_LOG_FILE, text);
      stderrTail = (stderrTail + text).slice(-4_000);
      if (/partition positioned/.test(text)) working = true;
    });
    return { c: g.child, go: g.go, isWorking: () => working, exited: g.exited };
  };
  const progress = async () =>
    Number(
      (
        await killed.pool.query<{ n: string }>('SELECT coalesce(sum(next_offset), 0) AS n FROM sink_offsets WHERE consumer_group = $1', [
          group,
        ])
      ).rows[0]!.n,
    );

  let kills = 0;
  let killedWhileWriting = 0;
  const started = Date.now();
  let next = start();
  cleanups.push(async () => void next.c.kill('SIGKILL'));
  while (kills < KILLS) {
    const run = next;
    run.go();
    next = start();
    const began = Date.now();
    while (!run.isWorking() && Date.now() - began < 10_000) await sleep(50);
    const before = await progress();
    await sleep(100 + Math.floor(random() * 1_400));
    run.c.kill('SIGKILL');
    const { signal, code } = await run.exited;
    if (signal !== 'SIGKILL') throw new Error(`the sink exited on its own (code ${code}) before its kill: ${stderrTail}`);
    kills++;
    if ((await progress()) > before) killedWhileWriting++;
  }
  console.log(`sink: ${kills} kills done after ${Math.round((Date.now() - started) / 1000)} s`);
  const steady = next;
  steady.go();
  try {
    await waitForSinkEnd(pipeline, killed.pool, group, 300_000);
  } catch (err) {
    steady.c.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n--- last log lines ---\n${stderrTail}`);
  }
  const waitStart = Date.now();
  while (!steady.isWorking() && Date.now() - waitStart < 30_000) await sleep(100);
  steady.c.kill('SIGTERM');
  const finalExit = (await steady.exited).code;
  await referenceRun;
  console.log(
    `sink: ${records} records, ${kills} kills (${killedWhileWriting} while writing), seed ${seed}; final exit ${finalExit}; ` +
      `${Math.round((Date.now() - started) / 1000)} s`,
  );

  expect(kills).toBe(KILLS);
  expect(killedWhileWriting).toBeGreaterThan(KILLS / 2);
  expect(finalExit).toBe(0);
  const want = await sinkTables(reference.pool);
  const got = await sinkTables(killed.pool);
  for (const table of Object.keys(want)) {
    expect(want[table]!.length, `${table} is not empty in the reference`).toBeGreaterThan(0);
    expect(got[table]!.length, `${table}: row count`).toBe(want[table]!.length);
    expect(got[table], table).toEqual(want[table]);
  }
  const admin = await pipeline.kafka.admin();
  cleanups.push(() => admin.disconnect());
  for (const t of ['pos.inventario.changes', 'pos.ventas', 'alerts.phantom-zeros', 'ops.etl-runs']) {
    const dlq = (await admin.topicOffsets(`${pipeline.prefix}${t}.dlq`)).reduce((n, o) => n + Number(BigInt(o.high) - BigInt(o.low)), 0);
    expect(dlq, `${t}.dlq`).toBe(0);
  }
});
