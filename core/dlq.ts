/**
 * The dead-letter record (docs/architecture.md, Topics): the original key, bytes and headers, plus
 * why and where it came from. Processors and the sink write the same shape, so one
 * operator tool reads every `<topic>.dlq`.
 */
import { errorMessage } from './errors.ts';
import type { ConsumedRecord, OutgoingRecord } from './kafka/types.ts';

const DLQ_MESSAGE_MAX = 1_000;

/** `extra` adds headers (the sink adds `sqlstate`); it never replaces the source ones. */
export function dlqRecord(record: ConsumedRecord, err: unknown, extra: Record<string, string> = {}): OutgoingRecord {
  return {
    ubicacionId: '',
    partition: record.partition,
    key: record.key,
    value: record.value,
    headers: {
      ...record.headers,
      ...extra,
      error: errorMessage(err).slice(0, DLQ_MESSAGE_MAX),
      error_class: err instanceof Error ? err.name || err.constructor.name : typeof err,
      source_topic: record.topic,
      source_partition: String(record.partition),
      source_offset: record.offset,
    },
  };
}
