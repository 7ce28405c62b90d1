/**
 * Part of `npm run lint`: every tracked source line stays under 140 characters. Biome's
 * formatter wraps code at 139 but cannot break a long string, template or comment, so those
 * are caught here: each offending line is printed as file:line and the exit code is 1.
 *
 * `--fix` splits the long string and template literals it can (at a space, outside `${...}`)
 * into a concatenation of the same text; run `npx biome format --write .` after it to lay the
 * pieces out. Comments and literals without a space to split at are left to a person.
 * Usage: node scripts/long-lines.ts [--fix]
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

const MAX = 139;
/** A piece shorter than this is not worth a line of its own. */
const MIN_PIECE = 20;

const length = (line: string) => [...line].length;

/**
 * The literals of one line of code: [start, end) of each '...', "..." or `...` at the top
 * level, with the spaces inside it where it may be cut (not within a template's `${...}`).
 * Returns null when the line holds a comment or a quote it cannot follow.
 */
function literals(line: string): Array<{ start: number; end: number; quote: string; cuts: number[] }> | null {
  const found: Array<{ start: number; end: number; quote: string; cuts: number[] }> = [];
  let i = 0;
  while (i < line.length) {
    const ch = line[i]!;
    if (ch === '/' && (line[i + 1] === '/' || line[i + 1] === '*')) return null;
    if (ch === "'" || ch === '"' || ch === '`') {
      const start = i;
      const cuts: number[] = [];
      let depth = 0;
      let inner: string | null = null;
      i++;
      for (; i < line.length; i++) {
        const c = line[i]!;
        if (c === '\\') {
          i++;
          continue;
        }
        if (depth > 0) {
          // Inside `${...}`: follow nested quotes and braces, never cut.
          if (inner) {
            if (c === inner) inner = null;
          } else if (c === "'" || c === '"' || c === '`') inner = c;
          else if (c === '{') depth++;
          else if (c === '}') depth--;
          continue;
        }
        if (c === ch) break;
        if (ch === '`' && c === '$' && line[i + 1] === '{') {
          depth = 1;
          i++;
          continue;
        }
        if (c === ' ') cuts.push(i + 1);
      }
      if (i >= line.length) return null;
      found.push({ start, end: i + 1, quote: ch, cuts });
    }
    i++;
  }
  return found;
}

/** The line with its longest literal cut into pieces that fit, or null when it cannot be. */
function splitLine(line: string): string[] | null {
  const lits = literals(line);
  if (!lits || lits.length === 0) return null;
  const lit = lits.reduce((a, b) => (b.end - b.start > a.end - a.start ? b : a));
  const indent = `${/^\s*/.exec(line)![0]}  `;
  const budget = MAX - indent.length - 4;
  const pieces: string[] = [];
  let from = lit.start + 1;
  while (length(line.slice(from, lit.end - 1)) > budget) {
    const cut = lit.cuts.filter((c) => c > from + MIN_PIECE && c - from <= budget).pop();
    if (cut === undefined) break;
    pieces.push(line.slice(from, cut));
    from = cut;
  }
  if (pieces.length === 0) return null;
  pieces.push(line.slice(from, lit.end - 1));
  const q = lit.quote;
  const head = line.slice(0, lit.start);
  const tail = line.slice(lit.end);
  // A tagged template, or an operator binding tighter than + before it: leave it to a person.
  if (/[\w$)\]*/%!-]\s*$/.test(head)) return null;
  // `'a b'.split(' ')` must stay one operand: `('a ' + 'b').split(' ')`.
  const wrap = /^\s*(\?\.|[.[(!])/.test(tail);
  const [open, close] = wrap ? ['(', ')'] : ['', ''];
  const out = [`${head}${open}${q}${pieces[0]}${q} +`];
  for (let k = 1; k < pieces.length; k++) out.push(`${indent}${q}${pieces[k]}${q}${k < pieces.length - 1 ? ' +' : `${close}${tail}`}`);
  return out;
}

const fix = process.argv.includes('--fix');
const files = execFileSync('git', ['ls-files', '-z', '--', '*.ts', '*.js', '*.mjs', '*.cjs'], { encoding: 'utf8' })
  .split('\0')
  .filter(Boolean);
let over = 0;
let fixed = 0;
for (const file of files) {
  const lines = readFileSync(file, 'utf8').split('\n');
  let changed = false;
  const result: string[] = [];
  lines.forEach((line, i) => {
    // Characters, not UTF-16 units or bytes: an accented Spanish word counts once.
    if (length(line) <= MAX) {
      result.push(line);
      return;
    }
    const split = fix ? splitLine(line) : null;
    if (split) {
      result.push(...split);
      changed = true;
      fixed++;
      return;
    }
    result.push(line);
    over++;
    console.log(`${file}:${i + 1} (${length(line)} characters)`);
  });
  if (changed) writeFileSync(file, result.join('\n'));
}
if (fix) console.error(`split ${fixed} line(s); run \`npx biome format --write .\` to lay them out`);
if (over > 0) {
  console.error(`${over} line(s) over ${MAX} characters: break the string, template or comment`);
  process.exit(1);
}
