/**
 * Owners, modes and device nodes of customisation layer entries, without privileges: the tree on
 * disk belongs to whoever runs nixdock, so what the image should say is recorded beside it and
 * written into the tar headers.
 *
 * Two sources, applied in this order:
 * - fakeRootCommands: fakeroot's saved state (`fakeroot -s`), one line per inode it faked
 *   (`dev=fe00,ino=123,mode=100644,uid=1000,gid=100,nlink=1,rdev=0`), matched to entries by
 *   device and inode, as dockerTools' tar under fakeroot sees them;
 * - `perms`: declarative `{ path, uid, gid, mode, recursive }` entries, by path.
 */
import { lstatSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { NixdockError } from '../errors.js';
import type { EntryOwner } from '../tar/header.js';
import { physicalPathOf, type TarEntry } from '../tar/walk.js';

/** One `perms` entry, normalised: path absolute in the image, mode as a number. */
export interface PathPerm {
  path: string;
  uid?: number;
  gid?: number;
  mode?: number;
  recursive?: boolean;
}

/** What fakeroot recorded for one inode. */
interface FakedInode {
  mode: number;
  uid: number;
  gid: number;
  rdev: number;
}

/** Names written for owners: root for 0, numeric only otherwise (GNU tar --numeric-owner, as dockerTools). */
export type OwnerNames = (id: number, kind: 'user' | 'group') => string;

const defaultNames: OwnerNames = (id) => (id === 0 ? 'root' : '');

const S_IFMT = 0o170000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

/** Reads a `fakeroot -s` state file; a missing file (nothing was faked) is an empty state. */
export function readFakerootState(file: string): Map<string, FakedInode> {
  const state = new Map<string, FakedInode>();
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return state;
  }
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const fields = Object.fromEntries(line.split(',').map((pair) => pair.split('=') as [string, string]));
    state.set(`${BigInt(`0x${fields.dev}`)}:${fields.ino}`, {
      mode: parseInt(fields.mode!, 8),
      uid: Number(fields.uid),
      gid: Number(fields.gid),
      rdev: Number(fields.rdev),
    });
  }
  return state;
}

/** Entries with what fakeroot recorded for their inodes (owner, mode, device type and numbers). */
export function applyFakerootState(entries: TarEntry[], state: Map<string, FakedInode>, names: OwnerNames = defaultNames): TarEntry[] {
  if (state.size === 0) return entries;
  return entries.map((entry) => {
    const stats = lstatSync(physicalPathOf(entry), { bigint: true });
    const faked = state.get(`${stats.dev}:${stats.ino}`);
    if (!faked) return entry;
    const kind = faked.mode & S_IFMT;
    const withOwner = { ...entry, mode: faked.mode & 0o7777, owner: ownerOf(faked.uid, faked.gid, names) };
    if (kind !== S_IFCHR && kind !== S_IFBLK) return withOwner;
    return { ...withOwner, type: kind === S_IFCHR ? 'chardev' : 'blockdev', size: 0, device: deviceNumbers(faked.rdev) };
  });
}

/** glibc's gnu_dev_major/gnu_dev_minor. */
function deviceNumbers(rdev: number): { major: number; minor: number } {
  const dev = BigInt(rdev);
  return {
    major: Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn)),
    minor: Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn)),
  };
}

/**
 * Entries with the `perms` applied: an entry named by a perm (or below it, when recursive) takes
 * its uid, gid and mode. A perm naming nothing in the layer is an error: it was meant for
 * something, and silently doing nothing would give an image whose service cannot write its state.
 */
export function applyPerms(entries: TarEntry[], perms: readonly PathPerm[], names: OwnerNames = defaultNames): TarEntry[] {
  if (perms.length === 0) return entries;
  const relative = perms.map((perm) => posix.normalize(perm.path).replace(/^\/+|\/+$/g, ''));
  const matched = perms.map(() => false);
  const result = entries.map((entry) => {
    const name = entry.name.replace(/\/$/, '');
    let out = entry;
    perms.forEach((perm, i) => {
      const target = relative[i]!;
      if (name !== target && !(perm.recursive && name.startsWith(`${target}/`))) return;
      matched[i] = true;
      const owner = out.owner ?? ownerOf(0, 0, names);
      const uid = perm.uid ?? owner.uid;
      const gid = perm.gid ?? owner.gid;
      out = { ...out, owner: ownerOf(uid, gid, names), ...(perm.mode !== undefined && out.type !== 'symlink' && { mode: perm.mode }) };
    });
    return out;
  });
  const missing = matched.indexOf(false);
  if (missing !== -1) throw permPathMissing(perms[missing]!.path, missing);
  return result;
}

function ownerOf(uid: number, gid: number, names: OwnerNames): EntryOwner {
  return { uid, gid, uname: names(uid, 'user'), gname: names(gid, 'group') };
}

function permPathMissing(path: string, index: number): NixdockError {
  return new NixdockError('INPUT_INVALID', `perms[${index}] names ${path}, which is not in the customisation layer`, {
    location: { field: `perms[${index}].path` },
    found: `no ${path} in the image root being built`,
    expected: 'a path that contents, extraCommands, fakeRootCommands or users create',
    hint: `Create it first, e.g. extraCommands: "mkdir -p ${path.replace(/^\/+/, '')}".`,
  });
}
