/**
 * What `fluxion replay historico` (sinks/historico-replay.ts) takes and answers: its
 * dependencies, options, result, and the errors it refuses or stops with.
 */
import { FluxionError } from '../core/errors.ts';
import type { KafkaClient } from '../core/kafka/types.ts';
import type { Logger } from '../core/logger.ts';
import type { Pool } from '../core/postgres.ts';
import type { Progress } from '../core/progress.ts';
import type { FluxionRegistry } from '../core/registry.ts';
import { type CoverageProblem, describeProblem } from './replay-coverage.ts';

export interface ReplayDeps {
  kafka: KafkaClient;
  registry: FluxionRegistry;
  pool: Pool;
  logger: Logger;
  topicPrefix: string;
}

export interface ReplayOptions {
  from?: Date;
  to?: Date;
  /** The live sink's consumer group, whose position the replay catches up with. */
  sinkGroup: string;
  /** Change events per COPY into the staging table, and per transaction of the catch-up under the lock (default 20,000). */
  batchSize?: number;
  signal?: AbortSignal;
  /** Given the number of events to read, returns the progress display. */
  progress?: (total: number) => Progress;
  /** Replay even when the log does not cover the live table (rows the log cannot rebuild are lost). */
  force?: boolean;
  /** With `force` and gaps: called before the swap with what it will cost. */
  onForced?: (report: ForcedReport) => void;
}

export interface ForcedReport {
  problems: string[];
  liveRows: number;
  rebuiltRows: number;
  /** Live rows with no row of the same key and valid_from in the rebuilt table. */
  lostRows: number;
}

export interface ReplayResult {
  /** Events read from the topic (including those outside --from/--to, and skipped ones). */
  read: number;
  applied: number;
  /** Events the live sink dead-lettered too (undecodable or refused by the planner). */
  skipped: number;
  keptRows: number;
  rows: number;
  /** With `force`: live rows the rebuilt table lacked (0 when the log covered everything). */
  lostRows: number;
  durationMs: number;
}

export class ReplayError extends FluxionError {
  constructor(message: string, options: ConstructorParameters<typeof FluxionError>[1] = {}) {
    super(message, { code: 'REPLAY', ...options });
  }
}

/** Exit code of a replay refused because the log does not cover the live table (docs/replay.md). */
export const EXIT_NOT_COVERED = 3;

/** The log does not hold what the live table was built from: swapping would lose rows. */
export class ReplayCoverageError extends ReplayError {
  override readonly exitCode = EXIT_NOT_COVERED;
  readonly problems: CoverageProblem[];
  constructor(topic: string, group: string, problems: CoverageProblem[], liveRows: number) {
    super(
      `replay refused: ${topic} does not hold every event inventario_historico (${liveRows} rows) was built from, so the rebuilt ` +
        `table would lack rows:\n` +
        problems.map((p) => `  - ${describeProblem(topic, p, group)}\n`).join('') +
        'inventario_historico was left untouched. --from keeps the rows taken before an instant the log covers; --force replays ' +
        'anyway and says how many rows go (docs/replay.md).',
      { code: 'REPLAY_NOT_COVERED', context: { topic } },
    );
    this.problems = problems;
  }
}

export class ReplayCancelled extends ReplayError {
  constructor() {
    super('replay cancelled: inventario_historico was left untouched');
  }
}
