/**
 * One daemon per project: an exclusive lock on <cacheDir>/daemon.lock held for the daemon's whole
 * life. The lock is SQLite's (an fcntl lock on the file, taken with BEGIN EXCLUSIVE and never
 * committed), so the kernel releases it when the process ends however it ends, even SIGKILL:
 * there is no stale lock to detect, and two daemons started at the same instant cannot both win
 * (daemon.json alone could not promise that: check-then-write races).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { NixdockError } from '../errors.js';
import { readDaemonInfo } from './state-file.js';

export interface DaemonLock {
  release(): void;
}

export function lockPath(cacheDir: string): string {
  return join(cacheDir, 'daemon.lock');
}

/** Takes the project's daemon lock now, or fails with DAEMON naming the daemon that holds it. */
export function acquireDaemonLock(cacheDir: string): DaemonLock {
  mkdirSync(cacheDir, { recursive: true });
  const db = new Database(lockPath(cacheDir), { timeout: 0 });
  try {
    db.exec('BEGIN EXCLUSIVE');
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code !== 'SQLITE_BUSY') throw err;
    const info = readDaemonInfo(cacheDir);
    throw new NixdockError('DAEMON', `A nixdock daemon is already running for this project${info ? ` at ${info.url} (pid ${info.pid})` : ''}`, {
      location: { file: lockPath(cacheDir) },
      found: 'the daemon lock held by another process',
      hint: info
        ? `Open ${info.url} or follow it with \`nixdock events\`; stop it (kill ${info.pid}) before starting another.`
        : 'Another daemon is starting for this project; follow it with `nixdock events`, or stop it before starting another.',
      cause: err,
    });
  }
  return { release: () => db.close() };
}
