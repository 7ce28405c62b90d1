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
    // A private CA (PEM) that signed the server's certificate, by the NAME of the variable
    // holding the file's path (the file sits outside the repo, mounted where it is deployed).
    ca_file_env: envVarName.optional(),
    // Legacy servers with self-signed certificates: TLS without verifying the server. Never
    // the default; an entry says so explicitly.
    trust_server_certificate: z.boolean().default(false),
    connect_timeout_ms: z.number().int().positive().default(15_000),
    request_timeout_ms: z.number().int().positive().default(300_000),
  })
  .strict()
  .superRefine((s, ctx) => {
    const tls = s.encrypt.local || s.encrypt.production;
    if (s.ca_file_env && s.trust_server_certificate) {
      ctx.addIssue({
        code: 'custom',
        path: ['trust_server_certificate'],
        message: 'true together with ca_file_env: verify against the CA, or trust any certificate, not both',
      });
    }
    if (!tls && s.ca_file_env)
      ctx.addIssue({
        code: 'custom',
        path: ['ca_file_env'],
        message: 'given but encrypt is false in both environments (no TLS to verify)',
      });
    if (!tls && s.trust_server_certificate)
      ctx.addIssue({
        code: 'custom',
        path: ['trust_server_certificate'],
        message: 'true but encrypt is false in both environments (no TLS)',
      });
  });

/**
 * Fields whose checked-in values are stand-ins for La Granja's real ones (names, deposito
 * codes, the production address): `fluxion doctor` fails in production while an active
 * store still lists any.
 */
export const PLACEHOLDER_FIELDS = ['nombre', 'depositos', 'host'] as const;
export type PlaceholderField = (typeof PLACEHOLDER_FIELDS)[number];

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
    placeholder: z
      .array(z.enum(PLACEHOLDER_FIELDS, { error: `must list only ${PLACEHOLDER_FIELDS.join(', ')} (host: the production address)` }))
      .refine((l) => new Set(l).size === l.length, 'lists a field twice')
      .default([]),
  })
  .strict()
  .superRefine((u, ctx) => {
    if (u.pos === 'klk' && !u.klk) ctx.addIssue({ code: 'custom', path: ['klk'], message: 'required when pos is klk' });
    if (u.pos === 'stellar' && !u.stellar) ctx.addIssue({ code: 'custom', path: ['stellar'], message: 'required when pos is stellar' });
    if (u.pos === 'klk' && u.stellar) ctx.addIssue({ code: 'custom', path: ['stellar'], message: 'given but pos is klk' });
    if (u.pos === 'stellar' && u.klk) ctx.addIssue({ code: 'custom', path: ['klk'], message: 'given but pos is stellar' });
  });

/** Every field an entry may hold, by block (the store list's header documents each). */
export const STORE_LIST_FIELDS = {
  ubicacion: Object.keys(ubicacionSchema.shape),
  klk: Object.keys(klkSchema.shape),
  stellar: Object.keys(stellarSchema.shape),
};

const fileSchema = z.object({ ubicaciones: z.array(z.unknown()).min(1, 'lists no ubicacion') }).strict();

export type UbicacionConfig = z.output<typeof ubicacionSchema>;

/** A store with the addresses of the chosen environment picked out. */
/** Absent fields (placeholder, trustServerCertificate) mean none / false, as the file's defaults. */
export type Ubicacion =
  | (Omit<UbicacionConfig, 'klk' | 'stellar' | 'placeholder'> & {
      placeholder?: PlaceholderField[];
      pos: 'klk';
      klk: { baseUrl: string; apiKeyEnv: string; pageSize: number; timeoutMs: number };
    })
  | (Omit<UbicacionConfig, 'klk' | 'stellar' | 'placeholder'> & {
      placeholder?: PlaceholderField[];
      pos: 'stellar';
      stellar: {
        host: string;
        port: number;
        database: string;
        userEnv: string;
        passwordEnv: string;
        encrypt: boolean;
        caFileEnv?: string;
        trustServerCertificate?: boolean;
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
    throw new ConfigError([`cannot read the store list ${path}: ${(cause as Error).message} (set FLUXION_UBICACIONES_FILE to its path)`], {
      cause,
    });
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
        caFileEnv: stellar.ca_file_env,
        trustServerCertificate: stellar.trust_server_certificate,
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

/** How a Stellar connection does TLS, as tedious takes it (mssql `options`). */
export interface StellarTls {
  encrypt: boolean;
  trustServerCertificate: boolean;
  /** PEM of the store's CA file, when its entry names one. */
  ca?: string;
  caFile?: string;
}

/**
 * A Stellar store's TLS settings, with its CA file read: a variable that is unset, or that
 * names a file that cannot be read or holds no certificate, is a ConfigError naming the
 * store and the variable (that store fails; the others run).
 */
export function readStellarTls(u: Ubicacion & { pos: 'stellar' }, env: NodeJS.ProcessEnv): StellarTls {
  const { encrypt, caFileEnv, trustServerCertificate } = u.stellar;
  const tls: StellarTls = { encrypt, trustServerCertificate: trustServerCertificate ?? false };
  if (!encrypt || !caFileEnv) return tls;
  const file = readSecret(env, caFileEnv, `path of the CA file of ${u.id}`);
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new ConfigError(
      [`ubicacion ${u.id}: ${caFileEnv}=${JSON.stringify(file)}: the CA file cannot be read: ${(cause as Error).message}`],
      { cause },
    );
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError([
      `ubicacion ${u.id}: ${caFileEnv}=${JSON.stringify(file)}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    ]);
  }
  return { ...tls, ca: pem, caFile: file };
}
