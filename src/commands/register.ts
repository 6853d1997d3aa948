/**
 * Every `nixdock` subcommand registers itself here. A command module exports
 * `register(program)`, which declares its options and calls one async function that does
 * the work; src/cli.ts owns the error boundary and exit codes.
 *
 * Only the module of the command being run is loaded (all of them for help, `help` and
 * unknown names): `nixdock build` need not load the daemon, the registry client or the
 * dashboard, and start-up time is part of every no-change rebuild.
 */
import type { Command } from 'commander';

type CommandModule = { register(program: Command): void };

/** In the order `nixdock --help` lists them. */
const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  init: () => import('./init.js'),
  build: () => import('./build.js'),
  stream: () => import('./stream.js'),
  merge: () => import('./merge.js'),
  inspect: () => import('./inspect.js'),
  push: () => import('./push.js'),
  pull: () => import('./pull.js'),
  watch: () => import('./watch.js'),
  events: () => import('./events.js'),
  gc: () => import('./gc.js'),
  export: () => import('./export.js'),
  schema: () => import('./schema.js'),
};

/** Registers the command named first in `args` (the words after `nixdock`), or every command when there is none. */
export async function registerCommands(program: Command, args: string[]): Promise<void> {
  const first = args.find((arg) => !arg.startsWith('-'));
  const loaders = first !== undefined && Object.hasOwn(COMMANDS, first) ? [COMMANDS[first]!] : Object.values(COMMANDS);
  for (const module of await Promise.all(loaders.map((load) => load()))) module.register(program);
}
