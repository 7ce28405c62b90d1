#!/usr/bin/env node
/**
 * bench/e2e: the whole pipeline, cycle after cycle, against the simulators, side by side with
 * the system it replaces and with the COPY ceiling, on the same simulated data in one run.
 * Writes bench/results/<date>-<scenario>.json (or --out).
 *
 *   bench/e2e --scenario chain|national [--cycles 4] [--klk-products N] [--stellar-products N]
 *             [--stores N] [--change-share 0.05] [--concurrency 4] [--legacy unnest|values]
 *             [--legacy-batch N] [--keep] [--kill-differ] [--no-legacy] [--cpu-prof <dir>] [--out <file>] [--log-dir <dir>]
 *
 * Every Fluxion process is the CLI in its own process, as production runs them: the KLK
 * simulator (`fluxion simulate klk`, advanced through its control API), the Stellar simulators
 * (`fluxion simulate stellar`, advanced with SIGUSR2), `process differ|dedupe|phantom`,
 * `sink postgres --no-abc`, and per cycle `extract inventario --todas` and
 * `extract ventas --todas` at once. A cycle of ours is timed from the start of the
 * extractors to the instant every processor group and the sink (its sink_offsets) reached
 * the last record of every topic they read. Then, on the same simulator state, the replaced
 * system: every store read with the extractors' own reading code (no Kafka) and every row
 * upserted into tables shaped like inventario_actual and ventas; then COPY of those rows
 * into empty tables. Then the simulators move 30 simulated minutes.
 *
 * Topics live under a fresh prefix and the tables in a fresh database, both deleted at the
 * end unless --keep. Child logs: .cache/bench-e2e/<run>/ (or --log-dir).
 * Needs the services (bench/e2e starts them; `node bench/e2e.ts` reads `scripts/services env`).
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { loadConfig, loadUbicaciones } from '../cli/config.ts';
import { PROJECT_ROOT } from '../core/paths.ts';
import { topicName, type TopicName } from '../core/topics.ts';
import { freePort, scrape, startChild, type Child } from './lib/child.ts';
import { startEndTracker } from '../core/kafka/end-tracker.ts';
import { round } from './lib/stats.ts';
import {
  NODE_OPTIONS,
  fluxion,
  NATIONAL_TARGET,
  fmt,
  out,
  longLived,
  simulators,
  cleanups,
  cleanup,
  nationalStoreList,
  runCli,
  secretsFor,
} from './lib/e2e-processes.ts';
import { serviceProcs } from './lib/e2e-measure.ts';
import { createLegacyTables } from './lib/e2e-legacy.ts';
import { E2E_NOTES, printCycle, printSummary, steadyGoals } from './lib/e2e-report.ts';
import { type DifferRestart, killAndRestartDiffer } from './lib/e2e-restart.ts';
import { connectServices } from './lib/e2e-services.ts';
import { startSimulators } from './lib/e2e-simulators.ts';
import { runCycle } from './lib/e2e-cycle.ts';
import { intOption, USAGE, UsageFailure, values } from './lib/e2e-options.ts';

// ---------------------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (values.help) {
    out(USAGE);
    return;
  }
  const scenario = values.scenario;
  if (scenario !== 'chain' && scenario !== 'national') throw new UsageFailure(`--scenario must be chain or national\n${USAGE}`);
  const cycles = intOption('cycles', 4);
  const concurrency = intOption('concurrency', 4);
  const changeShare = Number(values['change-share']);
  if (!(changeShare > 0 && changeShare < 1))
    throw new UsageFailure(`--change-share must be between 0 and 1, got ${values['change-share']}`);
  const legacyStyle = values.legacy;
  if (legacyStyle !== 'unnest' && legacyStyle !== 'values') throw new UsageFailure('--legacy must be unnest or values');
  const legacyBatch = intOption('legacy-batch', legacyStyle === 'unnest' ? 5_000 : 500);
  const timeoutMinutes = intOption('timeout-minutes', 30);
  const heapMb = values['heap-mb'] === undefined ? null : intOption('heap-mb', 0, 64);
  const klkProducts = intOption('klk-products', scenario === 'chain' ? 15_000 : 1_000);
  const stellarProducts = intOption('stellar-products', 40_000);
  if (scenario === 'chain' && values.stores !== undefined)
    throw new UsageFailure('--stores is for the national scenario (chain = the store list)');
  const nationalStores = intOption('stores', NATIONAL_TARGET.stores);

  // Services.
  const { services, adminDb, admin } = await connectServices();
  const runId = `e2e${Date.now().toString(36)}`;
  const prefix = `${runId}.`;
  const logDir = resolve(values['log-dir'] ?? join(PROJECT_ROOT, '.cache', 'bench-e2e', runId));
  mkdirSync(logDir, { recursive: true });

  // The database and the store list.
  await adminDb.query(`CREATE DATABASE ${runId}`);
  const dbUrl = new URL(services.DATABASE_URL!);
  dbUrl.pathname = `/${runId}`;
  const db = new pg.Pool({ connectionString: dbUrl.toString(), max: 3, application_name: 'fluxion-bench-e2e' });
  let ubicacionesFile = process.env.FLUXION_UBICACIONES_FILE ?? 'config/ubicaciones.yaml';
  const klkPort = intOption('klk-port', 38701);
  if (scenario === 'national') {
    ubicacionesFile = join(logDir, 'ubicaciones.yaml');
    nationalStoreList(ubicacionesFile, nationalStores, klkPort);
  }
  const baseEnv: NodeJS.ProcessEnv = {
    ...process.env,
    ...services,
    ETL_ENVIRONMENT: 'local',
    FLUXION_UBICACIONES_FILE: resolve(PROJECT_ROOT, ubicacionesFile),
  };
  const stores = loadUbicaciones(loadConfig(baseEnv)).filter((u) => u.activa);
  const klkStores = stores.filter((u) => u.pos === 'klk');
  const stellarStores = stores.filter((u) => u.pos === 'stellar');
  const env: NodeJS.ProcessEnv = {
    ...baseEnv,
    ...secretsFor(stores),
    DATABASE_URL: dbUrl.toString(),
    FLUXION_TOPIC_PREFIX: prefix,
    FLUXION_STATE_DIR: join(logDir, 'state'),
    LOG_LEVEL: 'info',
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${NODE_OPTIONS}`.trim(),
  };
  const partitions = loadConfig(env).topics.partitions;
  cleanups.push(async () => {
    await db.end();
    if (values.keep) {
      out(
        `kept: database ${runId} (${dbUrl.toString().replace(/:[^:@/]*@/, ':***@')}), topics ${prefix}*, logs and state stores ${logDir}`,
      );
      return;
    }
    rmSync(join(logDir, 'state'), { recursive: true, force: true });
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(prefix));
    if (topics.length) await admin.deleteTopics(topics);
    // FORCE refuses while an autovacuum worker (the superuser's) is in the database: it ends
    // within seconds, so try again rather than leave a database of 400,000 rows behind.
    for (let attempt = 1; ; attempt++) {
      try {
        await adminDb.query(`DROP DATABASE IF EXISTS ${runId} WITH (FORCE)`);
        break;
      } catch (err) {
        if (attempt >= 10) throw err;
        await sleep(1_000);
      }
    }
    const subjects = (await (await fetch(`${services.SCHEMA_REGISTRY_URL}/subjects`)).json()) as string[];
    for (const s of subjects.filter((x) => x.startsWith(prefix)))
      await fetch(`${services.SCHEMA_REGISTRY_URL}/subjects/${encodeURIComponent(s)}`, { method: 'DELETE' }).catch(() => undefined);
    out(
      `cleaned up: ${topics.length} topics ${prefix}*, database ${runId}, ${subjects.filter((x) => x.startsWith(prefix)).length} ` +
        `registry subjects (logs kept in ${logDir})`,
    );
  });

  const scaled =
    scenario === 'national' && (nationalStores < NATIONAL_TARGET.stores || klkProducts < NATIONAL_TARGET.products)
      ? {
          target:
            `${NATIONAL_TARGET.stores} stores x ${fmt(NATIONAL_TARGET.products)} products ` +
            `(${fmt(NATIONAL_TARGET.stores * NATIONAL_TARGET.products)} rows a cycle)`,
          run: `${nationalStores} stores x ${fmt(klkProducts)} products (${fmt(nationalStores * klkProducts)} rows a cycle)`,
          reason:
            'scaled down in rows per store: at the target size cycle 1 alone writes 10 M change events (and 10 M history rows) ' +
            'through a sink measured at 4,000-8,000 events/s ' +
            '(bench/sink: 20-40 minutes), the differ would hold about 6 GB of state (about 600 bytes a row, bench/processors), and ' +
            'the KLK simulator holds every store in one process; ' +
            'the store count is kept so per-store costs (transactions, snapshots, freshness) are the national ones',
        }
      : null;
  const expected = {
    klk_stores: klkStores.length,
    stellar_locations: stellarStores.length,
    stellar_depositos: stellarStores.reduce((s, u) => s + u.depositos.length, 0),
  };
  out(
    `bench/e2e ${scenario}: ${klkStores.length} KLK stores x ${fmt(klkProducts)} products, ${stellarStores.length} Stellar locations ` +
      `(${expected.stellar_depositos} depositos) x ${fmt(stellarProducts)} products a deposito, ${(changeShare * 100).toFixed(1)}% ` +
      `changing per cycle, ${cycles} cycles`,
  );
  if (scaled) out(`SCALED: ${scaled.run} instead of ${scaled.target}: ${scaled.reason}`);
  out(`run ${runId}: topics ${prefix}*, database ${runId}, logs ${logDir}`);

  // Set-up through the CLI.
  await runCli(['migrate'], env, logDir);
  await runCli(['topics', 'ensure'], env, logDir);
  await runCli(['schemas', 'register'], env, logDir);
  const followed: TopicName[] = [
    'pos.inventario.snapshots',
    'pos.ventas.raw',
    'ops.etl-runs',
    'pos.inventario.changes',
    'pos.ventas',
    'alerts.phantom-zeros',
  ];
  const tracker = await startEndTracker(
    services.KAFKA_BROKERS!.split(','),
    `${prefix}bench-end-tracker`,
    followed.map((t) => topicName(t, prefix)),
    admin,
  );
  cleanups.push(() => tracker.stop());

  // Simulators.
  const { advance, simulatedFecha } = await startSimulators({
    env,
    logDir,
    klkStores,
    stellarStores,
    klkProducts,
    stellarProducts,
    changeShare,
  });

  // Every long-running Fluxion process.
  const profDir = values['cpu-prof'] ? resolve(values['cpu-prof']) : null;
  // --heap-mb: V8's old-space limit for every Fluxion process, as docker-compose.yml sets it
  // for the processors; without it V8 lets the heap grow to about twice what is live.
  const heapArgs = heapMb === null ? [] : [`--max-old-space-size=${heapMb}`];
  // --node-args: more V8/node flags for every Fluxion process (extractors included), e.g.
  // --import=bench/lib/memory-breakdown.ts to see what a peak RSS is made of.
  const extraNodeArgs = values['node-args']!.split(' ').filter(Boolean);
  const nodeArgs = (name: string) => [
    ...heapArgs,
    ...extraNodeArgs,
    ...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${join(profDir, name)}`] : []),
  ];
  const ports: Record<string, number> = {};
  const procs: Record<'differ' | 'dedupe' | 'phantom' | 'sink', Child> = {} as never;
  for (const kind of ['differ', 'dedupe', 'phantom', 'sink'] as const) {
    ports[kind] = await freePort();
    const args = kind === 'sink' ? ['sink', 'postgres', '--no-abc'] : ['process', kind];
    const child = startChild(kind, [...nodeArgs(kind), fluxion, ...args, '--metrics-port', String(ports[kind])], env, logDir);
    longLived.push(child);
    procs[kind] = child;
  }
  const groups = {
    differ: `${prefix}fluxion-differ`,
    dedupe: `${prefix}fluxion-dedupe`,
    phantom: `${prefix}fluxion-phantom`,
    sink: `${prefix}fluxion-sink-postgres`,
  };
  {
    const exitedEarly: string[] = [];
    for (const c of longLived) void c.exited.then((code) => exitedEarly.push(`${c.name} (exit ${code})`));
    const deadline = Date.now() + 120_000;
    for (;;) {
      const described = await admin.describeGroups(Object.values(groups));
      if (described.every((g) => g.state === 'Stable' && g.members >= 1)) break;
      if (exitedEarly.length) throw new Error(`${exitedEarly.join(', ')} exited at start; see ${logDir}`);
      if (Date.now() > deadline)
        throw new Error(`the processes did not join their groups within 2 minutes: ${JSON.stringify(described)}; see ${logDir}`);
      await sleep(250);
    }
  }
  out(`processes up: ${longLived.map((c) => `${c.name} (pid ${c.pid})`).join(', ')}`);

  const svc = await serviceProcs(db);
  const simPids = Object.fromEntries(simulators.map((s) => [s.name, s.proc.pid!]));
  const scrapeAll = async () => ({
    differ_changes: await scrape(ports.differ!, 'fluxion_differ_changes_total'),
    differ_in: await scrape(ports.differ!, 'fluxion_processor_records_in_total'),
    dedupe_in: await scrape(ports.dedupe!, 'fluxion_processor_records_in_total'),
    dedupe_out: await scrape(ports.dedupe!, 'fluxion_processor_records_out_total'),
    phantom_in: await scrape(ports.phantom!, 'fluxion_processor_records_in_total'),
    phantom_out: await scrape(ports.phantom!, 'fluxion_processor_records_out_total'),
    sink_records: await scrape(ports.sink!, 'fluxion_sink_records_total'),
    sink_rows: await scrape(ports.sink!, 'fluxion_sink_rows_total'),
    aborts:
      (await scrape(ports.differ!, 'fluxion_processor_aborts_total')) +
      (await scrape(ports.dedupe!, 'fluxion_processor_aborts_total')) +
      (await scrape(ports.phantom!, 'fluxion_processor_aborts_total')),
  });

  await createLegacyTables(db);
  const legacyClient = new pg.Client({ connectionString: dbUrl.toString(), application_name: 'fluxion-bench-legacy' });
  await legacyClient.connect();
  cleanups.push(() => legacyClient.end());

  const results: Array<Record<string, unknown>> = [];

  for (let cycle = 1; cycle <= cycles; cycle++) {
    if (cycle > 1) await advance();
    const result = await runCycle({
      cycle,
      simulatedFecha,
      logDir,
      procs,
      simPids,
      svc,
      db,
      prefix,
      scrapeAll,
      concurrency,
      env,
      nodeArgs,
      tracker,
      admin,
      groups,
      stores,
      withVentas: klkStores.length > 0,
      legacyClient,
      legacyStyle,
      legacyBatch,
      noLegacy: Boolean(values['no-legacy']),
      timeoutMinutes,
    });
    results.push(result);
    // A run stopped later (a national cycle can take an hour) still leaves its finished cycles.
    writeFileSync(join(logDir, 'cycles.partial.json'), `${JSON.stringify({ scenario, run: runId, scaled, cycles: results }, null, 2)}\n`);
    printCycle(result);
  }

  // --kill-differ: the differ killed and started again on the same state stores (bench/lib/e2e-restart.ts).
  const restart: DifferRestart | null = values['kill-differ']
    ? await killAndRestartDiffer({ procs, metricsPort: ports.differ!, nodeArgs, env, logDir, stores, admin, differGroup: groups.differ })
    : null;

  // Summary, goals, file.
  const { medians, goals } = steadyGoals(results, { scenario, cycles, heapMb, scaled: scaled !== null, restart });
  const pgVersion = (await db.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v;
  const kafkaJar = svc.kafkaDataDir
    ? readdirSync(join(svc.kafkaDataDir, '..', 'libs')).find((f) => /^kafka_[\d.]+-[\d.]+\.jar$/.test(f))
    : undefined;
  const report = {
    bench: 'e2e',
    scenario,
    date: new Date().toISOString(),
    run: runId,
    machine: {
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model,
      memory_gb: round(totalmem() / 2 ** 30, 1),
      kernel: release(),
      node: process.version,
      services: {
        postgresql: pgVersion,
        kafka: kafkaJar?.replace(/^kafka_[\d.]+-/, '').replace(/\.jar$/, '') ?? null,
        registry: 'Apicurio 2.4.2 (scripts/services)',
      },
    },
    parameters: {
      cycles,
      klk_stores: klkStores.length,
      klk_products: klkProducts,
      stellar_locations: stellarStores.length,
      stellar_depositos: expected.stellar_depositos,
      stellar_products_per_deposito: stellarProducts,
      change_share: changeShare,
      sales_lines_per_store_hour: 2_000,
      simulated_minutes_per_cycle: 30,
      extract_concurrency: concurrency,
      partitions,
      legacy: values['no-legacy'] ? 'skipped (--no-legacy)' : `${legacyStyle} x ${legacyBatch}`,
      node_options: NODE_OPTIONS,
      heap_mb: heapMb,
      node_args: values['node-args'] || null,
      cpu_prof: profDir,
    },
    scaled,
    differ_restart: restart,
    cycles: results,
    steady_medians: medians,
    goals,
    notes: E2E_NOTES,
  };
  printSummary(report);
  const file = resolve(values.out ?? join(PROJECT_ROOT, 'bench', 'results', `${report.date.slice(0, 10)}-${scenario}.json`));
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  out(`written ${file}`);
}

try {
  await main();
} catch (err) {
  if (err instanceof UsageFailure) {
    process.stderr.write(`bench/e2e: ${err.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`bench/e2e failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
} finally {
  await cleanup();
  // kafkajs and pg keep timers alive for a while: the work is done.
  process.exit();
}
