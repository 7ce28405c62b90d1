/**
 * The scheduled jobs as code: the same functions the one-shot commands run, so a run
 * started by `fluxion schedule`, by an external cron or by a person behaves the same.
 */
import type { Ubicacion } from '../core/config/ubicaciones.ts';
import { JobLockedError } from '../core/job-lock.ts';
import { ayerCaracas, fechaCaracas } from '../core/time.ts';
import type { StoreOutcome } from '../core/etl-run.ts';
import { extractInventario, extractVentas } from '../extractors/extract-run.ts';
import { jobFailureOfOutcomes } from '../ops/job-failure-mail.ts';
import type { ScheduledJobName } from '../ops/schedule-config.ts';
import type { JobOutcome, RunJob } from '../ops/scheduler.ts';
import type { CommandContext } from './context.ts';
import { summaryTable } from './extract.ts';
import { lockedJob } from './job-lock.ts';
import { describeAbcResult, recalcAbc } from '../sinks/abc-recalc.ts';
import { productosSummary, refreshProductos } from './productos.ts';

function outcome(job: ScheduledJobName, outcomes: StoreOutcome[]): JobOutcome {
  const lines = summaryTable(outcomes);
  return { ok: outcomes.every((o) => o.status === 'OK'), summary: lines[lines.length - 1]!, failure: jobFailureOfOutcomes(job, outcomes) };
}

/**
 * Each run holds the job's lock (core/job-lock.ts), as the one-shot commands do, so a run of
 * this scheduler and one started elsewhere (a scheduled container, a person) never overlap.
 * A run refused by the lock is reported failed without a mail: its summary names the holder.
 */
export function createJobRunner(c: CommandContext): RunJob {
  const run = createUnlockedRunner(c);
  return async (job, signal) => {
    try {
      return await lockedJob(c, job, () => run(job, signal));
    } catch (err) {
      if (err instanceof JobLockedError) return { ok: false, summary: err.message, failure: null };
      throw err;
    }
  };
}

function createUnlockedRunner(c: CommandContext): RunJob {
  const active = (pos?: Ubicacion['pos']) => c.ubicaciones().filter((u) => u.activa && (!pos || u.pos === pos));
  return async (job: ScheduledJobName, signal: AbortSignal): Promise<JobOutcome> => {
    const now = new Date();
    switch (job) {
      case 'inventario':
        return outcome(job, await extractInventario(active(), c.extractionDeps(), { signal }));
      case 'ventas':
        return outcome(job, await extractVentas(active('klk'), fechaCaracas(now), 'VENTAS', c.extractionDeps(), { signal }));
      case 'ventas-recovery':
        return outcome(job, await extractVentas(active('klk'), ayerCaracas(now), 'VENTAS_RECOVERY', c.extractionDeps(), { signal }));
      case 'abc': {
        const r = await recalcAbc(c.pool(), { logger: c.logger, signal });
        return { ok: true, summary: describeAbcResult(r) };
      }
      case 'productos-refresh': {
        const outcomes = await refreshProductos(active(), { pool: c.pool(), env: c.env, logger: c.logger }, { signal });
        return { ok: outcomes.every((o) => o.status === 'OK'), summary: productosSummary(outcomes).at(-1)! };
      }
      default: {
        // Every job has a case: one added to SCHEDULED_JOB_NAMES without it fails typecheck here.
        const unimplemented: never = job;
        throw new Error(`job ${String(unimplemented)} has no implementation`);
      }
    }
  };
}
