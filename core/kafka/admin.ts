/**
 * The admin client: topics, their configs and offsets, consumer groups and the cluster, with
 * the waits a KRaft broker needs right after a topic is created or its leaders move.
 */
import type { Admin, ITopicConfig } from 'kafkajs';
import { TopicLayoutError } from '../errors.ts';
import { withRetry, type RetryPolicy } from '../retry.ts';
import type { KafkaConnection } from './connection.ts';
import { isOffsetsOfUnsettledTopic, kafkaErrorType } from './faults.ts';
import type { FluxionAdmin } from './types.ts';

/** Errors a broker answers while a new or moved partition's leadership settles. */
const SETTLING = new Set(['NOT_LEADER_FOR_PARTITION', 'NOT_LEADER_OR_FOLLOWER', 'UNKNOWN_TOPIC_OR_PARTITION', 'LEADER_NOT_AVAILABLE']);

/** Short waits for up to 10 s while a new or moved partition's leadership settles. */
const SETTLE_RETRY: RetryPolicy = {
  retries: Number.POSITIVE_INFINITY,
  initialDelayMs: 200,
  maxDelayMs: 200,
  factor: 1,
  maxElapsedMs: 10_000,
};

/**
 * Runs a read-only admin call; while the partitions' leadership settles it retries for up to
 * 10 s, each retry on a freshly connected admin (kafkajs keeps its stale metadata on NOT_LEADER
 * errors). Without `renew` a settling error is the caller's.
 */
async function whileMetadataSettles<T>(admin: Admin, renew: (() => Admin) | undefined, call: (a: Admin) => Promise<T>): Promise<T> {
  const settling = (err: unknown) =>
    renew !== undefined && (SETTLING.has((err as { type?: string }).type ?? '') || isOffsetsOfUnsettledTopic(err));
  return withRetry(
    SETTLE_RETRY,
    async (attempt) => {
      if (attempt === 1 || !renew) return call(admin);
      const fresh = renew();
      try {
        await fresh.connect();
        return await call(fresh);
      } finally {
        await fresh.disconnect().catch(() => undefined);
      }
    },
    { retriable: settling },
  );
}

/** The client's `admin()`: connected, its failures translated; its reads end a fault episode. */
export async function openAdmin(connection: KafkaConnection): Promise<FluxionAdmin> {
  const { kafka, faults, translate } = connection;
  const admin = kafka.admin();
  try {
    await admin.connect();
  } catch (err) {
    throw translate(err, 'connect the admin client');
  }
  faults.ok();
  return wrapAdmin(
    admin,
    () => kafka.admin(),
    () => faults.ok(),
  );
}

/** `answered`: called after the calls a long-running reader makes again and again (it ends a fault episode). */
function wrapAdmin(admin: Admin, renew?: () => Admin, answered: () => void = () => undefined): FluxionAdmin {
  return {
    async listTopics() {
      const topics = await admin.listTopics();
      answered();
      return topics;
    },
    async describeCluster() {
      const c = await admin.describeCluster();
      return { clusterId: c.clusterId, brokers: c.brokers.length, controller: c.controller ?? null };
    },
    async describeTopics(names) {
      if (names.length === 0) return [];
      const meta = await admin.fetchTopicMetadata({ topics: names }).catch((err: unknown) => {
        // Asked about by name, a topic that does not exist is a set-up error, not a moment's wait.
        if (kafkaErrorType(err) !== 'UNKNOWN_TOPIC_OR_PARTITION') throw err;
        throw new TopicLayoutError(`missing topics among ${names.join(', ')}: run \`fluxion topics ensure\``, {
          cause: err,
          context: { topic: names.join(',') },
        });
      });
      const configs = await admin.describeConfigs({
        includeSynonyms: false,
        resources: names.map((name) => ({ type: 2 /* ConfigResourceTypes.TOPIC */, name })),
      });
      return meta.topics.map((t) => {
        const resource = configs.resources.find((r) => r.resourceName === t.name);
        const config: Record<string, string> = {};
        for (const entry of resource?.configEntries ?? []) {
          if (entry.configValue !== null && entry.configValue !== undefined) config[entry.configName] = entry.configValue;
        }
        return { name: t.name, partitions: t.partitions.length, config };
      });
    },
    async createTopics(topics) {
      if (topics.length === 0) return;
      // kafkajs's own waitForLeaders retries only LEADER_NOT_AVAILABLE, but a KRaft broker
      // can answer UNKNOWN_TOPIC_OR_PARTITION for a moment after the creation: wait here.
      await admin.createTopics({
        waitForLeaders: false,
        topics: topics.map<ITopicConfig>((t) => ({
          topic: t.name,
          numPartitions: t.partitions,
          replicationFactor: -1, // the broker's default: 1 on the local node, 3 on a cluster
          configEntries: Object.entries(t.config).map(([name, value]) => ({ name, value })),
        })),
      });
      const names = topics.map((t) => t.name);
      const leaderless = new TopicLayoutError(`topics ${names.join(', ')} have no leaders 30 s after their creation`, {
        context: { topic: names.join(',') },
      });
      const settling = (err: unknown) =>
        err === leaderless || ['UNKNOWN_TOPIC_OR_PARTITION', 'LEADER_NOT_AVAILABLE'].includes((err as { type?: string }).type ?? '');
      await withRetry(
        { retries: Number.POSITIVE_INFINITY, initialDelayMs: 100, maxDelayMs: 100, factor: 1, maxElapsedMs: 30_000 },
        async () => {
          const { topics: meta } = await admin.fetchTopicMetadata({ topics: names });
          if (!(meta.length === names.length && meta.every((m) => m.partitions.length > 0 && m.partitions.every((p) => p.leader >= 0))))
            throw leaderless;
        },
        { retriable: settling },
      ).catch((err: unknown) => {
        throw settling(err) ? leaderless : err;
      });
    },
    async alterTopicConfig(name, config) {
      // kafkajs has only the non-incremental AlterConfigs, which replaces the whole set:
      // send the topic's current non-default configs merged with ours, so none is lost.
      const described = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: 2, name }] });
      const current: Record<string, string> = {};
      for (const e of described.resources[0]?.configEntries ?? []) {
        if (!e.isDefault && !e.readOnly && e.configValue !== null) current[e.configName] = e.configValue;
      }
      const merged = { ...current, ...config };
      await admin.alterConfigs({
        validateOnly: false,
        resources: [{ type: 2, name, configEntries: Object.entries(merged).map(([n, value]) => ({ name: n, value })) }],
      });
    },
    async deleteTopics(names) {
      if (names.length) await admin.deleteTopics({ topics: names });
    },
    async topicOffsets(name) {
      const offsets = await whileMetadataSettles(admin, renew, (a) => a.fetchTopicOffsets(name));
      answered();
      return offsets.map((o) => ({ partition: o.partition, low: o.low, high: o.high }));
    },
    async offsetsForTimestamp(name, timestampMs) {
      const offsets = await whileMetadataSettles(admin, renew, (a) => a.fetchTopicOffsetsByTimestamp(name, timestampMs));
      return offsets.map((o) => ({ partition: o.partition, offset: o.offset }));
    },
    async groupOffsets(groupId, topic) {
      const result = await admin.fetchOffsets({ groupId, topics: [topic] });
      return (result[0]?.partitions ?? []).map((p) => ({ partition: p.partition, offset: p.offset }));
    },
    async describeGroups(groupIds) {
      if (groupIds.length === 0) return [];
      const { groups } = await admin.describeGroups(groupIds);
      return groups.map((g) => ({ groupId: g.groupId, state: g.state, members: g.members.length }));
    },
    async disconnect() {
      await admin.disconnect();
    },
  };
}
