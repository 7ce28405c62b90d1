/**
 * The chaos run's faults (test/chaos/chaos-run.ts): the kinds, the seeded plan that injects
 * each at least once, poison records on the consumed topics, and the clean cycle's retries.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestPipeline } from '../../fixtures/pipeline.ts';
import type { PoisonRecord } from './chaos-run.ts';

export const LONG_RUNNING = ['differ', 'dedupe', 'phantom', 'sink'] as const;
export type LongRunning = (typeof LONG_RUNNING)[number];
export const FAULT_KINDS = ['kill', 'zombie', 'kafka', 'postgres', 'failing', 'hanging', 'mass-zero', 'poison'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

/**
 * The faults of each faulty cycle. The first cycle is clean (it loads every store); the
 * others get every kind at least once (CI-sized runs must cover them all), in seeded order,
 * then random ones: one to three a cycle.
 */
export function planFaults(random: () => number, cycles: number): FaultKind[][] {
  const plan: FaultKind[][] = Array.from({ length: cycles }, () => []);
  const kinds: FaultKind[] = [...FAULT_KINDS, 'kill', 'kill', 'kill'];
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  if (cycles < 2) return plan;
  for (const [i, k] of kinds.entries()) plan[1 + (i % (cycles - 1))]!.push(k);
  for (let c = 1 + kinds.length; c < cycles; c++) {
    const n = 1 + Math.floor(random() * 3);
    for (let i = 0; i < n; i++) plan[c]!.push(pick(random, [...FAULT_KINDS, 'kill', 'kill']));
  }
  return plan;
}

/** Undecodable records: not Avro at all, an unknown schema id, a known id with a cut body. */
export async function injectPoison(
  run: { pipeline: TestPipeline },
  random: () => number,
  n: number,
  count: number,
): Promise<PoisonRecord[]> {
  const topics = [
    'pos.inventario.snapshots',
    'pos.ventas.raw',
    'pos.inventario.changes',
    'pos.ventas',
    'alerts.phantom-zeros',
    'ops.etl-runs',
  ];
  const records: PoisonRecord[] = [];
  const producer = await run.pipeline.kafka.producer();
  try {
    for (let i = 0; i < count; i++) {
      const topic = pick(random, topics);
      const kind = pick(random, ['not-avro', 'unknown-schema', 'cut-body']);
      let value: Buffer;
      if (kind === 'not-avro') value = Buffer.from(`{"poison":${n}}`);
      else {
        const id =
          kind === 'unknown-schema' ? 987_654 : (await run.pipeline.registry.latestSchema(`${run.pipeline.prefix}${topic}-value`))!.id;
        const header = Buffer.alloc(5);
        header.writeUInt32BE(id, 1);
        value = Buffer.concat([header, Buffer.from([0x02, 0xff])]);
      }
      const key = `poison-${n}-${i}`;
      await producer.send(run.pipeline.prefix + topic, [
        { ubicacionId: key, partition: Math.floor(random() * 3), key: Buffer.from(key), value, headers: {} },
      ]);
      records.push({ topic, key, kind });
    }
  } finally {
    await producer.disconnect();
  }
  return records;
}

export function plannedRandom(random: () => number): FaultKind[] {
  const n = 1 + Math.floor(random() * 3);
  return Array.from({ length: n }, () => pick(random, [...FAULT_KINDS, 'kill', 'kill']));
}

/** The clean cycle's extractions must succeed; a broker still electing leaders may fail one. */
export async function retryClean(
  what: string,
  run: () => Promise<{ code: number | null; signal: string | null; out: string }>,
  event: (l: string) => void,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const r = await run();
    if (r.code === 0) return;
    event(`clean cycle: ${what} exit ${r.signal ?? r.code} (attempt ${attempt}):\n${r.out}`);
    if (attempt >= 3) throw new Error(`the clean cycle's ${what} extraction failed ${attempt} times:\n${r.out}`);
    await sleep(3_000);
  }
}
