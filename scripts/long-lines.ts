/**
 * Part of `npm run lint`: every tracked source line stays under 140 characters. Biome's
 * formatter wraps code at 139 but cannot break a long string, template or comment, so those
 * are caught here: each offending line is printed as file:line and the exit code is 1.
 * Usage: node scripts/long-lines.ts
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const MAX = 139;
const files = execFileSync('git', ['ls-files', '-z', '--', '*.ts', '*.js', '*.mjs', '*.cjs'], { encoding: 'utf8' })
  .split('\0')
  .filter(Boolean);
let over = 0;
for (const file of files) {
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      // Characters, not UTF-16 units or bytes: an accented Spanish word counts once.
      const length = [...line].length;
      if (length > MAX) {
        over++;
        console.log(`${file}:${i + 1} (${length} characters)`);
      }
    });
}
if (over > 0) {
  console.error(`${over} line(s) over ${MAX} characters: break the string, template or comment`);
  process.exit(1);
}
