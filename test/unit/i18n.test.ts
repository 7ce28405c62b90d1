/**
 * The operators' language (core/i18n.ts): FLUXION_LOCALE read and checked at the edge, and
 * catalogues that cannot lack a translation (the typecheck refuses a missing key; this checks
 * what a cast could slip past, and that the shipped catalogues really translate).
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../cli/config.ts';
import { CatalogueError, DEFAULT_LOCALE, defineMessages, LOCALES, type Catalogue } from '../../core/i18n.ts';
import { alertasMessages } from '../../cli/alertas-messages.ts';
import { dashboardMessages } from '../../ops/dashboard/messages.ts';
import { jobMailMessages } from '../../ops/job-failure-mail.ts';
import { notifyMessages } from '../../sinks/notify-messages.ts';
import { problemsOf } from '../helpers/config-errors.ts';

describe('FLUXION_LOCALE', () => {
  it('is Spanish by default, English by setting, and refuses anything else naming the variable', () => {
    expect(DEFAULT_LOCALE).toBe('es');
    expect(loadConfig({}).locale).toBe('es');
    expect(loadConfig({ FLUXION_LOCALE: 'en' }).locale).toBe('en');
    expect(loadConfig({ FLUXION_LOCALE: ' EN ' }).locale).toBe('en');
    expect(problemsOf(() => loadConfig({ FLUXION_LOCALE: 'fr' }))).toEqual(['FLUXION_LOCALE="fr": must be es (Spanish) or en (English)']);
  });
});

describe('catalogues', () => {
  it('refuse a locale that lacks a key, has an unknown one, or an empty text', () => {
    const en = { a: 'a', b: (n: number) => `b${n}` };
    expect(() => defineMessages({ en, es: { a: 'x' } as unknown as typeof en })).toThrow(CatalogueError);
    expect(() => defineMessages({ en, es: { ...en, c: 'c' } as typeof en })).toThrow(/catalogue es: unknown c/);
    expect(() => defineMessages({ en, es: { ...en, a: ' ' } })).toThrow(/message a is empty/);
    expect(defineMessages({ en, es: { a: 'á', b: (n) => `be${n}` } })('es').b(2)).toBe('be2');
  });

  it('every shipped catalogue has both locales, and Spanish differs from English in most of its texts', () => {
    const all: Array<[string, (l: 'es' | 'en') => Catalogue]> = [
      ['dashboard', dashboardMessages as unknown as (l: 'es' | 'en') => Catalogue],
      ['notify', notifyMessages as unknown as (l: 'es' | 'en') => Catalogue],
      ['job mail', jobMailMessages as unknown as (l: 'es' | 'en') => Catalogue],
      ['alertas CLI', alertasMessages as unknown as (l: 'es' | 'en') => Catalogue],
    ];
    for (const [name, messages] of all) {
      const [es, en] = LOCALES.map((l) => messages(l));
      const render = (m: Catalogue[string]) => (typeof m === 'function' ? (m as (...a: unknown[]) => string)('X', 1, 2, 3, 4) : m);
      const keys = Object.keys(en!);
      const same = keys.filter((k) => render(es![k]!) === render(en![k]!));
      // A few are the same word in both (POS, error, snapshot): never most of them.
      expect(same.length, `${name}: untranslated ${same.join(', ')}`).toBeLessThan(keys.length / 10);
    }
  });
});
