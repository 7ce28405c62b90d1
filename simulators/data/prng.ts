/**
 * Small seeded PRNGs: the simulators' data is a pure function of the seed.
 * - `createRng`: one sequence (mulberry32), for what happens in order (sales, receipts).
 * - `SeededRng.reset(mixIndex(seed, i))`: a sequence per (seed, index), so row i of a catalogue
 *   is produced without producing rows 0..i-1 and nothing about a row is kept in memory.
 *
 * The per-row sequence reuses one instance on purpose: an Rng allocated per row at the same
 * site as the long-lived ones made V8 pretenure them (allocate them straight in the old
 * generation), and the simulator's old generation then grew by 100 MB between collections.
 */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Integer in [min, max]. */
  int(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
}

export function hashSeed(seed: number | string): number {
  if (typeof seed === 'number') return seed >>> 0;
  let h = 0x811c9dc5; // FNV-1a
  for (let i = 0; i < seed.length; i++) {
    h ^= seed.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** murmur3's finalizer: neighbouring inputs give unrelated outputs. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A 32-bit key for (seed hash, index): the counter a row's sequence starts from. */
export function mixIndex(seedHash: number, index: number): number {
  return fmix32((seedHash ^ fmix32(Math.imul(index + 1, 0x9e3779b1) ^ Math.floor(index / 0x1_0000_0000))) >>> 0);
}

/** mulberry32. A class, not closures: a row's sequence reuses one instance and allocates nothing. */
export class SeededRng implements Rng {
  private state: number;

  constructor(state = 0) {
    this.state = state >>> 0;
  }

  /** Restarts the sequence at `state` (see mixIndex). */
  reset(state: number): this {
    this.state = state >>> 0;
    return this;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }
}

export function createRng(seed: number | string): SeededRng {
  return new SeededRng(hashSeed(seed));
}
