/**
 * What every processor module exports: a factory turning validated configuration and
 * clients into a runtime spec. The CLI (`fluxion process <kind>`), the tests and the bench
 * build processors only through these, so each runs the same code everywhere.
 */
import type { FluxionConfig } from '../../core/config/environment.ts';
import type { KafkaClient } from '../../core/kafka/client.ts';
import type { Logger } from '../../core/logger.ts';
import type { FluxionRegistry } from '../../core/registry.ts';
import type { RuntimeMetrics } from './metrics.ts';
import type { StreamProcessorSpec } from './stream-processor.ts';

export interface ProcessorDeps {
  kafka: KafkaClient;
  registry: FluxionRegistry;
  logger: Logger;
  /** FLUXION_TOPIC_PREFIX: prepended to every topic name. */
  topicPrefix: string;
  /** Partitions of every topic (FLUXION_TOPIC_PARTITIONS), to know which stores a partition holds. */
  partitions: number;
  config: FluxionConfig['processors'];
  metrics: RuntimeMetrics;
}

// biome-ignore lint/suspicious/noExplicitAny: each kind has its own input type; callers read the spec of the kind they built
export type ProcessorFactory = (deps: ProcessorDeps) => Promise<StreamProcessorSpec<any>>;
