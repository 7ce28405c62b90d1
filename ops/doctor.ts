/**
 * `fluxion doctor`: the preflight a container entrypoint or a person runs before a job (the
 * old entrypoint pinged the VPN gateway). Every check runs at once under its own timeout and
 * ends as one row: part, target (never a secret), OK / FAIL / SKIP, duration, detail.
 *
 * Here the runner, the migration comparison, the targets and the report formats, pure and
 * unit-tested (test/unit/doctor.test.ts); the checks are small I/O functions in
 * ops/doctor-checks.ts over clients the command builds from the configuration (cli/doctor.ts).
 */
import { scrubSecrets } from '../core/logger.ts';

export type CheckStatus = 'OK' | 'FAIL' | 'SKIP';

export interface CheckResult {
  part: string;
  target: string;
  status: CheckStatus;
  /** A required part that fails makes the exit code 1. */
  required: boolean;
  durationMs: number;
  detail: string;
}

/** What a check resolves to: OK with a detail, or SKIP with the reason. A check that throws FAILs with the error's message. */
export type CheckOutcome = string | { status: 'OK' | 'SKIP'; detail: string };

export interface DoctorCheck {
  part: string;
  target: string;
  /** Default true. */
  required?: boolean;
  /** Part of an earlier check that must be OK for this one to run (SKIP otherwise). */
  dependsOn?: string;
  /** `signal` aborts when the check's time is up: close what it opened. */
  run(signal: AbortSignal): Promise<CheckOutcome>;
}

export interface RunOptions {
  timeoutMs: number;
  /** Values that must never appear in a detail (keys, passwords): replaced by ***. */
  secrets?: string[];
  clock?: () => number;
}

export class CheckTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`no answer in ${timeoutMs} ms`);
    this.name = 'CheckTimeoutError';
  }
}

/** One line, no URL password, no known secret. */
export function cleanDetail(text: string, secrets: string[] = []): string {
  let out = scrubSecrets(text)
    .replace(/\s*\n\s*/g, '; ')
    .trim();
  // Longest first, so a secret containing another is replaced whole.
  for (const s of [...secrets].filter((x) => x.length >= 3).sort((a, b) => b.length - a.length)) out = out.split(s).join('***');
  return out;
}

/**
 * Runs every check concurrently, each under `timeoutMs` (a dependent one starts when its
 * dependency ends); results in the checks' order.
 */
export async function runChecks(checks: DoctorCheck[], options: RunOptions): Promise<CheckResult[]> {
  const clock = options.clock ?? (() => performance.now());
  const byPart = new Map<string, Promise<CheckResult>>();
  const all = checks.map((check) => {
    const required = check.required ?? true;
    const result = (async (): Promise<CheckResult> => {
      const dependency = check.dependsOn ? byPart.get(check.dependsOn) : undefined;
      if (dependency) {
        const dep = await dependency;
        if (dep.status !== 'OK')
          return {
            part: check.part,
            target: check.target,
            status: 'SKIP',
            required,
            durationMs: 0,
            detail: `${dep.part} is ${dep.status}`,
          };
      }
      const started = clock();
      const controller = new AbortController();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const err = new CheckTimeoutError(options.timeoutMs);
          controller.abort(err);
          reject(err);
        }, options.timeoutMs);
      });
      const finish = (status: CheckStatus, detail: string): CheckResult => ({
        part: check.part,
        target: check.target,
        status,
        required,
        durationMs: Math.max(0, Math.round(clock() - started)),
        detail: cleanDetail(detail, options.secrets),
      });
      try {
        const outcome = await Promise.race([check.run(controller.signal), timeout]);
        return typeof outcome === 'string' ? finish('OK', outcome) : finish(outcome.status, outcome.detail);
      } catch (err) {
        return finish('FAIL', (err as Error)?.message ?? String(err));
      } finally {
        clearTimeout(timer);
      }
    })();
    if (!byPart.has(check.part)) byPart.set(check.part, result);
    return result;
  });
  return Promise.all(all);
}

/** 2 when the configuration is invalid, 1 when a required part failed, 0 otherwise. */
export function doctorExitCode(results: CheckResult[]): 0 | 1 | 2 {
  if (results.some((r) => r.part === 'config' && r.status === 'FAIL')) return 2;
  return results.some((r) => r.required && r.status === 'FAIL') ? 1 : 0;
}

export function summaryLine(results: CheckResult[]): string {
  const count = (s: CheckStatus) => results.filter((r) => r.status === s).length;
  const failed = results.filter((r) => r.status === 'FAIL');
  const code = doctorExitCode(results);
  const counts = `${count('OK')} OK, ${count('FAIL')} FAIL, ${count('SKIP')} SKIP`;
  if (failed.length === 0) return `doctor: ${counts}: ready`;
  return `doctor: ${counts}: ${code === 2 ? 'configuration invalid' : 'not ready'}; failed: ${failed.map((r) => r.part).join(', ')}`;
}

function formatDuration(ms: number): string {
  return ms < 10_000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** The table for people: aligned columns, the detail last and whole. */
export function formatTable(results: CheckResult[]): string[] {
  const header = ['part', 'target', 'status', 'duration', 'detail'];
  const rows = results.map((r) => [r.part, r.target, r.status, formatDuration(r.durationMs), r.detail]);
  const width = (i: number) => Math.max(header[i]!.length, ...rows.map((row) => row[i]!.length));
  const widths = [width(0), width(1), width(2), width(3)];
  const line = (cells: string[]) =>
    [cells[0]!.padEnd(widths[0]!), cells[1]!.padEnd(widths[1]!), cells[2]!.padEnd(widths[2]!), cells[3]!.padStart(widths[3]!), cells[4]!]
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line), summaryLine(results)];
}

/** The report for scripts: one JSON document. */
export function formatJson(results: CheckResult[]): string {
  const count = (s: CheckStatus) => results.filter((r) => r.status === s).length;
  return JSON.stringify({ exitCode: doctorExitCode(results), ok: count('OK'), fail: count('FAIL'), skip: count('SKIP'), checks: results });
}

/** A URL as a target: no user, password, query or fragment. */
export function safeTarget(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
  } catch {
    return '(unparseable URL)';
  }
}

/** Kafka's target: the bootstrap brokers and how we authenticate (the user, never the password). */
export function kafkaTarget(
  brokers: string[],
  ssl?: { rejectUnauthorized?: boolean },
  sasl?: { mechanism: string; username: string },
): string {
  const how = [
    ssl ? (ssl.rejectUnauthorized === false ? 'TLS unverified' : 'TLS') : '',
    sasl ? `SASL ${sasl.mechanism.toUpperCase()} as ${sasl.username}` : '',
  ].filter(Boolean);
  return `${brokers.join(',')}${how.length ? ` (${how.join(', ')})` : ''}`;
}

// ------------------------------------------------------------------ migrations

export interface MigrationRow {
  version: number;
  name: string;
  checksum: string;
}

export interface MigrationComparison {
  /** Files not applied yet. */
  pending: string[];
  /** Applied, but the file changed since. */
  edited: string[];
  /** Applied, but the file is gone (a newer release applied them, or files were removed). */
  unknown: string[];
  applied: number;
}

export function compareMigrations(files: MigrationRow[], applied: MigrationRow[]): MigrationComparison {
  const done = new Map(applied.map((r) => [r.version, r]));
  const onDisk = new Set(files.map((f) => f.version));
  return {
    pending: files.filter((f) => !done.has(f.version)).map((f) => f.name),
    edited: files.filter((f) => done.has(f.version) && done.get(f.version)!.checksum !== f.checksum).map((f) => f.name),
    unknown: applied.filter((r) => !onDisk.has(r.version)).map((r) => r.name),
    applied: applied.length,
  };
}

/** OK detail for current migrations; throws what is wrong otherwise. */
export function migrationsVerdict(files: MigrationRow[], applied: MigrationRow[]): string {
  const c = compareMigrations(files, applied);
  const problems: string[] = [];
  if (c.pending.length) problems.push(`${c.pending.length} pending (${c.pending.join(', ')}): run \`fluxion migrate\``);
  if (c.edited.length)
    problems.push(`edited after being applied: ${c.edited.join(', ')} (revert the edit; changes go in a new migration)`);
  if (c.unknown.length)
    problems.push(`applied but not in sql/postgres: ${c.unknown.join(', ')} (is this release older than the database?)`);
  if (problems.length) throw new Error(problems.join('; '));
  return `${files.length} of ${files.length} applied`;
}
