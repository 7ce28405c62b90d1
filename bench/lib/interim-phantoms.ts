/**
 * INTERIM: phantom-zero labels for bench/phantom while the simulator does not label its own
 * anomalies (simulators/data/anomalies.ts, `sim.anomalies()`, issue 17 item 1). Delete this
 * file once that lands: bench/phantom uses the simulator's labels whenever it has them.
 *
 * At each inventory snapshot a store starts, with probability `perDay` / snapshots a day, a
 * phantom zero on a product that sells (drawn with the sales' own skew) and has stock: the
 * KLK simulator reports it at 0 (faults.ts `phantomZeros`) for 1 to 8 snapshots while the
 * simulation keeps selling it. Only PHANTOM_ZERO labels: the simulator of today sells whatever
 * its stock, so the scores measured on these labels are the harness's, not the rules'.
 */
import type { StoreSimulation } from '../../simulators/data/store-simulation.ts';
import { createRng } from '../../simulators/data/prng.ts';
import type { FaultControl } from '../../simulators/faults.ts';
import type { ScoredLabel } from './phantom-score.ts';

const MAX_SNAPSHOTS = 8;

interface Active {
  label: ScoredLabel;
  untilMs: number;
}

export function interimPhantomZeros(sims: StoreSimulation[], faults: FaultControl, perDay: number, snapshotsPerDay: number, seed: string, snapshotMs: number) {
  const rng = createRng(`interim-phantoms:${seed}`);
  const labels: ScoredLabel[] = [];
  const active = new Map<string, Active[]>();
  return {
    /** Before the snapshot at `now`: ends the phantom zeros due, starts new ones, sets the faults. */
    beforeSnapshot(now: Date): void {
      for (const sim of sims) {
        const list = (active.get(sim.ubicacionId) ?? []).filter((a) => {
          if (a.untilMs > now.getTime()) return true;
          a.label.end = new Date(a.untilMs);
          return false;
        });
        if (rng.chance(perDay / snapshotsPerDay)) {
          for (let tries = 0; tries < 20; tries++) {
            const p = sim.catalog.at(Math.floor(sim.products * rng.next() ** 3));
            const deposito = sim.depositos[0]!;
            if (list.some((a) => a.label.producto_id === p.producto_id) || sim.cantidad(deposito, p.producto_id) <= 0n) continue;
            const label: ScoredLabel = {
              id: `interim-${labels.length + 1}`,
              kind: 'PHANTOM_ZERO',
              ubicacion_id: sim.ubicacionId,
              deposito,
              producto_id: p.producto_id,
              departamento_codigo: p.departamento.codigo,
              start: now,
              end: null,
              shouldAlert: true,
            };
            labels.push(label);
            list.push({ label, untilMs: now.getTime() + rng.int(1, MAX_SNAPSHOTS) * snapshotMs });
            break;
          }
        }
        active.set(sim.ubicacionId, list);
        faults.set(sim.ubicacionId, list.length ? { phantomZeros: list.map((a) => a.label.producto_id!) } : {});
      }
    },
    labels: (): ScoredLabel[] => labels,
  };
}
