/**
 * The sink's ABC trigger: the timers and the recalculation around the pure AbcDebouncer.
 * After the sink commits new ventas it calls `request()`; the cache is recalculated at once
 * if the last run started more than the interval ago, otherwise once at the interval's end.
 * A failed recalculation is logged and retried after the interval: the sink never stops for it.
 *
 * The pending request lives in memory only, so a sink killed between committing ventas and
 * recalculating would leave the cache stale until the 04:00 job. `requestIfStale()`, called
 * at start, closes that gap: ventas extracted after the cache's last calculation ask for one.
 */
import type { Logger } from '../core/logger.ts';
import type { Pool } from '../core/postgres.ts';
import { createAbcDebouncer, describeAbcResult, recalcAbc, type AbcConfig, type AbcTrigger } from './abc-recalc.ts';

export interface AbcTriggerHandle {
  request(): void;
  /** Requests a recalculation when ventas were extracted after the cache was calculated. */
  requestIfStale(): Promise<boolean>;
  /** requestIfStale() in the background, tried again every `retryMs` until PostgreSQL answers. */
  checkStaleOnStart(retryMs?: number): void;
  /** Cancels a pending run and waits for a running one. */
  stop(): Promise<void>;
}

export function createAbcTrigger(pool: Pool, config: AbcConfig, logger: Logger): AbcTriggerHandle {
  const log = logger.child({ component: 'abc-trigger' });
  const debouncer = createAbcDebouncer({ intervalMs: config.debounceMs });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;

  const act = (t: AbcTrigger): void => {
    if (stopped) return;
    if (t.action === 'wait' && !timer) {
      timer = setTimeout(
        () => {
          timer = undefined;
          act(debouncer.poll());
        },
        Math.max(0, t.at.getTime() - Date.now()),
      );
      timer.unref();
    }
    if (t.action !== 'run') return;
    running = recalcAbc(pool, { windowDays: config.windowDays, logger: log })
      .then(
        (r) => {
          log.info({ durationMs: r.durationMs }, `ABC recalculated after new ventas: ${describeAbcResult(r)}`);
          return { ok: true };
        },
        (err: unknown) => {
          log.error({ err }, 'ABC recalculation after new ventas failed: retrying after the debounce interval');
          return { ok: false };
        },
      )
      .then((outcome) => {
        running = undefined;
        act(debouncer.done(outcome));
      });
  };

  return {
    request: () => act(debouncer.request()),
    async requestIfStale() {
      const r = await pool.query<{ stale: boolean }>(
        `SELECT coalesce((SELECT max(extracted_at) FROM ventas) > coalesce((SELECT max(calculado_en) FROM productos_abc_cache), ` +
          `'-infinity'), false) AS stale`,
      );
      const stale = r.rows[0]?.stale === true;
      if (stale) {
        log.info('ventas arrived after the last ABC calculation (the sink may have stopped before its recalculation): recalculating');
        act(debouncer.request());
      }
      return stale;
    },
    checkStaleOnStart(retryMs = 30_000) {
      const attempt = (): void => {
        if (stopped) return;
        this.requestIfStale().catch((err: unknown) => {
          log.warn({ err, retryMs }, 'could not check whether the ABC cache is stale: trying again');
          setTimeout(attempt, retryMs).unref();
        });
      };
      attempt();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
