/**
 * `fluxion topics ensure`: creates every topic of docs/architecture.md with its partitions, retention
 * and compaction, and brings the configs it owns back to what core/topics.ts says. Running
 * it twice changes nothing. It never changes a partition count: records are placed by
 * ubicacion, so that would move stores between partitions under running consumers.
 */
import { TopicLayoutError } from '../core/errors.ts';
import type { FluxionAdmin } from '../core/kafka/types.ts';
import type { Logger } from '../core/logger.ts';
import type { TopicSpec } from '../core/topics.ts';

export type TopicAction =
  | { topic: string; action: 'created'; partitions: number }
  | { topic: string; action: 'updated'; changed: Record<string, { from: string | undefined; to: string }> }
  | { topic: string; action: 'unchanged' };

export async function ensureTopics(admin: FluxionAdmin, specs: TopicSpec[], partitions: number, logger: Logger): Promise<TopicAction[]> {
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((s) => !existing.has(s.name));
  const present = specs.filter((s) => existing.has(s.name));
  const actions: TopicAction[] = [];

  const described = await admin.describeTopics(present.map((s) => s.name));
  const layoutProblems: string[] = [];
  for (const spec of present) {
    const d = described.find((t) => t.name === spec.name);
    if (d && d.partitions !== partitions) {
      layoutProblems.push(`${spec.name} has ${d.partitions} partitions, the configuration says ${partitions} (FLUXION_TOPIC_PARTITIONS)`);
    }
  }
  if (layoutProblems.length) {
    throw new TopicLayoutError(
      `refusing to change partition counts, which would move stores between partitions: ${layoutProblems.join('; ')}. ` +
        'Set FLUXION_TOPIC_PARTITIONS to the existing count, or repartition deliberately (docs/services.md, "Changing the partition ' +
        'count").',
    );
  }

  await admin.createTopics(missing.map((s) => ({ name: s.name, partitions, config: s.config })));
  for (const s of missing) {
    actions.push({ topic: s.name, action: 'created', partitions });
    logger.info({ topic: s.name, partitions, config: s.config }, 'topic created');
  }

  for (const spec of present) {
    const current = described.find((t) => t.name === spec.name)?.config ?? {};
    const changed: Record<string, { from: string | undefined; to: string }> = {};
    for (const [key, value] of Object.entries(spec.config)) {
      if (current[key] !== value) changed[key] = { from: current[key], to: value };
    }
    if (Object.keys(changed).length === 0) {
      actions.push({ topic: spec.name, action: 'unchanged' });
      continue;
    }
    await admin.alterTopicConfig(spec.name, Object.fromEntries(Object.entries(changed).map(([k, v]) => [k, v.to])));
    actions.push({ topic: spec.name, action: 'updated', changed });
    logger.info({ topic: spec.name, changed }, 'topic config updated');
  }
  return actions;
}
