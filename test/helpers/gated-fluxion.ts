/**
 * `bin/fluxion.ts` behind a gate, for the kill -9 tests: it loads the CLI's modules, then
 * waits for a line on stdin before running `main(argv)` exactly as bin/fluxion.ts does. A
 * test that restarts a killed instance again and again keeps the next one loaded while the
 * current one works (startGatedFluxion), so a restart costs the group join and the state
 * load, not Node compiling every module again (seconds per start on two busy cores, times
 * twenty kills).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../core/paths.ts';

export interface GatedFluxion {
  child: ChildProcess;
  /** Opens the gate: the command starts (once; later calls do nothing). */
  go(): void;
  exited: Promise<{ code: number | null; signal: string | null }>;
}

/** Spawns `fluxion ARGS` loaded and waiting at the gate; stderr is piped for the caller. */
export function startGatedFluxion(args: string[], env: NodeJS.ProcessEnv): GatedFluxion {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'test', 'helpers', 'gated-fluxion.ts'), ...args], {
    cwd: PROJECT_ROOT,
    env,
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  // A child killed before its gate opened must not turn the write into an unhandled error.
  child.stdin!.on('error', () => undefined);
  let opened = false;
  return {
    child,
    go() {
      if (opened) return;
      opened = true;
      child.stdin!.end('go\n');
    },
    exited,
  };
}

if (process.argv[1] && import.meta.url.endsWith('/gated-fluxion.ts') && process.argv[1].endsWith('gated-fluxion.ts')) {
  const { main } = await import('../../cli/main.ts');
  // The gate; stdin closed without a word means the test is gone: run nothing.
  const opened = await new Promise<boolean>((resolve) => {
    process.stdin.once('data', () => resolve(true));
    process.stdin.once('end', () => resolve(false));
  });
  if (!opened) process.exit(0);
  process.stdin.destroy();
  process.exitCode = await main(process.argv.slice(2));
}
