/**
 * The whole retry policy in one place: exponential backoff with full jitter and a cap,
 * honouring `retriable` on our errors and a server's Retry-After. Connectors never hand-roll
 * loops; they wrap one attempt: `withRetry(policy, (attempt) => ...)`.
 */
import { FluxionError } from './errors.ts';

export interface RetryPolicy {
  /** Attempts after the first one. */
  retries: number;
  initialDelayMs: number;
  maxDelayMs: number;
  factor: number;
}

export const DEFAULT_RETRY: RetryPolicy = { retries: 5, initialDelayMs: 500, maxDelayMs: 30_000, factor: 2 };

export interface RetryOptions {
  signal?: AbortSignal;
  /** Called before each wait: log it. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Randomness in [0, 1), replaceable in tests. */
  random?: () => number;
}

/** How long the error asks us to wait (Retry-After), if it says. */
export function retryAfterMs(err: unknown): number | undefined {
  const v = err instanceof FluxionError ? err.context.retryAfterMs : undefined;
  return typeof v === 'number' && v >= 0 ? v : undefined;
}

export function isRetriable(err: unknown): boolean {
  return err instanceof FluxionError ? err.retriable : false;
}

/** Delay before retry number `attempt` (1-based): full jitter under an exponential cap. */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const cap = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.factor ** (attempt - 1));
  return Math.round(cap / 2 + (random() * cap) / 2);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Runs `attempt` until it succeeds, a non-retriable error is thrown, or retries run out. */
export async function withRetry<T>(policy: RetryPolicy, attempt: (n: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason ?? err;
      if (!isRetriable(err) || n > policy.retries) throw err;
      const asked = retryAfterMs(err);
      // The server's Retry-After wins over our backoff; the caller's deadline bounds the wait.
      const delay = asked ?? backoffDelay(policy, n, options.random);
      options.onRetry?.(err, n, delay);
      await sleep(delay, options.signal);
    }
  }
}
