/**
 * One throttle rule for every mail operators get: at most one per key per interval; the ones
 * held back are counted, and the next one that goes says how many and since when. Pure: the
 * caller keeps the entries (the notifier in memory, sinks/notify-rules.ts; a job that failed as
 * a whole in PostgreSQL and a local file, ops/job-failure-mail.ts) and gives the clock.
 */

/** What is remembered of one key. */
export interface ThrottleEntry {
  lastSentMs: number;
  heldBack: number;
  heldBackSinceMs: number | null;
}

export type Admission =
  | { admitted: true /** Mails of this key held back since the last one went. */; heldBack: number; heldBackSinceMs: number | null }
  | { admitted: false; heldBack: number /** When the next mail of this key may go. */; nextMs: number };

/** Whether a mail whose key last stood at `entry` may go at `nowMs`, and what to remember now. */
export function admit(
  entry: ThrottleEntry | null | undefined,
  nowMs: number,
  intervalMs: number,
): { admission: Admission; entry: ThrottleEntry } {
  if (entry && nowMs - entry.lastSentMs < intervalMs) {
    const next = { lastSentMs: entry.lastSentMs, heldBack: entry.heldBack + 1, heldBackSinceMs: entry.heldBackSinceMs ?? nowMs };
    return { admission: { admitted: false, heldBack: next.heldBack, nextMs: entry.lastSentMs + intervalMs }, entry: next };
  }
  return {
    admission: { admitted: true, heldBack: entry?.heldBack ?? 0, heldBackSinceMs: entry?.heldBackSinceMs ?? null },
    entry: { lastSentMs: nowMs, heldBack: 0, heldBackSinceMs: null },
  };
}
