/**
 * `fluxion dashboard`: the lag dashboard, /metrics and the control API on one HTTP server,
 * until SIGTERM/SIGINT. The wiring of ops/dashboard/* and ops/control-api.ts: the control
 * API's runs are the extractors' own functions, injected here (ops does not import extractors).
 */
import type { Command } from 'commander';
import type { Ubicacion } from '../core/config/ubicaciones.ts';
import { UsageError } from '../core/errors.ts';
import { projectPath } from '../core/paths.ts';
import { fechaCaracas } from '../core/time.ts';
import { EXTRACTION_DEFAULTS, extractInventario, extractVentas } from '../extractors/extract-run.ts';
import { createControlApi, type SyncJob, type SyncRunContext, type SyncRunner } from '../ops/control-api.ts';
import { lockedJob } from './job-lock.ts';
import { createDashboardMetrics } from '../ops/dashboard/metrics.ts';
import { createSampler } from '../ops/dashboard/sampler.ts';
import { createDashboardServer } from '../ops/dashboard/server.ts';
import { DEFAULT_SCHEDULE_FILE, loadScheduleFile } from '../ops/schedule-config.ts';
import type { CommandContext } from './context.ts';
import type { ProgramIo } from './program-io.ts';

function parseListenPort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65_535)
    throw new UsageError(`--port must be a TCP port (0: any free one), got "${value}"`);
  return port;
}

/**
 * A control-API run: the same functions as `fluxion extract`, one call per store (sharing the
 * run id, at most EXTRACTION_DEFAULTS.concurrency at once) so each store's result is reported
 * as soon as it ends.
 */
export function createSyncRunner(c: CommandContext): SyncRunner {
  // The job's lock (core/job-lock.ts) as `fluxion extract` takes it: a run asked here while a
  // scheduled container runs the same job ends at once, its error naming the other run.
  return (job, stores, ctx) => lockedJob(c, job, () => syncRun(c, job, stores, ctx));
}

async function syncRun(c: CommandContext, job: SyncJob, stores: Ubicacion[], ctx: SyncRunContext): Promise<void> {
  const deps = c.extractionDeps();
  const fecha = fechaCaracas(new Date());
  const queue = [...stores];
  const worker = async () => {
    for (let u: Ubicacion | undefined = queue.shift(); u; u = queue.shift()) {
      if (ctx.signal.aborted) return;
      ctx.onStoreStarted(u.id);
      const opts = { runId: ctx.runId, signal: ctx.signal };
      const outcomes =
        job === 'inventario' ? await extractInventario([u], deps, opts) : await extractVentas([u], fecha, 'VENTAS', deps, opts);
      for (const o of outcomes) ctx.onStoreFinished(o);
    }
  };
  await Promise.all(Array.from({ length: Math.min(EXTRACTION_DEFAULTS.concurrency, stores.length) }, worker));
}

export function registerDashboardCommand(program: Command, io: ProgramIo): void {
  program
    .command('dashboard')
    .description(
      'serve the lag dashboard (/), /api/lag, /api/stores, /metrics, /healthz and the control API (POST /etl/sync) until SIGTERM',
    )
    .option('--port <port>', 'TCP port (default FLUXION_DASHBOARD_PORT, 8080; 0: any free port)')
    .option('--host <address>', 'address to bind (default FLUXION_DASHBOARD_HOST, 127.0.0.1)')
    .option('--schedule <path>', 'schedule file that lag and missed polls are judged against', DEFAULT_SCHEDULE_FILE)
    .action(async (opts: { port?: string; host?: string; schedule: string }) => {
      const c = io.context();
      const settings = c.config.dashboard;
      const port = opts.port === undefined ? settings.port : parseListenPort(opts.port);
      const host = opts.host ?? settings.host;
      const schedule = loadScheduleFile(projectPath(opts.schedule));
      const stores = c.ubicaciones();
      const sampler = createSampler(
        {
          kafka: c.kafka(),
          pool: c.pool(),
          registry: c.registry(),
          logger: c.logger,
          topicPrefix: c.config.topics.prefix,
          stores,
          schedule: schedule.jobs,
        },
        { intervalMs: settings.sampleMs, historyMs: settings.historyMs, locale: c.config.locale },
      );
      const control = createControlApi({ token: settings.syncToken, stores: () => stores, run: createSyncRunner(c), logger: c.logger });
      const server = createDashboardServer({
        host,
        port,
        sampler,
        metrics: createDashboardMetrics(() => sampler.latest()),
        control,
        logger: c.logger,
        refreshSeconds: Math.max(5, Math.round(settings.sampleMs / 1000)),
        locale: c.config.locale,
      });
      const url = await server.listen();
      sampler.start();
      io.out(`dashboard: ${url}/`);
      io.out(`metrics: ${url}/metrics`);
      io.out(
        `control API: ${
          control.enabled ? `${url}/etl/sync (bearer token from FLUXION_SYNC_TOKEN)` : 'off (FLUXION_SYNC_TOKEN is not set)'
        }`,
      );
      const signal = await new Promise<string>((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
      });
      c.logger.info({ signal }, 'stopping on signal');
      await server.close();
      await control.stop();
      await sampler.stop();
      io.out('dashboard: stopped');
    });
}
