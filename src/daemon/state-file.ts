/**
 * <cacheDir>/daemon.json: how clients find a running daemon (url, token) and how a second daemon
 * on the same project notices the first. Written 0600 because the token inside grants control.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { NixdockError } from '../errors.js';
import { processExists } from '../util/process.js';

export interface DaemonInfo {
  pid: number;
  host: string;
  port: number;
  /** http://host:port/ — the dashboard. */
  url: string;
  /** ws://host:port/ws */
  wsUrl: string;
  token: string;
  protocol: number;
  startedAt: number;
}

export function daemonInfoPath(cacheDir: string): string {
  return join(cacheDir, 'daemon.json');
}

/** Atomic write (temp file + rename), readable only by the owner. */
export function writeDaemonInfo(cacheDir: string, info: DaemonInfo): void {
  mkdirSync(cacheDir, { recursive: true });
  const file = daemonInfoPath(cacheDir);
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify(info, null, 2) + '\n', { mode: 0o600 });
  renameSync(temp, file);
}

export function readDaemonInfo(cacheDir: string): DaemonInfo | undefined {
  let text: string;
  try {
    text = readFileSync(daemonInfoPath(cacheDir), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const info = JSON.parse(text) as DaemonInfo;
    return typeof info.port === 'number' && typeof info.token === 'string' ? info : undefined;
  } catch {
    return undefined; // half-written by hand or by a crashed writer: treat as absent
  }
}

/** Removes daemon.json only when it still describes this process (a newer daemon may own it). */
export function removeDaemonInfo(cacheDir: string, pid = process.pid): void {
  if (readDaemonInfo(cacheDir)?.pid === pid) rmSync(daemonInfoPath(cacheDir), { force: true });
}

function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.setTimeout(1000);
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('timeout', () => { socket.destroy(); resolve(false); });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Refuses to start when daemon.json names a live process that still listens on its port.
 * A stale file (crashed daemon, reused pid without the port) is ignored and later overwritten.
 */
export async function assertNoLiveDaemon(cacheDir: string): Promise<void> {
  const info = readDaemonInfo(cacheDir);
  if (!info || info.pid === process.pid || !processExists(info.pid)) return;
  if (!(await portOpen(info.host, info.port))) return;
  throw new NixdockError('DAEMON', `A nixdock daemon is already running for this project at ${info.url} (pid ${info.pid})`, {
    location: { file: daemonInfoPath(cacheDir) },
    hint: `Open ${info.url} or follow it with \`nixdock events\`; stop it (kill ${info.pid}) before starting another.`,
  });
}
