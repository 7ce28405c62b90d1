/**
 * Every relative link of the repo's Markdown resolves to a file in the repo: a clone has no
 * ../shared or any other outside document, and a moved section must take its links along.
 * Anchors are not checked (GitHub's slugs are its own); the file before `#` must exist.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../core/paths.ts';

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

/** The targets of `[text](target)` and `![alt](target)` outside code, with line numbers. */
export function markdownLinks(text: string): Array<{ line: number; target: string }> {
  const links: Array<{ line: number; target: string }> = [];
  let fenced = false;
  text.split('\n').forEach((raw, i) => {
    if (raw.trimStart().startsWith('```')) {
      fenced = !fenced;
      return;
    }
    if (fenced) return;
    const line = raw.replace(/`[^`]*`/g, '');
    for (const m of line.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      if (m[1]) links.push({ line: i + 1, target: m[1] });
    }
  });
  return links;
}

/** `page:line -> target (why)` for each relative link of `page` that names no file in the repo. */
export function brokenLinks(page: string, text: string, root = PROJECT_ROOT): string[] {
  const broken: string[] = [];
  for (const { line, target } of markdownLinks(text)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue;
    const path = decodeURIComponent(target.split('#')[0] ?? '');
    const file = resolve(root, dirname(page), path);
    const inRepo = !relative(root, file).startsWith('..');
    if (!inRepo) broken.push(`${page}:${line} -> ${target} (outside the repo)`);
    else if (!existsSync(file)) broken.push(`${page}:${line} -> ${target} (no such file)`);
  }
  return broken;
}

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
