/**
 * Helpers for integration tests against the real services: unique names per test, a fresh
 * database per test, the CLI run as a real subprocess, and waiting for records.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { PROJECT_ROOT } from '../../core/paths.ts';
import { createLogger } from '../../core/logger.ts';

export const testLogger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

export function serviceEnv(): { KAFKA_BROKERS: string; SCHEMA_REGISTRY_URL: string; DATABASE_URL: string } {
  const { KAFKA_BROKERS, SCHEMA_REGISTRY_URL, DATABASE_URL } = process.env;
  if (!KAFKA_BROKERS || !SCHEMA_REGISTRY_URL || !DATABASE_URL) {
    throw new Error('service addresses missing: run `scripts/services up && eval "$(scripts/services env)"` (test/helpers/global-setup.ts should have stopped this run)');
  }
  return { KAFKA_BROKERS, SCHEMA_REGISTRY_URL, DATABASE_URL };
}

/** A short random name part, so tests never share topics, subjects or databases. */
export function uniqueId(label = 't'): string {
  return `${label}${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
}

/** Creates an empty database for one test; returns its URL and a function dropping it. */
export async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const base = serviceEnv().DATABASE_URL;
  const name = uniqueId('fluxion_test_').toLowerCase();
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      // WITH (FORCE) may not terminate an autovacuum worker still busy in the database
      // (42501 for a non-superuser, seen in CI after a big load): it ends soon, so retry.
      for (let attempt = 1; ; attempt++) {
        try {
          await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
          break;
        } catch (err) {
          if ((err as { code?: string }).code !== '42501' || attempt >= 40) throw err;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
      await c.end();
    },
  };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `fluxion ARGS` as a real process, as an operator or a container would. */
export function runCli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(PROJECT_ROOT, 'bin', 'fluxion.ts'), ...args],
      { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, cwd: PROJECT_ROOT, timeout: 120_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
