/**
 * dockerTools' includeNixDB: a Nix database in the image root that registers the store paths the
 * image carries, so `nix-store --verify`, `nix path-info` and the garbage collector inside the
 * container see them as valid, plus one gcroot per `contents` path under
 * /nix/var/nix/gcroots/docker/.
 *
 * As nixpkgs' mkDbExtraCommand does, Nix itself writes the database (`nix-store --load-db` into a
 * store rooted in a scratch directory), from a registration in closureInfo's format made from the
 * closure nixdock already resolved: one process for the whole closure, no deriver (as closureInfo),
 * and it works for the `dir` store too. Two differences, both for reproducibility:
 *   - Nix stamps every row with the wall clock; registrationTime is reset to the layer mtime (what
 *     SOURCE_DATE_EPOCH is to Nix builds). dockerTools leaves the wall clock in, so its layer differs
 *     on every build.
 *   - Only db/db.sqlite and db/schema are copied into the image: the other state Nix creates
 *     (per-user/<whoever ran it> directories, locks, 8 MiB of reserved space) depends on the machine,
 *     and Nix in the container recreates it on first use.
 */
import { chmod, copyFile, mkdir, rm, symlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import Database from 'better-sqlite3';
import { NixdockError } from '../errors.js';
import { NIX_INSTALL_HINT, nixFailed, runNix } from '../store/run.js';
import type { StorePathInfo } from '../types.js';

export interface NixDbContents {
  /** The image's store paths: each gets a ValidPaths row with its references. */
  paths: StorePathInfo[];
  /** `contents` store paths, rooted under nix/var/nix/gcroots/docker/ (those the image carries). */
  gcRoots: string[];
}

export interface NixDbOptions extends NixDbContents {
  storeDir: string;
  /** Seconds since the epoch written as every path's registrationTime. */
  registrationTime: number;
  /** An empty directory Nix may fill with its whole state tree; the caller removes it. */
  scratchDir: string;
}

const STATE_DIR = 'nix/var/nix';
/** The files of Nix's state that carry the registration; everything else Nix makes on demand. */
const DB_FILES = ['db.sqlite', 'schema'];
const DIR_MODE = 0o755;
const FILE_MODE = 0o644;

/** Writes nix/var/nix/db and nix/var/nix/gcroots/docker into the staged image root `tree`. */
export async function stageNixDb(tree: string, opts: NixDbOptions): Promise<void> {
  await loadDb(opts);
  resetRegistrationTimes(join(opts.scratchDir, STATE_DIR, 'db', 'db.sqlite'), opts.registrationTime);
  const dbDir = await makeDirs(tree, `${STATE_DIR}/db`);
  for (const file of DB_FILES) {
    const target = join(dbDir, file);
    await rm(target, { force: true }); // a symlink merged in from a store root must not be written through
    await copyFile(join(opts.scratchDir, STATE_DIR, 'db', file), target);
    await chmod(target, FILE_MODE); // Nix created it under this process's umask
  }
  await linkGcRoots(tree, opts);
}

/** `nix-store --load-db` with the registration on stdin, into a store rooted at scratchDir. */
async function loadDb(opts: NixDbOptions): Promise<void> {
  const args = [
    '--store', `local?root=${opts.scratchDir}&store=${opts.storeDir}`,
    // Nix would otherwise fill an 8 MiB file with zeros to keep room for the garbage collector.
    '--option', 'gc-reserved-space', '0',
    '--load-db',
  ];
  const run = await runNix('nix-store', args, { input: registration(opts.paths) }).catch((err: unknown) => {
    throw err instanceof NixdockError && err.code === 'NIX_MISSING' ? nixStoreMissing() : err;
  });
  if (run.code !== 0) throw nixFailed('nix-store --load-db (includeNixDB)', run);
}

/**
 * The format `nix-store --load-db` reads (and closureInfo's `registration` file holds): per path
 * its name, NAR hash, NAR size, deriver (empty) and references, each on a line.
 */
function registration(paths: StorePathInfo[]): string {
  const lines: string[] = [];
  for (const info of paths) {
    if (!info.narHash) throw missingNarHash(info.path);
    lines.push(info.path, info.narHash, String(info.narSize), '', String(info.references.length), ...info.references);
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

function resetRegistrationTimes(dbFile: string, time: number): void {
  const db = new Database(dbFile);
  try {
    db.prepare('UPDATE ValidPaths SET registrationTime = ?').run(time);
  } finally {
    db.close(); // checkpoints the WAL into db.sqlite and removes it
  }
}

async function linkGcRoots(tree: string, opts: NixDbOptions): Promise<void> {
  const registered = new Set(opts.paths.map((info) => info.path));
  const roots = opts.gcRoots.filter((path) => registered.has(path));
  if (roots.length === 0) return;
  const dir = await makeDirs(tree, `${STATE_DIR}/gcroots/docker`);
  for (const root of roots) await symlink(root, join(dir, basename(root)));
}

/** mkdir -p with mode 0755 on every level, independent of the umask. */
async function makeDirs(tree: string, relative: string): Promise<string> {
  let dir = tree;
  for (const part of relative.split('/')) {
    dir = join(dir, part);
    await mkdir(dir, { recursive: true });
    await chmod(dir, DIR_MODE);
  }
  return dir;
}

function nixStoreMissing(): NixdockError {
  return new NixdockError('NIX_MISSING', 'includeNixDB needs `nix-store` to write the Nix database, and it is not on PATH', {
    location: { field: 'includeNixDB' },
    found: 'no `nix-store` on PATH',
    expected: 'the nix command-line tools (any store type: the database is made from the resolved closure)',
    hint: `${NIX_INSTALL_HINT}, or set includeNixDB: false.`,
  });
}

function missingNarHash(path: string): NixdockError {
  return new NixdockError('INTERNAL', `The store reported no NAR hash for ${path}, which includeNixDB needs to register it`, {
    location: { field: 'includeNixDB' },
    hint: 'Check `nix path-info --json` for that path; set includeNixDB: false to build without a Nix database.',
  });
}
