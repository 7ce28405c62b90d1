/**
 * `fluxion`: the CLI wiring. Parses arguments, builds the command context, maps errors to
 * exit codes (0 success, 1 a store or record failed, 2 bad usage or configuration).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { loadSubjectSchemas } from '../core/avro/schemas.ts';
import { ConfigError, FluxionError, errorMessage } from '../core/errors.ts';
import { scrubSecrets } from '../core/logger.ts';
import { MIGRATIONS_DIR, PROJECT_ROOT } from '../core/paths.ts';
import { topicSpecs } from '../core/topics.ts';
import { migrate } from '../ops/migrate.ts';
import { checkAgainstRegistry, compareWithPrevious, loadCommittedSchemas, registerSchemas, type CheckProblem } from '../ops/schemas.ts';
import { ensureTopics } from '../ops/topics-ensure.ts';
import { syncUbicaciones } from '../ops/ubicaciones-sync.ts';
import { registerAbcCommand } from './abc.ts';
import { registerAlertasCommand } from './alertas.ts';
import { registerDashboardCommand } from './dashboard.ts';
import { registerDemoCommand } from './demo.ts';
import { createContext, type CommandContext } from './context.ts';
import { registerDoctorCommand } from './doctor.ts';
import { registerExtractCommands } from './extract.ts';
import { registerNotifyCommand } from './notify.ts';
import { registerProcessCommand } from './process.ts';
import { registerProductosCommand } from './productos.ts';
import { registerQuarantineCommands } from './quarantine.ts';
import type { ProgramIo } from './program-io.ts';
import { registerScheduleCommand } from './schedule.ts';
import { registerSimulateCommands } from './simulate.ts';
import { registerReplayCommand } from './replay.ts';
import { registerSinkCommand } from './sink.ts';

export interface MainOptions {
  env?: NodeJS.ProcessEnv;
  out?: (line: string) => void;
  err?: (line: string) => void;
}

/** package.json's version: the image copies package.json beside the code. */
export const VERSION = (JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** The command tree; exported so tests can check that configuration names real commands. */
export function createProgram(io: ProgramIo): Command {
  const { out, err } = io;
  const context = io.context;
  const program = new Command()
    .name('fluxion')
    .description('Fluxion Stream: POS inventory and sales -> Kafka -> PostgreSQL, for La Granja')
    .version(VERSION, '-V, --version', 'print the version')
    .exitOverride()
    .configureOutput({ writeOut: (s) => out(s.trimEnd()), writeErr: (s) => err(s.trimEnd()) })
    .showHelpAfterError();

  program
    .command('migrate')
    .description('apply sql/postgres migrations (each in a transaction, checksummed) and sync the ubicaciones table')
    .action(async () => {
      const c = context();
      const ubicaciones = c.ubicaciones();
      const result = await migrate(c.pool(), MIGRATIONS_DIR, c.logger);
      const synced = await syncUbicaciones(c.pool(), ubicaciones);
      for (const name of result.applied) out(`applied   ${name}`);
      out(
        `migrations: ${result.applied.length} applied, ${result.alreadyApplied.length} already applied; ubicaciones: ${synced} ` +
          `inserted or changed of ${ubicaciones.length}`,
      );
    });

  const schemas = program.command('schemas').description('Avro schemas in the schema registry');
  schemas
    .command('register')
    .description('register every schemas/*-value.avsc under <topic>-value (TopicNameStrategy), compatibility BACKWARD')
    .action(async () => {
      const c = context();
      const registered = await registerSchemas(c.registry(), loadSubjectSchemas(), c.config.topics.prefix, c.logger);
      for (const r of registered) out(`${r.subject}\tid ${r.id}`);
      out(`schemas: ${registered.length} registered at ${c.registry().url}`);
    });
  schemas
    .command('check')
    .description('fail when a schema is not BACKWARD-compatible with the registered or the committed version')
    .option('--base <rev>', 'git revision holding the previous schemas', 'HEAD')
    .option('--no-registry', 'check only against git (no registry needed)')
    .option('--no-git', 'check only against the registry')
    .action(async (opts: { base: string; registry: boolean; git: boolean }) => {
      const c = context();
      const current = loadSubjectSchemas();
      const problems: CheckProblem[] = [];
      if (opts.git) {
        const previous = loadCommittedSchemas(opts.base);
        if (previous) problems.push(...compareWithPrevious(current, previous, `git ${opts.base}`));
        else out(`no schemas at git ${opts.base}: nothing to compare with`);
      }
      if (opts.registry) problems.push(...(await checkAgainstRegistry(c.registry(), current, c.config.topics.prefix)));
      for (const p of problems) out(`INCOMPATIBLE ${p.subject} against ${p.against}: ${p.reason}`);
      out(`schemas: ${current.length} checked, ${problems.length} incompatible`);
      if (problems.length) io.fail(1);
    });

  const topics = program.command('topics').description('Kafka topics');
  topics
    .command('ensure')
    .description('create every topic with its partitions, retention and compaction; set drifted configs back')
    .action(async () => {
      const c = context();
      const admin = await c.kafka().admin();
      try {
        const actions = await ensureTopics(admin, topicSpecs(c.config.topics.prefix), c.config.topics.partitions, c.logger);
        for (const a of actions)
          out(`${a.action.padEnd(9)} ${a.topic}${a.action === 'updated' ? ` ${Object.keys(a.changed).join(',')}` : ''}`);
        const count = (kind: string) => actions.filter((a) => a.action === kind).length;
        out(`topics: ${count('created')} created, ${count('updated')} updated, ${count('unchanged')} unchanged`);
      } finally {
        await admin.disconnect();
      }
    });

  registerExtractCommands(program, io);
  registerSimulateCommands(program, io);
  registerScheduleCommand(program, io);
  registerProcessCommand(program, io);
  registerSinkCommand(program, io);
  registerReplayCommand(program, io);
  registerDemoCommand(program, io);
  registerNotifyCommand(program, io);
  registerQuarantineCommands(program, io);
  registerAlertasCommand(program, io);
  registerAbcCommand(program, io);
  registerProductosCommand(program, io);
  registerDashboardCommand(program, io);
  registerDoctorCommand(program, io);
  return program;
}

export async function main(argv: string[], options: MainOptions = {}): Promise<number> {
  const env = options.env ?? process.env;
  const out = options.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const err = options.err ?? ((line: string) => process.stderr.write(`${line}\n`));
  let exitCode = 0;
  let ctx: CommandContext | undefined;
  const program = createProgram({
    context: () => (ctx ??= createContext(env, out)),
    out,
    err,
    fail: (code) => {
      exitCode = Math.max(exitCode, code);
    },
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    exitCode = reportError(e, err);
  } finally {
    await ctx?.close().catch(() => undefined);
  }
  return exitCode;
}

function reportError(e: unknown, err: (line: string) => void): number {
  if (e instanceof CommanderError) {
    // --help and --version end here too, with exit code 0.
    return e.exitCode === 0 ? 0 : 2;
  }
  if (e instanceof ConfigError) {
    err(`fluxion: ${e.message}`);
    return 2;
  }
  if (e instanceof FluxionError) {
    err(`fluxion: ${scrubSecrets(e.message)}`);
    return e.exitCode;
  }
  err(`fluxion: unexpected error: ${scrubSecrets(errorMessage(e))}`);
  if (e instanceof Error && e.stack) err(scrubSecrets(e.stack));
  return 1;
}
