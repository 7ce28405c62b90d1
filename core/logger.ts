/**
 * pino, NDJSON on stdout (prettifying and shipping happen outside the process). Secrets are
 * redacted by path, and connection strings are scrubbed of passwords wherever they appear.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

const REDACT_PATHS = [
  'password',
  '*.password',
  '*.*.password',
  'apiKey',
  '*.apiKey',
  'headers["x-api-key"]',
  '*.headers["x-api-key"]',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'databaseUrl',
  '*.databaseUrl',
  'connectionString',
  '*.connectionString',
  'sasl',
  '*.sasl',
];

/** Replaces the password of any URL-shaped credential (`scheme://user:secret@host`). */
export function scrubSecrets(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^:/@\s]+:)[^@\s]+@/gi, '$1***@');
}

/**
 * `destination` 1 (stdout) for long-running processes; the CLI's one-shot commands log to
 * stderr (2) so their stdout carries only the command's result; a path appends to that file
 * (the demo keeps its in-process extraction's log beside its children's).
 * `level` is the caller's: LOG_LEVEL is read, with its default, by the configuration.
 */
export function createLogger(options: { level: string; name?: string; destination?: 1 | 2 | string }): Logger {
  return pino(
    {
      level: options.level,
      name: options.name ?? 'fluxion',
      redact: { paths: REDACT_PATHS, censor: '***' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: {
        err: (err: unknown) => {
          const s = pino.stdSerializers.err(err as Error);
          if (s && typeof s.message === 'string') s.message = scrubSecrets(s.message);
          if (s && typeof s.stack === 'string') s.stack = scrubSecrets(s.stack);
          return s;
        },
      },
    },
    pino.destination({ dest: options.destination ?? 1, sync: true, mkdir: typeof options.destination === 'string' }),
  );
}
