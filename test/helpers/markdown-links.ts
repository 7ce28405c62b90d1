/**
 * Relative Markdown links of the repo's pages and which of them name no file in the repo
 * (test/unit/docs-links.test.ts checks every page with these).
 */
import { existsSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { PROJECT_ROOT } from '../../core/paths.ts';

/** The targets of `[text](target)` and `![alt](target)` outside code, with line numbers. */
export function markdownLinks(text: string): Array<{ line: number; target: string }> {
  const links: Array<{ line: number; target: string }> = [];
  let fenced = false;
  for (const [i, raw] of text.split('\n').entries()) {
    if (raw.trimStart().startsWith('```')) {
      fenced = !fenced;
      continue;
    }
    if (fenced) continue;
    const line = raw.replace(/`[^`]*`/g, '');
    for (const m of line.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      if (m[1]) links.push({ line: i + 1, target: m[1] });
    }
  }
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
