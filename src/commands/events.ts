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
  /** Seconds --until-built waits at most. */
  timeout?: number;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('events')
    .description("Print the running daemon's events (JSON lines with --json); reconnects when the daemon restarts")
    .option('-c, --config <file>', 'config file (default: search from the current directory)')
    .option('--until-built <image>', 'exit once IMAGE is built from the current files: at once when it already is, else when its next build finishes; 0 if it succeeded, 1 if it failed')
    .option('--timeout <seconds>', 'with --until-built: give up after this long (exit code 124)', parseSeconds)
    .option('--json', 'print one JSON message per line on stdout')
    .action(async (opts: EventsOptions) => {
      process.exitCode = await events(opts);
    });
}

function parseSeconds(value: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new NixdockError('INPUT_INVALID', '--timeout must be a number of seconds', { location: { field: '--timeout' }, found: value, expected: 'a number > 0, e.g. 60 or 0.5' });
  }
  return seconds;
}

/**
 * The build result the first snapshot after `hello` already gives: the image is idle, its last
 * build finished, and no change is on its way (changesPending). Undefined: wait for events.
 */
function alreadyBuilt(snapshot: Extract<ServerMessage, { type: 'snapshot' }>, image: string): number | undefined {
  if (snapshot.changesPending !== false || snapshot.configError) return undefined;
  const state = snapshot.images.find((i) => i.name === image);
  if (state?.state !== 'idle') return undefined;
  if (state.lastBuild?.status === 'succeeded') return ExitCode.OK;
  if (state.lastBuild?.status === 'failed') return ExitCode.BUILD_FAILED;
  return undefined;
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
  let firstSnapshot = false;
  const onMessage = (message: ServerMessage) => {
    print(message);
    if (!opts.untilBuilt) return;
    if (message.type === 'hello') firstSnapshot = true;
    if (message.type === 'hello' && !message.images.includes(opts.untilBuilt)) {
      exitCode = ExitCode.BAD_INPUT;
      process.stderr.write(`error[IMAGE_NOT_FOUND]: the daemon has no image "${opts.untilBuilt}" (it has: ${message.images.join(', ') || 'none'})\n`);
      stop.abort();
    }
    // Only the snapshot right after hello: later ones (after a config reload) come before the builds they cause are queued.
    if (message.type === 'snapshot' && firstSnapshot) {
      firstSnapshot = false;
      const built = alreadyBuilt(message, opts.untilBuilt);
      if (built !== undefined) {
        exitCode = built;
        stop.abort();
      }
    }
    if (message.type === 'event' && message.event.image === opts.untilBuilt) {
      if (message.event.type === 'build:succeeded') stop.abort();
      if (message.event.type === 'build:failed') {
        exitCode = ExitCode.BUILD_FAILED;
        stop.abort();
      }
    }
  };
  let timedOut = false;
  const timer = opts.untilBuilt && opts.timeout !== undefined
    ? setTimeout(() => { timedOut = true; stop.abort(); }, opts.timeout * 1000)
    : undefined;
  try {
    await followDaemon({ cacheDir, signal: stop.signal, onMessage, onStatus: (s) => process.stderr.write(`nixdock events: ${s}\n`) });
  } finally {
    clearTimeout(timer);
    dispose();
  }
  if (interrupted.aborted && opts.untilBuilt) throw new NixdockError('ABORTED', `Stopped before ${opts.untilBuilt} finished building`);
  if (timedOut) {
    throw new NixdockError('TIMEOUT', `No build of ${opts.untilBuilt} finished within ${opts.timeout} s`, {
      hint: 'Is `nixdock watch` running for this project (`nixdock events` shows what it does)? Raise --timeout for long Nix builds.',
    });
  }
  return exitCode;
}
