/**
 * `fluxion schemas register|check`. Compatibility is BACKWARD (a consumer on the new schema
 * reads records written with the previous one), checked two ways: by the registry against
 * the registered version, and locally against the version committed in git, so a pull
 * request is refused before it reaches any registry.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { backwardIncompatibility, loadSubjectSchemas, type SubjectSchema } from '../core/avro/schemas.ts';
import { SchemaError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { PROJECT_ROOT, SCHEMAS_DIR } from '../core/paths.ts';
import { subjectFor, type FluxionRegistry } from '../core/registry.ts';

export interface RegisteredSubject {
  subject: string;
  id: number;
}

export async function registerSchemas(
  registry: FluxionRegistry,
  schemas: SubjectSchema[],
  topicPrefix: string,
  logger: Logger,
): Promise<RegisteredSubject[]> {
  const out: RegisteredSubject[] = [];
  for (const s of schemas) {
    const subject = subjectFor(topicPrefix + s.topic);
    const verdict = await registry.checkCompatibility(subject, s.schema);
    if (!verdict.compatible) {
      throw new SchemaError(
        `${relative(PROJECT_ROOT, s.file)} is not BACKWARD-compatible with the registered ${subject}: ` +
          `${verdict.messages.join('; ') || 'the registry gave no detail'}`,
        {
          context: { subject },
        },
      );
    }
    const id = await registry.register(subject, s.schema);
    await registry.setCompatibility(subject, 'BACKWARD');
    logger.info({ subject, id }, 'schema registered');
    out.push({ subject, id });
  }
  return out;
}

/** The subject schemas as committed at `rev` (null when that revision has no schemas/). */
export function loadCommittedSchemas(rev: string, root: string = PROJECT_ROOT): SubjectSchema[] | null {
  const schemasRel = relative(root, SCHEMAS_DIR);
  let listing: string;
  try {
    listing = execFileSync('git', ['ls-tree', '-r', '--name-only', rev, '--', schemasRel], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (cause) {
    throw new SchemaError(`cannot read schemas at git revision ${rev}: ${(cause as Error).message.split('\n')[0]}`, { cause });
  }
  const files = listing.split('\n').filter((f) => f.endsWith('.avsc'));
  if (files.length === 0) return null;
  const tmp = mkdtempSync(join(tmpdir(), 'fluxion-schemas-'));
  try {
    for (const f of files) {
      const target = join(tmp, relative(schemasRel, f));
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, execFileSync('git', ['show', `${rev}:${f}`], { cwd: root }));
    }
    mkdirSync(join(tmp, 'types'), { recursive: true });
    return loadSubjectSchemas(tmp);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

export interface CheckProblem {
  subject: string;
  against: string;
  reason: string;
}

/** Local BACKWARD check of `current` against `previous`; a removed subject is a problem too. */
export function compareWithPrevious(current: SubjectSchema[], previous: SubjectSchema[], label: string): CheckProblem[] {
  const problems: CheckProblem[] = [];
  for (const old of previous) {
    const next = current.find((c) => c.topic === old.topic);
    if (!next) {
      problems.push({
        subject: subjectFor(old.topic),
        against: label,
        reason: 'schema file removed: consumers of the topic would lose their schema',
      });
      continue;
    }
    const reason = backwardIncompatibility(next.schema, old.schema);
    if (reason) problems.push({ subject: subjectFor(old.topic), against: label, reason });
  }
  return problems;
}

export async function checkAgainstRegistry(
  registry: FluxionRegistry,
  current: SubjectSchema[],
  topicPrefix: string,
): Promise<CheckProblem[]> {
  const problems: CheckProblem[] = [];
  for (const s of current) {
    const subject = subjectFor(topicPrefix + s.topic);
    const verdict = await registry.checkCompatibility(subject, s.schema);
    if (!verdict.compatible)
      problems.push({ subject, against: `registry ${registry.url}`, reason: verdict.messages.join('; ') || 'incompatible' });
  }
  return problems;
}
