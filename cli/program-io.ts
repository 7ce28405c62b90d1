import type { CommandContext } from './context.ts';

/** What a command needs from the process around it. */
export interface ProgramIo {
  context(): CommandContext;
  out(line: string): void;
  err(line: string): void;
  fail(exitCode: number): void;
}
