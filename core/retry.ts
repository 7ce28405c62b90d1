/**
 * The whole retry policy in one place: exponential backoff with full jitter and a cap,
 * honouring `retriable` on our errors and a server's Retry-After. Connectors never hand-roll
 * loops; they wrap one attempt: `withRetry(policy, (attempt) => ...)`.
 */
import { FluxionError } from './errors.ts';

export interface RetryPolicy {
  /** Attempts after the first one (Infinity: bounded by `maxElapsedMs` only). */
  retries: number;
  initialDelayMs: number;
  maxDelayMs: number;
  factor: number;
  /** Gives up once this long has passed since the first failure of an episode (default: never). */
  maxElapsedMs?: number;
}

export const DEFAULT_RETRY: RetryPolicy = { retries: 5, initialDelayMs: 500, maxDelayMs: 30_000, factor: 2 };

export interface RetryOptions {
  signal?: AbortSignal;
  /** Called before each wait: log it. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Randomness in [0, 1), replaceable in tests. */
  random?: () => number;
  /** Which errors are worth another attempt (default: our errors' `retriable`). */
  retriable?: (err: unknown) => boolean;
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

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
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

/**
 * One episode of failures: consecutive failures of the same work, from the first to the
 * next success. Each failure either waits the policy's backoff or, when the error is not
 * retriable or the policy ran out (attempts or `maxElapsedMs`), throws the error. A success
 * ends the episode: the next failure starts a new one at the initial delay. Both withRetry
 * (one call) and long-running supervisors (a consumer restarted on a fault) use it.
 */
export class RetryEpisode {
  private failures = 0;
  private since: number | undefined;
  private readonly policy: RetryPolicy;
  private readonly options: RetryOptions;
  constructor(policy: RetryPolicy, options: RetryOptions = {}) {
    this.policy = policy;
    this.options = options;
  }

  /** Failures in the current episode (0: none). */
  get attempts(): number {
    return this.failures;
  }

  /** Milliseconds since the episode's first failure (0: no episode). */
  get elapsedMs(): number {
    return this.since === undefined ? 0 : Date.now() - this.since;
  }

  /** Waits before the next attempt, or throws `err` when it must not be retried. */
  async failed(err: unknown): Promise<void> {
    const signal = this.options.signal;
    if (signal?.aborted) throw signal.reason ?? err;
    this.since ??= Date.now();
    this.failures++;
    const retriable = (this.options.retriable ?? isRetriable)(err);
    if (!retriable || this.failures > this.policy.retries) throw err;
    const asked = retryAfterMs(err);
    // The server's Retry-After wins over our backoff; the caller's deadline bounds the wait.
    const delay = asked ?? backoffDelay(this.policy, this.failures, this.options.random);
    if (this.policy.maxElapsedMs !== undefined && this.elapsedMs + delay > this.policy.maxElapsedMs) throw err;
    this.options.onRetry?.(err, this.failures, delay);
    await sleep(delay, signal);
  }

  /** The work succeeded: the episode (if any) is over. */
  succeeded(): void {
    this.failures = 0;
    this.since = undefined;
  }
}

/** Runs `attempt` until it succeeds, a non-retriable error is thrown, or retries run out. */
export async function withRetry<T>(policy: RetryPolicy, attempt: (n: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const episode = new RetryEpisode(policy, options);
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      await episode.failed(err);
    }
  }
}
