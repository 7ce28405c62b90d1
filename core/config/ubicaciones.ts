/**
 * The store list (`ubicaciones`): a checked-in YAML file, validated at load so that a typo
 * stops the command with a message naming the store and the field, before any I/O.
 * Secrets are never in the file: only the names of the environment variables holding them.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';

export type EtlEnvironment = 'local' | 'production';

const envVarName = z
  .string()
  .regex(/^[A-Z][A-Z0-9_]*$/, 'must be the NAME of an environment variable (A-Z, 0-9, _), never the secret itself');

/** An address that differs between the developers' simulators and the stores' VPN. */
const byEnvironment = <T extends z.ZodType>(inner: T) => z.object({ local: inner, production: inner }).strict();

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });

const klkSchema = z
  .object({
    base_url: byEnvironment(httpUrl),
    api_key_env: envVarName,
    page_size: z.number().int().min(1).max(5000).default(1000),
    timeout_ms: z.number().int().positive().default(30_000),
  })
  .strict();

const stellarSchema = z
  .object({
    host: byEnvironment(z.string().min(1)),
    port: byEnvironment(z.number().int().min(1).max(65535)),
    database: z.string().min(1).default('VAD10'),
    user_env: envVarName,
    password_env: envVarName,
    // Production reaches SQL Server over the VPN with TLS verified against the CA; the
    // local simulator speaks no TLS (and tedious refuses plaintext when encrypt is true).
    encrypt: byEnvironment(z.boolean()).default({ local: false, production: true }),
    connect_timeout_ms: z.number().int().positive().default(15_000),
    request_timeout_ms: z.number().int().positive().default(300_000),
  })
  .strict();

const ubicacionSchema = z
  .object({
    id: z.string().regex(/^[a-z][a-z0-9_]*$/, 'must be lower-case letters, digits and _ (it is a Kafka key and a SQL value)'),
    nombre: z.string().min(1),
    tipo: z.enum(['tienda', 'cedi']),
    activa: z.boolean(),
    pos: z.enum(['klk', 'stellar']),
    depositos: z.array(z.string().min(1)).min(1, 'needs at least one deposito'),
    klk: klkSchema.optional(),
    stellar: stellarSchema.optional(),
  })
  .strict()
  .superRefine((u, ctx) => {
    if (u.pos === 'klk' && !u.klk) ctx.addIssue({ code: 'custom', path: ['klk'], message: 'required when pos is klk' });
    if (u.pos === 'stellar' && !u.stellar) ctx.addIssue({ code: 'custom', path: ['stellar'], message: 'required when pos is stellar' });
    if (u.pos === 'klk' && u.stellar) ctx.addIssue({ code: 'custom', path: ['stellar'], message: 'given but pos is klk' });
    if (u.pos === 'stellar' && u.klk) ctx.addIssue({ code: 'custom', path: ['klk'], message: 'given but pos is stellar' });
  });

const fileSchema = z.object({ ubicaciones: z.array(z.unknown()).min(1, 'lists no ubicacion') }).strict();

export type UbicacionConfig = z.output<typeof ubicacionSchema>;

/** A store with the addresses of the chosen environment picked out. */
export type Ubicacion =
  | (Omit<UbicacionConfig, 'klk' | 'stellar'> & {
      pos: 'klk';
      klk: { baseUrl: string; apiKeyEnv: string; pageSize: number; timeoutMs: number };
    })
  | (Omit<UbicacionConfig, 'klk' | 'stellar'> & {
      pos: 'stellar';
      stellar: {
        host: string;
        port: number;
        database: string;
        userEnv: string;
        passwordEnv: string;
        encrypt: boolean;
        connectTimeoutMs: number;
        requestTimeoutMs: number;
      };
    });

function describePath(path: PropertyKey[]): string {
  return path.map((p) => String(p)).join('.') || '(root)';
}

/** Validates the parsed YAML document; every problem is reported, each naming store and field. */
export function parseUbicaciones(doc: unknown, source: string): UbicacionConfig[] {
  const top = fileSchema.safeParse(doc);
  if (!top.success) {
    throw new ConfigError(top.error.issues.map((i) => `${source}: ${describePath(i.path)}: ${i.message}`));
  }
  const problems: string[] = [];
  const result: UbicacionConfig[] = [];
  const seen = new Map<string, number>();
  top.data.ubicaciones.forEach((raw, index) => {
    const id = typeof raw === 'object' && raw !== null && 'id' in raw ? String((raw as { id: unknown }).id) : '?';
    const parsed = ubicacionSchema.safeParse(raw);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        problems.push(`${source}: ubicacion ${id} (entry ${index + 1}): field ${describePath(issue.path)}: ${issue.message}`);
      }
      return;
    }
    const previous = seen.get(parsed.data.id);
    if (previous !== undefined) {
      problems.push(`${source}: ubicacion ${parsed.data.id} (entry ${index + 1}): field id: duplicates entry ${previous + 1}`);
      return;
    }
    seen.set(parsed.data.id, index);
    result.push(parsed.data);
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return result;
}

export function loadUbicacionesFile(path: string): UbicacionConfig[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new ConfigError([`cannot read the store list ${path}: ${(cause as Error).message} (set FLUXION_UBICACIONES_FILE to its path)`], { cause });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (cause) {
    throw new ConfigError([`${path} is not valid YAML: ${(cause as Error).message}`], { cause });
  }
  return parseUbicaciones(doc, path);
}

/** Picks each store's local (simulator) or production (VPN) address. */
export function resolveUbicacion(u: UbicacionConfig, environment: EtlEnvironment): Ubicacion {
  const { klk, stellar, ...rest } = u;
  if (u.pos === 'klk' && klk) {
    return {
      ...rest,
      pos: 'klk',
      klk: { baseUrl: klk.base_url[environment], apiKeyEnv: klk.api_key_env, pageSize: klk.page_size, timeoutMs: klk.timeout_ms },
    };
  }
  if (u.pos === 'stellar' && stellar) {
    return {
      ...rest,
      pos: 'stellar',
      stellar: {
        host: stellar.host[environment],
        port: stellar.port[environment],
        database: stellar.database,
        userEnv: stellar.user_env,
        passwordEnv: stellar.password_env,
        encrypt: stellar.encrypt[environment],
        connectTimeoutMs: stellar.connect_timeout_ms,
        requestTimeoutMs: stellar.request_timeout_ms,
      },
    };
  }
  // parseUbicaciones guarantees the block matching `pos` exists.
  throw new ConfigError([`ubicacion ${u.id}: field ${u.pos}: missing`]);
}

/**
 * Picks the stores a command should work on: `todas` = every active store; named ids must
 * exist (an inactive one named explicitly is an error too, so a typo never runs nothing).
 */
export function selectUbicaciones(all: Ubicacion[], selection: 'todas' | string[]): Ubicacion[] {
  if (selection === 'todas') return all.filter((u) => u.activa);
  const byId = new Map(all.map((u) => [u.id, u]));
  const problems: string[] = [];
  const picked: Ubicacion[] = [];
  for (const id of selection) {
    const u = byId.get(id);
    if (!u) problems.push(`unknown ubicacion "${id}" (known: ${[...byId.keys()].join(', ')})`);
    else if (!u.activa) problems.push(`ubicacion ${id} is inactive (activa: false in the store list)`);
    else picked.push(u);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return picked;
}

/** Reads a secret by the environment variable name the store list gives. */
export function readSecret(env: NodeJS.ProcessEnv, name: string, what: string): string {
  const value = env[name];
  if (value === undefined || value === '') {
    throw new ConfigError([`environment variable ${name} (${what}) is not set`]);
  }
  return value;
}
