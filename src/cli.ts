#!/usr/bin/env node
/**
 * The `nixdock` command line: argument parsing only. Each command does its work in one async
 * function; errors come back here and are mapped to exit codes in one place.
 */
import { Command, CommanderError } from 'commander';
import { registerCommands } from './commands/register.js';
import type { JsonFailure } from './commands/json.js';
import { ExitCode, formatError, toNixdockError } from './errors.js';
import { VERSION } from './version.js';

export async function main(argv: string[]): Promise<number> {
  const program = new Command('nixdock')
    .description('Build Docker/OCI images from Nix store closures: fast, cached, reproducible.')
    .version(VERSION)
    .showSuggestionAfterError(true)
    .exitOverride();
  await registerCommands(program, argv.slice(2));
  try {
    await program.parseAsync(argv);
    return process.exitCode === undefined ? ExitCode.OK : Number(process.exitCode);
  } catch (err) {
    if (isBrokenPipe(err)) return ExitCode.OK;
    if (err instanceof CommanderError) {
      // --help and --version are "errors" to commander with exit code 0.
      return err.exitCode === 0 ? ExitCode.OK : ExitCode.BAD_INPUT;
    }
    const error = toNixdockError(err);
    if (program.opts().json || process.argv.includes('--json')) {
      process.stdout.write(JSON.stringify({ ok: false, error: error.toJSON() } satisfies JsonFailure) + '\n');
    }
    process.stderr.write(formatError(error) + '\n');
    if (error.code === 'INTERNAL' && process.env.NIXDOCK_DEBUG) console.error(err);
    return error.exitCode;
  }
}

/**
 * The reader of stdout went away (`nixdock stream … | head -c 1000`): like other Unix tools, stop
 * quietly and successfully. The write that failed (a stream, or a worker writing fd 1) ends the
 * command with EPIPE, seen in main(); the stream's own 'error' event must not crash the process.
 */
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});

/** EPIPE anywhere in the error's cause chain, unless a command already gave it a meaning (a registry, podman load). */
function isBrokenPipe(err: unknown): boolean {
  for (let e = err as (NodeJS.ErrnoException & { cause?: unknown; code?: string }) | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.code === 'EPIPE') return true;
    if (e.code !== undefined && e.code !== 'INTERNAL' && e.code !== 'ABORTED' && !/^E[A-Z]+$/.test(e.code)) return false;
  }
  return false;
}

main(process.argv).then((code) => {
  process.exitCode = code;
});
