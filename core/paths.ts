/** Where the checked-in assets live, independent of the caller's working directory. */
import { fileURLToPath } from 'node:url';
import { dirname, isAbsolute, join, resolve } from 'node:path';

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const SCHEMAS_DIR = join(PROJECT_ROOT, 'schemas');
export const MIGRATIONS_DIR = join(PROJECT_ROOT, 'sql', 'postgres');

/** Relative paths in configuration are relative to the project, not to the shell's cwd. */
export function projectPath(path: string): string {
  return isAbsolute(path) ? path : join(PROJECT_ROOT, path);
}
