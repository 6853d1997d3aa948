/**
 * `nixdock events`: follows the project's daemon and prints what it says, reconnecting when the
 * daemon restarts. `--until-built IMAGE` waits for the next build of IMAGE to finish and exits
 * with its result (0 succeeded, 1 failed) — for scripts and editor integrations.
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../config/load.js';
import { followDaemon } from '../daemon/client.js';
import { describeMessage } from '../daemon/describe.js';
import type { ServerMessage } from '../daemon/protocol.js';
import { daemonInfoPath } from '../daemon/state-file.js';
import { ExitCode, NixdockError } from '../errors.js';
import { interruptSignal } from './shared.js';

export interface EventsOptions {
  config?: string;
  untilBuilt?: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('events')
    .description("Print the running daemon's events (JSON lines with --json); reconnects when the daemon restarts")
    .option('-c, --config <file>', 'config file (default: search from the current directory)')
    .option('--until-built <image>', 'exit when the next build of IMAGE finishes: 0 if it succeeded, 1 if it failed')
    .option('--json', 'print one JSON message per line on stdout')
    .action(async (opts: EventsOptions) => {
      process.exitCode = await events(opts);
    });
}

/**
 * The cache directory holds daemon.json. A config that does not load right now (mid-edit) must not
 * stop us from following the daemon that is reporting exactly that error, so fall back to the default.
 */
async function cacheDirOf(opts: EventsOptions): Promise<string> {
  try {
    return (await loadConfig({ cwd: process.cwd(), configFile: opts.config })).cacheDir;
  } catch (err) {
    const fallback = join(process.cwd(), '.nixdock');
    if (existsSync(daemonInfoPath(fallback))) return fallback;
    throw err;
  }
}

/** Follows the daemon until interrupted or, with --until-built, until that build ends. Returns the exit code. */
export async function events(opts: EventsOptions): Promise<number> {
  const cacheDir = await cacheDirOf(opts);
  const { signal: interrupted, dispose } = interruptSignal();
  const stop = new AbortController();
  interrupted.addEventListener('abort', () => stop.abort(), { once: true });
  let exitCode: number = ExitCode.OK;
  const print = (message: ServerMessage) => {
    if (opts.json) process.stdout.write(JSON.stringify(message) + '\n');
    else {
      const line = describeMessage(message);
      if (line) process.stdout.write(line + '\n');
    }
  };
  const onMessage = (message: ServerMessage) => {
    print(message);
    if (!opts.untilBuilt) return;
    if (message.type === 'hello' && !message.images.includes(opts.untilBuilt)) {
      exitCode = ExitCode.BAD_INPUT;
      process.stderr.write(`error[IMAGE_NOT_FOUND]: the daemon has no image "${opts.untilBuilt}" (it has: ${message.images.join(', ') || 'none'})\n`);
      stop.abort();
    }
    if (message.type === 'event' && message.event.image === opts.untilBuilt) {
      if (message.event.type === 'build:succeeded') stop.abort();
      if (message.event.type === 'build:failed') {
        exitCode = ExitCode.BUILD_FAILED;
        stop.abort();
      }
    }
  };
  try {
    await followDaemon({ cacheDir, signal: stop.signal, onMessage, onStatus: (s) => process.stderr.write(`nixdock events: ${s}\n`) });
  } finally {
    dispose();
  }
  if (interrupted.aborted && opts.untilBuilt) throw new NixdockError('ABORTED', `Stopped before ${opts.untilBuilt} finished building`);
  return exitCode;
}
