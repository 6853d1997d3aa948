/**
 * dockerTools buildImage's shape (`copyToRoot`): the contents copied into the root and, with their
 * closure, one layer on top of fromImage. The real CLI over real Nix store paths; layers read back
 * with GNU tar, images run in podman (runc).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { lstatSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempProject } from '../helpers/project.js';
import { BUSYBOX, NIX_ENV, drv, helloApp, nixBuild } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { RUN_FLAGS, podman } from '../helpers/podman.js';
import { tempDir } from '../helpers/tmp.js';
import { REGISTRY_BIN, REGISTRY_PACKAGE, startRegistry } from '../helpers/registry.js';
import { REPO, nixdock, nixdockArgv, nixdockOk } from '../helpers/cli.js';

const NIX: [string, string] = ['nix-build', 'nix-bin'];
const TAR: [string, string] = ['tar', 'tar'];
const PODMAN: Array<[string, string]> = [['podman', 'podman'], ['runc', 'runc']];

interface Built {
  tag: string;
  layers: Array<{ diffId: string }>;
}

function build(dir: string, image: string): Built {
  return (JSON.parse(nixdockOk(dir, ['build', image, '--json']).stdout) as { images: Built[] }).images[0]!;
}

const diffIds = (built: Built) => built.layers.map((layer) => layer.diffId);

/** `tar -tv` of an uncompressed layer blob in out/oci: one `mode uid/gid name[ -> target]` line per entry. */
function listLayer(dir: string, diffId: string): string[] {
  const blob = join(dir, 'out', 'oci', 'blobs', 'sha256', diffId.replace('sha256:', ''));
  const listing = execFileSync('tar', ['--numeric-owner', '-tvf', blob], { encoding: 'utf8' });
  return listing.trim().split('\n').map((line) => {
    const [mode, owner, , , , ...name] = line.split(/\s+/);
    return `${mode} ${owner} ${name.join(' ')}`;
  });
}

/** `umoci unpack` of out/oci:TAG (as root: real owners on disk): `mode uid:gid` of each path. */
function unpackedOwners(t: Parameters<typeof tempDir>[0], dir: string, tag: string, paths: string[]): Record<string, string> {
  const bundle = join(tempDir(t, 'nixdock-umoci-'), 'bundle');
  execFileSync('umoci', ['unpack', '--image', `${join(dir, 'out', 'oci')}:${tag}`, bundle], { stdio: 'pipe' });
  return Object.fromEntries(paths.map((path) => {
    const stats = lstatSync(join(bundle, 'rootfs', path));
    return [path, `${(stats.mode & 0o7777).toString(8).padStart(4, '0')} ${stats.uid}:${stats.gid}`];
  }));
}

function runImage(t: Parameters<typeof tempDir>[0], archive: string, args: string[] = []): string {
  const store = join(tempDir(t, 'nixdock-pd-'), 'podman');
  const loaded = /Loaded image: (\S+)/.exec(podman(store, ['load', '-q', '-i', archive]));
  assert.ok(loaded, `podman load named no image for ${archive}`);
  return podman(store, [...RUN_FLAGS, loaded[1]!, ...args]);
}

test('copyToRoot: one layer on the base with the copied root (uid/gid) and the closure the base lacks (root-owned); it runs and rebuilds to the same digests', { skip: missingTools([NIX, TAR, ...PODMAN]) }, (t) => {
  const [busybox] = nixBuild(BUSYBOX);
  const [app] = nixBuild(helloApp('copied to the root'));
  const closure = execFileSync('nix-store', ['-qR', app!], { encoding: 'utf8' }).trim().split('\n');
  const data = closure.find((path) => path.endsWith('-hello-data'))!;
  const dir = tempProject(t, {
    'nixdock.config.json': {
      formats: ['oci', 'docker-archive'],
      images: [
        { name: 'base', tag: 'base', contents: [busybox] },
        { name: 'app', tag: 'app', fromImage: 'oci:./out/oci:base', copyToRoot: [app], uid: 1000, gid: 100, config: { Cmd: ['/bin/hello'] } },
      ],
    },
  }).dir;
  const base = build(dir, 'base');
  const image = build(dir, 'app');
  assert.equal(image.layers.length, base.layers.length + 1, 'the base layers and one more');
  assert.deepEqual(diffIds(image).slice(0, -1), diffIds(base));
  const listing = listLayer(dir, image.layers.at(-1)!.diffId);
  assert.ok(listing.includes('dr-xr-xr-x 1000/100 bin/'), listing.join('\n'));
  assert.ok(listing.includes('-r-xr-xr-x 1000/100 bin/hello'), 'a copy of the file, not a link into the store');
  assert.ok(listing.includes(`-r--r--r-- 0/0 ${data.slice(1)}/share/message`), 'the closure is in the layer, root-owned');
  assert.ok(listing.includes(`dr-xr-xr-x 0/0 ${app!.slice(1)}/`));
  assert.equal(listing.some((line) => line.includes(busybox!.slice(1))), false, 'busybox is in the base: not repeated');
  assert.equal(runImage(t, join(dir, 'out', 'app.tar')), 'copied to the root\n');
  if (process.getuid?.() === 0 && missingTools([['umoci', 'umoci']]) === false) {
    assert.deepEqual(unpackedOwners(t, dir, 'app', ['bin', 'bin/hello', data.slice(1), `${data.slice(1)}/share/message`, busybox!.slice(1)]), {
      bin: '0555 1000:100', 'bin/hello': '0555 1000:100', [data.slice(1)]: '0555 0:0', [`${data.slice(1)}/share/message`]: '0444 0:0', [busybox!.slice(1)]: '0555 0:0',
    });
  }
  execFileSync('rm', ['-rf', join(dir, '.nixdock')]);
  assert.deepEqual(diffIds(build(dir, 'app')), diffIds(image), 'the same config from a cold cache gives the same layers');
});

test('keepContentsDirlinks: symlinks to directories are copied as those directories by default (rsync -k) and kept with it (rsync -K)', { skip: missingTools([NIX, TAR]) }, (t) => {
  const [lib] = nixBuild(drv('dirlink-lib', 'export PATH=/usr/bin:/bin; mkdir -p $out/share; echo msg > $out/share/msg'));
  const [tree] = nixBuild(drv('dirlinks', 'export PATH=/usr/bin:/bin; mkdir -p $out/real; echo f > $out/real/f; ln -s real $out/rel; ln -s ${lib}/share $out/abs', { lib: drv('dirlink-lib', 'export PATH=/usr/bin:/bin; mkdir -p $out/share; echo msg > $out/share/msg') }));
  const dir = tempProject(t, {
    'nixdock.config.json': {
      images: [
        { name: 'copied', tag: 'copied', copyToRoot: [tree] },
        { name: 'kept', tag: 'kept', copyToRoot: [tree], keepContentsDirlinks: true },
      ],
    },
  }).dir;
  const copied = listLayer(dir, build(dir, 'copied').layers.at(-1)!.diffId);
  assert.ok(copied.includes('dr-xr-xr-x 0/0 rel/') && copied.includes('-r--r--r-- 0/0 rel/f'), copied.join('\n'));
  assert.ok(copied.includes('-r--r--r-- 0/0 abs/msg'), 'a link into another store path is copied as its directory');
  const kept = listLayer(dir, build(dir, 'kept').layers.at(-1)!.diffId);
  assert.ok(kept.includes('lrwxrwxrwx 0/0 rel -> real'), kept.join('\n'));
  assert.ok(kept.includes(`lrwxrwxrwx 0/0 abs -> ${lib}/share`));
  assert.ok(kept.includes(`-r--r--r-- 0/0 ${lib!.slice(1)}/share/msg`), 'the linked store path is in the closure, so in the layer');
  assert.match(nixdockOk(dir, ['inspect', 'kept']).stdout, /^ {2}this plan \(copyToRoot\) +mean/m, 'inspect names the one layer, not a layering strategy');
});

test('contents and copyToRoot together, or keepContentsDirlinks without copyToRoot, are refused (exit 2) naming the field', { skip: missingTools([NIX]) }, (t) => {
  const [busybox] = nixBuild(BUSYBOX);
  const both = tempProject(t, { 'nixdock.config.json': { images: [{ name: 'x', contents: [busybox], copyToRoot: [busybox] }] } }).dir;
  const run = nixdock(both, ['build']);
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, /images\[0\]\.copyToRoot/);
  assert.match(run.stderr, /`contents` \(layered, like buildLayeredImage\) or `copyToRoot` \(one layer, like buildImage\), not both/);
  const stray = tempProject(t, { 'nixdock.config.json': { images: [{ name: 'x', contents: [busybox], keepContentsDirlinks: true }] } }).dir;
  const strayRun = nixdock(stray, ['build']);
  assert.equal(strayRun.status, 2, strayRun.stderr);
  assert.match(strayRun.stderr, /images\[0\]\.keepContentsDirlinks/);
});

test('nix/lib.nix: buildImage keeps copyToRoot (or old-style contents) and keepContentsDirlinks, so the spec is the one-layer shape', { skip: missingTools([NIX]) }, (t) => {
  const dir = tempDir(t, 'nixdock-lib-');
  const file = join(dir, 'image.nix');
  writeFileSync(file, `let nixdock = import ${join(REPO, 'nix', 'lib.nix')} { }; busybox = ${BUSYBOX};
in { new = nixdock.toBuildImageSpec { name = "a"; copyToRoot = [ busybox ]; keepContentsDirlinks = true; diskSize = 1024; };
     old = nixdock.toBuildImageSpec { name = "b"; contents = busybox; }; }`);
  const specs = JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', file], { env: NIX_ENV, encoding: 'utf8' }));
  assert.deepEqual(Object.keys(specs.new).sort(), ['copyToRoot', 'keepContentsDirlinks', 'name']);
  assert.match(specs.new.copyToRoot[0], /-busybox-static$/);
  assert.deepEqual(specs.old.copyToRoot, specs.new.copyToRoot);
});

test('copyToRoot with extraCommands, perms, users and runAsRoot: the customisation works over the copy, runAsRoot adds its one layer', { skip: missingTools([NIX, TAR, ['bwrap', 'bubblewrap'], ...PODMAN]) }, (t) => {
  const [busybox] = nixBuild(BUSYBOX);
  const dir = tempProject(t, {
    'nixdock.config.json': {
      formats: ['oci', 'docker-archive'],
      images: [{
        name: 'svc',
        tag: 'v1',
        copyToRoot: [busybox],
        users: [{ name: 'svc', uid: 1000 }],
        extraCommands: 'mkdir -p var/lib/svc',
        perms: [{ path: '/var/lib/svc', uid: 1000, gid: 1000, mode: '0700' }],
        runAsRoot: 'echo set up by root > /etc/motd',
        config: { User: 'svc', Cmd: ['/bin/sh', '-c', 'cat /etc/motd; echo state > /var/lib/svc/s && cat /var/lib/svc/s; ls -l /bin/sh'] },
      }],
    },
  }).dir;
  const image = build(dir, 'svc');
  assert.equal(image.layers.length, 2, 'the copyToRoot layer and runAsRoot\'s');
  const listing = listLayer(dir, image.layers[0]!.diffId);
  assert.ok(listing.includes('drwx------ 1000/1000 var/lib/svc/'), listing.join('\n'));
  assert.ok(listing.includes('drwxr-xr-x 1000/1000 home/svc/'));
  const output = runImage(t, join(dir, 'out', 'svc.tar'));
  assert.match(output, /^set up by root\nstate\n/);
  assert.match(output, /\/bin\/sh -> busybox$/m, 'a symlink in the copied tree stays a symlink');
});

test('copyToRoot unprivileged (uid 1000 in a user namespace): system files and extraCommands write into copied store directories, which stay 0555 in the layer', { skip: missingTools([NIX, TAR, ['bwrap', 'bubblewrap'], ['unshare', 'util-linux']]) }, (t) => {
  const [busybox] = nixBuild(BUSYBOX);
  const [etc] = nixBuild(drv('etc-dir', 'export PATH=/usr/bin:/bin; mkdir -p $out/etc; echo x > $out/etc/x'));
  const dir = tempProject(t, {
    'nixdock.config.json': { images: [{ name: 'img', tag: 'v1', copyToRoot: [busybox, etc], users: [{ name: 'alice', uid: 1000 }], extraCommands: 'ln -s busybox bin/true' }] },
  }).dir;
  const run = spawnSync('unshare', ['--user', '--map-user=1000', '--map-group=1000', process.execPath, ...nixdockArgv(['build', '--json'])], { cwd: dir, env: NIX_ENV, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const image = (JSON.parse(run.stdout) as { images: Built[] }).images[0]!;
  const listing = listLayer(dir, image.layers[0]!.diffId);
  assert.ok(listing.includes('dr-xr-xr-x 0/0 bin/') && listing.includes('lrwxrwxrwx 0/0 bin/true -> busybox'), listing.join('\n'));
  assert.ok(listing.includes('dr-xr-xr-x 0/0 etc/') && listing.some((line) => line.startsWith('-rw-r--r-- 0/0 etc/passwd')));
});

test('copyToRoot with includeNixDB: the database and the store share nix/ in the one layer, and nix-store --verify passes in the image', { skip: missingTools([NIX, ['busybox', 'busybox-static'], ...PODMAN]) }, (t) => {
  const examples = join(REPO, 'examples', 'dockertools', 'default.nix');
  const [busybox, nixStore] = nixBuild(`with import ${examples}; [ busybox nixStore ]`);
  const dir = tempProject(t, {
    'nixdock.config.json': {
      formats: ['oci', 'docker-archive'],
      images: [{
        name: 'db', tag: 'v1', copyToRoot: [busybox, nixStore], includeNixDB: true, tmp: true, users: [{ name: 'root', uid: 0 }],
        config: { Cmd: ['/bin/sh', '-c', '/bin/nix-store --verify --check-contents && echo store verified'], Env: ['NIX_CONFIG=build-users-group ='] },
      }],
    },
  }).dir;
  const image = build(dir, 'db');
  assert.equal(image.layers.length, 1);
  const names = listLayer(dir, image.layers[0]!.diffId).map((line) => line.split(' ')[2]);
  assert.equal(names.filter((name) => name === 'nix/').length, 1, 'one nix/ entry for the database and the store');
  assert.equal(runImage(t, join(dir, 'out', 'db.tar')), 'store verified\n');
});

test('copyToRoot pushed: the registry serves the built layer, and a machine with an empty cache pushes the unchanged image uploading nothing', { skip: missingTools([NIX, [REGISTRY_BIN, REGISTRY_PACKAGE], ['skopeo', 'skopeo']]) }, async (t) => {
  const registry = await startRegistry();
  t.after(() => registry.stop());
  const [app] = nixBuild(helloApp('pushed as one layer'));
  const dir = tempProject(t, { 'nixdock.config.json': { images: [{ name: 'one', tag: 'v1', copyToRoot: [app], config: { Cmd: ['/bin/hello'] } }] } }).dir;
  const built = build(dir, 'one');
  type Push = { manifestDigest: string; blobs: Array<{ kind: string; action: string; size: number }> };
  const push = (tag: string) => JSON.parse(nixdockOk(dir, ['push', 'one', `${registry.host}/one:${tag}`, '--json']).stdout) as Push;
  const cold = push('a');
  const config = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', '--config', `docker://${registry.host}/one:a`], { encoding: 'utf8' }));
  assert.deepEqual(config.rootfs.diff_ids, diffIds(built));
  execFileSync('rm', ['-rf', join(dir, '.nixdock'), join(dir, 'out')]);
  const fresh = push('b');
  assert.equal(fresh.manifestDigest, cold.manifestDigest);
  assert.deepEqual(fresh.blobs.filter((blob) => blob.kind === 'layer' && blob.action === 'uploaded'), []);
});
