/**
 * Every `nixdock` subcommand registers itself here. A command module exports
 * `register(program)`, which declares its options and calls one async function that does
 * the work; src/cli.ts owns the error boundary and exit codes.
 */
import type { Command } from 'commander';
import { register as registerPush } from './push.js';
import { register as registerPull } from './pull.js';
import { register as registerGc } from './gc.js';
import { register as registerWatch } from './watch.js';
import { register as registerEvents } from './events.js';
import { register as registerExport } from './export.js';
import { register as registerSchema } from './schema.js';
import { register as registerBuild } from './build.js';
import { register as registerStream } from './stream.js';
import { register as registerInspect } from './inspect.js';

export function registerCommands(program: Command): void {
  registerBuild(program);
  registerStream(program);
  registerInspect(program);
  registerPush(program);
  registerPull(program);
  registerWatch(program);
  registerEvents(program);
  registerGc(program);
  registerExport(program);
  registerSchema(program);
}
