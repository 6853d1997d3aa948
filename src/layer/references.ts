/**
 * The store paths a staged tree refers to, found as Nix finds an output's references: by scanning
 * every file's bytes and every symlink's target for store paths. What extraCommands or
 * fakeRootCommands wrote (`ln -s ${lib}/share/msg etc/msg`) then pulls its closure into the image,
 * as current dockerTools does for its customisation layer; likewise what runAsRoot changed.
 */
import { closeSync, openSync, readSync, readdirSync, readlinkSync, lstatSync } from 'node:fs';
import { join } from 'node:path';

const CHUNK = 1 << 20;
/** A store path's longest first component: hash (32) + '-' + name (≤ 211). */
const MAX_STORE_NAME = 244;

/**
 * Store paths (`<storeDir>/<hash>-<name>`) named anywhere in the tree; `exists` keeps only real
 * ones (a scan can match text that merely looks like a store path).
 */
export function scanStoreReferences(tree: string, storeDir: string, exists: (storePath: string) => boolean): string[] {
  const pattern = storePathPattern(storeDir);
  const found = new Set<string>();
  const visit = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (scanPath(path, pattern, found)) visit(path);
    }
  };
  visit(tree);
  return [...found].filter(exists).sort();
}

/** The same for a list of files, symlinks and directories (not descended into): what runAsRoot changed. */
export function scanPathReferences(paths: readonly string[], storeDir: string, exists: (storePath: string) => boolean): string[] {
  const pattern = storePathPattern(storeDir);
  const found = new Set<string>();
  for (const path of paths) scanPath(path, pattern, found);
  return [...found].filter(exists).sort();
}

/** Collects what one path names; true when it is a directory. */
function scanPath(path: string, pattern: RegExp, found: Set<string>): boolean {
  const stats = lstatSync(path);
  if (stats.isSymbolicLink()) collect(readlinkSync(path), pattern, found);
  else if (stats.isFile()) scanFile(path, pattern, found);
  return stats.isDirectory();
}

function storePathPattern(storeDir: string): RegExp {
  const escaped = storeDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`${escaped}/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\\-._?=]+`, 'g');
}

function collect(text: string, pattern: RegExp, into: Set<string>): void {
  for (const match of text.matchAll(pattern)) into.add(match[0]);
}

/** Reads in chunks that overlap by a store path's length, so a path across a chunk border is found. */
function scanFile(path: string, pattern: RegExp, into: Set<string>): void {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(CHUNK + MAX_STORE_NAME + 64);
    let carry = 0;
    for (;;) {
      const read = readSync(fd, buffer, carry, CHUNK, null);
      if (read === 0) break;
      const end = carry + read;
      collect(buffer.toString('latin1', 0, end), pattern, into);
      carry = Math.min(end, MAX_STORE_NAME + 64);
      buffer.copy(buffer, 0, end - carry, end);
    }
  } finally {
    closeSync(fd);
  }
}
