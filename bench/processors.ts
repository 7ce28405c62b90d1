#!/usr/bin/env node
/**
 * bench/processors: the snapshot differ and the ventas dedupe as production runs them
 * (`fluxion process differ|dedupe`, each in its own process, so its CPU and RSS are its own),
 * side by side in one run with a decode-only consumer of the same input (the ceiling:
 * read_committed fetches of the same size, every record Avro-decoded with the same topic
 * codec, offsets committed per fetch, nothing produced). Writes
 * bench/results/<date>-processors.json.
 *
 *   node bench/processors.ts [--rows 300000] [--stores 20] [--changed 0.05]
 *                            [--lines 300000] [--corrected 0.02] [--skip-differ] [--skip-dedupe]
 *                            [--max-batch <FLUXION_PROCESSOR_MAX_BATCH>] [--cpu-prof <dir>] [--node-args='<flags>'] [--child-logs <dir>]
 *                            [--out bench/results/<date>-processors.json]
 *
 * Differ: cycle 1 (every row new: builds the state), cycle 2 (`--changed` of the rows
 * changed: the steady state, the headline figure), then a restart: a new process of the same
 * group loads the state and processes cycle 3. Dedupe: a day of `--lines` sales lines read
 * once, read again an hour later with `--corrected` of them corrected, then a restart that
 * loads the state and takes a third read. Between passes the processes are stopped
 * (SIGSTOP) while the next input is published, so a pass is timed from SIGCONT (or, for a
 * new process, from its group assignment) until its group's committed offsets reach the end.
 *
 * Needs the services (`scripts/services up`; it reads `scripts/services env` itself).
 */
import { servicesEnv } from './lib/services-env.ts';
import { startChild, freePort, scrape, type Child } from './lib/child.ts';
import { round } from './lib/stats.ts';
import { writeFileSync, mkdirSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadSubjectSchemas } from '../core/avro/schemas.ts';
import { createTopicCodec, type TopicCodec } from '../core/avro/topic-codec.ts';
import { createKafkaClient, type OutgoingRecord } from '../core/kafka/client.ts';
import { createLogger } from '../core/logger.ts';
import { PROJECT_ROOT } from '../core/paths.ts';
import { createRegistry } from '../core/registry.ts';
import { topicName, topicSpecs, type TopicName } from '../core/topics.ts';
import { registerSchemas } from '../ops/schemas.ts';
import { ensureTopics } from '../ops/topics-ensure.ts';
import type { SnapshotChunk } from '../processors/snapshot-diff.ts';
import type { VentaRaw } from '../processors/ventas-dedupe.ts';
import { chunkRecords, cycleRows, uuidFrom } from '../fixtures/inventory-feed.ts';
import { type Pass, delta, timeFirstPass, timeResumedPass, timeRestart, HOUR, RUN_ID, ventasDay, feeder } from './lib/processor-passes.ts';
import { FETCH_BYTES, decodeOnlyChild } from './lib/decode-only.ts';
import { addGoals, printTable } from './lib/processor-report.ts';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '300000' },
    stores: { type: 'string', default: '20' },
    changed: { type: 'string', default: '0.05' },
    lines: { type: 'string', default: '300000' },
    corrected: { type: 'string', default: '0.02' },
    'skip-differ': { type: 'boolean', default: false },
    'skip-dedupe': { type: 'boolean', default: false },
    'max-batch': { type: 'string' },
    'cpu-prof': { type: 'string' },
    'node-args': { type: 'string', default: '' },
    'child-logs': { type: 'string' },
    out: { type: 'string' },
    // Internal: the ceiling consumer, started by this bench as its own process.
    'decode-only-child': { type: 'boolean', default: false },
    topic: { type: 'string' },
    schema: { type: 'string' },
    group: { type: 'string' },
  },
});

/** As production runs the processors (Dockerfile) and as every topic is laid out. */
const NODE_OPTIONS = '--max-semi-space-size=8';
const PARTITIONS = 6;
const CHUNK_ROWS = 1_000;
/** Long enough that a member stopped (SIGSTOP) while the next input is published keeps its partitions. */
const SESSION_TIMEOUT_MS = 300_000;
const fluxion = join(PROJECT_ROOT, 'bin', 'fluxion.ts');
const self = join(PROJECT_ROOT, 'bench', 'processors.ts');

// ---------------------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------------------

async function measured(): Promise<void> {
  const rows = Number(values.rows);
  const storeCount = Number(values.stores);
  const changed = Number(values.changed);
  const lines = Number(values.lines);
  const corrected = Number(values.corrected);
  for (const [name, v] of Object.entries({ rows, stores: storeCount, lines }))
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
  for (const [name, v] of Object.entries({ changed, corrected }))
    if (!(v > 0 && v < 1)) throw new Error(`--${name} must be a share between 0 and 1, got ${v}`);
  if (rows % storeCount !== 0 || lines % storeCount !== 0)
    throw new Error(`--rows and --lines must be multiples of --stores (${storeCount})`);

  const services = servicesEnv();
  const prefix = `bench${Date.now().toString(36)}.`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...services,
    FLUXION_TOPIC_PREFIX: prefix,
    FLUXION_TOPIC_PARTITIONS: String(PARTITIONS),
    FLUXION_SESSION_TIMEOUT_MS: String(SESSION_TIMEOUT_MS),
    ETL_ENVIRONMENT: 'local',
    LOG_LEVEL: 'info',
    NODE_OPTIONS,
    ...(values['max-batch'] ? { FLUXION_PROCESSOR_MAX_BATCH: values['max-batch'] } : {}),
  };
  // Profiling: node flags for the processor processes (not the ceiling), and their whole output kept.
  const profArgs = [
    ...(values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', resolve(values['cpu-prof'])] : []),
    ...values['node-args']!.split(' ').filter(Boolean),
  ];
  const childLogs = values['child-logs'] ? resolve(values['child-logs']) : undefined;
  if (childLogs) mkdirSync(childLogs, { recursive: true });
  // kafkajs logs every CONCURRENT_TRANSACTIONS answer between the feeder's back-to-back
  // transactions (then retries): only what stops the bench is worth showing.
  const logger = createLogger({ level: 'fatal', destination: 2 });
  const kafka = createKafkaClient({ brokers: services.KAFKA_BROKERS!.split(','), clientId: 'fluxion-bench', logger });
  const registry = createRegistry({ url: services.SCHEMA_REGISTRY_URL! });
  const admin = await kafka.admin();
  await ensureTopics(admin, topicSpecs(prefix), PARTITIONS, logger);
  await registerSchemas(registry, loadSubjectSchemas(), prefix, logger);
  const stores = Array.from({ length: storeCount }, (_, i) => `tienda_${String(i + 1).padStart(2, '0')}`);
  const children: Child[] = [];
  const start = (name: string, args: string[], extraNodeArgs: string[] = []) => {
    const c = startChild(name, [...extraNodeArgs, ...args], env, childLogs);
    children.push(c);
    return c;
  };
  const ceilingChild = (topic: string, schema: TopicName, group: string) =>
    start('ceiling', [self, '--decode-only-child', '--topic', topic, '--schema', schema, '--group', group]);
  const processorChild = (kind: 'differ' | 'dedupe', group: string, port: number) =>
    start(kind, [fluxion, 'process', kind, '--group', group, '--metrics-port', String(port)], profArgs);

  const log = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
  const report: Record<string, unknown> = {
    bench: 'processors',
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model, memory_gb: Math.round(totalmem() / 2 ** 30), node: process.version },
    scenario: {
      partitions: PARTITIONS,
      node_options: NODE_OPTIONS,
      processor_node_args: values['node-args'] || null,
      max_batch: Number(env.FLUXION_PROCESSOR_MAX_BATCH ?? 500),
      fetch_bytes: FETCH_BYTES,
      differ: values['skip-differ']
        ? null
        : { stores: storeCount, rows, rows_per_store: rows / storeCount, chunk_rows: CHUNK_ROWS, changed_share: changed },
      dedupe: values['skip-dedupe']
        ? null
        : { stores: storeCount, lines, lines_per_store: lines / storeCount, corrected_share: corrected },
    },
  };

  try {
    // ----- differ -----
    if (!values['skip-differ']) {
      const snapshots = topicName('pos.inventario.snapshots', prefix);
      const codec: TopicCodec<SnapshotChunk> = await createTopicCodec<SnapshotChunk>(registry, 'pos.inventario.snapshots', snapshots);
      const inventoryFeed = await feeder(kafka, snapshots, `bench-feeder-${prefix}inventario`);
      const perStore = rows / storeCount;
      const baseTime = Date.now() - 3 * HOUR;
      let previous = new Map<string, string[]>();
      /** Publishes cycle `c`; returns how many rows differ from cycle c - 1. */
      const publishCycle = async (c: number): Promise<number> => {
        let differing = 0;
        const byStore: OutgoingRecord[][] = [];
        const next = new Map<string, string[]>();
        for (const store of stores) {
          const storeRows = cycleRows(store, c, perStore, changed);
          const before = previous.get(store);
          differing += before ? storeRows.filter((r, i) => r.cantidad !== before[i]).length : storeRows.length;
          next.set(
            store,
            storeRows.map((r) => r.cantidad),
          );
          byStore.push(
            chunkRecords(codec, {
              ubicacion: store,
              snapshotId: uuidFrom(`${prefix}${store}/${c}`),
              takenAt: new Date(baseTime + c * 30 * 60_000),
              rows: storeRows,
              chunkSize: CHUNK_ROWS,
            }),
          );
        }
        previous = next;
        await inventoryFeed.publish(byStore);
        return differing;
      };

      const differGroup = `${prefix}bench-differ`;
      const differCeilingGroup = `${prefix}bench-ceiling-snapshots`;
      const differPort = await freePort();
      const cycles: Array<Record<string, unknown>> = [];
      const differCounts = async () => ({
        c: await scrape(differPort, 'fluxion_differ_changes_total', { op: 'c' }),
        u: await scrape(differPort, 'fluxion_differ_changes_total', { op: 'u' }),
        d: await scrape(differPort, 'fluxion_differ_changes_total', { op: 'd' }),
        dlq: await scrape(differPort, 'fluxion_processor_records_dlq_total'),
        transactions: await scrape(differPort, 'fluxion_processor_transactions_total'),
        aborted_transactions: await scrape(differPort, 'fluxion_processor_aborts_total', { reason: 'error' }),
      });

      const changed1 = await publishCycle(1);
      const ceiling = ceilingChild(snapshots, 'pos.inventario.snapshots', differCeilingGroup);
      const ceiling1 = await timeFirstPass(ceiling, admin, differCeilingGroup, snapshots, rows);
      const chunks = stores.length * Math.ceil(perStore / CHUNK_ROWS);
      if ((await ceiling.progress(chunks)).rows !== rows)
        throw new Error(`ceiling decoded ${(await ceiling.progress()).rows} rows of cycle 1, expected ${rows}`);
      ceiling.pause();
      const differA = processorChild('differ', differGroup, differPort);
      const differ1 = await timeFirstPass(differA, admin, differGroup, snapshots, rows);
      const counts1 = await differCounts();
      differA.pause();
      cycles.push({
        cycle: 1,
        case: 'every row new (builds the state)',
        changed_rows: changed1,
        ...differ1,
        changes: counts1,
        warnings: differA.takeWarnings(),
        ceiling: ceiling1,
        ratio_to_ceiling: round(differ1.rows_per_second / ceiling1.rows_per_second),
      });
      log({ processor: 'differ', ...cycles.at(-1) });

      const changed2 = await publishCycle(2);
      const ceiling2 = await timeResumedPass(ceiling, admin, differCeilingGroup, snapshots, rows);
      if ((await ceiling.progress(2 * chunks)).rows !== 2 * rows)
        throw new Error(`ceiling decoded ${(await ceiling.progress()).rows - rows} rows of cycle 2, expected ${rows}`);
      await ceiling.stop();
      const differ2 = await timeResumedPass(differA, admin, differGroup, snapshots, rows);
      const counts2 = delta(await differCounts(), counts1);
      cycles.push({
        cycle: 2,
        case: `${changed * 100}% of the rows changed (steady state)`,
        changed_rows: changed2,
        ...differ2,
        changes: counts2,
        warnings: differA.takeWarnings(),
        ceiling: ceiling2,
        ratio_to_ceiling: round(differ2.rows_per_second / ceiling2.rows_per_second),
      });
      log({ processor: 'differ', ...cycles.at(-1) });
      await differA.stop();

      const changed3 = await publishCycle(3);
      const differB = processorChild('differ', differGroup, differPort);
      const restart = await timeRestart(differB, admin, differGroup, snapshots, rows, 2);
      const counts3 = await differCounts();
      await differB.stop();
      const differRestart = {
        cycle: 3,
        case: 'a new process of the group: loads the state, then the cycle',
        changed_rows: changed3,
        ...restart,
        changes: counts3,
        warnings: differB.takeWarnings(),
      };
      log({ processor: 'differ', restart: differRestart });
      await inventoryFeed.close();
      report.differ = { cycles, restart: differRestart };
    }

    // ----- dedupe -----
    if (!values['skip-dedupe']) {
      const raw = topicName('pos.ventas.raw', prefix);
      const ventasCodec = await createTopicCodec<VentaRaw>(registry, 'pos.ventas.raw', raw);
      const ventasFeed = await feeder(kafka, raw, `bench-feeder-${prefix}ventas`);
      const perStoreLines = lines / storeCount;
      const firstRead = Date.now() - 3 * HOUR;
      const fecha = new Date(firstRead).toISOString().slice(0, 10);
      /** Read `n` (1-based) of the day, an hour after the previous one; reads after the first carry the corrections. */
      const publishRead = async (n: number) => {
        const extractedAt = new Date(firstRead + (n - 1) * HOUR);
        await ventasFeed.publish(
          stores.map((store) =>
            ventasDay(store, perStoreLines, fecha, n === 1 ? 0 : corrected).map((linea) => ({
              ubicacionId: store,
              key: `${store}/${linea.numero_factura}`,
              value: ventasCodec.encode({ linea, extracted_at: extractedAt, run_id: RUN_ID }),
            })),
          ),
        );
      };
      const dedupeGroup = `${prefix}bench-dedupe`;
      const dedupeCeilingGroup = `${prefix}bench-ceiling-ventas`;
      const dedupePort = await freePort();
      const dedupeCounts = async () => ({
        new: await scrape(dedupePort, 'fluxion_dedupe_lines_total', { decision: 'new' }),
        updated: await scrape(dedupePort, 'fluxion_dedupe_lines_total', { decision: 'updated' }),
        duplicate: await scrape(dedupePort, 'fluxion_dedupe_lines_total', { decision: 'duplicate' }),
        dlq: await scrape(dedupePort, 'fluxion_processor_records_dlq_total'),
        transactions: await scrape(dedupePort, 'fluxion_processor_transactions_total'),
        aborted_transactions: await scrape(dedupePort, 'fluxion_processor_aborts_total', { reason: 'error' }),
      });
      const passes: Array<Record<string, unknown>> = [];
      const asLines = (p: Pass) => {
        const { rows: n, rows_per_second: perSecond, ...rest } = p;
        return { lines: n, lines_per_second: perSecond, ...rest };
      };

      await publishRead(1);
      const vCeiling = ceilingChild(raw, 'pos.ventas.raw', dedupeCeilingGroup);
      const vCeiling1 = await timeFirstPass(vCeiling, admin, dedupeCeilingGroup, raw, lines);
      vCeiling.pause();
      const dedupeA = processorChild('dedupe', dedupeGroup, dedupePort);
      const dedupe1 = await timeFirstPass(dedupeA, admin, dedupeGroup, raw, lines);
      const d1 = await dedupeCounts();
      dedupeA.pause();
      passes.push({
        read: 1,
        case: 'every line new (builds the state)',
        ...asLines(dedupe1),
        decisions: d1,
        warnings: dedupeA.takeWarnings(),
        ceiling: asLines(vCeiling1),
        ratio_to_ceiling: round(dedupe1.rows_per_second / vCeiling1.rows_per_second),
      });
      log({ processor: 'dedupe', ...passes.at(-1) });

      await publishRead(2);
      const vCeiling2 = await timeResumedPass(vCeiling, admin, dedupeCeilingGroup, raw, lines);
      if ((await vCeiling.progress(2 * lines)).records !== 2 * lines)
        throw new Error(`ceiling decoded ${(await vCeiling.progress()).records} ventas lines, expected ${2 * lines}`);
      await vCeiling.stop();
      const dedupe2 = await timeResumedPass(dedupeA, admin, dedupeGroup, raw, lines);
      const d2 = delta(await dedupeCounts(), d1);
      passes.push({
        read: 2,
        case: `the day read again an hour later, ${corrected * 100}% of the lines corrected (steady state)`,
        ...asLines(dedupe2),
        decisions: d2,
        warnings: dedupeA.takeWarnings(),
        ceiling: asLines(vCeiling2),
        ratio_to_ceiling: round(dedupe2.rows_per_second / vCeiling2.rows_per_second),
      });
      log({ processor: 'dedupe', ...passes.at(-1) });
      await dedupeA.stop();

      await publishRead(3);
      const dedupeB = processorChild('dedupe', dedupeGroup, dedupePort);
      const dRestart = await timeRestart(dedupeB, admin, dedupeGroup, raw, lines, 1);
      const d3 = await dedupeCounts();
      await dedupeB.stop();
      const { rows: n3, rows_per_second: ps3, ...restRestart } = dRestart;
      const dedupeRestart = {
        read: 3,
        case: 'a new process of the group: loads the state, then the day read again',
        lines: n3,
        lines_per_second: ps3,
        ...restRestart,
        decisions: d3,
        warnings: dedupeB.takeWarnings(),
      };
      log({ processor: 'dedupe', restart: dedupeRestart });
      await ventasFeed.close();
      report.dedupe = { passes, restart: dedupeRestart };
    }
  } finally {
    for (const c of children) await c.stop();
    await admin.deleteTopics(topicSpecs(prefix).map((t) => t.name)).catch(() => undefined);
    await admin.disconnect();
  }

  // ----- goals, table, file -----
  addGoals(report);
  printTable(report);
  const file = values.out
    ? resolve(values.out)
    : join(PROJECT_ROOT, 'bench', 'results', `${(report.date as string).slice(0, 10)}-processors.json`);
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`written ${file}\n`);
}

if (values['decode-only-child']) {
  await decodeOnlyChild(values.topic!, values.schema as TopicName, values.group!);
} else {
  await measured();
}
