/**
 * Every `nixdock` subcommand registers itself here. A command module exports
 * `register(program)`, which declares its options and calls one async function that does
 * the work; src/cli.ts owns the error boundary and exit codes.
 */
import type { Command } from 'commander';

export function registerCommands(program: Command): void {
  void program;
}
