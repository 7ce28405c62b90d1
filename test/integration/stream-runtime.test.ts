/**
 * The stream runtime against the real broker: a toy processor (upper-case values) copies a
 * seeded topic exactly once, sends poison records to the DLQ, and survives repeated
 * `kill -9` of its process with no loss and no duplicates (the shape of Kafka's
 * transactional copier system test, docs/pitfalls.md).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafkaClient } from '../../core/kafka/client.ts';
import type { ConsumedRecord, FluxionAdmin, KafkaClient, OutgoingRecord } from '../../core/kafka/types.ts';
import { partitionForUbicacion } from '../../core/kafka/partitioning.ts';
import { PROJECT_ROOT } from '../../core/paths.ts';
import { ServiceUnavailableError } from '../../core/errors.ts';
import { dlqTopic } from '../../core/topics.ts';
import { counterValue, createRuntimeMetrics } from '../../processors/runtime/metrics.ts';
import { createStreamProcessor } from '../../processors/runtime/stream-processor.ts';
import { toySpec } from '../helpers/toy-processor.ts';
import { serviceEnv, testLogger, uniqueId } from '../../fixtures/services.ts';

const PARTITIONS = 3;
const STORES = Array.from({ length: 12 }, (_, i) => `tienda_${String(i + 1).padStart(2, '0')}`);
let kafka: KafkaClient;
let admin: FluxionAdmin;
const created: string[] = [];

beforeAll(async () => {
  kafka = createKafkaClient({ brokers: serviceEnv().KAFKA_BROKERS.split(','), clientId: 'fluxion-test', logger: testLogger });
  admin = await kafka.admin();
});

afterAll(async () => {
  await admin?.deleteTopics(created).catch(() => undefined);
  await admin?.disconnect();
});

async function topics(label: string): Promise<{ input: string; output: string; group: string }> {
  const input = `${uniqueId(label)}.in`;
  const output = `${uniqueId(label)}.out`;
  const names = [input, output, dlqTopic(input)];
  await admin.createTopics(names.map((name) => ({ name, partitions: PARTITIONS, config: { 'cleanup.policy': 'delete' } })));
  created.push(...names);
  return { input, output, group: uniqueId('g') };
}

async function seed(topic: string, values: Array<Buffer>): Promise<OutgoingRecord[]> {
  const records = values.map((value, i) => {
    const store = STORES[i % STORES.length]!;
    return { ubicacionId: store, key: store, value };
  });
  const producer = await kafka.producer();
  await producer.send(topic, records);
  await producer.disconnect();
  return records;
}

/** Every committed record of `topic`: waits for `count`, then a quiet period to catch extras. */
async function readAll(topic: string, count: number, timeoutMs = 30_000): Promise<ConsumedRecord[]> {
  const consumer = await kafka.consumer({ groupId: uniqueId('read'), readCommitted: true });
  const got: ConsumedRecord[] = [];
  try {
    await consumer.subscribe([topic], true);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`only ${got.length} of ${count} records on ${topic} in ${timeoutMs} ms`)),
        timeoutMs,
      );
      let quiet: NodeJS.Timeout | undefined;
      void consumer.run(async (r) => {
        got.push(r);
        if (got.length >= count) {
          clearTimeout(timer);
          if (quiet) clearTimeout(quiet);
          quiet = setTimeout(resolve, 1_500);
        }
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return got;
}

/** Values per partition, in offset order. */
function byPartition(records: Array<{ partition: number; value: Buffer | null; offset?: string }>): Map<number, string[]> {
  const out = new Map<number, string[]>();
  const sorted = [...records].sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset ?? '0') - BigInt(b.offset ?? '0')));
  for (const r of sorted) out.set(r.partition, [...(out.get(r.partition) ?? []), r.value?.toString('utf8') ?? '']);
  return out;
}

function expectedOutput(seeded: OutgoingRecord[]): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const r of seeded) {
    const p = partitionForUbicacion(r.ubicacionId, PARTITIONS);
    out.set(p, [...(out.get(p) ?? []), r.value!.toString('utf8').toUpperCase()]);
  }
  return out;
}

async function waitForGroupOffsets(group: string, topic: string, total: number, timeoutMs: number): Promise<void> {
  const ends = new Map((await admin.topicOffsets(topic)).map((o) => [o.partition, BigInt(o.high)]));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const offsets = await admin.groupOffsets(group, topic);
    if (offsets.length === ends.size && offsets.every((o) => BigInt(o.offset) >= ends.get(o.partition)!)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`group ${group} did not reach the end of ${topic} (${total} records) in ${timeoutMs} ms`);
}

// Concurrent: each test has its own topics, group and metrics, and spends most of its time
// waiting (group joins, quiet periods, the kill loop's restarts).
describe.concurrent('stream runtime (exactly-once consume-transform-produce)', () => {
  it('copies a seeded topic through a toy processor: same records, same order per partition', async () => {
    const { input, output, group } = await topics('copy');
    const seeded = await seed(
      input,
      Array.from({ length: 2_000 }, (_, i) => Buffer.from(`record ${i} of ${STORES[i % STORES.length]}`)),
    );
    const metrics = createRuntimeMetrics();
    const processor = createStreamProcessor(
      toySpec(input, output),
      { kafka, logger: testLogger, metrics },
      { groupId: group, maxBatch: 250 },
    );
    const running = processor.run();
    await waitForGroupOffsets(group, input, seeded.length, 40_000);
    await processor.stop();
    await running;

    const got = await readAll(output, seeded.length);
    expect(got).toHaveLength(2_000);
    expect(byPartition(got)).toEqual(expectedOutput(seeded));
    for (const r of got) expect(r.partition).toBe(partitionForUbicacion(r.key!.toString(), PARTITIONS));
    expect(await counterValue(metrics.recordsIn)).toBe(2_000);
    expect(await counterValue(metrics.recordsOut)).toBe(2_000);
    expect(await counterValue(metrics.recordsDlq)).toBe(0);
    expect(await counterValue(metrics.transactions)).toBeGreaterThanOrEqual(8);
  });

  it('sends poison records with their original bytes to <input>.dlq and keeps going', async () => {
    const { input, output, group } = await topics('poison');
    const garbage = Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28]);
    const values = Array.from({ length: 300 }, (_, i) =>
      i % 50 === 7 ? garbage : i % 50 === 31 ? Buffer.from(`POISON ${i}`) : Buffer.from(`ok ${i}`),
    );
    const seeded = await seed(input, values);
    const metrics = createRuntimeMetrics();
    const processor = createStreamProcessor(
      toySpec(input, output),
      { kafka, logger: testLogger, metrics },
      { groupId: group, maxBatch: 64 },
    );
    const running = processor.run();
    await waitForGroupOffsets(group, input, seeded.length, 40_000);
    await processor.stop();
    await running;

    const poisonCount = values.filter((v) => v === garbage || v.toString().startsWith('POISON')).length;
    const dlq = await readAll(dlqTopic(input), poisonCount);
    expect(dlq).toHaveLength(poisonCount);
    const garbageDlq = dlq.filter((r) => r.value?.equals(garbage));
    expect(garbageDlq).toHaveLength(values.filter((v) => v === garbage).length);
    for (const r of dlq) {
      expect(r.headers.error).toMatch(/not a toy record/);
      expect(r.headers.error_class).toBe('ValidationError');
      expect(r.headers.source_topic).toBe(input);
      expect(Number(r.headers.source_partition)).toBe(r.partition);
      expect(r.headers.source_offset).toMatch(/^\d+$/);
      expect(STORES).toContain(r.key?.toString());
    }
    const good = seeded.filter((s) => s.value !== garbage && !s.value!.toString().startsWith('POISON'));
    const got = await readAll(output, good.length);
    expect(byPartition(got)).toEqual(expectedOutput(good));
    expect(await counterValue(metrics.recordsDlq)).toBe(poisonCount);
    expect(await counterValue(metrics.recordsOut)).toBe(good.length);
  });

  it('retries a transaction, instead of dead-lettering, when a service did not answer', async () => {
    const { input, output, group } = await topics('outage');
    const seeded = await seed(
      input,
      Array.from({ length: 60 }, (_, i) => Buffer.from(`outage ${i}`)),
    );
    const metrics = createRuntimeMetrics();
    let outages = 3;
    const base = toySpec(input, output);
    const spec = {
      ...base,
      async decode(record: ConsumedRecord) {
        if (record.value?.toString() === 'outage 17' && outages-- > 0)
          throw new ServiceUnavailableError('schema registry at http://registry did not answer');
        return base.decode(record);
      },
    };
    const processor = createStreamProcessor(spec, { kafka, logger: testLogger, metrics }, { groupId: group, maxBatch: 10 });
    const running = processor.run();
    await waitForGroupOffsets(group, input, seeded.length, 40_000);
    await processor.stop();
    await running;
    const got = await readAll(output, seeded.length);
    expect(byPartition(got)).toEqual(expectedOutput(seeded));
    expect(await counterValue(metrics.recordsDlq)).toBe(0);
    expect(await counterValue(metrics.aborts, { reason: 'error' })).toBe(3);
  });

  it('loses nothing and duplicates nothing when its process is killed with SIGKILL again and again', { timeout: 170_000 }, async () => {
    const started = Date.now();
    const { input, output, group } = await topics('crash');
    const seeded = await seed(
      input,
      Array.from({ length: 5_000 }, (_, i) => Buffer.from(`crash record ${i} of ${STORES[i % STORES.length]}`)),
    );
    const seedValue = Number(process.env.RUNTIME_KILL_SEED ?? Date.now() % 1_000_000);
    console.log(`stream-runtime crash test: kill seed ${seedValue} (rerun with RUNTIME_KILL_SEED=${seedValue})`);
    let state = seedValue || 1;
    const random = () => {
      // mulberry32: a tiny seeded generator, so a failing schedule can be replayed.
      state = (state + 0x6d2b79f5) | 0;
      let t = Math.imul(state ^ (state >>> 15), 1 | state);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const env = {
      ...process.env,
      TOY_INPUT: input,
      TOY_OUTPUT: output,
      TOY_GROUP: group,
      TOY_MAX_BATCH: '40',
      TOY_DELAY_MS: '2',
      LOG_LEVEL: 'warn',
      TOY_GATED: '1',
    };
    const script = join(PROJECT_ROOT, 'test', 'helpers', 'toy-processor.ts');
    // Each instance is spawned loaded and waiting at its gate (TOY_GATED) while the one
    // before it works; go() starts it once the one before was killed.
    const start = () => {
      const child = spawn(process.execPath, [script], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      child.stdin.on('error', () => undefined);
      const go = () => child.stdin.end('go\n');
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<{ code: number | null; signal: string | null }>((r) =>
        child.once('exit', (code, signal) => r({ code, signal })),
      );
      const processing = new Promise<boolean>((r) => {
        child.stdout.on('data', () => r(true));
        void exited.then(() => r(false));
      });
      return { child, go, exited, processing, stderr: () => stderr };
    };

    const KILLS = 10;
    let killsMidProcessing = 0;
    let next = start();
    for (let k = 0; k < KILLS; k++) {
      const run = next;
      run.go();
      next = start();
      // Kill at a random instant after it started processing (or while it waits to join,
      // when it has not begun within 10 s).
      const began = await Promise.race([run.processing, new Promise<false>((r) => setTimeout(() => r(false), 10_000))]);
      if (began) killsMidProcessing++;
      await new Promise((r) => setTimeout(r, Math.floor(random() * 700)));
      run.child.kill('SIGKILL');
      const { signal, code } = await run.exited;
      expect(signal === 'SIGKILL' || code === 0, `run ${k} ended with ${code} ${signal}: ${run.stderr()}`).toBe(true);
    }
    // The last run goes to the end undisturbed, then stops cleanly on SIGTERM.
    const last = next;
    last.go();
    await waitForGroupOffsets(group, input, seeded.length, 90_000);
    last.child.kill('SIGTERM');
    expect((await last.exited).code, last.stderr()).toBe(0);

    const got = await readAll(output, seeded.length);
    const values = got.map((r) => r.value!.toString());
    expect(new Set(values).size, 'duplicates in the output').toBe(values.length);
    expect(got).toHaveLength(seeded.length);
    expect(byPartition(got)).toEqual(expectedOutput(seeded));
    const dlq = (await admin.topicOffsets(dlqTopic(input))).reduce((n, o) => n + Number(BigInt(o.high) - BigInt(o.low)), 0);
    expect(dlq).toBe(0);
    console.log(
      `stream-runtime crash test: ${KILLS} kills (${killsMidProcessing} while processing), seed ${seedValue}, ` +
        `${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  });
});
