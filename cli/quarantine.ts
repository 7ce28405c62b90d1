/** `fluxion quarantine list|release`: see ops/quarantine.ts. */
import type { Command } from 'commander';
import { listQuarantine, releaseQuarantined, type QuarantineEntry } from '../ops/quarantine.ts';
import type { ProgramIo } from './program-io.ts';

const OPEN = new Set(['QUARANTINED', 'RELEASE_REQUESTED']);

function row(q: QuarantineEntry): string {
  return [
    q.snapshot_id,
    q.ubicacion_id.padEnd(12),
    q.taken_at.toISOString(),
    q.status.padEnd(17),
    String(q.row_count).padStart(7),
    q.reason + (q.note ? ` [${q.note}]` : ''),
  ].join('  ');
}

export function registerQuarantineCommands(program: Command, io: ProgramIo): void {
  const quarantine = program
    .command('quarantine')
    .description('snapshots the differ refused to apply (empty, too many products dropping to 0, or older than the one applied)');
  quarantine
    .command('list')
    .description('snapshots waiting for a decision (QUARANTINED, RELEASE_REQUESTED); --all adds RELEASED, SUPERSEDED and STALE')
    .option('--all', 'every quarantine ever recorded')
    .option('--json', 'one JSON object per line')
    .action(async (opts: { all?: boolean; json?: boolean }) => {
      const c = io.context();
      const all = await listQuarantine({
        kafka: c.kafka(),
        registry: c.registry(),
        logger: c.logger,
        topicPrefix: c.config.topics.prefix,
      });
      const entries = all.filter((q) => opts.all || OPEN.has(q.status));
      if (opts.json) {
        for (const q of entries) io.out(JSON.stringify(q));
        return;
      }
      io.out(
        ['snapshot_id'.padEnd(36), 'ubicacion'.padEnd(12), 'taken_at'.padEnd(24), 'status'.padEnd(17), '   rows', 'reason'].join('  '),
      );
      for (const q of entries) io.out(row(q));
      io.out(`quarantine: ${entries.length} ${opts.all ? 'recorded' : 'waiting for a decision'}`);
      // Stale snapshots wait for nobody, but an operator must hear of them: an overlapping run or a POS clock set back.
      const stale = all.filter((q) => q.status === 'STALE').length;
      if (!opts.all && stale > 0)
        io.out(`quarantine: ${stale} stale snapshot(s) recorded (older than the one applied, never applied): see --all`);
    });
  quarantine
    .command('release')
    .description('apply a quarantined snapshot after all (sends its chunks again, marked as released)')
    .argument('<snapshot_id>', 'from `fluxion quarantine list`')
    .option('--note <text>', 'who releases it and why (kept with the quarantine record)', 'released by an operator')
    .action(async (snapshotId: string, opts: { note: string }) => {
      const c = io.context();
      const { entry, chunks } = await releaseQuarantined(
        { kafka: c.kafka(), registry: c.registry(), logger: c.logger, topicPrefix: c.config.topics.prefix },
        snapshotId,
        opts.note,
      );
      io.out(
        `quarantine: snapshot ${snapshotId} of ${entry.ubicacion_id} released (${chunks} chunks sent again); the differ applies it ` +
          `unless a newer snapshot of the store was applied`,
      );
    });
}
