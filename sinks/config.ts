/**
 * The sinks' settings (docs/configuration.md is generated from these schemas): the PostgreSQL
 * sink's batch, the ABC recalculation and the notifier's phantom-zero mails.
 * cli/config.ts composes this section with the others.
 *
 * ABC's two settings are one schema each, used both for their variables and for
 * abcConfigSchema, so they are validated once and their defaults are written once.
 */
import { z } from 'zod';
import { defineSection } from '../core/config/compose.ts';
import { minutes } from '../core/config/env-var.ts';

/** The same bound productos_abc_recalcular() enforces: ten years is beyond any useful window. */
export const ABC_MAX_WINDOW_DAYS = 3660;

const abcWindowDays = z.coerce
  .number()
  .int()
  .min(1, 'must be at least 1 day')
  .max(ABC_MAX_WINDOW_DAYS, `must be at most ${ABC_MAX_WINDOW_DAYS} days`)
  .default(90)
  .describe('ABC: business days of ventas (ventas.fecha) the classes are computed from, ending on the as-of date (included)');

const abcDebounceMs = z.coerce
  .number()
  .int()
  .min(0)
  .max(86_400_000, 'must be at most a day')
  .default(300_000)
  .describe('ABC: after the sink commits new ventas, the cache is recalculated at most once per this many milliseconds');

/** The ABC component's configuration (sinks/abc-recalc.ts, sinks/abc-trigger.ts). */
export const abcConfigSchema = z.object({ windowDays: abcWindowDays, debounceMs: abcDebounceMs });
export type AbcConfig = z.infer<typeof abcConfigSchema>;

/** The defaults, read from the schema. */
export const ABC_DEFAULTS: Readonly<AbcConfig> = Object.freeze(abcConfigSchema.parse({}));

export const SINKS_ENV = {
  FLUXION_SINK_MAX_BATCH: z.coerce.number().int().min(1).max(100_000).default(5_000).describe('sink: records per PostgreSQL transaction'),
  FLUXION_ABC_WINDOW_DAYS: abcWindowDays,
  FLUXION_ABC_DEBOUNCE_MS: abcDebounceMs,
  FLUXION_NOTIFY_PHANTOM_STORE_THRESHOLD: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(1)
    .describe(
      'notify: phantom-zero alerts opened in one store within the window that make a mail ' +
        '(1: every new alert, throttled and within the daily budget)',
    ),
  FLUXION_NOTIFY_PHANTOM_WINDOW_MINUTES: minutes(7 * 24 * 60)
    .default(60)
    .describe("notify: the window (by the alerts' `opened_at`) in which they are counted"),
  FLUXION_NOTIFY_PHANTOM_DAILY_BUDGET: z.coerce
    .number()
    .int()
    .min(1)
    .max(10_000)
    .default(10)
    .describe(
      'notify: phantom-zero alerts mailed per store per store-local day (America/Caracas), most confident first; ' +
        'the rest are only counted (`fluxion alertas listar`, [alertas.md](alertas.md))',
    ),
  FLUXION_NOTIFY_MAX_AGE_MINUTES: minutes(90 * 24 * 60)
    .default(1440)
    .describe(
      'notify: events older than this when read are neither mailed nor sent to Sentry ' +
        '(a new group reads the topics from their beginning)',
    ),
};

/** The notifier's own notify settings (sinks/notifier.ts, sinks/notify-rules.ts). */
export interface SinkNotifySettings {
  phantomStoreThreshold: number;
  phantomWindowMs: number;
  /** Phantom-zero alerts mailed per store per store-local day. */
  phantomDailyBudget: number;
  maxAgeMs: number;
}

declare module '../core/config/environment.ts' {
  interface ComponentConfigs {
    sink: { maxBatch: number };
    abc: AbcConfig;
  }
  interface NotifySettings extends SinkNotifySettings {}
}

const MINUTE_MS = 60_000;

export const sinksSection = defineSection(SINKS_ENV, (e) => ({
  sink: { maxBatch: e.FLUXION_SINK_MAX_BATCH },
  abc: { windowDays: e.FLUXION_ABC_WINDOW_DAYS, debounceMs: e.FLUXION_ABC_DEBOUNCE_MS },
  notify: {
    phantomStoreThreshold: e.FLUXION_NOTIFY_PHANTOM_STORE_THRESHOLD,
    phantomWindowMs: e.FLUXION_NOTIFY_PHANTOM_WINDOW_MINUTES * MINUTE_MS,
    phantomDailyBudget: e.FLUXION_NOTIFY_PHANTOM_DAILY_BUDGET,
    maxAgeMs: e.FLUXION_NOTIFY_MAX_AGE_MINUTES * MINUTE_MS,
  } satisfies SinkNotifySettings,
}));
