/**
 * Turns directory trees into the ordered entry list of a layer, from lstat alone (no file is read).
 *
 * Order is what nixpkgs' script gets from `sorted(Path.rglob(...))`: depth-first, each directory's
 * children in code-point (= UTF-8 byte) order of their names, so `a`, `a/f`, `a-b`. Symlinks are
 * entries of their own and never followed; hard links are plain files.
 */
import { lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { NixdockError } from '../errors.js';
import { findNonUtf8Name } from '../util/file-names.js';
import type { EntryType, HeaderFields } from './header.js';

/** An archive member; physicalPathOf() says where a file's content is. */
export interface TarEntry extends HeaderFields {
  /** The tree this entry came from (shared by all its entries, to keep the list small). */
  tree: TreeRoot;
}

/** Where a tree's entries are named from and where its files really are. */
export interface TreeRoot {
  /** Entry name of the tree root without trailing slash (`/nix/store/…-x`, or '' for a relative tree). */
  nameRoot: string;
  /** The directory (or file) on this machine. */
  physicalRoot: string;
  /**
   * Write the modes Nix gives everything in a store (0444 files, 0555 executables and directories)
   * instead of the modes on disk. A real store already has them; a store-layout directory checked
   * out of git does not (git keeps only the x bit, the umask decides the rest), and its layers must
   * not depend on who cloned it.
   */
  canonicalModes?: boolean;
}

function storeMode(stats: Stats): number {
  if (stats.isSymbolicLink()) return 0o777;
  return stats.isDirectory() || stats.mode & 0o100 ? 0o555 : 0o444;
}

/** The physical file behind an entry. */
export function physicalPathOf(entry: TarEntry): string {
  const { nameRoot, physicalRoot } = entry.tree;
  return nameRoot === '' ? `${physicalRoot}/${entry.name}` : physicalRoot + entry.name.slice(nameRoot.length);
}

/**
 * Appends the entries of one tree: the root itself (when it has a name) and everything below it.
 * `missing` builds the error for a root that does not exist.
 */
export function walkTree(tree: TreeRoot, out: TarEntry[], missing: () => NixdockError): void {
  const stats = lstatIfExists(tree.physicalRoot);
  if (stats === undefined) throw missing();
  if (tree.nameRoot !== '') out.push(toEntry(tree, tree.nameRoot, tree.physicalRoot, stats));
  if (stats.isDirectory()) walkChildren(tree, tree.nameRoot, tree.physicalRoot, out);
}

function walkChildren(tree: TreeRoot, name: string, physical: string, out: TarEntry[]): void {
  for (const child of readdirSync(physical).sort(compareCodePoints)) {
    const childName = name === '' ? child : `${name}/${child}`;
    const childPhysical = `${physical}/${child}`;
    const stats = lstatIfExists(childPhysical);
    if (stats === undefined) throw (child.includes('\uFFFD') && findNonUtf8Name(physical)) || unreadableName(childPhysical);
    out.push(toEntry(tree, childName, childPhysical, stats));
    if (stats.isDirectory()) walkChildren(tree, childName, childPhysical, out);
  }
}

function toEntry(tree: TreeRoot, name: string, physical: string, stats: Stats): TarEntry {
  const type = entryType(stats, physical);
  return {
    tree,
    name: type === 'dir' ? `${name}/` : name,
    type,
    mode: tree.canonicalModes ? storeMode(stats) : stats.mode & 0o7777,
    size: type === 'file' ? stats.size : 0,
    linkName: type === 'symlink' ? readlinkSync(physical) : '',
  };
}

function entryType(stats: Stats, physical: string): EntryType {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'dir';
  if (stats.isSymbolicLink()) return 'symlink';
  throw new NixdockError('LAYER_BUILD', `Cannot put ${physical} into a layer: it is not a file, directory or symlink`, {
    location: { file: physical },
    found: 'a socket, FIFO or device node',
    expected: 'regular files, directories and symlinks (what a Nix store holds)',
    hint: 'Remove the special file from the tree (for the customisation layer: from contents or extraCommands).',
  });
}


/** lstat, or undefined when there is nothing at `path`. */
export function lstatIfExists(path: string): Stats | undefined {
  return lstatSync(path, { throwIfNoEntry: false });
}

/** A listed child that lstat cannot find: its name was not valid UTF-8 and did not survive decoding. */
function unreadableName(physical: string): NixdockError {
  return new NixdockError('LAYER_BUILD', `Cannot read ${physical} while listing its directory`, {
    location: { file: physical },
    found: 'a file that vanished during the walk',
    expected: 'an immutable tree',
    hint: 'Make sure nothing modifies the tree while nixdock reads it.',
  });
}

/**
 * Compares strings by Unicode code point (Python's str order, equal to UTF-8 byte order).
 * Plain `<` compares UTF-16 code units, which puts astral characters (surrogate pairs) before U+E000–U+FFFF.
 */
export function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** Moves surrogates (U+D800–U+DFFF, halves of code points above U+FFFF) above U+E000–U+FFFF. */
function codePointRank(unit: number): number {
  if (unit >= 0xe000) return unit - 0x800;
  if (unit >= 0xd800) return unit + 0x2000;
  return unit;
}
