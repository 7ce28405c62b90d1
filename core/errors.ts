/**
 * One tree of errors for the whole pipeline. Adapters translate foreign errors (HTTP status,
 * SQLSTATE, Kafka error codes) into these at the edge, so callers branch on `code` and
 * `retriable`, never on message text.
 */
export interface ErrorContext {
  ubicacion?: string;
  field?: string;
  value?: unknown;
  topic?: string;
  partition?: number;
  offset?: string;
  table?: string;
  file?: string;
  [key: string]: unknown;
}

/** The services of our own that an error can be about (as opposed to a POS or the job itself). */
export type OurService = 'kafka' | 'registry' | 'postgres';

export interface FluxionErrorOptions {
  code?: string;
  retriable?: boolean;
  cause?: unknown;
  context?: ErrorContext;
  /** Set by the adapter that failed to reach or use it (core/kafka, core/registry.ts, core/postgres.ts). */
  service?: OurService;
}

export class FluxionError extends Error {
  readonly code: string;
  readonly retriable: boolean;
  readonly context: ErrorContext;
  /** Which of our services failed, when the adapter of one raised this; null otherwise. */
  readonly service: OurService | null;
  /** Process exit code a CLI command should end with when this error reaches it. */
  readonly exitCode: number = 1;

  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code ?? 'FLUXION_ERROR';
    this.retriable = options.retriable ?? false;
    this.context = options.context ?? {};
    this.service = options.service ?? null;
  }
}

/** Bad or missing configuration: the command cannot start. Exit code 2. */
export class ConfigError extends FluxionError {
  override readonly exitCode = 2;
  readonly problems: string[];
  constructor(problems: string[], options: FluxionErrorOptions = {}) {
    const message =
      problems.length === 1
        ? `configuration error: ${problems[0]}`
        : `configuration error (${problems.length} problems):\n  - ${problems.join('\n  - ')}`;
    super(message, { code: 'CONFIG_INVALID', ...options });
    this.problems = problems;
  }
}

/** Wrong command-line usage. Exit code 2. */
export class UsageError extends FluxionError {
  override readonly exitCode = 2;
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'USAGE', ...options });
  }
}

/** A required service (Kafka, registry, PostgreSQL, a POS) cannot be reached. */
export class ServiceUnavailableError extends FluxionError {
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'SERVICE_UNAVAILABLE', retriable: true, ...options });
  }
}

/** A migration cannot be applied, or an applied one was edited afterwards. */
export class MigrationError extends FluxionError {
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'MIGRATION', ...options });
  }
}

/** An Avro schema is malformed, or not BACKWARD-compatible with its previous version. */
export class SchemaError extends FluxionError {
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'SCHEMA', ...options });
  }
}

/** A record or value does not fit its schema (bad decimal, missing field, ...). */
export class ValidationError extends FluxionError {
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'VALIDATION', ...options });
  }
}

/** A topic exists with a layout `topics ensure` must not change by itself. */
export class TopicLayoutError extends FluxionError {
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'TOPIC_LAYOUT', service: 'kafka', ...options });
  }
}

/** The service an error (or an error it wraps, through `cause`) names; null when none does. */
export function failedServiceOf(err: unknown): OurService | null {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    if (e instanceof FluxionError && e.service) return e.service;
  }
  return null;
}

export function isFluxionError(err: unknown): err is FluxionError {
  return err instanceof FluxionError;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * A POS answered something we cannot use: bad JSON, a missing field, a value that is not
 * what the contract says. Names the store, the place (page/row) and the field and value.
 */
export class PosDataError extends FluxionError {
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'POS_DATA', ...options });
  }
}

/** A POS refused our credentials (HTTP 401, SQL login failed): retrying will not help. */
export class PosAuthError extends FluxionError {
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'POS_AUTH', retriable: false, ...options });
  }
}

/** A POS did not answer in time, answered an error, or dropped the connection. */
export class PosUnavailableError extends FluxionError {
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'POS_UNAVAILABLE', retriable: true, ...options });
  }
}

/** A store's run took longer than its deadline and was stopped. */
export class DeadlineExceededError extends FluxionError {
  constructor(message: string, options: FluxionErrorOptions = {}) {
    super(message, { code: 'DEADLINE', retriable: false, ...options });
  }
}
