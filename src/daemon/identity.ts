/**
 * What stays the same across restarts of a project's daemon: its token and the port it last
 * listened on, in <cacheDir>/daemon-identity.json (0600: the token grants control of the daemon).
 *
 * An open dashboard tab reconnects to the same URL with the token it already has, so both must
 * survive a restart: a fresh token each start left tabs "reconnecting…" forever. `--rotate-token`
 * makes a new one (every open tab and script then needs the new URL).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface DaemonIdentity {
  token: string;
  /** The port the daemon last listened on, tried first when the configured one is taken or 0. */
  port?: number;
}

const TOKEN = /^[A-Za-z0-9_-]{32,128}$/;

export function identityPath(cacheDir: string): string {
  return join(cacheDir, 'daemon-identity.json');
}

/** The project's identity; a new token when there is none, it is unreadable, or `rotate` is set. */
export function loadIdentity(cacheDir: string, rotate = false): DaemonIdentity {
  const stored = rotate ? undefined : readIdentity(cacheDir);
  if (stored) return stored;
  const identity = { token: randomBytes(24).toString('base64url') };
  saveIdentity(cacheDir, identity);
  return identity;
}

export function saveIdentity(cacheDir: string, identity: DaemonIdentity): void {
  mkdirSync(cacheDir, { recursive: true });
  const file = identityPath(cacheDir);
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify(identity, null, 2) + '\n', { mode: 0o600 });
  chmodSync(temp, 0o600); // the umask cannot widen it, but a reused temp name could be wider
  renameSync(temp, file);
}

function readIdentity(cacheDir: string): DaemonIdentity | undefined {
  try {
    const value = JSON.parse(readFileSync(identityPath(cacheDir), 'utf8')) as Partial<DaemonIdentity>;
    if (typeof value.token !== 'string' || !TOKEN.test(value.token)) return undefined;
    const port = Number.isInteger(value.port) && value.port! > 0 && value.port! < 65536 ? value.port : undefined;
    return { token: value.token, ...(port !== undefined && { port }) };
  } catch {
    return undefined;
  }
}
