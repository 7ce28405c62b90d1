/**
 * An environment variable is declared once: its zod schema parses it, carries its default
 * (`.default()`, or `.prefault()` when the default is written as an operator types it), says
 * what it means (`.describe()`) and, through `secret()`, whether its value may ever be shown.
 * ENV_VARS, docs/configuration.md (`npm run docs:config`) and the error messages of
 * core/config/compose.ts are read from these schemas.
 */
import { z } from 'zod';

declare module 'zod' {
  interface GlobalMeta {
    /** The value is a secret: shown as "(value hidden)" in errors, marked in the docs. */
    secret?: boolean;
    /** What an unset variable means when the schema has no default value ("the OS user"). */
    unset?: string;
  }
}

export interface EnvVarSpec {
  name: string;
  description: string;
  /** The value an unset variable takes, as an operator would write it ('' for the empty string). */
  default?: string;
  /** What an unset variable means when that is no value (`the OS user`). */
  unset?: string;
  secret?: boolean;
}

/** Variable name -> its schema. A component's shape goes in its config.ts (cli/config.ts composes them). */
export type EnvShape = Record<string, z.ZodType>;

/** Marks the variable's value as a secret. */
export function secret<T extends z.ZodType>(schema: T): T {
  return schema.meta({ secret: true });
}

/** For the docs: what leaving the variable unset means, when that is not a value (`the system CAs`). */
export function whenUnset<T extends z.ZodType>(schema: T, meaning: string): T {
  return schema.meta({ unset: meaning });
}

/** The default as an operator would write it, found through the wrappers zod puts around it. */
export function defaultOf(schema: z.ZodType): string | undefined {
  const def = schema.def as { type: string; defaultValue?: unknown; in?: z.ZodType; innerType?: z.ZodType };
  if (def.type === 'default' || def.type === 'prefault') {
    const value = def.defaultValue;
    return Array.isArray(value) ? value.join(',') : String(value);
  }
  if (def.type === 'pipe' && def.in) return defaultOf(def.in);
  if ((def.type === 'optional' || def.type === 'nullable') && def.innerType) return defaultOf(def.innerType);
  return undefined;
}

/** The variables of a shape, in its order, as the docs and the error messages need them. */
export function envVarsOf(shape: EnvShape): EnvVarSpec[] {
  return Object.entries(shape).map(([name, schema]) => {
    const meta = schema.meta() ?? {};
    if (!meta.description) throw new Error(`environment variable ${name} has no .describe(): every variable says what it means`);
    const value = defaultOf(schema);
    return {
      name,
      description: meta.description,
      ...(value === undefined ? {} : { default: value }),
      ...(meta.unset === undefined ? {} : { unset: meta.unset }),
      ...(meta.secret ? { secret: true } : {}),
    };
  });
}

// ---- parsers several shapes use ----------------------------------------------------------------

/** A share in (0, 1]. */
export const share = () => z.coerce.number().gt(0, 'must be a share above 0').lte(1, 'must be a share up to 1');

/** true or false (any case), as a shell or a compose file writes it. */
export const flag = () =>
  z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.enum(['true', 'false'], { error: 'must be true or false' }))
    .transform((s) => s === 'true');

export const minutes = (max: number) => z.coerce.number().gt(0, 'must be a number of minutes above 0').max(max);

/** A bare e-mail address; the checks that matter (does it exist, is the sender verified) are SendGrid's. */
export const EMAIL = /^[^\s@<>,;"]+@[^\s@<>,;"]+$/;

/** A comma-separated list, trimmed, empty items dropped. */
export const commaList = (s: string): string[] =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
