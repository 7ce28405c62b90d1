/** The services' addresses as `scripts/services env` prints them, for the bench commands. */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../core/paths.ts';

export function servicesEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of execFileSync(join(PROJECT_ROOT, 'scripts', 'services'), ['env'], { encoding: 'utf8' }).split('\n')) {
    const m = /^export ([A-Z_]+)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}
