/**
 * Store path grammar shared by both store backends: `<storeDir>/<32-char nix-base32 hash>-<name>`.
 */
import { NixdockError } from '../errors.js';

/** Nix's base32 alphabet: digits and lowercase letters without e, o, t, u. */
export const NIX_BASE32_ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';
/** Length of the hash part of a store path name. */
export const HASH_LENGTH = 32;

const ENTRY_NAME = /^[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+$/;

/** Whether a directory entry name looks like a store path name (`<hash>-<name>`). */
export function isStoreEntryName(name: string): boolean {
  return ENTRY_NAME.test(name);
}

/** The 32-char hash part of a store path or entry name. */
export function hashPart(storePathOrName: string): string {
  const name = storePathOrName.slice(storePathOrName.lastIndexOf('/') + 1);
  return name.slice(0, HASH_LENGTH);
}

/**
 * The top-level store path containing `path` (a store path or a file below one), so a spec may
 * name `/nix/store/<hash>-app/bin/app` and get the closure of `/nix/store/<hash>-app`.
 * Throws STORE_PATH_OUTSIDE for anything that is not below `storeDir`.
 */
export function toStorePath(path: string, storeDir: string): string {
  const prefix = `${storeDir}/`;
  const entry = path.startsWith(prefix) ? path.slice(prefix.length).split('/')[0] : undefined;
  if (entry === undefined || !isStoreEntryName(entry)) {
    throw new NixdockError('STORE_PATH_OUTSIDE', `${path} is not a path in the store ${storeDir}`, {
      found: path,
      expected: `${storeDir}/<32-char hash>-<name>[/…]`,
      hint: 'Name a store path (as printed by nix-build or `nix path-info`), or put local files in contents as a directory.',
    });
  }
  return prefix + entry;
}

/** Normalised, deduplicated, sorted roots. */
export function normaliseRoots(roots: string[], storeDir: string): string[] {
  return [...new Set(roots.map((root) => toStorePath(root, storeDir)))].sort(compareStrings);
}

/** Locale-independent ordering by UTF-16 code units (store paths are ASCII, so this is byte order). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function storePathMissing(path: string, hint: string): NixdockError {
  return new NixdockError('STORE_PATH_MISSING', `Store path ${path} does not exist (or is not valid) in the store`, {
    found: path,
    expected: 'a valid store path',
    hint,
  });
}
