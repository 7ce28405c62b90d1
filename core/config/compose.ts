/**
 * Composes configuration sections into one loader. Core declares its shared variables
 * (core/config/environment.ts) and each component its own (processors/, sinks/, ops/
 * config.ts); core imports no component, so the list of sections is handed in by the
 * composition root, cli/config.ts, which may import them all.
 *
 * Every variable is parsed once, by its own schema, and every problem is reported at once,
 * each naming the variable (secret values hidden). Sections then build their part of the
 * configuration object; parts that share a key (notify) are merged one level deep, keeping
 * the non-enumerable secrets non-enumerable.
 */
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { scrubSecrets } from '../logger.ts';
import { envVarsOf, type EnvShape, type EnvVarSpec } from './env-var.ts';

/** One owner's variables and how its part of the configuration is built from their values. */
export interface ConfigSection<S extends EnvShape = EnvShape, C extends object = object> {
  env: S;
  /** May throw ConfigError for settings that only mean something together. */
  build(values: z.output<z.ZodObject<S>>): C;
}

/** Typed by inference: `defineSection({ X: z.string() }, (e) => ({ x: e.X }))`. */
export function defineSection<S extends EnvShape, C extends object>(
  env: S,
  build: (values: z.output<z.ZodObject<S>>) => C,
): ConfigSection<S, C> {
  return { env, build };
}

/** Empty strings mean "not set", as a shell `export X=` would intend. */
function withoutEmpty(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ''));
}

/** Parses `env` against `shape`; throws one ConfigError naming every bad variable. */
export function parseEnv<S extends EnvShape>(shape: S, env: NodeJS.ProcessEnv): z.output<z.ZodObject<S>> {
  const parsed = z.object(shape).safeParse(withoutEmpty(env));
  if (parsed.success) return parsed.data;
  throw new ConfigError(
    parsed.error.issues.map((i) => {
      const name = String(i.path[0]);
      const shown = shape[name]?.meta()?.secret ? '(value hidden)' : scrubSecrets(JSON.stringify(env[name]));
      return `${name}=${shown}: ${i.message}`;
    }),
  );
}

const isPlain = (v: unknown): v is object => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Copies `part` into `into`, merging plain objects one level deep by property descriptor. */
function mergeInto(into: Record<string, unknown>, part: object): void {
  for (const [key, desc] of Object.entries(Object.getOwnPropertyDescriptors(part))) {
    const existing = into[key];
    if (isPlain(existing) && isPlain(desc.value)) {
      Object.defineProperties(existing, Object.getOwnPropertyDescriptors(desc.value));
    } else {
      if (key in into) throw new Error(`configuration key ${key} is built by two sections`);
      Object.defineProperty(into, key, desc);
    }
  }
}

export interface ComposedConfig<C> {
  /** Every variable of every section, in section order. */
  envVars: EnvVarSpec[];
  load(env?: NodeJS.ProcessEnv): C;
}

type Built<T> = T extends ConfigSection<EnvShape, infer C> ? C : never;
type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;

type Composed<T extends readonly ConfigSection[]> = UnionToIntersection<Built<T[number]>>;

/** One loader over the sections; a variable declared by two sections is a programming error. */
export function composeConfig<const T extends readonly ConfigSection[]>(sections: T): ComposedConfig<Composed<T>> {
  const shape: EnvShape = {};
  for (const s of sections) {
    for (const name of Object.keys(s.env)) if (name in shape) throw new Error(`environment variable ${name} is declared twice`);
    Object.assign(shape, s.env);
  }
  return {
    envVars: envVarsOf(shape),
    load(env = process.env) {
      const values = parseEnv(shape, env) as Record<string, unknown>;
      const config: Record<string, unknown> = {};
      const problems: string[] = [];
      for (const s of sections) {
        try {
          mergeInto(config, s.build(values));
        } catch (e) {
          if (!(e instanceof ConfigError)) throw e;
          problems.push(...e.problems);
        }
      }
      if (problems.length > 0) throw new ConfigError(problems);
      return config as Composed<T>;
    },
  };
}
