import { describe, expect, it } from 'vitest';
import type { KafkaClient } from '../../core/kafka/types.ts';
import { createLogger } from '../../core/logger.ts';
import { createStreamProcessor, StreamProcessorError, type StreamProcessorSpec } from '../../processors/runtime/stream-processor.ts';
import { counterValue, createRuntimeMetrics } from '../../processors/runtime/metrics.ts';

const logger = createLogger({ level: 'silent' });
const noKafka = new Proxy({}, { get: () => () => Promise.reject(new Error('no I/O expected')) }) as unknown as KafkaClient;
const spec: StreamProcessorSpec = { name: 'toy', inputTopics: ['in'], decode: async (r) => r.value, process: async () => [] };

describe('createStreamProcessor argument checks (before any I/O)', () => {
  it.each([
    [{ ...spec, name: 'bad name' }, {}, /processor name/],
    [{ ...spec, inputTopics: [] }, {}, /no input topics/],
    [spec, { groupId: '' }, /group id/],
    [spec, { maxBatch: 0 }, /maxBatch/],
    [{ ...spec, state: { topics: [], load: () => undefined, reset: () => undefined } }, {}, /no state topic/],
  ])('refuses %#', (s, o, message) => {
    expect(() => createStreamProcessor(s as StreamProcessorSpec, { kafka: noKafka, logger }, { groupId: 'g', ...o })).toThrow(
      StreamProcessorError,
    );
    expect(() => createStreamProcessor(s as StreamProcessorSpec, { kafka: noKafka, logger }, { groupId: 'g', ...o })).toThrow(message);
  });
});

describe('runtime metrics', () => {
  it('counts per processor on its own registry', async () => {
    const m = createRuntimeMetrics();
    m.recordsIn.inc({ processor: 'a', topic: 't' }, 3);
    m.recordsIn.inc({ processor: 'b', topic: 't' }, 2);
    expect(await counterValue(m.recordsIn)).toBe(5);
    expect(await counterValue(m.recordsIn, { processor: 'a' })).toBe(3);
    expect(await m.registry.metrics()).toContain('fluxion_processor_records_in_total');
  });
});
