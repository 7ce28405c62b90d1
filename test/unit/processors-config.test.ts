/**
 * processors/config.ts: the phantom settings are judged by one set of schemas, whether they
 * come from the environment or are built in code (phantomSettingsProblems).
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../cli/config.ts';
import { phantomSettingsProblems } from '../../processors/config.ts';
import {
  DEFAULT_PHANTOM_CONFIG,
  PHANTOM_RULES,
  type PhantomConfig,
  type PhantomRule,
  type PhantomSource,
} from '../../processors/phantom-rules.ts';
import { problemsOf } from '../helpers/config-errors.ts';

const fieldsOf = (problems: string[]) => problems.map((p) => /^phantom\.(\w+)/.exec(p)![1]).sort();

describe('phantom settings from processors/config.ts', () => {
  it('the defaults and any loaded configuration have no problem', () => {
    expect(phantomSettingsProblems(DEFAULT_PHANTOM_CONFIG)).toEqual([]);
    expect(phantomSettingsProblems(loadConfig({}).processors.phantom)).toEqual([]);
    const env = { FLUXION_PHANTOM_DROP_THRESHOLD: '7.5', FLUXION_PHANTOM_RULES: 'none', FLUXION_PHANTOM_SOURCES: 'stellar,klk' };
    const tuned = loadConfig(env).processors.phantom;
    expect(tuned).toMatchObject({ dropThreshold: '7.500', rules: [], sources: ['STELLAR', 'KLK'] });
    expect(phantomSettingsProblems(tuned)).toEqual([]);
  });

  it('names every bad field in code-built settings, in field order, with the variable schema message', () => {
    const bad: PhantomConfig = {
      flipFlopRecovery: 1.5,
      flipFlopWindowSnapshots: 0,
      dropThreshold: '10',
      dropSalesShare: 0,
      dropRecentFallFactor: 0,
      sellingAtZeroMinSales: '-1.000',
      sellingAtZeroMinMinutes: -5,
      rules: ['SELLING_AT_ZERO', 'GHOST' as PhantomRule],
      sources: ['KLK', 'SAP' as PhantomSource],
    };
    const problems = phantomSettingsProblems(bad);
    expect(problems).toHaveLength(8);
    const inOrder = [/flipFlopRecovery.*1\.5/, /dropSalesShare/, /flipFlopWindowSnapshots/, /dropThreshold/, /sellingAtZeroMinSales/];
    inOrder.push(/sellingAtZeroMinMinutes.*-5/, /rules.*GHOST/, /sources.*SAP/);
    for (const [i, pattern] of inOrder.entries()) expect(problems[i]).toMatch(pattern);
    expect(problems[0]).toBe('phantom.flipFlopRecovery=1.5: must be a share up to 1');
    expect(problems[3]).toBe('phantom.dropThreshold="10": must be written as "10.000"');
    // dropRecentFallFactor 0 is valid (0 turns that check off): every other field is named.
    expect(fieldsOf(problems)).toEqual(
      Object.keys(bad)
        .filter((k) => k !== 'dropRecentFallFactor')
        .sort(),
    );
  });

  it('names exactly the one bad field of single bad values, and accepts the good ones', () => {
    const bad: Partial<PhantomConfig>[] = [
      { dropSalesShare: 1.01 },
      { flipFlopWindowSnapshots: 2.5 },
      { dropRecentFallFactor: -1 },
      { sellingAtZeroMinMinutes: Number.NaN },
      { sellingAtZeroMinSales: '1.5' },
      { rules: ['NOPE' as PhantomRule] },
      { sources: ['POS' as PhantomSource] },
    ];
    for (const c of bad) {
      expect(fieldsOf(phantomSettingsProblems({ ...DEFAULT_PHANTOM_CONFIG, ...c })), JSON.stringify(c)).toEqual(Object.keys(c));
    }
    for (const c of [{ rules: [] }, { rules: PHANTOM_RULES }] as Partial<PhantomConfig>[]) {
      expect(phantomSettingsProblems({ ...DEFAULT_PHANTOM_CONFIG, ...c }), JSON.stringify(c)).toEqual([]);
    }
  });

  it('takes the rule names from processors/phantom-rules.ts: an unknown one is named with the known ones', () => {
    const message = problemsOf(() => loadConfig({ FLUXION_PHANTOM_RULES: 'FLIP_FLOP,GHOST' }))[0]!;
    for (const rule of PHANTOM_RULES) expect(message).toContain(rule);
    expect(message).toMatch(/unknown: GHOST$/);
  });
});
