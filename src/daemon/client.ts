/**
 * A reconnecting client of a project's daemon, as `nixdock events` (and editor integrations)
 * use it. It re-reads <cacheDir>/daemon.json before each attempt, because a restarted daemon
 * has a new port and token.
 */
import WebSocket from 'ws';
import { readDaemonInfo } from './state-file.js';
import type { ServerMessage } from './protocol.js';

export interface FollowOptions {
  cacheDir: string;
  onMessage: (message: ServerMessage) => void;
  /** Connection news for humans: connected, lost, waiting. */
  onStatus?: (status: string) => void;
  /** Stops following (closes the socket, cancels the retry timer). */
  signal: AbortSignal;
  /** Backoff bounds; defaults 200 ms doubling up to 5 s. */
  minDelayMs?: number;
  maxDelayMs?: number;
}

/** Connects once; resolves when the connection closes (or could not be made). Returns whether it was ever open. */
function connectOnce(options: FollowOptions): Promise<boolean> {
  const info = readDaemonInfo(options.cacheDir);
  if (!info) return Promise.resolve(false);
  return new Promise((resolve) => {
    let opened = false;
    const ws = new WebSocket(info.wsUrl, { headers: { Authorization: `Bearer ${info.token}` } });
    const abort = () => ws.terminate();
    options.signal.addEventListener('abort', abort, { once: true });
    ws.on('open', () => {
      opened = true;
      options.onStatus?.(`connected to the nixdock daemon at ${info.url} (pid ${info.pid})`);
    });
    ws.on('message', (data) => {
      try {
        options.onMessage(JSON.parse(String(data)) as ServerMessage);
      } catch {
        // a message we cannot parse is skipped; the stream goes on
      }
    });
    ws.on('error', () => undefined); // 'close' follows and decides
    ws.on('close', () => {
      options.signal.removeEventListener('abort', abort);
      resolve(opened);
    });
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Follows the daemon until the signal fires, reconnecting with backoff whenever it goes away. */
export async function followDaemon(options: FollowOptions): Promise<void> {
  const min = options.minDelayMs ?? 200;
  const max = options.maxDelayMs ?? 5000;
  let delay = min;
  let waitingSaid = false;
  while (!options.signal.aborted) {
    const wasOpen = await connectOnce(options);
    if (options.signal.aborted) return;
    if (wasOpen) {
      delay = min;
      waitingSaid = false;
      options.onStatus?.('connection to the daemon lost; reconnecting');
    } else if (!waitingSaid) {
      waitingSaid = true;
      options.onStatus?.('waiting for a nixdock daemon (start one with `nixdock watch`)');
    }
    await sleep(delay, options.signal);
    delay = Math.min(delay * 2, max);
  }
}
