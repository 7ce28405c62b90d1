/**
 * The schema registry client over the Confluent REST API: subjects named by TopicNameStrategy
 * (`<topic>-value`), schemas registered, checked and looked up by id. Records are encoded and
 * decoded by core/avro/topic-codec.ts, the one codec, with Fluxion's Avro logical types.
 */
import { FluxionError, SchemaError, ServiceUnavailableError, type FluxionErrorOptions } from './errors.ts';
import type { AvroSchema } from './avro/schemas.ts';

/** A registry reply body: JSON the registry defines, read field by field with a check before each use. */
type RegistryJson = { [field: string]: unknown } | null;

export interface RegistryOptions {
  url: string;
  /** HTTP basic auth (SCHEMA_REGISTRY_USERNAME / SCHEMA_REGISTRY_PASSWORD). */
  username?: string;
  password?: string;
  /** Per request (default 15 s). */
  timeoutMs?: number;
}

/** The registry refused our credentials (HTTP 401/403): retrying will not help. */
export class RegistryAuthError extends FluxionError {
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'REGISTRY_AUTH', retriable: false, service: 'registry', ...options });
  }
}

export interface FluxionRegistry {
  readonly url: string;
  /** Every subject the registry holds (a cheap authenticated request: `fluxion doctor`). */
  listSubjects(): Promise<string[]>;
  /** Registers `schema` under `subject` (idempotent: the same schema gets the same id). */
  register(subject: string, schema: AvroSchema): Promise<number>;
  /** Registry's verdict on `schema` against the subject's latest version; compatible when the subject is new. */
  checkCompatibility(subject: string, schema: AvroSchema): Promise<{ compatible: boolean; messages: string[] }>;
  setCompatibility(subject: string, level: 'BACKWARD' | 'FULL' | 'NONE'): Promise<void>;
  /** Id of `schema` as registered under `subject`; a clear error when it is not registered. */
  lookupId(subject: string, schema: AvroSchema): Promise<number>;
  latestSchema(subject: string): Promise<{ id: number; version: number; schema: AvroSchema } | null>;
  /** The schema registered with `id`; a SchemaError when the registry does not know it. */
  schemaById(id: number): Promise<AvroSchema>;
}

export function subjectFor(topic: string): string {
  return `${topic}-value`;
}

export function createRegistry(options: RegistryOptions): FluxionRegistry {
  const base = options.url.replace(/\/+$/, '');
  const auth = options.username ? { username: options.username, password: options.password ?? '' } : undefined;
  const headers: Record<string, string> = {
    'content-type': 'application/vnd.schemaregistry.v1+json',
    accept: 'application/vnd.schemaregistry.v1+json, application/json',
  };
  if (auth) headers.authorization = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;

  async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: RegistryJson }> {
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(options.timeoutMs ?? 15_000),
      });
    } catch (cause) {
      throw new ServiceUnavailableError(
        `schema registry at ${base} did not answer ${method} ${path}: ` +
          `${(cause as Error & { cause?: Error }).cause?.message ?? (cause as Error).message}`,
        { cause, service: 'registry' },
      );
    }
    if (res.status === 401) {
      await res.body?.cancel();
      throw new RegistryAuthError(
        auth
          ? `schema registry at ${base} refused user "${auth.username}" (HTTP 401): check SCHEMA_REGISTRY_USERNAME and ` +
              `SCHEMA_REGISTRY_PASSWORD`
          : `schema registry at ${base} requires authentication (HTTP 401): set SCHEMA_REGISTRY_USERNAME and SCHEMA_REGISTRY_PASSWORD`,
        { context: { url: base } },
      );
    }
    if (res.status === 403) {
      await res.body?.cancel();
      throw new RegistryAuthError(
        `schema registry at ${base} does not let ${auth ? `user "${auth.username}"` : 'anonymous requests'} ${method} ${path} (HTTP ` +
          `403): check the user's permissions or SCHEMA_REGISTRY_USERNAME`,
        { context: { url: base } },
      );
    }
    const text = await res.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = { message: text };
    }
    return { status: res.status, json: json as RegistryJson };
  }

  return {
    url: base,
    async listSubjects() {
      const res = await call('GET', '/subjects');
      if (res.status >= 300 || !Array.isArray(res.json))
        throw new SchemaError(`schema registry at ${base} could not list subjects (HTTP ${res.status}): ${JSON.stringify(res.json)}`);
      return res.json.map(String);
    },
    async register(subject, schema) {
      const res = await call('POST', `/subjects/${encodeURIComponent(subject)}/versions`, {
        schema: JSON.stringify(schema),
        schemaType: 'AVRO',
      });
      if (res.status === 409) {
        throw new SchemaError(
          `schema registry refused ${subject}: not compatible with the registered version: ${res.json?.message ?? ''}`,
          { context: { subject } },
        );
      }
      if (res.status >= 300 || typeof res.json?.id !== 'number') {
        throw new SchemaError(`schema registry could not register ${subject} (HTTP ${res.status}): ${JSON.stringify(res.json)}`, {
          context: { subject },
        });
      }
      return res.json.id as number;
    },
    async checkCompatibility(subject, schema) {
      const res = await call('POST', `/compatibility/subjects/${encodeURIComponent(subject)}/versions/latest?verbose=true`, {
        schema: JSON.stringify(schema),
        schemaType: 'AVRO',
      });
      if (res.status === 404) return { compatible: true, messages: [] };
      if (res.status >= 300 || typeof res.json?.is_compatible !== 'boolean') {
        throw new SchemaError(`schema registry could not check ${subject} (HTTP ${res.status}): ${JSON.stringify(res.json)}`, {
          context: { subject },
        });
      }
      // Confluent answers `messages` (an array); Apicurio's compat API a `reason` string.
      const messages: string[] = Array.isArray(res.json.messages) ? res.json.messages : res.json.reason ? [String(res.json.reason)] : [];
      return { compatible: res.json.is_compatible, messages };
    },
    async setCompatibility(subject, level) {
      const res = await call('PUT', `/config/${encodeURIComponent(subject)}`, { compatibility: level });
      if (res.status >= 300)
        throw new SchemaError(
          `schema registry refused compatibility ${level} for ${subject} (HTTP ${res.status}): ${JSON.stringify(res.json)}`,
        );
    },
    async lookupId(subject, schema) {
      const res = await call('POST', `/subjects/${encodeURIComponent(subject)}`, { schema: JSON.stringify(schema), schemaType: 'AVRO' });
      if (res.status === 404) {
        throw new SchemaError(`schema registry ${base} has no ${subject} matching schemas/: run \`fluxion schemas register\``, {
          context: { subject },
        });
      }
      if (res.status >= 300 || typeof res.json?.id !== 'number') {
        throw new SchemaError(`schema registry could not look up ${subject} (HTTP ${res.status}): ${JSON.stringify(res.json)}`, {
          context: { subject },
        });
      }
      return res.json.id as number;
    },
    async latestSchema(subject) {
      const res = await call('GET', `/subjects/${encodeURIComponent(subject)}/versions/latest`);
      if (res.status === 404) return null;
      if (res.status >= 300)
        throw new SchemaError(`schema registry could not read ${subject} (HTTP ${res.status}): ${JSON.stringify(res.json)}`);
      return { id: res.json?.id as number, version: res.json?.version as number, schema: JSON.parse(String(res.json?.schema)) };
    },
    async schemaById(id) {
      const res = await call('GET', `/schemas/ids/${id}`);
      if (res.status === 404) throw new SchemaError(`schema id ${id} is not registered at ${base}`, { context: { schemaId: id } });
      if (res.status >= 300)
        throw new SchemaError(`schema registry could not read schema id ${id} (HTTP ${res.status}): ${JSON.stringify(res.json)}`);
      return JSON.parse(String(res.json?.schema)) as AvroSchema;
    },
  };
}
