/**
 * What a processor gives the runtime (processors/runtime/stream-processor.ts): how to decode
 * and process one record, which outputs that makes, and the state it keeps per partition.
 */
import type { ConsumedRecord } from '../../core/kafka/client.ts';
import type { KeyValueState } from './state-store.ts';

export type { ConsumedRecord };

export interface ProcessorContext {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  headers: Record<string, string>;
  timestamp: string;
  /** The partition's state store, when the spec's state declares one (`state.store`). */
  store?: KeyValueState;
}

export interface Output {
  topic: string;
  /** Placement: the output goes to the partition of this store. */
  ubicacionId: string;
  key: string | Buffer | null;
  value: Buffer | null;
  headers?: Record<string, string>;
}

export interface StreamProcessorSpec<I = unknown> {
  /** Names the transactional ids (with the group id); one per processor kind. */
  name: string;
  inputTopics: string[];
  /** Decodes and validates one record; a throw sends the record to its topic's DLQ. */
  decode(record: ConsumedRecord): Promise<I>;
  /** Turns one decoded input into encoded outputs; a throw sends the record to its topic's DLQ. */
  process(input: I, ctx: ProcessorContext): Promise<Output[]>;
  /**
   * In-memory state rebuilt from compacted topics, co-partitioned with the inputs. Before
   * the first batch of a newly owned partition p, partition p of every state topic is read
   * to its end into `load`. `reset(p)` forgets partition p: on revocation, and after any
   * aborted transaction on p, whose in-memory effects must not survive (p is then read
   * again from the committed state and the committed input offsets).
   */
  state?: {
    topics: string[];
    /** `store` is the record's partition's state store, when `store` below is declared. */
    load(record: ConsumedRecord, store?: KeyValueState): void | Promise<void>;
    reset(partition: number): void;
    /**
     * A state store per input partition (processors/runtime/state-store.ts) for the state
     * topics `topics` (a subset of the state topics): written by `process` through
     * `ctx.store` and by `load`, flushed to disk after each committed transaction, and
     * read back from its checkpoint on a restart, so only the changelog's tail is loaded.
     * `dir` undefined keeps the store in memory (loaded in full, as any in-memory state).
     * `layout` names what the processor writes into its store: change it with the stored
     * format, and stores written in the former one are wiped and rebuilt instead of misread.
     */
    store?: { topics: string[]; dir: string | undefined; layout: string };
  };
  /**
   * The input offset to commit for a slice that ends before `next`. A processor that holds
   * records in memory across transactions (chunks of a snapshot still being assembled)
   * returns the offset of the first one, so a restart reads them again. Default `next`.
   */
  commitOffset?(topic: string, partition: number, next: bigint): bigint;
}
