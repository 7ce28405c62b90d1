/**
 * Every relative link of the repo's Markdown resolves to a file in the repo: a clone has no
 * ../shared or any other outside document, and a moved section must take its links along.
 * Anchors are not checked (GitHub's slugs are its own); the file before `#` must exist.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../core/paths.ts';
import { brokenLinks, markdownLinks } from '../helpers/markdown-links.ts';

const PAGES = [
  'README.md',
  ...readdirSync(join(PROJECT_ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
  'bench/README.md',
  'simulators/README.md',
  'processors/README.md',
  'sinks/README.md',
  'extractors/README.md',
];

describe('Markdown links', () => {
  it('finds links, skips code, and names a missing file and a link leaving the repo', () => {
    const text = [
      'See [a](docs/operations.md#mails), [b](docs/missing.md) and ![c](../shared/DESIGN.md).',
      '`[not a link](nowhere.md)` and [web](https://example.com) and [here](#top)',
      '```',
      '[in code](nowhere.md)',
      '```',
    ].join('\n');
    expect(markdownLinks(text).map((l) => l.target)).toEqual([
      'docs/operations.md#mails',
      'docs/missing.md',
      '../shared/DESIGN.md',
      'https://example.com',
      '#top',
    ]);
    expect(brokenLinks('README.md', text)).toEqual([
      'README.md:1 -> docs/missing.md (no such file)',
      'README.md:1 -> ../shared/DESIGN.md (outside the repo)',
    ]);
  });

  it('reads every page it is meant to', () => {
    for (const page of PAGES) expect(existsSync(join(PROJECT_ROOT, page)), page).toBe(true);
    expect(PAGES).toContain('docs/architecture.md');
  });

  it.each(PAGES)('%s: every relative link names a file in the repo', (page) => {
    const text = readFileSync(join(PROJECT_ROOT, page), 'utf8');
    expect(brokenLinks(page, text)).toEqual([]);
  });
});
