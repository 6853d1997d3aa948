/**
 * Runs a script as root chrooted into an image tree with bubblewrap: the tree is `/`, the store
 * read-only at its place, /proc and /dev of its own, no network. runAsRoot runs this way over the
 * extracted image; fakeRootCommands with enableFakechroot over the customisation tree.
 *
 * Privileges: as host root the script runs without a user namespace but with only the
 * capabilities a package script needs (chown, fowner, dac_override, fsetid, mknod, setuid/gid),
 * so `chown 1000 …` is real and read back from lstat. Unprivileged it runs as uid 0 of a user
 * namespace mapped to the caller: files it creates are root's in the image, and `chown` to other
 * ids fails (EINVAL) — use `perms` for those.
 */
import { lstatSync, mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { NixdockError } from '../errors.js';
import type { EntryOwner } from '../tar/header.js';
import { bwrapFailed, sandboxUnavailable, scriptFailed, spawnCollecting, type ScriptField } from './sandbox.js';

const CAPABILITIES = ['CAP_CHOWN', 'CAP_FOWNER', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_MKNOD', 'CAP_SETUID', 'CAP_SETGID'];

export interface ChrootScript {
  field: ScriptField;
  script: string;
  storeDir: string;
  physicalStoreDir: string;
  /** SOURCE_DATE_EPOCH. */
  mtime: number;
}

/**
 * Where bwrap mounts /proc, /dev and the store, made in advance (so runAsRoot's snapshot sees no
 * change there); returns the directories it created, outermost first.
 */
export function prepareMountPoints(root: string, storeDir: string): string[] {
  const created: string[] = [];
  for (const dir of ['proc', 'dev', storeDir.replace(/^\/+/, '')]) {
    const parts = dir.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const path = join(root, ...parts.slice(0, i));
      if (lstatSync(path, { throwIfNoEntry: false }) !== undefined) continue;
      mkdirSync(path);
      created.push(path);
    }
  }
  return created;
}

/** Removes the mount points prepareMountPoints made, if the script left them empty. */
export function removeMountPoints(created: readonly string[]): void {
  for (const path of [...created].reverse()) {
    try {
      rmdirSync(path);
    } catch {
      // the script put something there: it stays, as written
    }
  }
}

/** Runs the script with `/bin/sh -e` chrooted into `root`; a non-zero exit is a LAYER_BUILD error. */
export async function runChrooted(bwrap: string, root: string, run: ChrootScript): Promise<void> {
  const asRoot = process.getuid?.() === 0;
  const privileges = asRoot ? ['--cap-drop', 'ALL', ...CAPABILITIES.flatMap((cap) => ['--cap-add', cap])] : ['--unshare-user', '--uid', '0', '--gid', '0'];
  const args = [
    ...privileges, '--unshare-pid', '--unshare-net', '--unshare-ipc', '--unshare-uts', '--die-with-parent', '--new-session',
    '--bind', root, '/', '--ro-bind', run.physicalStoreDir, run.storeDir, '--proc', '/proc', '--dev', '/dev', '--chdir', '/',
    '--', '/bin/sh', '-e', '-c', `umask 022\n${run.script}`,
  ];
  const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', TZ: 'UTC', SOURCE_DATE_EPOCH: String(run.mtime) };
  const shell = lstatSync(join(root, 'bin', 'sh'), { throwIfNoEntry: false });
  if (!shell) throw noShell(run.field);
  const status = await spawnCollecting(bwrap, args, env);
  if (status.code === 0) return;
  throw bwrapFailed(status) ? sandboxUnavailable(run.field, status.stderr) : scriptFailed(run.field, status);
}

/** An owner on disk as the image should say it: our own uid/gid are root's inside the user namespace. */
export function chrootOwner(uid: number, gid: number): EntryOwner {
  const self = process.getuid?.() ?? 0;
  const selfGroup = process.getgid?.() ?? 0;
  const u = uid === self ? 0 : uid;
  const g = gid === selfGroup ? 0 : gid;
  return { uid: u, gid: g, uname: u === 0 ? 'root' : '', gname: g === 0 ? 'root' : '' };
}

function noShell(field: ScriptField): NixdockError {
  return new NixdockError('INPUT_INVALID', `${field} needs /bin/sh in the image: the script runs chrooted into it`, {
    location: { field },
    found: field === 'runAsRoot' ? 'no /bin/sh in the base layers or contents' : 'no /bin/sh in the image root being built',
    expected: 'a shell at /bin/sh (dockerTools runs the script with the image\'s tools too)',
    hint: 'Add binSh (e.g. a bash or busybox sh from the store) or a shell package to contents.',
  });
}
