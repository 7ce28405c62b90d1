/**
 * The stream processors' settings (docs/configuration.md is generated from these schemas):
 * the consumer group and batch, the state stores, the differ's quarantine, the dedupe's
 * retention and the phantom-zero detector. cli/config.ts composes this section with the others.
 *
 * The phantom rule names come from processors/phantom-rules.ts (PHANTOM_RULES), the one list.
 */
import { z } from 'zod';
import { defineSection } from '../core/config/compose.ts';
import { commaList, share } from '../core/config/env-var.ts';
import { PHANTOM_RULES, type PhantomConfig, type PhantomRule, type PhantomSource } from './phantom-rules.ts';

/** A non-negative quantity with up to 3 decimals, normalised to 3 decimals ('20' -> '20.000'). */
const quantity = () =>
  z
    .string()
    .regex(/^\d{1,15}(\.\d{1,3})?$/, 'must be a non-negative quantity with up to 3 decimals')
    .transform((s) => {
      const [int, frac = ''] = s.split('.');
      return `${BigInt(int!)}.${frac.padEnd(3, '0')}`;
    });

const isRule = (r: string): r is PhantomRule => (PHANTOM_RULES as readonly string[]).includes(r);

export const PROCESSORS_ENV = {
  FLUXION_SESSION_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(1_000)
    .max(300_000)
    .default(30_000)
    .describe("processors' consumer-group session: how long a dead instance holds its stores before another takes over"),
  FLUXION_PROCESSOR_MAX_BATCH: z.coerce
    .number()
    .int()
    .min(1)
    .max(100_000)
    .default(500)
    .describe('input records per processor transaction'),
  FLUXION_STATE_DIR: z
    .string()
    .trim()
    .min(1)
    .default('.cache/state')
    .describe(
      "processors' local state stores (one directory per processor, group and partition; [state-stores.md](state-stores.md)): " +
        'a cache of the state topics that makes a restart read only their tail. Safe to delete while the processor is stopped',
    ),
  FLUXION_QUARANTINE_MAX_ZEROED_SHARE: share()
    .default(0.3)
    .describe("differ: quarantine a snapshot when more than this share of the store's products with stock drop to 0 or vanish"),
  FLUXION_QUARANTINE_GROUP_MAX_ZEROED_SHARE: share()
    .default(0.9)
    .describe('differ: the same within one deposito, or one department of a deposito (a POS that read the whole group as 0)'),
  FLUXION_QUARANTINE_GROUP_MIN_PRODUCTS: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(20)
    .describe('differ: a deposito or department with fewer products with stock is not judged by the group share'),
  FLUXION_DEDUPE_RETENTION_DAYS: z.coerce
    .number()
    .gt(0, 'must be a number of days above 0')
    .max(3650)
    .default(7)
    .describe('dedupe: days a sales line is remembered after its last read (then tombstoned)'),
  FLUXION_PHANTOM_FLIP_FLOP_RECOVERY: share()
    .default(0.8)
    .describe('phantom FLIP_FLOP: share of the pre-zero quantity the stock must come back to'),
  FLUXION_PHANTOM_FLIP_FLOP_WINDOW: z.coerce
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(3)
    .describe("phantom FLIP_FLOP: the product's changes within which it must come back"),
  FLUXION_PHANTOM_DROP_THRESHOLD: quantity()
    .prefault('20')
    .describe(
      'phantom UNEXPLAINED_DROP: smallest quantity whose drop to 0 is judged (calibrated on bench/phantom: ' +
        '10 alerted real stockouts whose sales were not read yet)',
    ),
  FLUXION_PHANTOM_DROP_SALES_SHARE: share()
    .default(0.2)
    .describe('phantom UNEXPLAINED_DROP and FLIP_FLOP: sales below this share of the quantity do not explain it'),
  FLUXION_PHANTOM_DROP_RECENT_FALL_FACTOR: z.coerce
    .number()
    .min(0, 'must be a factor, 0 (off) or more')
    .max(1000)
    .default(2)
    .describe(
      "phantom UNEXPLAINED_DROP: the quantity must also exceed this many times the stock's fall between the last two positive snapshots " +
        '(0: off); a fast seller sells out before the ventas read that explains it',
    ),
  FLUXION_PHANTOM_SELLING_AT_ZERO_MIN_SALES: quantity()
    .prefault('1')
    .describe('phantom SELLING_AT_ZERO: units sold after the zero snapshot that open an alert'),
  FLUXION_PHANTOM_SELLING_AT_ZERO_MIN_MINUTES: z.coerce
    .number()
    .min(0, 'must be a number of minutes, 0 or more')
    .max(7 * 24 * 60)
    .default(0)
    .describe(
      'phantom SELLING_AT_ZERO: minutes after the zero snapshot the last of those sales must come (0: any time); ' +
        'a receipt between two snapshots explains sales before the next one',
    ),
  FLUXION_PHANTOM_SOURCES: z
    .string()
    .default('klk')
    .transform((s) => [...new Set(commaList(s).map((x) => x.toUpperCase()))])
    .refine(
      (list) => list.length > 0 && list.every((x) => x === 'KLK' || x === 'STELLAR'),
      'must be klk, stellar or both, comma-separated',
    )
    .transform((list) => list as PhantomSource[])
    .describe(
      'phantom: the POS whose stock is judged, comma-separated (klk, stellar). ' +
        'The rules weigh stock against sales lines, which only KLK stores have',
    ),
  FLUXION_PHANTOM_RULES: z
    .string()
    .default('SELLING_AT_ZERO,FLIP_FLOP,UNEXPLAINED_DROP')
    .transform((s) => (s.trim().toLowerCase() === 'none' ? [] : commaList(s).map((r) => r.toUpperCase())))
    .refine((list) => list.every(isRule), {
      error: (issue) => {
        const unknown = (issue.input as string[]).filter((r) => !isRule(r));
        return `must be rule names among ${PHANTOM_RULES.join(', ')} (or none); unknown: ${unknown.join(', ')}`;
      },
    })
    .transform((list) => [...new Set(list)] as PhantomRule[])
    .describe(`phantom: the rules that may open an alert, comma-separated (${PHANTOM_RULES.join(', ')}; \`none\` for none)`),
};

/** The variable that sets each PhantomConfig field, in the order problems are reported. */
const PHANTOM_FIELDS = {
  flipFlopRecovery: 'FLUXION_PHANTOM_FLIP_FLOP_RECOVERY',
  dropSalesShare: 'FLUXION_PHANTOM_DROP_SALES_SHARE',
  flipFlopWindowSnapshots: 'FLUXION_PHANTOM_FLIP_FLOP_WINDOW',
  dropThreshold: 'FLUXION_PHANTOM_DROP_THRESHOLD',
  dropRecentFallFactor: 'FLUXION_PHANTOM_DROP_RECENT_FALL_FACTOR',
  sellingAtZeroMinSales: 'FLUXION_PHANTOM_SELLING_AT_ZERO_MIN_SALES',
  sellingAtZeroMinMinutes: 'FLUXION_PHANTOM_SELLING_AT_ZERO_MIN_MINUTES',
  rules: 'FLUXION_PHANTOM_RULES',
  sources: 'FLUXION_PHANTOM_SOURCES',
} as const satisfies Record<keyof PhantomConfig, keyof typeof PROCESSORS_ENV>;

/** A field's value as its variable would be written (an empty rule list is `none`). */
const asVariable = (v: unknown): string => (Array.isArray(v) ? (v.length ? v.join(',') : 'none') : String(v));

/**
 * Problems of a PhantomConfig built in code (tests, the bench), judged by the same schemas as
 * the variables: a field is valid when its variable's schema parses it back to itself (so a
 * quantity must already have its 3 decimals). A configuration from loadConfig has none.
 */
export function phantomSettingsProblems(c: PhantomConfig): string[] {
  const problems: string[] = [];
  for (const [field, name] of Object.entries(PHANTOM_FIELDS) as [keyof PhantomConfig, keyof typeof PROCESSORS_ENV][]) {
    const value = c[field];
    const parsed = PROCESSORS_ENV[name].safeParse(asVariable(value));
    const shown = `phantom.${field}=${JSON.stringify(value)}`;
    if (!parsed.success) problems.push(`${shown}: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
    else if (asVariable(parsed.data) !== asVariable(value)) problems.push(`${shown}: must be written as ${JSON.stringify(parsed.data)}`);
  }
  return problems;
}

export interface ProcessorsConfig {
  sessionTimeoutMs: number;
  maxBatch: number;
  /** FLUXION_STATE_DIR: root of the processors' state stores (processors/runtime/state-store.ts). */
  stateDir: string;
  quarantineMaxZeroedShare: number;
  quarantineGroupMaxZeroedShare: number;
  quarantineGroupMinProducts: number;
  dedupeRetentionDays: number;
  phantom: PhantomConfig;
}

declare module '../core/config/environment.ts' {
  interface ComponentConfigs {
    processors: ProcessorsConfig;
  }
}

export const processorsSection = defineSection(PROCESSORS_ENV, (e): { processors: ProcessorsConfig } => ({
  processors: {
    sessionTimeoutMs: e.FLUXION_SESSION_TIMEOUT_MS,
    maxBatch: e.FLUXION_PROCESSOR_MAX_BATCH,
    stateDir: e.FLUXION_STATE_DIR,
    quarantineMaxZeroedShare: e.FLUXION_QUARANTINE_MAX_ZEROED_SHARE,
    quarantineGroupMaxZeroedShare: e.FLUXION_QUARANTINE_GROUP_MAX_ZEROED_SHARE,
    quarantineGroupMinProducts: e.FLUXION_QUARANTINE_GROUP_MIN_PRODUCTS,
    dedupeRetentionDays: e.FLUXION_DEDUPE_RETENTION_DAYS,
    phantom: {
      flipFlopRecovery: e.FLUXION_PHANTOM_FLIP_FLOP_RECOVERY,
      flipFlopWindowSnapshots: e.FLUXION_PHANTOM_FLIP_FLOP_WINDOW,
      dropThreshold: e.FLUXION_PHANTOM_DROP_THRESHOLD,
      dropSalesShare: e.FLUXION_PHANTOM_DROP_SALES_SHARE,
      dropRecentFallFactor: e.FLUXION_PHANTOM_DROP_RECENT_FALL_FACTOR,
      sellingAtZeroMinSales: e.FLUXION_PHANTOM_SELLING_AT_ZERO_MIN_SALES,
      sellingAtZeroMinMinutes: e.FLUXION_PHANTOM_SELLING_AT_ZERO_MIN_MINUTES,
      rules: e.FLUXION_PHANTOM_RULES,
      sources: e.FLUXION_PHANTOM_SOURCES,
    },
  },
}));
