/**
 * The everyday system files of a dockerTools image, staged into the customisation tree before
 * extraCommands runs (so a script can still adjust them):
 * - `users`/`groups`: /etc/passwd, /etc/group and /etc/shadow (what shadowSetup and fakeNss give:
 *   root and nobody are always there) and each user's home directory, owned by that user;
 * - `binSh`, `usrBinEnv`: /bin/sh and /usr/bin/env as symlinks to a store file (dockerTools.binSh,
 *   dockerTools.usrBinEnv);
 * - `caCertificates`: the usual CA bundle paths linked to a bundle in the store (dockerTools.caCertificates);
 * - `tmp`: /tmp with mode 1777.
 * Symlinks name store paths, so the reference scan pulls their closures into the image.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { NixdockError } from '../errors.js';
import type { SystemGroup, SystemUser } from '../types.js';
import type { PathPerm } from './ownership.js';
import { DIR_MODE } from './stage-tree.js';

export interface SystemFiles {
  users?: SystemUser[];
  groups?: SystemGroup[];
  binSh?: string;
  usrBinEnv?: string;
  caCertificates?: string;
  tmp?: boolean;
}

/** Where images expect a CA bundle (what dockerTools.caCertificates links). */
const CA_BUNDLE_PATHS = ['etc/ssl/certs/ca-certificates.crt', 'etc/ssl/certs/ca-bundle.crt', 'etc/pki/tls/certs/ca-bundle.crt'];
/** Where a bundle is inside a cacert store path. */
const CA_BUNDLE_IN_STORE_PATH = 'etc/ssl/certs/ca-bundle.crt';

const ROOT: SystemUser = { name: 'root', uid: 0, gid: 0, home: '/root', shell: '/bin/sh', description: 'root' };
const NOBODY: SystemUser = { name: 'nobody', uid: 65534, gid: 65534, home: '/var/empty', shell: '/bin/false', description: 'nobody', createHome: false };

/** Whether any system file is asked for (else the layer may stay store-only). */
export function wantsSystemFiles(files: SystemFiles | undefined): boolean {
  if (!files) return false;
  return (files.users?.length ?? 0) > 0 || (files.groups?.length ?? 0) > 0 || !!files.binSh || !!files.usrBinEnv || !!files.caCertificates || !!files.tmp;
}

/** Writes the files into `tree`; returns the owners of home directories, for the layer's headers. */
export function stageSystemFiles(tree: string, files: SystemFiles, physicalPath: (path: string) => string): PathPerm[] {
  if (files.binSh) link(tree, 'bin/sh', files.binSh);
  if (files.usrBinEnv) link(tree, 'usr/bin/env', files.usrBinEnv);
  if (files.caCertificates) {
    const bundle = caBundle(files.caCertificates, physicalPath);
    for (const path of CA_BUNDLE_PATHS) link(tree, path, bundle);
  }
  if (files.tmp) {
    makeDirs(tree, 'tmp');
    chmodSync(join(tree, 'tmp'), 0o1777);
  }
  if ((files.users?.length ?? 0) === 0 && (files.groups?.length ?? 0) === 0) return [];
  return writeAccounts(tree, files.users ?? [], files.groups ?? []);
}

function writeAccounts(tree: string, declared: SystemUser[], declaredGroups: SystemGroup[]): PathPerm[] {
  const users = withDefaults(declared);
  const groups = groupsOf(users, declaredGroups);
  const passwd = users.map((u) => `${u.name}:x:${u.uid}:${u.gid}:${u.description ?? ''}:${u.home}:${u.shell ?? '/bin/sh'}`);
  const shadow = users.map((u) => `${u.name}:!:1::::::`);
  const group = groups.map((g) => `${g.name}:x:${g.gid}:${(g.members ?? []).join(',')}`);
  writeEtc(tree, 'etc/passwd', passwd, 0o644);
  writeEtc(tree, 'etc/group', group, 0o644);
  writeEtc(tree, 'etc/shadow', shadow, 0o600);
  const homes: PathPerm[] = [];
  for (const user of users) {
    if (user.createHome === false) continue;
    makeDirs(tree, user.home!.replace(/^\/+/, ''));
    homes.push({ path: user.home!, uid: user.uid, gid: user.gid! });
  }
  return homes;
}

/** The declared users with defaults, root and nobody added when not declared, sorted by uid. */
function withDefaults(declared: SystemUser[]): SystemUser[] {
  const users = declared.map((u) => ({
    ...u,
    gid: u.gid ?? u.uid,
    home: u.home ?? (u.uid === 0 ? '/root' : `/home/${u.name}`),
  }));
  for (const builtIn of [ROOT, NOBODY]) {
    if (!users.some((u) => u.name === builtIn.name || u.uid === builtIn.uid)) users.push(builtIn as typeof users[number]);
  }
  return users.sort((a, b) => a.uid - b.uid);
}

/** Declared groups, plus a group per user's primary gid that none declares (named after the user). */
function groupsOf(users: SystemUser[], declared: SystemGroup[]): SystemGroup[] {
  const groups = [...declared];
  for (const user of users) {
    if (!groups.some((g) => g.gid === user.gid)) groups.push({ name: user.gid === 65534 ? 'nogroup' : user.name, gid: user.gid! });
  }
  return groups.sort((a, b) => a.gid - b.gid);
}

function writeEtc(tree: string, path: string, lines: string[], mode: number): void {
  makeDirs(tree, dirname(path));
  const file = join(tree, path);
  if (existsSync(file) || isSymlink(file)) rmSync(file); // a contents path's /etc/passwd (fakeNss) is replaced
  writeFileSync(file, `${lines.join('\n')}\n`);
  chmodSync(file, mode);
}

function link(tree: string, path: string, target: string): void {
  makeDirs(tree, dirname(path));
  const file = join(tree, path);
  if (existsSync(file) || isSymlink(file)) rmSync(file);
  symlinkSync(target, file);
}

/** A cacert store path (its etc/ssl/certs/ca-bundle.crt) or a bundle file in the store. */
function caBundle(path: string, physicalPath: (path: string) => string): string {
  const stats = lstatSync(physicalPath(path), { throwIfNoEntry: false });
  if (stats?.isFile()) return path;
  const inside = `${path}/${CA_BUNDLE_IN_STORE_PATH}`;
  if (stats?.isDirectory() && existsSync(physicalPath(inside))) return inside;
  throw new NixdockError('INPUT_INVALID', `caCertificates: ${path} holds no CA bundle`, {
    location: { field: 'caCertificates' },
    found: stats === undefined ? 'no such path' : `no ${CA_BUNDLE_IN_STORE_PATH} in it`,
    expected: `a cacert store path (with ${CA_BUNDLE_IN_STORE_PATH}) or a CA bundle file in the store`,
    hint: 'Use nixpkgs#cacert: caCertificates: "/nix/store/…-nss-cacert-…".',
  });
}

/**
 * mkdir -p with DIR_MODE for every directory it creates (the layer must not depend on the umask).
 * A symlinked directory on the way (a contents path's `etc` linked into the store) is refused:
 * writing through it would write into the store, outside any sandbox.
 */
function makeDirs(tree: string, path: string): void {
  let current = tree;
  let inImage = '';
  for (const part of path.split('/').filter(Boolean)) {
    current = join(current, part);
    inImage += `/${part}`;
    const stats = lstatSync(current, { throwIfNoEntry: false });
    if (stats?.isDirectory()) continue;
    if (stats !== undefined) throw notADirectory(inImage, stats.isSymbolicLink());
    mkdirSync(current);
    chmodSync(current, DIR_MODE);
  }
}

function notADirectory(inImage: string, symlink: boolean): NixdockError {
  return new NixdockError('INPUT_INVALID', `Cannot write system files below ${inImage}: it is ${symlink ? 'a symlink' : 'a file'} in the image root`, {
    location: { field: 'contents' },
    found: `${inImage} is ${symlink ? 'a symlink (a contents store path links it as a whole)' : 'a file'}`,
    expected: 'a directory, or nothing, where users, binSh, usrBinEnv, caCertificates or tmp write',
    hint: 'Leave the path out of contents, or write the files yourself in extraCommands.',
  });
}

function isSymlink(path: string): boolean {
  return lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink() ?? false;
}
