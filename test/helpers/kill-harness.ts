/**
 * The exactly-once proof of issue 4, shaped like Kafka's transactional copier system test
 * (docs/pitfalls.md): the same input is fed to two pipelines. On the first, `fluxion process
 * <kind>` runs as a child process that is killed with SIGKILL at random instants again and
 * again while the input arrives; on the second, the same processor runs undisturbed. The
 * read_committed outputs and the compacted state must then be identical.
 *
 * Debugging a failure: KILL_SEED replays the kill schedule, KILL_LOG_FILE=/tmp/kill.log
 * collects every child's log lines (and the fed steps and group offsets), and
 * KILL_CHILD_LOG_LEVEL=debug adds one line per committed transaction.
 */
import { appendFileSync } from 'node:fs';
import type { OutgoingRecord } from '../../core/kafka/types.ts';
import type { ProcessorFactory } from '../../processors/runtime/processor-kind.ts';
import { startGatedFluxion } from './gated-fluxion.ts';
import type { TestPipeline } from '../../fixtures/pipeline.ts';
import { sendTransactionsVisibly, startProcessor, waitForGroupEnd } from '../../fixtures/processor-run.ts';
import { serviceEnv, uniqueId } from '../../fixtures/services.ts';

/** One transaction of input: records for one topic (without prefix). */
export interface FeedStep {
  topic: string;
  records: OutgoingRecord[];
}

export interface KillRunOptions {
  kind: 'differ' | 'dedupe' | 'phantom';
  factory: ProcessorFactory;
  /** Input topics (without prefix), to wait for. */
  inputs: string[];
  /** Builds the steps for a pipeline (records are encoded with that pipeline's schema ids). */
  steps(pipeline: TestPipeline): Promise<FeedStep[]>;
  /** Output and state topics to compare (without prefix). */
  outputs: string[];
  states: string[];
  kills: number;
  maxBatch: number;
  seed: number;
  log(line: string): void;
}

export interface KillRunResult {
  kills: number;
  killedWhileProcessing: number;
  /** Per topic: the records of the killed run and of the reference run, comparable. */
  outputs: Record<string, { killed: string[]; reference: string[] }>;
  states: Record<string, { killed: Record<string, string>; reference: Record<string, string> }>;
  dlq: number;
  finalExit: number | null;
}

/** mulberry32: a tiny seeded generator, so a failing kill schedule can be replayed. */
export function seededRandom(seed: number): () => number {
  let state = seed || 1;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Feeds one step in one transaction and returns once its records are readable. */
async function feed(pipeline: TestPipeline, step: FeedStep, producerId: string): Promise<void> {
  const producer = await pipeline.kafka.producer({ transactionalId: producerId });
  try {
    await sendTransactionsVisibly(pipeline.kafka, producer, pipeline.prefix + step.topic, [step.records]);
  } finally {
    await producer.disconnect();
  }
}

/** Partition-ordered, comparable lines: "p<partition> <key> <decoded value as JSON>". */
async function outputLines(pipeline: TestPipeline, topic: string): Promise<string[]> {
  const records = await pipeline.read(topic, { idleMs: 1_500 });
  return records
    .sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)))
    .map((r) => `p${r.partition} ${r.key?.toString() ?? ''} ${JSON.stringify(r.decoded)}`);
}

/** The compacted view of a state topic: last value per key (tombstones remove the key). */
async function stateView(pipeline: TestPipeline, topic: string): Promise<Record<string, string>> {
  const view: Record<string, string> = {};
  for (const r of await pipeline.read(topic, { idleMs: 1_500 })) {
    const key = r.key?.toString() ?? '';
    if (r.value === null) delete view[key];
    else view[key] = JSON.stringify(r.decoded);
  }
  return Object.fromEntries(Object.entries(view).sort(([a], [b]) => a.localeCompare(b)));
}

export async function killRun(killed: TestPipeline, reference: TestPipeline, o: KillRunOptions): Promise<KillRunResult> {
  const random = seededRandom(o.seed);
  const group = uniqueId(`kill-${o.kind}`);
  const inputTopics = (p: TestPipeline) => o.inputs.map((t) => p.prefix + t);

  // The reference: the same steps, in the same order and transactions, undisturbed. Every
  // step is fed after the processor consumed the previous one, as in the killed run, so a
  // processor with two inputs sees the same interleaving. (Not run beside the killed run:
  // the load slowed its children so that most kills hit an instance still joining.)
  const began = Date.now();
  const refSteps = await o.steps(reference);
  const refGroup = uniqueId(`ref-${o.kind}`);
  const ref = await startProcessor(o.factory, reference, refGroup, { maxBatch: o.maxBatch });
  for (const step of refSteps) {
    await feed(reference, step, `ref-feed-${refGroup}`);
    await waitForGroupEnd(reference.kafka, refGroup, inputTopics(reference), 120_000);
  }
  await ref.stop();
  const refError = await ref.finished;
  if (refError) throw refError;
  o.log(`${o.kind}: reference run done after ${((Date.now() - began) / 1000).toFixed(0)} s`);

  // The killed run: a child process started again and again, killed at random instants.
  const env = {
    ...process.env,
    ...serviceEnv(),
    FLUXION_TOPIC_PREFIX: killed.prefix,
    FLUXION_TOPIC_PARTITIONS: '3',
    FLUXION_SESSION_TIMEOUT_MS: '2000',
    FLUXION_PROCESSOR_MAX_BATCH: String(o.maxBatch),
    LOG_LEVEL: process.env.KILL_CHILD_LOG_LEVEL ?? 'info',
  };
  let kills = 0;
  let killedWhileProcessing = 0;
  let stderrTail = '';
  // Each instance is spawned loaded and waiting at its gate (test/helpers/gated-fluxion.ts)
  // while the one before it works; go() starts it once the one before was killed.
  const start = () => {
    const g = startGatedFluxion(['process', o.kind, '--group', group], env);
    let working = false;
    g.child.stderr!.on('data', (d: Buffer) => {
      const text = d.toString();
      if (process.env.KILL_LOG_FILE) appendFileSync(process.env.KILL_LOG_FILE, text);
      stderrTail = (stderrTail + text).slice(-4_000);
      if (/partition producer ready|state loaded|snapshot applied|"msg":"transaction/.test(text)) working = true;
    });
    return { c: g.child, go: g.go, isWorking: () => working, exited: g.exited };
  };

  let killing = true;
  let steady: ReturnType<typeof start> | undefined;
  let next: ReturnType<typeof start> | undefined = start();
  const killer = (async () => {
    while (killing && kills < o.kills) {
      const run = next!;
      run.go();
      next = start();
      // Kill at a random instant after it began working (or after 8 s, if it has not).
      const spawned = Date.now();
      while (!run.isWorking() && Date.now() - spawned < 8_000) await sleep(50);
      await sleep(100 + Math.floor(random() * 1_400));
      if (run.isWorking()) killedWhileProcessing++;
      run.c.kill('SIGKILL');
      const { signal, code } = await run.exited;
      if (signal !== 'SIGKILL') throw new Error(`${o.kind} exited on its own (code ${code}) before its kill: ${stderrTail}`);
      kills++;
    }
    o.log(`${o.kind}: ${kills} kills done after ${((Date.now() - began) / 1000).toFixed(0)} s`);
    // Kills done: one last instance takes the rest undisturbed (stopped below with SIGTERM).
    if (killing) {
      steady = next!;
      next = undefined;
      steady.go();
    }
  })();

  const steps = await o.steps(killed);
  try {
    for (const step of steps) {
      await feed(killed, step, `feed-${group}`);
      if (process.env.KILL_LOG_FILE)
        appendFileSync(
          process.env.KILL_LOG_FILE,
          `{"msg":"FED","topic":"${step.topic}","records":${step.records.length},"time":"${new Date().toISOString()}"}\n`,
        );
      // Each step waits until the processor (restarted by the killer, or the steady one
      // after the kills) consumed it, as the reference did.
      await waitForGroupEnd(killed.kafka, group, inputTopics(killed), 300_000);
      if (process.env.KILL_LOG_FILE) {
        const a = await killed.kafka.admin();
        for (const t of inputTopics(killed)) {
          const offsets = await a.groupOffsets(group, t);
          const line = { msg: 'OFFSETS', topic: t, offsets, time: new Date().toISOString() };
          appendFileSync(process.env.KILL_LOG_FILE, `${JSON.stringify(line)}\n`);
        }
        await a.disconnect();
      }
    }
    // All kills happen, also when the input ran out before them (kills of an idle instance).
    await killer;
    await waitForGroupEnd(killed.kafka, group, inputTopics(killed), 120_000);
  } catch (err) {
    killing = false;
    await killer.catch(() => undefined);
    steady?.c.kill('SIGKILL');
    next?.c.kill('SIGKILL');
    // The last lines of the instance that was running say why it did not reach the end.
    throw new Error(
      `${(err as Error).message}\n--- last log lines of ${o.kind} (${steady ? 'the steady instance' : 'a killed instance'}) ` +
        `---\n${stderrTail}`,
    );
  }
  // The input may have run out before the last kill, so the steady instance can still be
  // loading its modules here; a SIGTERM before its handler exists would kill it outright.
  const steadyBegan = Date.now();
  while (!steady!.isWorking() && Date.now() - steadyBegan < 60_000) await sleep(100);
  steady!.c.kill('SIGTERM');
  const finalExit = (await steady!.exited).code;

  // Every topic of both runs read at once: each read is a consumer group's join and idle wait.
  const [outputEntries, stateEntries] = await Promise.all([
    Promise.all(
      o.outputs.map(async (t) => [t, { killed: await outputLines(killed, t), reference: await outputLines(reference, t) }] as const),
    ),
    Promise.all(o.states.map(async (t) => [t, { killed: await stateView(killed, t), reference: await stateView(reference, t) }] as const)),
  ]);
  const outputs: KillRunResult['outputs'] = Object.fromEntries(outputEntries);
  const states: KillRunResult['states'] = Object.fromEntries(stateEntries);
  let dlq = 0;
  const admin = await killed.kafka.admin();
  for (const t of o.inputs)
    dlq += (await admin.topicOffsets(`${killed.prefix}${t}.dlq`)).reduce((n, x) => n + Number(BigInt(x.high) - BigInt(x.low)), 0);
  await admin.disconnect();
  o.log(`${o.kind}: ${kills} kills (${killedWhileProcessing} while working), seed ${o.seed}; final exit ${finalExit}`);
  return { kills, killedWhileProcessing, outputs, states, dlq, finalExit };
}
