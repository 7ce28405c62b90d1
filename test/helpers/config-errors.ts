/** The problems of the ConfigError `fn` throws (fails the test if it throws anything else). */
import { expect } from 'vitest';
import { ConfigError } from '../../core/errors.ts';

export function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}
