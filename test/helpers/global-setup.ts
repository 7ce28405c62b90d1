/**
 * Integration tests need the real services. Their addresses come from the environment
 * (`eval "$(scripts/services env)"`, which scripts/test does). When they are not set and a
 * Docker engine answers, testcontainers starts them; otherwise the run fails here with what
 * to do: an integration test never skips silently.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../core/paths.ts';
import { waitForKafkaReady } from './kafka-ready.ts';

const NEEDED = ['KAFKA_BROKERS', 'SCHEMA_REGISTRY_URL', 'DATABASE_URL'] as const;

function dockerAnswers(): boolean {
  try {
    execFileSync('docker', ['info', '--format', '{{.ServerVersion}}'], { stdio: 'ignore', timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

export default async function setup(): Promise<(() => Promise<void>) | void> {
  // The tests start `fluxion` as a child process hundreds of times (kill -9 proofs, CLI runs,
  // the demo's children). Node's compile cache (keyed by each file's content, so never stale)
  // halves the CPU a start spends compiling modules; test workers and their children inherit it.
  process.env.NODE_COMPILE_CACHE ??= join(PROJECT_ROOT, '.cache', 'node-compile-cache');
  const missing = NEEDED.filter((n) => !process.env[n]);
  if (missing.length === 0) {
    await waitForKafkaReady(process.env.KAFKA_BROKERS!.split(','));
    return;
  }
  if (!dockerAnswers()) {
    throw new Error(
      `integration tests need real services, and ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not set and no Docker ` +
        `engine answers.\n` +
        'Start them natively and export their addresses:\n  scripts/services up && eval "$(scripts/services env)"\n' +
        'or run everything with the README test command: scripts/test',
    );
  }
  const { startContainers } = await import('./containers.ts');
  const started = await startContainers();
  // Test workers start after this and inherit the environment.
  Object.assign(process.env, started.env);
  await waitForKafkaReady(started.env.KAFKA_BROKERS!.split(','));
  return started.stop;
}
