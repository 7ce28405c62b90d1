/**
 * How the PostgreSQL sink writes one slice of one partition (sinks/postgres-sink.ts runs it
 * inside the commit strategy of core/consume-loop/postgres-offsets.ts):
 * - records are decoded (the registry not answering is retried in place by the loop) and
 *   planned (sinks/sink-batch.ts); a record that does not decode or that the planner refuses
 *   goes to `<topic>.dlq` and the slice is planned again without it;
 * - the plan is written by set-based statements (sinks/postgres-writer.ts) in one transaction;
 * - when PostgreSQL refuses some row of the set (a data SQLSTATE), the slice is written again
 *   record by record, each under a savepoint, and the records it refuses go to the DLQ with
 *   their SQLSTATE;
 * - DLQ records are sent before the transaction commits: a crash in between can repeat a DLQ
 *   record, never a row, never lose one.
 */
import type { TopicCodec } from '../core/avro/topic-codec.ts';
import type { SliceContext } from '../core/consume-loop/contract.ts';
import type { SliceTransaction } from '../core/consume-loop/postgres-offsets.ts';
import { dlqRecord } from '../core/dlq.ts';
import { errorMessage, FluxionError, ValidationError } from '../core/errors.ts';
import type { ConsumedBatch, ConsumedRecord, FluxionProducer } from '../core/kafka/client.ts';
import type { Logger } from '../core/logger.ts';
import type { PoolClient } from '../core/postgres.ts';
import type { InventoryChange, PhantomAlert, Venta } from '../core/records.ts';
import { dlqTopic, type TopicName } from '../core/topics.ts';
import {
  addCounts,
  emptyCounts,
  HistoryOrderError,
  writeAlertas,
  writeEtlRuns,
  writeInventory,
  writeVentas,
  type WriteCounts,
} from './postgres-writer.ts';
import { planAlertas, planEtlRuns, planInventory, planVentas, SinkBatchError, type EtlRun } from './sink-batch.ts';

export const SINK_TOPICS = [
  'pos.inventario.changes',
  'pos.ventas',
  'alerts.phantom-zeros',
  'ops.etl-runs',
] as const satisfies readonly TopicName[];
export type SinkTopic = (typeof SINK_TOPICS)[number];

/**
 * SQLSTATE classes that blame the data, not the server: 22 data exception, 23 integrity
 * constraint violation. The same rows fail the same way every time, so they are set aside.
 */
const DATA_SQLSTATE = /^(22|23)/;
/** PostgreSQL's SQLSTATE, or the one our writer's own refusal stands for (HistoryOrderError). */
export const sqlstateOf = (err: unknown): string | undefined =>
  err instanceof HistoryOrderError ? err.sqlstate : ((err as { code?: unknown })?.code as string | undefined);
const isDataError = (err: unknown): boolean => err instanceof HistoryOrderError || DATA_SQLSTATE.test(sqlstateOf(err) ?? '');

interface Decoded {
  record: ConsumedRecord;
  value: unknown;
}

interface Rejected {
  record: ConsumedRecord;
  err: unknown;
  sqlstate?: string;
}

export interface SliceWriterDeps {
  logger: Logger;
  codecs: () => Map<SinkTopic, TopicCodec<unknown>>;
  dlqProducer: () => FluxionProducer;
  /** The logical topic of a physical (prefixed) one. */
  topicOf: Map<string, SinkTopic>;
  /** A slice was planned again (`replanned`) or written record by record (`record_by_record`). */
  retried(reason: 'replanned' | 'record_by_record'): void;
  dlqSent(topic: SinkTopic, reason: 'postgres' | 'plan' | 'decode'): void;
}

/** Writes one slice through `transaction`; returns the rows written by operation. */
export type SliceWriter = (
  batch: ConsumedBatch,
  slice: ConsumedRecord[],
  ctx: SliceContext,
  transaction: SliceTransaction,
) => Promise<WriteCounts>;

export function createSliceWriter(deps: SliceWriterDeps): SliceWriter {
  const log = deps.logger;

  async function decodeAll(topic: SinkTopic, records: ConsumedRecord[], rejected: Rejected[]): Promise<Decoded[]> {
    const codec = deps.codecs().get(topic)!;
    const out: Decoded[] = [];
    for (const record of records) {
      try {
        if (!record.value) throw new ValidationError(`${topic} record without a value (a tombstone) at offset ${record.offset}`);
        out.push({ record, value: await codec.decode(record.value) });
      } catch (err) {
        // The registry not answering is no fault of the record: retry the batch.
        if (err instanceof FluxionError && err.retriable) throw err;
        rejected.push({ record, err });
      }
    }
    return out;
  }

  /** The plan of `items`; records the planner refuses move to `rejected` (it is planned again without them). */
  function planFor(
    topic: SinkTopic,
    items: Decoded[],
    rejected: Rejected[],
  ): { items: Decoded[]; write: (client: PoolClient) => Promise<WriteCounts> } {
    let current = items;
    for (;;) {
      try {
        const values = current.map((d) => d.value);
        let write: (client: PoolClient) => Promise<WriteCounts>;
        if (topic === 'pos.inventario.changes') {
          const plan = planInventory(values as InventoryChange[]);
          write = (c) => writeInventory(c, plan);
        } else if (topic === 'pos.ventas') {
          const plan = planVentas(values as Venta[]);
          write = (c) => writeVentas(c, plan);
        } else if (topic === 'alerts.phantom-zeros') {
          const plan = planAlertas(values as PhantomAlert[]);
          write = (c) => writeAlertas(c, plan);
        } else {
          const plan = planEtlRuns(values as EtlRun[]);
          write = (c) => writeEtlRuns(c, plan);
        }
        return { items: current, write };
      } catch (err) {
        if (!(err instanceof SinkBatchError)) throw err;
        const bad = current[err.index]!;
        rejected.push({ record: bad.record, err });
        current = current.filter((_, i) => i !== err.index);
        deps.retried('replanned');
      }
    }
  }

  async function sendDlq(topic: string, rejected: Rejected[]): Promise<void> {
    if (rejected.length === 0) return;
    for (const r of rejected) {
      log.warn(
        { topic, partition: r.record.partition, offset: r.record.offset, sqlstate: r.sqlstate, err: errorMessage(r.err) },
        'record sent to the DLQ',
      );
    }
    await deps.dlqProducer().send(
      dlqTopic(topic),
      rejected.map((r) => dlqRecord(r.record, r.err, r.sqlstate ? { sqlstate: r.sqlstate } : {})),
    );
    for (const r of rejected)
      deps.dlqSent(deps.topicOf.get(topic)!, r.sqlstate ? 'postgres' : r.err instanceof SinkBatchError ? 'plan' : 'decode');
  }

  return async (batch, slice, ctx, transaction) => {
    const { topic, partition } = batch;
    const logical = deps.topicOf.get(topic)!;
    const { decoded, rejected } = await ctx.retry('decode', async () => {
      const bad: Rejected[] = [];
      return { decoded: await decodeAll(logical, slice, bad), rejected: bad };
    });
    const planned = planFor(logical, decoded, rejected);
    const written = (r: { counts: WriteCounts; dlq: Rejected[] }) => sendDlq(topic, r.dlq);

    const result = await ctx.retry('write', async () => {
      try {
        return await transaction(async (client) => ({ counts: await planned.write(client), dlq: rejected }), written);
      } catch (err) {
        if (!isDataError(err)) throw err;
        // PostgreSQL refused some row of the set: find it by writing the records one by one,
        // each under a savepoint, and set aside those it refuses.
        log.warn(
          { topic, partition, from: slice[0]!.offset, to: slice.at(-1)!.offset, sqlstate: sqlstateOf(err), err: errorMessage(err) },
          'PostgreSQL refused the batch: writing it record by record to find the bad one',
        );
        deps.retried('record_by_record');
        return transaction(async (client) => {
          const total = emptyCounts();
          const refused: Rejected[] = [];
          for (const item of planned.items) {
            const one = planFor(logical, [item], refused);
            if (one.items.length === 0) continue;
            await client.query('SAVEPOINT record');
            try {
              addCounts(total, await one.write(client));
              await client.query('RELEASE SAVEPOINT record');
            } catch (e) {
              if (!isDataError(e)) throw e;
              await client.query('ROLLBACK TO SAVEPOINT record');
              refused.push({ record: item.record, err: e, sqlstate: sqlstateOf(e) });
            }
          }
          return { counts: total, dlq: [...rejected, ...refused] };
        }, written);
      }
    });
    return result.counts;
  };
}
