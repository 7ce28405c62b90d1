/**
 * The image (Dockerfile) cannot be built here (no Docker engine): this checks statically that
 * it puts `fluxion` on the PATH, and runs the same link the image makes, found through PATH
 * as a shell in the container would, for `fluxion --version`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { PROJECT_ROOT } from '../../core/paths.ts';

const dockerfile = readFileSync(join(PROJECT_ROOT, 'Dockerfile'), 'utf8');
const version = (JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** The PATH of the official node images (Debian's default for root and other users). */
const NODE_IMAGE_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** The final stage's instructions (after its last FROM). */
const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
const workdir = /^WORKDIR (\S+)$/m.exec(finalStage)?.[1];
const link = /^RUN ln -sf? (\S+) (\S+)$/m.exec(finalStage);

const scratch = mkdtempSync(join(tmpdir(), 'fluxion-path-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('the image', () => {
  it('links bin/fluxion.ts, which it copies, into a directory of the PATH', () => {
    expect(workdir).toBe('/app');
    expect(finalStage).toMatch(/^COPY bin \.\/bin$/m);
    expect(link, 'no `RUN ln -s <target> <link>` in the final stage').not.toBeNull();
    const [, target, path] = link!;
    expect(target).toBe(posix.join(workdir!, 'bin', 'fluxion.ts'));
    expect(posix.basename(path!)).toBe('fluxion');
    const env = /^ENV PATH=(\S+)$/m.exec(finalStage)?.[1]?.split(':') ?? NODE_IMAGE_PATH;
    expect(env).toContain(posix.dirname(path!));
    // The link is made before USER: /usr/local/bin belongs to root.
    expect(finalStage.indexOf(link![0])).toBeLessThan(finalStage.indexOf('\nUSER '));
  });

  it('bin/fluxion.ts runs on its own: executable, with a node shebang', () => {
    const file = join(PROJECT_ROOT, 'bin', 'fluxion.ts');
    expect(statSync(file).mode & 0o111).toBe(0o111);
    expect(readFileSync(file, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
  });

  it("`fluxion --version` through the PATH link prints package.json's version", () => {
    symlinkSync(join(PROJECT_ROOT, 'bin', 'fluxion.ts'), join(scratch, 'fluxion'));
    const r = spawnSync('fluxion', ['--version'], {
      encoding: 'utf8',
      env: { PATH: `${scratch}:${dirname(process.execPath)}`, HOME: scratch },
      cwd: scratch,
    });
    expect(r.error).toBeUndefined();
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`${version}\n`);
    expect(r.status).toBe(0);
  }, 30_000);

  it('`node bin/fluxion.ts --version` prints it; -V and --help say so in-process', async () => {
    const r = spawnSync(process.execPath, [join(PROJECT_ROOT, 'bin', 'fluxion.ts'), '--version'], { encoding: 'utf8' });
    expect(r.stdout).toBe(`${version}\n`);
    expect(r.status).toBe(0);
    const out: string[] = [];
    expect(await main(['-V'], { env: {}, out: (l) => out.push(l), err: (l) => out.push(l) })).toBe(0);
    expect(await main(['--help'], { env: {}, out: (l) => out.push(l), err: (l) => out.push(l) })).toBe(0);
    expect(out[0]).toBe(version);
    expect(out.join('\n')).toMatch(/-V, --version\s+print the version/);
  }, 30_000);
});
