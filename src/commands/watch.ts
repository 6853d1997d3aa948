/**
 * `nixdock watch`: the daemon. Builds every image once, then rebuilds what each file change
 * affects, and serves the dashboard and the WebSocket event stream until SIGINT/SIGTERM.
 */
import type { Command } from 'commander';
import { Daemon } from '../daemon/daemon.js';
import { describeMessage } from '../daemon/describe.js';
import type { ServerMessage } from '../daemon/protocol.js';
import { openInBrowser } from '../daemon/open.js';
import { daemonInfoPath } from '../daemon/state-file.js';
import { NixdockError } from '../errors.js';
import { plainLine } from '../reporters/console.js';
import { interruptSignal } from './shared.js';

export interface WatchOptions {
  config?: string;
  host?: string;
  port?: number;
  json?: boolean;
  /** Open the dashboard in the browser once listening. */
  open?: boolean;
  /** Replace the project's persistent daemon token. */
  rotateToken?: boolean;
  /** Print the dashboard URL with its token even when stdout is not a terminal. */
  showToken?: boolean;
}

export function register(program: Command): void {
  program
    .command('watch')
    .description('Build all images, then rebuild on every change; serves a live dashboard and a WebSocket event stream')
    .option('-c, --config <file>', 'config file (default: search from the current directory)')
    .option('--host <address>', 'address to listen on (default: daemon.host of the config, 127.0.0.1)')
    .option('--port <port>', 'port to listen on; 0 picks a free one (default: daemon.port of the config, 7391)', parsePort)
    .option('--json', 'print one JSON object per line (events and daemon messages) on stdout')
    .option('--open', 'open the dashboard in the browser ($BROWSER, else xdg-open / open)')
    .option('--rotate-token', 'make a new daemon token (the token otherwise stays the same across restarts, so open dashboards reconnect)')
    .option('--show-token', 'print the dashboard URL with its token even when stdout is not a terminal (CI logs keep it)')
    .action(async (opts: WatchOptions) => {
      await watch(opts);
    });
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new NixdockError('INPUT_INVALID', `--port must be a TCP port number`, { found: value, expected: 'an integer from 0 to 65535' });
  }
  return port;
}

/** Runs the daemon until the first SIGINT/SIGTERM (a second one exits at once). */
export async function watch(opts: WatchOptions): Promise<void> {
  const print = opts.json
    ? (message: ServerMessage) => process.stdout.write(JSON.stringify(message) + '\n')
    : (message: ServerMessage) => {
        const line = message.type === 'event' ? plainLine(message.event) : describeMessage(message);
        if (line) process.stdout.write(line + '\n');
      };
  const { signal, dispose } = interruptSignal();
  try {
    const daemon = await Daemon.start({ cwd: process.cwd(), configFile: opts.config, host: opts.host, port: opts.port, rotateToken: opts.rotateToken, onMessage: print });
    daemon.bus.on((event) => print({ type: 'event', event }));
    const info = daemon.info!;
    // The token grants control of the daemon: printed where a person reads it (a terminal), not
    // into logs a CI job or a supervisor keeps, unless asked. daemon.json (0600) always has it.
    const dashboard = opts.showToken || process.stdout.isTTY ? daemon.dashboardUrl() : info.url;
    if (opts.json) {
      process.stdout.write(JSON.stringify({ type: 'listening', url: info.url, dashboard, wsUrl: info.wsUrl, pid: info.pid }) + '\n');
    } else {
      const where = dashboard === info.url ? `  (token: in ${daemonInfoPath(daemon.cacheDir)}, or run with --show-token)\n` : '';
      process.stdout.write(`nixdock daemon (pid ${info.pid}) watching ${daemon.images.length} image(s)\n  dashboard: ${dashboard}\n${where}  events:    nixdock events\n`);
    }
    if (daemon.portNote) process.stderr.write(`nixdock watch: ${daemon.portNote} (written to ${daemonInfoPath(daemon.cacheDir)})\n`);
    if (opts.open) {
      const problem = await openInBrowser(daemon.dashboardUrl());
      if (problem) process.stderr.write(`nixdock watch: --open: ${problem}\n`);
    }
    daemon.buildAll('startup');
    if (!signal.aborted) await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    await daemon.stop();
    if (!opts.json) process.stdout.write('nixdock daemon stopped\n');
  } finally {
    dispose();
  }
}
