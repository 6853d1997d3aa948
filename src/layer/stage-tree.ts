/**
 * Stages the customisation layer's tree in a temp directory: store roots merged as nixpkgs'
 * symlinkJoin does (real directories, symlinks to the store files), local directories copied
 * over them (copyToRoot); extraCommands then run inside it (./sandbox.ts).
 *
 * Why synchronous calls: every build stages this tree, and an async call per file spends most of
 * its time in the thread-pool round trip (~0.1 s for an app with 150 files, against ~5 ms). The
 * event loop gets a turn after each directory.
 */
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readlinkSync, rmSync, symlinkSync, type Stats } from 'node:fs';
import { isAbsolute, join, posix } from 'node:path';
import { isStoreEntryName } from '../store/paths.js';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { NixdockError } from '../errors.js';
import { lstatIfExists } from '../tar/walk.js';
import { lstatChild } from '../util/file-names.js';

/** Directories the merge creates: what symlinkJoin's builder makes under Nix's umask 022. */
export const DIR_MODE = 0o755;

export interface StoreRoot {
  /** Logical store path: links in the tree point here. */
  storePath: string;
  /** Where its files are on this machine. */
  physical: string;
}

/** Store roots merged (see mergeStoreRoots): each name is a directory of the merge or a symlink's target. */
export type MergedTree = Map<string, MergedTree | string>;

/** Symlinks followed from a contents root to its directory at most (the kernel's own limit). */
const MAX_LINK_HOPS = 40;

/**
 * The store roots of `contents` checked and located, from lstat alone, so a bad root is refused
 * before any layer is written. A root that is a symlink to a directory (dockerTools'
 * layeredStoreSymlink) is merged as that directory, as symlinkJoin's lndir does; its links keep
 * pointing through the root's own name.
 */
export function locateStoreRoots(storePaths: readonly string[], storeDir: string, physicalPath: (storePath: string) => string): StoreRoot[] {
  return storePaths.map((storePath) => ({ storePath, physical: directoryBehind(storePath, storeDir, physicalPath) }));
}

/**
 * The directory a store symlink leads to, following links inside the store, or undefined when it
 * leads elsewhere (outside the store, a file, nothing): what `rsync -k` copies as a directory.
 */
export function storeDirectoryBehind(logicalLink: string, storeDir: string, physicalPath: (storePath: string) => string): string | undefined {
  try {
    return directoryBehind(logicalLink, storeDir, physicalPath);
  } catch {
    return undefined;
  }
}

function directoryBehind(storePath: string, storeDir: string, physicalPath: (storePath: string) => string): string {
  let logical = storePath;
  for (let hop = 0; hop <= MAX_LINK_HOPS; hop++) {
    const physical = physicalOf(logical, storeDir, physicalPath);
    const stats = physical === undefined ? undefined : lstatIfExists(physical);
    if (physical === undefined) throw storeRootError(storePath, 'INPUT_INVALID', `a symlink to ${logical}, outside the store`);
    if (stats === undefined) throw storeRootError(storePath, 'STORE_PATH_MISSING', logical === storePath ? 'no such path' : `a symlink to ${logical}, which does not exist`);
    if (stats.isDirectory()) return physical;
    if (!stats.isSymbolicLink()) throw storeRootError(storePath, 'INPUT_INVALID', logical === storePath ? 'a single file' : `a symlink to the single file ${logical}`);
    logical = posix.resolve(posix.dirname(logical), readlinkSync(physical));
  }
  throw storeRootError(storePath, 'INPUT_INVALID', `more than ${MAX_LINK_HOPS} symlinks in a row`);
}

/** Where a logical path below the store is on this machine; undefined outside the store. */
function physicalOf(logical: string, storeDir: string, physicalPath: (storePath: string) => string): string | undefined {
  if (!logical.startsWith(`${storeDir}/`)) return undefined;
  const [entry, ...rest] = logical.slice(storeDir.length + 1).split('/');
  if (!isStoreEntryName(entry!)) return undefined;
  return [physicalPath(`${storeDir}/${entry}`), ...rest].join('/');
}

/**
 * Merges store paths' trees like `lndir`: directories merge, files become symlinks to their store
 * path, symlinks are copied as they are. The first root to claim a name keeps it. Only reads the
 * store: materialiseTree creates the result, or a layer is tarred from it directly.
 * Roots come located (locateStoreRoots): each `physical` is a directory.
 */
export function mergeStoreRoots(roots: StoreRoot[]): MergedTree {
  const merged: MergedTree = new Map();
  for (const root of roots) mergeChildren(root.storePath, root.physical, merged);
  return merged;
}

function mergeChildren(logical: string, physical: string, into: MergedTree): void {
  for (const name of readdirSync(physical)) {
    const from = join(physical, name);
    const source = lstatChild(physical, name);
    const existing = into.get(name);
    if (source.isDirectory()) {
      if (typeof existing === 'string') continue;
      const dir = existing ?? new Map();
      into.set(name, dir);
      mergeChildren(`${logical}/${name}`, from, dir);
    } else if (existing === undefined) {
      into.set(name, source.isSymbolicLink() ? readlinkSync(from) : `${logical}/${name}`);
    }
  }
}

/** Creates a merged tree under `dest`: real directories (DIR_MODE) and symlinks. */
export async function materialiseTree(tree: MergedTree, dest: string): Promise<void> {
  await yieldToEventLoop();
  for (const [name, node] of tree) {
    const to = join(dest, name);
    if (typeof node === 'string') {
      symlinkSync(node, to);
    } else {
      makeDir(to);
      await materialiseTree(node, to);
    }
  }
}

/** How buildImage copies copyToRoot: `rsync -a` with -k (default) or -K (keepContentsDirlinks). */
export interface StoreCopy {
  keepDirlinks: boolean;
  storeDir: string;
  physicalPath: (storePath: string) => string;
  /** The directories the copy made, with the store's mode for them (0555); on disk they are DIR_MODE, writable while staged. */
  dirModes: Map<string, number>;
}

/**
 * Copies a store root's tree into `dest` as `rsync -a --chown=0:0 ROOT/ dest/` does in buildImage:
 * real files with the store's modes (0444/0555), symlinks as they are, a later root's file
 * replacing an earlier one's. Without keepDirlinks (-k) a symlink that leads to a store directory
 * is copied as that directory; with it (-K) symlinks stay, and a directory that meets a symlink
 * to a directory already in the tree is merged through it.
 */
export async function copyStoreRoot(root: StoreRoot, dest: string, copy: StoreCopy): Promise<void> {
  await copyStoreChildren(root.storePath, root.physical, dest, dest, copy);
}

async function copyStoreChildren(logical: string, physical: string, dest: string, tree: string, copy: StoreCopy): Promise<void> {
  await yieldToEventLoop();
  for (const name of readdirSync(physical).sort()) {
    const from = join(physical, name);
    const source = lstatChild(physical, name);
    const linkedDir = source.isSymbolicLink() && !copy.keepDirlinks ? storeDirectoryBehind(`${logical}/${name}`, copy.storeDir, copy.physicalPath) : undefined;
    const to = join(dest, name);
    if (source.isDirectory() || linkedDir !== undefined) {
      const into = directoryAt(to, tree, copy);
      await copyStoreChildren(`${logical}/${name}`, linkedDir ?? from, into, tree, copy);
      continue;
    }
    const existing = lstatIfExists(to);
    if (existing?.isDirectory()) throw fileOverDirectory(from, to.slice(tree.length));
    if (existing !== undefined) rmSync(to);
    if (source.isSymbolicLink()) {
      symlinkSync(readlinkSync(from), to);
    } else {
      copyFileSync(from, to);
      chmodSync(to, source.mode & 0o100 ? 0o555 : 0o444);
    }
  }
}

/**
 * The directory at `to`, made if needed (mode recorded as the store's 0555). A symlink there is
 * followed when it leads to a directory inside the tree and keepDirlinks is set (rsync -K);
 * otherwise it is replaced, as is a file.
 */
function directoryAt(to: string, tree: string, copy: StoreCopy): string {
  const existing = lstatIfExists(to);
  if (existing?.isDirectory()) return to;
  if (existing?.isSymbolicLink() && copy.keepDirlinks) {
    const target = readlinkSync(to);
    const inTree = join(tree, posix.resolve(posix.dirname(`/${to.slice(tree.length + 1)}`), target));
    if (inTree.startsWith(`${tree}/`) && lstatIfExists(inTree)?.isDirectory()) return inTree;
  }
  if (existing !== undefined) rmSync(to);
  makeDir(to);
  copy.dirModes.set(to, 0o555);
  return to;
}


/** Copies a local directory's contents into `dest`, files with their modes; it wins over store links. */
export async function copyLocalDir(dir: string, dest: string): Promise<void> {
  const stats = isAbsolute(dir) ? lstatIfExists(dir) : undefined;
  if (stats === undefined || !stats.isDirectory()) throw localDirError(dir, stats);
  await copyChildren(dir, dest, '');
}

async function copyChildren(dir: string, dest: string, imagePath: string): Promise<void> {
  await yieldToEventLoop();
  for (const name of readdirSync(dir)) {
    const from = join(dir, name);
    const to = join(dest, name);
    const inImage = `${imagePath}/${name}`;
    const source = lstatChild(dir, name);
    const existing = lstatIfExists(to);
    if (source.isDirectory()) {
      if (existing !== undefined && !existing.isDirectory()) rmSync(to);
      if (!existing?.isDirectory()) makeDir(to);
      await copyChildren(from, to, inImage);
      continue;
    }
    // A FIFO would block copyFileSync's open() (and the whole event loop) forever; a device
    // would be copied as an empty file. Neither belongs in an image: refused, as the store walk does.
    if (!source.isFile() && !source.isSymbolicLink()) throw specialFile(from, inImage, source);
    if (existing?.isDirectory()) throw fileOverDirectory(from, inImage);
    if (existing !== undefined) rmSync(to);
    if (source.isSymbolicLink()) {
      const target = readlinkSync(from);
      if (climbsAboveRoot(inImage, target)) throw symlinkAboveRoot(from, inImage, target);
      symlinkSync(target, to);
    } else {
      copyFileSync(from, to);
      chmodSync(to, source.mode & 0o7777);
    }
  }
}

/** Removes a staged tree even where extraCommands made directories read-only. */
export async function removeTree(path: string): Promise<void> {
  makeOwnerWritable(path);
  rmSync(path, { recursive: true, force: true });
}

function makeOwnerWritable(path: string): void {
  const stats = lstatIfExists(path);
  if (stats === undefined || !stats.isDirectory()) return;
  chmodSync(path, 0o700);
  for (const name of readdirSync(path)) makeOwnerWritable(join(path, name));
}

function makeDir(path: string): void {
  mkdirSync(path);
  chmodSync(path, DIR_MODE); // mkdir's mode is filtered by the umask; the layer must not depend on it
}


function storeRootError(storePath: string, code: 'STORE_PATH_MISSING' | 'INPUT_INVALID', found: string): NixdockError {
  return new NixdockError(code, `Cannot merge ${storePath} into the image root`, {
    location: { file: storePath, field: 'contents' },
    found,
    expected: 'a store path that is a directory, or a symlink to one (its tree is linked into /)',
    hint: code === 'STORE_PATH_MISSING'
      ? `Realise it first (\`nix-store --realise ${storePath}\`).`
      : 'Only directories can be merged into /; wrap the file in a derivation that puts it in a directory (e.g. bin/).',
  });
}

function localDirError(dir: string, stats: Stats | undefined): NixdockError {
  return new NixdockError('INPUT_INVALID', `Cannot copy ${dir} into the image root`, {
    location: { file: dir, field: 'contents' },
    found: !isAbsolute(dir) ? 'a relative path' : stats === undefined ? 'no such directory' : 'not a directory',
    expected: 'an absolute path to an existing local directory',
    hint: 'Check the path in contents; relative paths are resolved against the config file before they get here.',
  });
}

/**
 * Whether a relative symlink at `inImage` climbs above the image root, lexically (`etc/x ->
 * ../../secret`). Runtimes clamp such a link at /, but nixdock's base-image reader refuses it
 * (a naive extractor would leave the root), so nixdock does not build one either: one rule.
 */
export function climbsAboveRoot(inImage: string, target: string): boolean {
  if (target.startsWith('/')) return false;
  let depth = posix.dirname(inImage).split('/').filter(Boolean).length;
  for (const component of target.split('/')) {
    if (component === '..') depth--;
    else if (component !== '' && component !== '.') depth++;
    if (depth < 0) return true;
  }
  return false;
}

function symlinkAboveRoot(from: string, inImage: string, target: string): NixdockError {
  return new NixdockError('INPUT_INVALID', `The symlink ${inImage} -> ${target} climbs above the image root`, {
    location: { file: from, field: 'contents' },
    found: `${inImage} -> ${target}`,
    expected: 'relative symlink targets that stay inside the root, or absolute ones',
    hint: `Point it at the absolute path it means inside the image (e.g. ${posix.join('/', posix.dirname(inImage), target)}).`,
  });
}

function specialFile(from: string, inImage: string, stats: Stats): NixdockError {
  const kind = stats.isFIFO() ? 'a named pipe (FIFO)' : stats.isCharacterDevice() ? 'a character device' : stats.isBlockDevice() ? 'a block device' : stats.isSocket() ? 'a socket' : 'not a regular file';
  return new NixdockError('INPUT_INVALID', `${from} is ${kind}, which cannot go into an image`, {
    location: { file: from, field: 'contents' },
    found: `${inImage}: ${kind}`,
    expected: 'regular files, directories and symlinks',
    hint: 'Remove it from the contents directory (device nodes are the runtime\'s business, not the image\'s).',
  });
}

function fileOverDirectory(from: string, inImage: string): NixdockError {
  return new NixdockError('INPUT_INVALID', `${from} would replace the directory ${inImage} of the image root`, {
    location: { file: from, field: 'contents' },
    found: 'a file where the store contents have a directory',
    expected: 'local files that do not collide with directories from store paths',
    hint: 'Rename the file, or move it inside that directory.',
  });
}
