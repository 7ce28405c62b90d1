/**
 * bench/e2e --kill-differ: a differ killed with SIGKILL and started again on the same state
 * stores; timed to its state loaded (the stores read from their checkpoints) and to its group
 * stable (which also waits for Kafka to evict the killed member: FLUXION_SESSION_TIMEOUT_MS).
 * A processor loads its state at the first batch after an assignment, so one store is
 * extracted again once the new differ owns its partitions.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Ubicacion } from '../../core/config/ubicaciones.ts';
import type { FluxionAdmin } from '../../core/kafka/client.ts';
import { type Child, startChild } from './child.ts';
import { fluxion, fmt, longLived, out, runExtract } from './e2e-processes.ts';
import { procStatusKb } from './proc.ts';
import { round } from './stats.ts';

export type DifferRestart = {
  state_records_loaded: number;
  restart_to_loaded_seconds: number;
  assigned_to_loaded_seconds: number;
  load_ms: number;
  kill_to_loaded_seconds: number;
  kill_to_stable_seconds: number;
  rss_after_load_mb: { anon: number; file: number };
};

export interface RestartContext {
  procs: { differ: Child };
  metricsPort: number;
  nodeArgs: (name: string) => string[];
  env: NodeJS.ProcessEnv;
  logDir: string;
  stores: Ubicacion[];
  admin: FluxionAdmin;
  differGroup: string;
}

/** Kills the differ, starts it again (replacing it in c.procs) and measures its recovery. */
export async function killAndRestartDiffer(c: RestartContext): Promise<DifferRestart> {
  const tKill = performance.now();
  process.kill(c.procs.differ.pid, 'SIGKILL');
  await c.procs.differ.exited;
  const tStart = performance.now();
  const again = startChild(
    'differ',
    [...c.nodeArgs('differ-restarted'), fluxion, 'process', 'differ', '--metrics-port', String(c.metricsPort)],
    c.env,
    c.logDir,
  );
  longLived.push(again);
  c.procs.differ = again;
  const assigned = await again.waitLog('partitions assigned');
  const one = c.stores[0]!;
  const poke = await runExtract(
    'extract-after-restart',
    ['extract', 'inventario', '--tienda', one.id],
    c.env,
    c.nodeArgs('extract-after-restart'),
    c.logDir,
  );
  if (poke.code !== 0) throw new Error(`the extraction after the differ's restart exited ${poke.code}: ${poke.log}`);
  const loaded = [await again.waitLog('state loaded', 1), await again.waitLog('state loaded', 2)];
  const tLoaded = performance.now();
  const deadline = Date.now() + 300_000;
  for (;;) {
    const [g] = await c.admin.describeGroups([c.differGroup]);
    if (g?.state === 'Stable' && g.members === 1) break;
    if (Date.now() > deadline)
      throw new Error(`the restarted differ's group did not become stable within 5 minutes: ${JSON.stringify(g)}`);
    await sleep(250);
  }
  const restart = {
    state_records_loaded: loaded.reduce((sum, l) => sum + Number((l.line as { records?: number }).records ?? 0), 0),
    restart_to_loaded_seconds: round((tLoaded - tStart) / 1000),
    // When the bench read those lines: the state's own cost, without the wait for the group.
    assigned_to_loaded_seconds: round((loaded[1]!.at - assigned.at) / 1000),
    // What the load took by the differ's own account (its last 'state loaded' line counts from the start of the load).
    load_ms: Number((loaded[1]!.line as { ms?: number }).ms ?? 0),
    kill_to_loaded_seconds: round((tLoaded - tKill) / 1000),
    kill_to_stable_seconds: round((performance.now() - tKill) / 1000),
    rss_after_load_mb: {
      anon: Math.round(procStatusKb(again.pid, 'RssAnon') / 1024),
      file: Math.round(procStatusKb(again.pid, 'RssFile') / 1024),
    },
  };
  out(
    `differ restart after kill -9: state loaded ${restart.kill_to_loaded_seconds} s after the kill, ` +
      `${restart.assigned_to_loaded_seconds} s after its assignment (${fmt(restart.state_records_loaded)} state records), group ` +
      `stable ${restart.kill_to_stable_seconds} s after the kill`,
  );
  return restart;
}
