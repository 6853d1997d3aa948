/**
 * Refuses layer tarballs whose entries would land outside the root when extracted: `..` names
 * climbing above it, hard links to such names, symlinks whose relative target climbs above it,
 * and entries written *through* a symlink of the same layer (a naive extractor follows it).
 *
 * Absolute entry names are normal (dockerTools writes `/nix/store/…`) and are read relative to
 * the root; absolute symlink targets are fine too, because a container resolves them inside its
 * root. Only what this layer itself contains is known here: runtimes extract each layer with
 * their own root-confined resolution, so lower layers' links cannot be exploited through us.
 */
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { NixdockError } from '../errors.js';

/** The header fields the check looks at (a subset of tar-stream's `Headers`). */
export interface EntryHeader {
  name: string;
  type?: string | null;
  linkname?: string | null;
}

/**
 * Checks one entry after another (in archive order); throws UNSAFE_ARCHIVE on the first bad one.
 * Returns the entry's name resolved lexically from the root (`a/../b` → ['b']): the only name a
 * consumer may place the entry by, since a later extractor would resolve `..` the same way.
 */
export type EntryChecker = (header: EntryHeader) => string[];

/** Links deeper than this are treated as a loop (Linux gives up at 40 too). */
const MAX_LINK_HOPS = 40;

class Escape extends Error {}

/** `/a/./b/` → ['a', 'b']; keeps `..` so the caller decides what it means. */
export function pathComponents(name: string): string[] {
  return name.split('/').filter((c) => c !== '' && c !== '.');
}

/** `/a/../b/./c` → ['b', 'c']: `..` applied lexically, clamped at the root (names already checked by an EntryChecker never climb). */
export function lexicalPath(name: string): string[] {
  const stack: string[] = [];
  for (const component of pathComponents(name)) {
    if (component === '..') stack.pop();
    else stack.push(component);
  }
  return stack;
}

export function createEntryChecker(layerName: string): EntryChecker {
  /** Symlinks seen so far in this layer: normalised path → target. */
  const symlinks = new Map<string, string>();

  return (header) => {
    try {
      const path = resolveEntryName(header.name, symlinks);
      const key = path.join('/');
      if (header.type === 'symlink') {
        checkSymlinkTarget(path, header.linkname ?? '', symlinks);
        symlinks.set(key, header.linkname ?? '');
      } else {
        symlinks.delete(key);
      }
      if (header.type === 'link') resolveEntryName(header.linkname ?? '', symlinks, 'its hard link target');
      return path;
    } catch (err) {
      if (!(err instanceof Escape)) throw err;
      throw unsafe(layerName, header, err.message);
    }
  };
}

/** Consumes `tar` and resolves when every entry is safe; rejects with UNSAFE_ARCHIVE otherwise. */
export async function checkLayerSafety(tarStream: Readable, layerName: string): Promise<void> {
  const check = createEntryChecker(layerName);
  const extract = tar.extract();
  tarStream.on('error', (err) => extract.destroy(err));
  tarStream.pipe(extract);
  try {
    for await (const entry of extract) {
      check(entry.header);
      entry.resume();
    }
  } catch (err) {
    tarStream.unpipe(extract);
    tarStream.destroy();
    throw err instanceof NixdockError ? err : notATar(layerName, err);
  }
}

/**
 * Lexically resolves an archive name from the root. Refuses `..` above the root and any
 * component (but the last) that is a symlink written earlier in this layer.
 */
function resolveEntryName(name: string, symlinks: ReadonlyMap<string, string>, what = 'its name'): string[] {
  const stack: string[] = [];
  const components = pathComponents(name);
  components.forEach((component, i) => {
    if (component === '..') {
      if (stack.pop() === undefined) throw new Escape(`${what} climbs out of the root with '..'`);
      return;
    }
    stack.push(component);
    const isLast = i === components.length - 1;
    if (!isLast && symlinks.has(stack.join('/'))) {
      throw new Escape(`${what} passes through the symlink /${stack.join('/')} of the same layer, which an extractor would follow`);
    }
  });
  return stack;
}

/** A relative target is resolved from the link's directory, following this layer's links. */
function checkSymlinkTarget(linkPath: string[], target: string, symlinks: ReadonlyMap<string, string>): void {
  if (target.startsWith('/')) return;
  const stack = linkPath.slice(0, -1);
  const pending = pathComponents(target);
  let hops = 0;
  while (pending.length > 0) {
    const component = pending.shift()!;
    if (component === '..') {
      if (stack.pop() === undefined) throw new Escape(`its symlink target ${target} resolves outside the root`);
      continue;
    }
    stack.push(component);
    const next = symlinks.get(stack.join('/'));
    if (next === undefined) continue;
    if (++hops > MAX_LINK_HOPS) throw new Escape(`its symlink target ${target} loops through other symlinks`);
    stack.pop();
    // An absolute link restarts at the root: inside the container that is still inside.
    if (next.startsWith('/')) stack.length = 0;
    pending.unshift(...pathComponents(next));
  }
}

function unsafe(layerName: string, header: EntryHeader, reason: string): NixdockError {
  const kind = header.type === 'symlink' ? ` -> ${header.linkname}` : header.type === 'link' ? ` (hard link to ${header.linkname})` : '';
  return new NixdockError('UNSAFE_ARCHIVE', `Refusing ${layerName}: entry ${header.name} would escape the image root: ${reason}`, {
    location: { file: layerName },
    found: `${header.type ?? 'file'} ${header.name}${kind}`,
    expected: 'entry names, hard link targets and relative symlink targets that stay inside the root',
    hint: 'This tarball was crafted or corrupted. Do not build on it; re-create the base image with docker save, skopeo or dockerTools.',
  });
}

/** A layer that does not parse as a tar (tar-stream's own errors say nothing about which layer). */
export function notATar(layerName: string, cause: unknown): NixdockError {
  return new NixdockError('INPUT_INVALID', `${layerName} is not a readable tar archive: ${(cause as Error)?.message ?? cause}`, {
    location: { file: layerName },
    expected: 'an (uncompressed) layer tar',
    hint: 'The base image is truncated or corrupt; re-create or re-pull it.',
    cause,
  });
}
