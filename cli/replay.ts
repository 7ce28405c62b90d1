/**
 * `fluxion replay historico [--from TS] [--to TS]`: rebuilds inventario_historico from
 * pos.inventario.changes into a shadow table and swaps it in (sinks/historico-replay.ts).
 * Ctrl-C cancels and leaves the live table untouched (exit 130). A log that does not cover
 * the live table (a recreated or trimmed topic) refuses the replay, naming the gaps (exit 3,
 * EXIT_NOT_COVERED); --force replays anyway after saying how many rows go (docs/replay.md).
 */
import type { Command } from 'commander';
import { UsageError } from '../core/errors.ts';
import { createProgress } from '../core/progress.ts';
import { ReplayCancelled, replayHistorico } from '../sinks/historico-replay.ts';
import { parseInstant } from './abc.ts';
import type { ProgramIo } from './program-io.ts';

export function registerReplayCommand(program: Command, io: ProgramIo): void {
  program
    .command('replay')
    .description(
      'rebuild a table from the event log; `historico`: inventario_historico from pos.inventario.changes, swapped in atomically',
    )
    .argument('<what>', 'historico')
    .option(
      '--from <instant>',
      'keep the history before this instant and replay the events taken from it on (ISO 8601 with offset, e.g. 2026-11-01T00:00:00-04:00)',
    )
    .option('--to <instant>', 'replay only events taken before this instant and keep the history from it on')
    .option(
      '--group <id>',
      "the live sink's consumer group, whose position the replay catches up with (default <prefix>fluxion-sink-postgres)",
    )
    .option('--batch <n>', 'events per shadow-table transaction', '20000')
    .option(
      '--force',
      'replay even when the event log does not hold everything the live table was built from: the rows it cannot rebuild are deleted ' +
        '(their count is printed first)',
    )
    .action(async (what: string, opts: { from?: string; to?: string; group?: string; batch: string; force?: boolean }) => {
      if (what !== 'historico') throw new UsageError(`unknown replay "${what}": the only one is historico`);
      const from = opts.from === undefined ? undefined : parseInstant('--from', opts.from);
      const to = opts.to === undefined ? undefined : parseInstant('--to', opts.to);
      if (from && to && from >= to) throw new UsageError(`--from ${opts.from} must be before --to ${opts.to}`);
      const batchSize = Number(opts.batch);
      if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 1_000_000)
        throw new UsageError(`--batch must be a whole number from 1 to 1000000, got "${opts.batch}"`);
      const c = io.context();
      const controller = new AbortController();
      const cancel = () => controller.abort();
      process.once('SIGINT', cancel);
      process.once('SIGTERM', cancel);
      try {
        const r = await replayHistorico(
          { kafka: c.kafka(), registry: c.registry(), pool: c.pool(), logger: c.logger, topicPrefix: c.config.topics.prefix },
          {
            from,
            to,
            sinkGroup: opts.group ?? `${c.config.topics.prefix}fluxion-sink-postgres`,
            batchSize,
            signal: controller.signal,
            progress: (total) => createProgress({ label: 'replay historico', total, stream: process.stderr, logger: c.logger }),
            force: opts.force === true,
            onForced: (f) => {
              io.err(`replay historico --force: the event log does not hold everything inventario_historico was built from:`);
              for (const line of f.problems) io.err(`  - ${line}`);
              io.err(
                `replay historico --force: ${f.lostRows} of the ${f.liveRows} rows of inventario_historico will be lost (the rebuilt ` +
                  `table has ${f.rebuiltRows}); swapping it in`,
              );
            },
          },
        );
        const lost = r.lostRows > 0 ? `, ${r.lostRows} rows lost (--force)` : '';
        io.out(
          `replay historico: ${r.applied} events applied, ${r.skipped} skipped, ${r.keptRows} rows kept${lost}; inventario_historico ` +
            `now has ${r.rows} rows (${(r.durationMs / 1000).toFixed(1)} s)`,
        );
      } catch (err) {
        if (err instanceof ReplayCancelled) {
          io.err(err.message);
          process.exitCode = 130;
          return;
        }
        throw err;
      } finally {
        process.off('SIGINT', cancel);
        process.off('SIGTERM', cancel);
      }
    });
}
