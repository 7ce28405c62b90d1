/**
 * The pure parts of the ABC recalculation: the debounced trigger (driven by an injected
 * clock), option checks, and the CLI's argument parsing. The SQL is tested against
 * PostgreSQL in test/integration/abc.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAsOf, parseWindowDays } from '../../cli/abc.ts';
import { ConfigError, UsageError } from '../../core/errors.ts';
import { ABC_DEFAULTS, abcConfigSchema, createAbcDebouncer, validateAbcOptions, type AbcTrigger } from '../../sinks/abc-recalc.ts';

function clock(start = Date.UTC(2026, 1, 28, 12)) {
  let t = start;
  return { now: () => new Date(t), advance: (ms: number) => void (t += ms), at: (ms: number) => new Date(start + ms) };
}

const MIN = 60_000;

describe('createAbcDebouncer', () => {
  it('runs the first request at once, collapses requests within the interval into one run at its end', () => {
    const c = clock();
    const d = createAbcDebouncer({ intervalMs: 5 * MIN, now: c.now });
    expect(d.poll()).toEqual({ action: 'idle' });
    expect(d.request()).toEqual({ action: 'run' });
    // New ventas while the run is going: nothing may start beside it.
    expect(d.request()).toEqual({ action: 'busy' });
    c.advance(20_000);
    // The run ends 20 s in; ventas landed meanwhile: the next run waits for the interval.
    expect(d.done({ ok: true })).toEqual({ action: 'wait', at: c.at(5 * MIN) });
    c.advance(MIN);
    expect(d.request()).toEqual({ action: 'wait', at: c.at(5 * MIN) });
    c.advance(4 * MIN - 20_001);
    expect(d.poll()).toEqual({ action: 'wait', at: c.at(5 * MIN) });
    c.advance(1);
    expect(d.poll()).toEqual({ action: 'run' });
    expect(d.done({ ok: true })).toEqual({ action: 'idle' });
    // Quiet afterwards: nothing more is run.
    c.advance(60 * MIN);
    expect(d.poll()).toEqual({ action: 'idle' });
    // The first request after a quiet period runs at once again.
    expect(d.request()).toEqual({ action: 'run' });
  });

  it('asks for a failed run again, after the interval', () => {
    const c = clock();
    const d = createAbcDebouncer({ intervalMs: 5 * MIN, now: c.now });
    expect(d.request()).toEqual({ action: 'run' });
    c.advance(1_000);
    expect(d.done({ ok: false })).toEqual({ action: 'wait', at: c.at(5 * MIN) });
    c.advance(5 * MIN);
    expect(d.poll()).toEqual({ action: 'run' });
  });

  it('defaults to 5 minutes and refuses a negative interval', () => {
    const c = clock();
    const d = createAbcDebouncer({ now: c.now });
    expect(d.request()).toEqual({ action: 'run' });
    d.done({ ok: true });
    expect(d.request()).toEqual({ action: 'wait', at: c.at(ABC_DEFAULTS.debounceMs) });
    expect(() => createAbcDebouncer({ intervalMs: -1 })).toThrow(ConfigError);
    expect(() => d.done({ ok: true })).toThrow(/without a run in progress/);
  });

  it('never starts two runs within the interval nor two at once, and leaves no request unserved (property)', () => {
    type Step = { kind: 'request' | 'poll' | 'finish'; advanceMs: number; ok: boolean };
    const step = fc.record({
      kind: fc.constantFrom<'request' | 'poll' | 'finish'>('request', 'poll', 'finish'),
      advanceMs: fc.integer({ min: 0, max: 3 * MIN }),
      ok: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), fc.integer({ min: 0, max: 10 * MIN }), (steps: Step[], intervalMs) => {
        const c = clock();
        const d = createAbcDebouncer({ intervalMs, now: c.now });
        const starts: number[] = [];
        let running = false;
        let lastRequest = -1;
        const take = (answer: AbcTrigger) => {
          if (answer.action === 'run') {
            expect(running).toBe(false);
            running = true;
            starts.push(c.now().getTime());
          }
          if (answer.action === 'wait') expect(answer.at.getTime()).toBeGreaterThan(c.now().getTime());
          if (answer.action === 'busy') expect(running).toBe(true);
        };
        for (const s of steps) {
          c.advance(s.advanceMs);
          if (s.kind === 'request') {
            lastRequest = c.now().getTime();
            take(d.request());
          } else if (s.kind === 'poll') take(d.poll());
          else if (running) {
            running = false;
            take(d.done({ ok: s.ok }));
          }
        }
        for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBeGreaterThanOrEqual(intervalMs);
        // Finish the run in progress and follow the answers: a request is never left waiting forever.
        if (running) {
          running = false;
          const next = d.done({ ok: true });
          if (next.action === 'run') {
            starts.push(c.now().getTime());
            d.done({ ok: true });
          }
        }
        for (let guard = 0; guard < 10; guard++) {
          const a = d.poll();
          if (a.action === 'idle') break;
          if (a.action === 'wait') c.advance(a.at.getTime() - c.now().getTime());
          if (a.action === 'run') {
            starts.push(c.now().getTime());
            d.done({ ok: true });
          }
        }
        expect(d.poll()).toEqual({ action: 'idle' });
        if (lastRequest >= 0) expect(starts.some((t) => t >= lastRequest)).toBe(true);
      }),
    );
  });
});

describe('ABC options', () => {
  it('checks the window before any I/O', () => {
    expect(validateAbcOptions({}).windowDays).toBe(90);
    expect(() => validateAbcOptions({ windowDays: 0 })).toThrow(/ABC windowDays=0: must be a whole number of days from 1 to 3660/);
    expect(() => validateAbcOptions({ windowDays: 1.5 })).toThrow(ConfigError);
    expect(() => validateAbcOptions({ asOf: new Date('nonsense') })).toThrow(/ABC asOf=Invalid Date/);
  });

  it('declares its configuration with defaults', () => {
    expect(abcConfigSchema.parse({})).toEqual({ windowDays: 90, debounceMs: 300_000 });
    expect(abcConfigSchema.safeParse({ windowDays: 0 }).success).toBe(false);
  });
});

describe('fluxion abc recalc arguments', () => {
  it('reads --as-of as a business date in America/Caracas or as an instant with its offset', () => {
    expect(parseAsOf('2026-02-28').toISOString()).toBe('2026-02-28T16:00:00.000Z');
    expect(parseAsOf('2026-03-01T02:30:00Z').toISOString()).toBe('2026-03-01T02:30:00.000Z');
    expect(parseAsOf('2026-02-28T22:30:00-04:00').toISOString()).toBe('2026-03-01T02:30:00.000Z');
    expect(parseAsOf('2026-02-28T22:30-0400').toISOString()).toBe('2026-03-01T02:30:00.000Z');
  });

  it('refuses dates that do not exist, instants without an offset, and anything else', () => {
    for (const bad of [
      '2026-02-30',
      '2026-02-30T10:00:00Z',
      '2026-13-01',
      '2026-02-28T10:00:00',
      '2026-02-28T24:00:00Z',
      'yesterday',
      '',
      '28/02/2026',
    ]) {
      expect(() => parseAsOf(bad), bad).toThrow(UsageError);
    }
    expect(() => parseAsOf('2026-02-30')).toThrow(
      '--as-of must be a date YYYY-MM-DD (a business day in America/Caracas) or an instant with its offset, e.g. ' +
        '2026-03-01T04:00:00-04:00 or 2026-03-01T08:00:00Z; got "2026-02-30"',
    );
  });

  it('reads --window-days as a whole number of days from 1 to 3660', () => {
    expect(parseWindowDays('90')).toBe(90);
    expect(parseWindowDays('3660')).toBe(3660);
    for (const bad of ['0', '-5', '3661', '1.5', '1e2', 'ninety', '']) {
      expect(() => parseWindowDays(bad), bad).toThrow(/--window-days must be a whole number of days from 1 to 3660/);
    }
  });
});
