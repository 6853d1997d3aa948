/**
 * Opening the index database: pragmas, migrations, and recovery from a database that cannot be
 * trusted. The index is a cache, so the answer to corruption (or a schema from a newer nixdock)
 * is always the same: move the file aside where a human can look at it, and start empty.
 */
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { NixdockError, toNixdockError } from '../errors.js';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.js';

export type Db = Database.Database;

export const INDEX_FILE = 'index.sqlite';

/**
 * How long a writer waits for another process (a CLI build beside the daemon) to release the
 * write lock before SQLITE_BUSY. Index transactions are short, so this is only reached when a
 * process is stuck.
 */
const BUSY_TIMEOUT_MS = 10_000;

/** Why a database was set aside; becomes part of the moved file's name and of the warning. */
type Distrust =
  | { kind: 'corrupt'; detail: string }
  | { kind: 'newer'; version: number };

export interface OpenOptions {
  /** Told, in one human sentence, when a database was moved aside and a fresh one created. */
  onRecovered?: (message: string) => void;
}

/** Opens (creating, migrating or recovering as needed) `<cacheDir>/index.sqlite`. */
export function openDatabase(cacheDir: string, opts: OpenOptions = {}): Db {
  const file = join(cacheDir, INDEX_FILE);
  ensureDir(cacheDir);
  const first = tryOpen(file);
  if ('db' in first) return first.db;
  const aside = moveAside(file, first.distrust);
  opts.onRecovered?.(recoveryMessage(file, aside, first.distrust));
  const second = tryOpen(file);
  if ('db' in second) return second.db;
  // A database we just created cannot be corrupt; if it is, the disk or SQLite is the problem.
  throw indexError(file, new Error(describe(second.distrust)));
}

function ensureDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw indexError(dir, err);
  }
}

/** Either a ready database, or the reason it cannot be used (already closed). */
function tryOpen(file: string): { db: Db } | { distrust: Distrust } {
  let db: Db | undefined;
  try {
    db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
    const distrust = checkDatabase(db);
    if (distrust) {
      db.close();
      return { distrust };
    }
    configure(db);
    migrate(db);
    return { db };
  } catch (err) {
    db?.close();
    if (isCorruption(err)) return { distrust: { kind: 'corrupt', detail: (err as Error).message } };
    throw indexError(file, err);
  }
}

/** Reads the header and checks page structure; garbage or truncated files fail here. */
function checkDatabase(db: Db): Distrust | undefined {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) return { kind: 'newer', version };
  const problems = db.pragma('quick_check', { simple: false }) as Array<{ quick_check: string }>;
  const findings = problems
    .flatMap((row) => row.quick_check.split('\n'))
    .filter((line) => line !== 'ok' && !line.startsWith('*** in database'));
  if (findings.length > 0) return { kind: 'corrupt', detail: findings.slice(0, 3).join('; ') };
  return undefined;
}

function configure(db: Db): void {
  // WAL lets readers (the daemon's snapshot, `inspect`) run beside one writer; NORMAL sync is
  // still crash-safe for a killed process (only an OS crash can lose the last commits).
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
}

/** Runs missing migrations. Two processes opening a new index at once: the second sees the first's work. */
function migrate(db: Db): void {
  const step = db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]!);
    // PRAGMA cannot take a bound parameter; SCHEMA_VERSION is a number we own.
    if (version < SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
  });
  step.immediate();
}

function isCorruption(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && (code === 'SQLITE_NOTADB' || code.startsWith('SQLITE_CORRUPT'));
}

/** Renames the database and its WAL/shm companions; a stale WAL must never meet a fresh database. */
function moveAside(file: string, distrust: Distrust): string {
  const suffix = distrust.kind === 'newer'
    ? `newer-${distrust.version}`
    : `corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  const aside = `${file}.${suffix}`;
  try {
    for (const companion of ['', '-wal', '-shm']) {
      if (existsSync(file + companion)) renameSync(file + companion, aside + companion);
    }
  } catch (err) {
    throw indexError(file, err);
  }
  return aside;
}

function describe(distrust: Distrust): string {
  return distrust.kind === 'newer'
    ? `its schema version ${distrust.version} is newer than this nixdock knows (${SCHEMA_VERSION})`
    : `it is damaged (${distrust.detail})`;
}

function recoveryMessage(file: string, aside: string, distrust: Distrust): string {
  return `The layer index ${file} could not be used: ${describe(distrust)}. ` +
    `It was moved to ${aside} and a new, empty index was created; layers will be rebuilt as needed.`;
}

/** An index failure that recovery cannot fix (permissions, disk full, a stuck lock holder). */
export function indexError(file: string, err: unknown): NixdockError {
  const code = (err as { code?: unknown })?.code;
  const normalised = toNixdockError(code === 'SQLITE_FULL' ? Object.assign(new Error(String(err)), { code: 'ENOSPC', path: file }) : err);
  if (normalised.code === 'DISK_FULL') return normalised;
  return new NixdockError('INDEX', `The layer index ${file} cannot be used: ${(err as Error)?.message ?? String(err)}`, {
    location: { file },
    found: typeof code === 'string' ? code : undefined,
    hint: code === 'SQLITE_BUSY'
      ? 'Another nixdock process holds the index lock; wait for it to finish or stop it.'
      : 'Check that the cache directory is writable; deleting the index file is safe (it is only a cache).',
    cause: err,
  });
}
