#!/usr/bin/env node
/**
 * `npm run docs:config`: rewrites the variables table of docs/configuration.md from the
 * configuration schemas (cli/config.ts ENV_VARS). The prose around the table is kept.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { ENV_VARS } from '../cli/config.ts';
import { withGeneratedTable } from '../core/config/env-doc.ts';
import { projectPath } from '../core/paths.ts';

const file = projectPath('docs/configuration.md');
const before = readFileSync(file, 'utf8');
const after = withGeneratedTable(before, ENV_VARS);
if (after === before) {
  process.stdout.write('docs/configuration.md is up to date\n');
} else {
  writeFileSync(file, after);
  process.stdout.write(`docs/configuration.md: table rewritten (${ENV_VARS.length} variables)\n`);
}
