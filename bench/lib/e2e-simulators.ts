/**
 * bench/e2e's simulators: the KLK one (advanced through its control API) and the Stellar ones
 * (advanced with SIGUSR2, each answering "advanced" on stdout), started through the CLI.
 */
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Ubicacion } from '../../core/config/ubicaciones.ts';
import { fechaCaracas } from '../../core/time.ts';
import { fluxion, startSimulator } from './e2e-processes.ts';

export interface SimulatorOptions {
  env: NodeJS.ProcessEnv;
  logDir: string;
  klkStores: Ubicacion[];
  stellarStores: Ubicacion[];
  klkProducts: number;
  stellarProducts: number;
  changeShare: number;
}

export interface RunningSimulators {
  /** Moves every simulator 30 simulated minutes on. */
  advance(): Promise<void>;
  /** The simulated business day (Caracas) the simulators are at. */
  simulatedFecha(): Promise<string>;
}

export async function startSimulators(o: SimulatorOptions): Promise<RunningSimulators> {
  const simEnv = { ...o.env, LOG_LEVEL: 'warn' };
  const share = String(o.changeShare);
  let klkUrl: string | null = null;
  let stellarSim: ChildProcess | null = null;
  if (o.klkStores.length) {
    await startSimulator(
      'simulate-klk',
      [fluxion, 'simulate', 'klk', '--products', String(o.klkProducts), '--change-share', share],
      simEnv,
      o.logDir,
      (t) => t.includes('KLK simulator:'),
    );
    const first = o.klkStores[0] as Extract<Ubicacion, { pos: 'klk' }>;
    klkUrl = new URL(first.klk.baseUrl).origin;
  }
  if (o.stellarStores.length) {
    const want = o.stellarStores.length;
    stellarSim = await startSimulator(
      'simulate-stellar',
      [fluxion, 'simulate', 'stellar', '--products', String(o.stellarProducts), '--change-share', share],
      simEnv,
      o.logDir,
      (t) => (t.match(/Stellar simulator:/g) ?? []).length >= want,
    );
  }
  let stellarReplies = '';
  if (stellarSim) stellarSim.stdout!.on('data', (d: Buffer) => (stellarReplies += d.toString()));
  const advance = async () => {
    if (klkUrl) {
      const r = await fetch(`${klkUrl}/_control/advance`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"minutes":30}',
      });
      if (!r.ok) throw new Error(`KLK simulator: advance answered HTTP ${r.status}`);
    }
    if (stellarSim) {
      const before = (stellarReplies.match(/advanced /g) ?? []).length;
      stellarSim.kill('SIGUSR2');
      const deadline = Date.now() + 120_000;
      while ((stellarReplies.match(/advanced /g) ?? []).length <= before) {
        if (Date.now() > deadline) throw new Error('Stellar simulator did not advance within 2 minutes');
        await sleep(20);
      }
    }
  };
  const simulatedFecha = async () => {
    if (!klkUrl) return fechaCaracas(new Date('2026-11-27T14:00:00Z'));
    const r = (await (await fetch(`${klkUrl}/_control/stores`)).json()) as Array<{ clock: string }>;
    return fechaCaracas(new Date(r[0]!.clock));
  };
  return { advance, simulatedFecha };
}
