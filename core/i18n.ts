/**
 * The operators' language. What La Granja's operators read (alert mails, the dashboard) is
 * Spanish by default and English by setting (FLUXION_LOCALE=es|en); logs, code and metric
 * names stay English.
 *
 * Each component keeps its own catalogue beside the code that uses it (sinks/notify-messages.ts,
 * ops/dashboard/messages.ts, ops/job-failure-mail.ts): core knows no component's words. A
 * catalogue is one object per locale of the same type, so a message missing in one locale fails
 * the typecheck; `defineMessages` also refuses an empty string or a key one locale lacks at
 * run time (a catalogue built from plain objects, or `as` casts).
 *
 *   const messages = defineMessages({ en: { hello: (n: string) => `hello ${n}` }, es: { hello: (n) => `hola ${n}` } });
 *   messages('es').hello('Ana');
 */
import { FluxionError } from './errors.ts';

export const LOCALES = ['es', 'en'] as const;
export type Locale = (typeof LOCALES)[number];
export const DEFAULT_LOCALE: Locale = 'es';

/** A message: a fixed text, or a function of its parameters. */
export type Message = string | ((...args: never[]) => string);
export type Catalogue = Record<string, Message>;

export function isLocale(value: unknown): value is Locale {
  return typeof value === 'string' && (LOCALES as readonly string[]).includes(value);
}

export class CatalogueError extends FluxionError {
  constructor(message: string) {
    super(message, { code: 'I18N_CATALOGUE' });
  }
}

/**
 * Checks a catalogue once (every locale has exactly the English keys, no empty text) and
 * returns the lookup of a locale's messages. English is the reference: code is written in it.
 */
export function defineMessages<T extends Catalogue>(
  catalogues: { en: T } & { [L in Exclude<Locale, 'en'>]: NoInfer<T> },
): (locale: Locale) => T {
  const all: Record<Locale, T> = catalogues;
  const keys = Object.keys(catalogues.en).sort();
  for (const locale of LOCALES) {
    const c = all[locale];
    const have = Object.keys(c).sort();
    const missing = keys.filter((k) => !have.includes(k));
    const extra = have.filter((k) => !keys.includes(k));
    const problems = [
      ...(missing.length ? [`missing ${missing.join(', ')}`] : []),
      ...(extra.length ? [`unknown ${extra.join(', ')}`] : []),
    ];
    if (problems.length) throw new CatalogueError(`catalogue ${locale}: ${problems.join('; ')}`);
    for (const k of keys) {
      const m = c[k];
      if (typeof m === 'string' ? m.trim() === '' : typeof m !== 'function')
        throw new CatalogueError(`catalogue ${locale}: message ${k} is empty`);
    }
  }
  return (locale) => all[locale];
}
