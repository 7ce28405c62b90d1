/**
 * Issue 7's fault-injection suite: cycles of the whole pipeline (simulated POS, extractor,
 * differ, dedupe, phantom detector, sink: each a real process) while processes are killed
 * with SIGKILL or frozen past their session (SIGSTOP), Kafka and PostgreSQL restart, stores fail or hang, and poison records arrive.
 * Afterwards PostgreSQL must hold exactly the simulators' truth.
 *
 *   CHAOS_SEED=<n>          replays a run (the seed is printed first)
 *   CHAOS_CYCLES=<n>        faulty cycles (default 6: every fault kind at least once)
 *   CHAOS_SOAK_MINUTES=<n>  the soak: cycles keep coming for n minutes (e.g. 30), bigger stores
 *
 * It restarts the shared Kafka broker and PostgreSQL: run it alone (its vitest project is
 * `chaos`; CI runs it after the integration tests).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectOutcome, type ChaosOutcome } from './chaos-outcome.ts';
import { startChaosRun, type ChaosRun } from './chaos-run.ts';

const soakMinutes = process.env.CHAOS_SOAK_MINUTES ? Number(process.env.CHAOS_SOAK_MINUTES) : undefined;
const seed = process.env.CHAOS_SEED ? Number(process.env.CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31);
const cycles = Number(process.env.CHAOS_CYCLES ?? 6);

let run: ChaosRun;
let outcome: ChaosOutcome;

describe(`the pipeline under chaos (seed ${seed}${soakMinutes ? `, soak ${soakMinutes} min` : ''})`, () => {
  beforeAll(
    async () => {
      run = await startChaosRun({
        seed,
        cycles,
        minutes: soakMinutes,
        klkStores: 3,
        stellarStores: 1,
        klkProducts: soakMinutes ? 3_000 : 400,
        stellarProducts: soakMinutes ? 4_000 : 500,
        log: (line) => console.log(line),
      });
      outcome = await collectOutcome(run);
    },
    (soakMinutes ?? 0) * 60_000 + 600_000,
  );

  afterAll(async () => {
    if (run) {
      console.log(`chaos seed ${run.seed}: kills ${JSON.stringify(run.kills)}, poison ${run.poison.length}, logs in ${run.logDir}`);
      await run.close();
    }
  }, 120_000);

  it('killed every kind of process and met every fault kind', () => {
    const all = run.events.join('\n');
    if (!soakMinutes && cycles >= 6) {
      for (const f of ['kill -9', 'SIGSTOP', 'Kafka stopped', 'PostgreSQL s', 'failing', 'hanging', 'mass-zero', 'poison'])
        expect(all, f).toContain(f);
    }
    expect(Object.values(run.kills).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(run.hungExtractions, 'an extraction hung instead of failing its store').toBe(0);
  });

  it("inventario_actual is every store's last truth", () => {
    for (const [store, { got, want }] of outcome.actual) {
      expect(want.length, store).toBeGreaterThan(100);
      expect(got, `inventario_actual of ${store}`).toEqual(want);
    }
  });

  it("inventario_historico gives back every applied snapshot's truth, until the next one", () => {
    expect(outcome.unplaced).toEqual([]);
    for (const store of outcome.actual.keys()) expect(outcome.history.filter((h) => h.store === store).length, store).toBeGreaterThan(1);
    for (const h of outcome.history) {
      expect(h.got, `${h.store} at ${h.at} (cycle ${h.cycle}, snapshot ${h.snapshot})`).toEqual(h.want);
      expect(h.before, `${h.store} just before the snapshot after ${h.snapshot} (cycle ${h.cycle})`).toEqual(h.want);
    }
  });

  it('ventas holds every sales line of the simulators once, with its last values', () => {
    expect(outcome.ventas.want.length).toBeGreaterThan(100);
    expect(outcome.ventas.rows).toBe(outcome.ventas.keys);
    expect(outcome.ventas.got).toEqual(outcome.ventas.want);
  });

  it('productos_abc_cache is what these ventas give', () => {
    expect(outcome.abc.committed.length).toBeGreaterThan(0);
    expect(outcome.abc.committed).toEqual(outcome.abc.recalculated);
  });

  it('every poison record is in the DLQ of its topic', () => {
    for (const p of run.poison) expect(outcome.dlqKeys.get(p.topic)?.has(p.key), `${p.key} (${p.kind}) in ${p.topic}.dlq`).toBe(true);
  });

  it('every mass-zero snapshot is quarantined and listed', () => {
    const listed = new Set(outcome.quarantined.map((q) => q.snapshot));
    for (const m of outcome.massZeroSnapshots)
      expect(listed.has(m.snapshot), `${m.store} snapshot ${m.snapshot} of cycle ${m.cycle}`).toBe(true);
    // Nothing else was quarantined: a truthful snapshot held back would be lost stock. A snapshot
    // read during a simulated POS glitch (a department at 0) is not truthful: the group rule may hold it.
    const expected = [...outcome.massZeroSnapshots, ...outcome.glitchSnapshots];
    expect(outcome.quarantined.filter((q) => !expected.some((m) => m.snapshot === q.snapshot))).toEqual([]);
  });

  it('every failing or hanging store has a FAILED run in etl_runs for its cycle', () => {
    for (const t of run.truths) {
      // The run record travels through Kafka: a cycle whose extractor was killed, or whose
      // broker was down, may end without one (the extractor's exit code and log say it).
      const disturbed = run.events.some(
        (e) =>
          e.includes(`cycle ${t.cycle}: Kafka stopped`) ||
          (e.includes(`cycle ${t.cycle}: kill -9 extractor`) && !e.includes('not running')),
      );
      if (disturbed) continue;
      for (const store of t.failing)
        expect(
          outcome.failedRuns.some((f) => f.store === store && f.cycle === t.cycle),
          `${store} in cycle ${t.cycle}`,
        ).toBe(true);
    }
  });
});
