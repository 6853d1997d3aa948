/**
 * runAsRoot beyond the basics in dockertools.test.ts: the store paths it writes join the image, and
 * a machine without user namespaces gets the clear error. The real CLI over real Nix store paths.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { nixdockArgv, nixdockOk } from '../helpers/cli.js';
import { BUSYBOX, NIX_ENV, drv, nixBuild } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { RUN_FLAGS, podman } from '../helpers/podman.js';
import { tempProject } from '../helpers/project.js';
import { tempDir } from '../helpers/tmp.js';

const NIX: [string, string] = ['nix-build', 'nix-bin'];
const BWRAP: [string, string] = ['bwrap', 'bubblewrap'];
const UNSHARE: [string, string] = ['unshare', 'util-linux'];
const PODMAN: Array<[string, string]> = [['podman', 'podman'], ['runc', 'runc']];

function runImage(t: Parameters<typeof tempDir>[0], archive: string): string {
  const store = join(tempDir(t, 'nixdock-pd-'), 'podman');
  const loaded = /Loaded image: (\S+)/.exec(podman(store, ['load', '-q', '-i', archive]));
  assert.ok(loaded, `podman load named no image for ${archive}`);
  return podman(store, [...RUN_FLAGS, loaded[1]!]);
}

test('runAsRoot: a store path its output names joins the closure, so the link works at run time', { skip: missingTools([NIX, BWRAP, ...PODMAN]) }, (t) => {
  const [busybox] = nixBuild(BUSYBOX);
  const [lib] = nixBuild(drv('run-as-root-lib', 'export PATH=/usr/bin:/bin; mkdir -p $out/share; echo named-by-run-as-root > $out/share/msg'));
  const dir = tempProject(t, {
    'nixdock.config.json': {
      formats: ['oci', 'docker-archive'],
      images: [{ name: 'img', contents: [busybox], runAsRoot: `mkdir -p /etc; ln -s ${lib}/share/msg /etc/msg`, config: { Cmd: ['/bin/cat', '/etc/msg'] } }],
    },
  }).dir;
  const built = JSON.parse(nixdockOk(dir, ['build', '--json']).stdout) as { images: Array<{ layers: Array<{ storePaths: string[] }> }> };
  const storePaths = built.images[0]!.layers.flatMap((layer) => layer.storePaths);
  assert.ok(storePaths.includes(lib!), `${lib} is in a store layer: ${storePaths.join(', ')}`);
  assert.equal(runImage(t, join(dir, 'out', 'img.tar')), 'named-by-run-as-root\n');
});

/**
 * `nixdock ARGS` as uid 1000 in a user namespace whose parent allows no further one: the outer
 * namespace (root of its own) sets user.max_user_namespaces to 1 and spends it on the inner, so
 * bwrap's own user namespace is refused (ENOSPC) as on a machine that has them switched off.
 */
function nixdockWithoutUserNamespaces(cwd: string, args: string[]) {
  const inner = ['unshare', '--user', '--map-user=1000', '--map-group=1000', process.execPath, ...nixdockArgv(args)];
  const script = 'echo 1 > /proc/sys/user/max_user_namespaces && exec "$@"';
  const run = spawnSync('unshare', ['--user', '--map-root-user', 'sh', '-c', script, 'sh', ...inner], { cwd, env: NIX_ENV, encoding: 'utf8' });
  return { status: run.status, stderr: run.stderr };
}

test('runAsRoot and extraCommands without user namespaces: TOOL_MISSING (exit 3) saying the sandbox cannot be made and what to enable', { skip: missingTools([NIX, BWRAP, UNSHARE]) }, (t) => {
  const [busybox] = nixBuild(BUSYBOX);
  const dir = tempProject(t, {
    'nixdock.config.json': {
      images: [
        { name: 'root-script', contents: [busybox], runAsRoot: 'echo hi > /hello' },
        { name: 'extra', contents: [busybox], extraCommands: 'mkdir -p etc' },
      ],
    },
  }).dir;
  for (const [image, field] of [['root-script', 'runAsRoot'], ['extra', 'extraCommands']] as const) {
    const run = nixdockWithoutUserNamespaces(dir, ['build', image]);
    assert.equal(run.status, 3, run.stderr);
    assert.match(run.stderr, new RegExp(`error\\[TOOL_MISSING\\]: ${field} cannot make its sandbox on this machine`));
    assert.match(run.stderr, /namespaces exceeded \(ENOSPC\)/, 'bwrap\'s own reason is shown');
    assert.match(run.stderr, /user\.max_user_namespaces > 0/, 'the hint says what to enable');
  }
});

test('enableFakechroot: fakeRootCommands see the image root as / (the store read-only at its place) and their chown/chmod are the layer\'s owners; no mount points are left behind', { skip: missingTools([NIX, BWRAP, ['tar', 'tar'], ...PODMAN]) }, (t) => {
  const [busybox] = nixBuild(BUSYBOX);
  const dir = tempProject(t, {
    'nixdock.config.json': {
      formats: ['oci', 'docker-archive'],
      images: [{
        name: 'img',
        tag: 'v1',
        contents: [busybox, './rootfs'],
        enableFakechroot: true,
        fakeRootCommands: `busybox cat /etc/marker > /seen; busybox test -x ${busybox}/bin/busybox; busybox mkdir -p /home/alice; busybox chown 1000:100 /home/alice; busybox chmod 700 /home/alice`,
        config: { User: '1000', Cmd: ['/bin/sh', '-c', 'cat /seen; busybox touch /home/alice/ok && echo alice can write'] },
      }],
    },
    'rootfs/etc/marker': 'the image root\n',
  }).dir;
  const built = JSON.parse(nixdockOk(dir, ['build', '--json']).stdout) as { images: Array<{ layers: Array<{ diffId: string }> }> };
  const blob = join(dir, 'out', 'oci', 'blobs', 'sha256', built.images[0]!.layers.at(-1)!.diffId.replace('sha256:', ''));
  const listing = execFileSync('tar', ['--numeric-owner', '-tvf', blob], { encoding: 'utf8' });
  assert.match(listing, /^-rw-r--r-- 0\/0 .* seen$/m);
  assert.doesNotMatch(listing, / (proc|dev|nix)\/$/m, 'the sandbox\'s mount points are not in the layer');
  if (process.getuid?.() !== 0) return t.diagnostic('chown to another id needs root (unprivileged it runs in a one-id user namespace); skipped that part');
  assert.match(listing, /^drwx------ 1000\/100 .* home\/alice\/$/m);
  if (missingTools([['umoci', 'umoci']]) === false) {
    const bundle = join(tempDir(t, 'nixdock-umoci-'), 'bundle');
    execFileSync('umoci', ['unpack', '--image', `${join(dir, 'out', 'oci')}:v1`, bundle], { stdio: 'pipe' });
    const stats = lstatSync(join(bundle, 'rootfs', 'home', 'alice'));
    assert.equal(`${(stats.mode & 0o7777).toString(8)} ${stats.uid}:${stats.gid}`, '700 1000:100');
  }
  assert.equal(runImage(t, join(dir, 'out', 'img.tar')), 'the image root\nalice can write\n');
});

test('enableFakechroot without fakeRootCommands is refused (exit 2) naming the field', { skip: missingTools([NIX]) }, (t) => {
  const [busybox] = nixBuild(BUSYBOX);
  const dir = tempProject(t, { 'nixdock.config.json': { images: [{ name: 'x', contents: [busybox], enableFakechroot: true }] } }).dir;
  const run = spawnSync(process.execPath, nixdockArgv(['build']), { cwd: dir, env: NIX_ENV, encoding: 'utf8' });
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, /images\[0\]\.enableFakechroot/);
});
