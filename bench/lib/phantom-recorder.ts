/**
 * bench/phantom's detector, recorded: the real phantom detector whose every input, in the
 * order it processed them, is kept for the replays (bench/lib/phantom-replay.ts). An input
 * processed again (a rebalance, a retried batch) is counted, not recorded twice.
 */
import { createPhantomSpec, type PhantomInput } from '../../processors/phantom-detector.ts';
import type { ProcessorFactory } from '../../processors/runtime/processor-kind.ts';
import type { StreamProcessorSpec } from '../../processors/runtime/stream-processor.ts';
import { type RecordedInput, recordInput } from './phantom-replay.ts';

export interface RecordingPhantom {
  factory: ProcessorFactory;
  recorded: RecordedInput[];
  /** Inputs seen again at an offset already recorded. */
  reprocessed(): number;
}

export function recordingPhantom(): RecordingPhantom {
  const recorded: RecordedInput[] = [];
  const processedOffsets = new Set<string>();
  let reprocessed = 0;
  const factory: ProcessorFactory = async (deps) => {
    const spec = (await createPhantomSpec(deps)) as StreamProcessorSpec<PhantomInput>;
    const processInput = spec.process.bind(spec);
    spec.process = async (input, ctx) => {
      const out = await processInput(input, ctx);
      const at = `${ctx.topic}/${ctx.partition}/${ctx.offset}`;
      if (processedOffsets.has(at)) reprocessed++;
      else {
        processedOffsets.add(at);
        recorded.push(recordInput(input));
      }
      return out;
    };
    return spec;
  };
  return { factory, recorded, reprocessed: () => reprocessed };
}
