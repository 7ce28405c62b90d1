/**
 * A toy stream processor for the runtime's tests, run as a child process (so a test can
 * `kill -9` it): upper-cases each value of TOY_INPUT into TOY_OUTPUT; values starting with
 * "POISON" fail decoding and go to the DLQ. Prints "batch" lines on stdout as it commits.
 *
 * env: KAFKA_BROKERS, TOY_INPUT, TOY_OUTPUT, TOY_GROUP, TOY_MAX_BATCH, TOY_DELAY_MS, and
 * TOY_GATED=1: with its modules loaded, wait for a line on stdin before starting (a kill
 * test keeps the next instance loaded while the current one works).
 */
import { createKafkaClient } from '../../core/kafka/client.ts';
import { createLogger } from '../../core/logger.ts';
import { ValidationError } from '../../core/errors.ts';
import { createStreamProcessor, type StreamProcessorSpec } from '../../processors/runtime/stream-processor.ts';

export function toySpec(input: string, output: string, delayMs = 0, onProcessed?: () => void): StreamProcessorSpec<string> {
  return {
    name: 'toy-upper',
    inputTopics: [input],
    async decode(record) {
      const text = record.value?.toString('utf8') ?? '';
      if (!record.value || text.startsWith('POISON') || text.includes('\uFFFD'))
        throw new ValidationError(`not a toy record: ${JSON.stringify(text.slice(0, 20))}`);
      return text;
    },
    async process(input, ctx) {
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      onProcessed?.();
      return [{ topic: output, ubicacionId: ctx.key?.toString() ?? '', key: ctx.key, value: Buffer.from(input.toUpperCase()) }];
    },
  };
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const env = process.env;
  if (env.TOY_GATED === '1') {
    // stdin closed without a word means the test is gone: start nothing.
    const opened = await new Promise<boolean>((resolve) => {
      process.stdin.once('data', () => resolve(true));
      process.stdin.once('end', () => resolve(false));
    });
    if (!opened) process.exit(0);
    process.stdin.destroy();
  }
  const logger = createLogger({ level: env.LOG_LEVEL ?? 'warn', destination: 2 });
  const kafka = createKafkaClient({ brokers: env.KAFKA_BROKERS!.split(','), clientId: 'toy-processor', logger });
  let processed = 0;
  const processor = createStreamProcessor(
    toySpec(env.TOY_INPUT!, env.TOY_OUTPUT!, Number(env.TOY_DELAY_MS ?? 0), () => {
      if (++processed % 50 === 0) process.stdout.write(`processed ${processed}\n`);
    }),
    { kafka, logger },
    { groupId: env.TOY_GROUP!, maxBatch: Number(env.TOY_MAX_BATCH ?? 100), sessionTimeoutMs: 2_000, transactionTimeoutMs: 10_000 },
  );
  process.once('SIGTERM', () => void processor.stop());
  processor.run().then(
    () => process.exit(0),
    (err: unknown) => {
      logger.error({ err }, 'toy processor failed');
      process.exit(1);
    },
  );
}
