/**
 * dockerTools' customisation features as a migrating user meets them: the real CLI in temporary
 * projects over real Nix store paths, images run in podman (runc) and unpacked with umoci.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempProject } from '../helpers/project.js';
import { BUSYBOX, NIX_ENV, drv, nixBuild } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { RUN_FLAGS, podman } from '../helpers/podman.js';
import { nixdock, nixdockJson, nixdockOk, nixdockToFile } from '../helpers/cli.js';
import { copyFromRepo, snapshot } from './helpers.js';
import { tempDir } from '../helpers/tmp.js';
import { sha256Hex } from '../helpers/bytes.js';

const NIX: [string, string] = ['nix-build', 'nix-bin'];
const BWRAP: [string, string] = ['bwrap', 'bubblewrap'];
const PODMAN: Array<[string, string]> = [['podman', 'podman'], ['runc', 'runc']];

let built: { busybox: string; lib: string } | undefined;
/** busybox (a shell for the images) and a library path nothing in contents refers to. */
function fixtures(): { busybox: string; lib: string } {
  built ??= {
    busybox: nixBuild(BUSYBOX)[0]!,
    lib: nixBuild(drv('dockertools-lib', 'export PATH=/usr/bin:/bin; mkdir -p $out/share; echo from-the-lib > $out/share/msg'))[0]!,
  };
  return built;
}

/** Loads out/<name>.tar into a private podman store and runs `args` in the image. */
function runImage(t: Parameters<typeof tempDir>[0], archive: string, args: string[], runFlags: string[] = []): string {
  const store = join(tempDir(t, 'nixdock-pd-'), 'podman');
  const loaded = /Loaded image: (\S+)/.exec(podman(store, ['load', '-q', '-i', archive]));
  assert.ok(loaded, `podman load named no image for ${archive}`);
  return podman(store, [...RUN_FLAGS, ...runFlags, loaded[1]!, ...args]);
}

function project(t: Parameters<typeof tempProject>[0], image: object): string {
  return tempProject(t, { 'nixdock.config.json': { formats: ['oci', 'docker-archive'], images: [{ name: 'img', ...image }] } }).dir;
}

test('extraCommands: a store path it links to joins the image, and the link works at run time', { skip: missingTools([NIX, BWRAP, ...PODMAN]) }, (t) => {
  const { busybox, lib } = fixtures();
  const dir = project(t, { contents: [busybox], extraCommands: `mkdir -p etc; ln -s ${lib}/share/msg etc/msg`, config: { Cmd: ['/bin/cat', '/etc/msg'] } });
  nixdockOk(dir, ['build']);
  assert.equal(runImage(t, join(dir, 'out', 'img.tar'), []), 'from-the-lib\n');
});

test('extraCommands that fails (`false; true`) fails the build with exit 1 and leaves the previous outputs as they were', { skip: missingTools([NIX, BWRAP]) }, (t) => {
  const { busybox } = fixtures();
  const dir = project(t, { contents: [busybox], extraCommands: 'mkdir -p etc; echo one > etc/version' });
  nixdockOk(dir, ['build']);
  const before = snapshot(join(dir, 'out'));
  const config = join(dir, 'nixdock.config.json');
  const spec = JSON.parse(readFileSync(config, 'utf8'));
  spec.images[0].extraCommands = 'false; true';
  execFileSync('sh', ['-c', `cat > ${config}`], { input: JSON.stringify(spec) });
  const run = nixdock(dir, ['build']);
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stderr, /error\[LAYER_BUILD\]: extraCommands failed \(exit status 1\)/);
  assert.deepEqual(snapshot(join(dir, 'out')), before);
});

test('a contents store path that is a symlink to a directory (layeredStoreSymlink) is merged as that directory', { skip: missingTools([NIX, ...PODMAN]) }, (t) => {
  const [link] = nixBuild(drv('busybox-link', 'export PATH=/usr/bin:/bin; ln -s ${busybox} $out', { busybox: BUSYBOX }));
  const dir = project(t, { contents: [link], config: { Cmd: ['/bin/sh', '-c', 'echo linked'] } });
  nixdockOk(dir, ['build']);
  assert.equal(runImage(t, join(dir, 'out', 'img.tar'), []), 'linked\n');
});

test('a contents store path that is a single file is refused (exit 2) before any layer is written', { skip: missingTools([NIX]) }, (t) => {
  const { busybox } = fixtures();
  const [file] = nixBuild(drv('single-file', 'export PATH=/usr/bin:/bin; echo just-a-file > $out'));
  const dir = project(t, { contents: [busybox, file] });
  const run = nixdock(dir, ['build']);
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, /error\[INPUT_INVALID\]: Cannot merge .*-single-file into the image root/);
  assert.match(run.stderr, /a single file/);
  assert.equal(existsSync(join(dir, 'out', 'oci')), false, 'no layout, no blobs');
  assert.equal(existsSync(join(dir, 'out', 'img.tar')), false);
});

test('created: "now" changes the config only: file mtimes stay at 1970 and every layer keeps its digest', { skip: missingTools([NIX]) }, (t) => {
  const { busybox } = fixtures();
  const fixed = project(t, { contents: [busybox], created: '2024-01-01T00:00:00Z' });
  const now = project(t, { contents: [busybox], created: 'now' });
  const layersOf = (dir: string) => nixdockJson(dir, ['build']).images[0]!.layers.map((l) => l.diffId);
  assert.deepEqual(layersOf(now), layersOf(fixed));
});

test('stream --nixpkgs-conf inside a project with a `dir` store reads the conf\'s paths from its store_dir', { skip: missingTools([NIX, ['tar', 'tar']]) }, (t) => {
  const { busybox } = fixtures();
  const { dir } = tempProject(t, { 'nixdock.config.json': { store: { type: 'dir', path: './store' }, images: [] }, 'store/.keep': '' });
  const layerDir = join(dir, 'custom');
  mkdirSync(join(layerDir, 'tree'), { recursive: true });
  execFileSync('tar', ['--owner=0', '--group=0', '--numeric-owner', '--mtime=@1', '-C', join(layerDir, 'tree'), '-cf', join(layerDir, 'layer.tar'), '.']);
  writeFileSync(join(layerDir, 'checksum'), sha256Hex(readFileSync(join(layerDir, 'layer.tar'))));
  const conf = {
    architecture: 'amd64', config: { Cmd: ['/bin/sh'] }, created: '1970-01-01T00:00:01Z', mtime: '1970-01-01T00:00:01Z',
    uid: 0, gid: 0, uname: 'root', gname: 'root', store_dir: '/nix/store', from_image: null,
    store_layers: [[busybox]], customisation_layer: layerDir, repo_tag: 'conf-img:v1',
  };
  writeFileSync(join(dir, 'conf.json'), JSON.stringify(conf));
  const archive = join(tempDir(t, 'nixdock-conf-'), 'image.tar');
  const run = nixdockToFile(dir, ['stream', '--quiet', '--nixpkgs-conf', 'conf.json'], archive);
  assert.equal(run.status, 0, run.stderr);
  const listing = execFileSync('tar', ['-tf', archive], { encoding: 'utf8' });
  assert.match(listing, /manifest\.json/);
});

/** Unpacks out/oci:TAG with umoci (as root: real owners on disk) and returns `mode uid:gid` of each path. */
function unpackedOwners(t: Parameters<typeof tempDir>[0], dir: string, tag: string, paths: string[]): Record<string, string> {
  const bundle = join(tempDir(t, 'nixdock-umoci-'), 'bundle');
  execFileSync('umoci', ['unpack', '--image', `${join(dir, 'out', 'oci')}:${tag}`, bundle], { stdio: 'pipe' });
  return Object.fromEntries(paths.map((path) => {
    const stats = lstatSync(join(bundle, 'rootfs', path));
    return [path, `${(stats.mode & 0o7777).toString(8).padStart(4, '0')} ${stats.uid}:${stats.gid}`];
  }));
}

function builtTag(dir: string): string {
  return (JSON.parse(nixdockOk(dir, ['build', '--json']).stdout) as { images: Array<{ tag: string }> }).images[0]!.tag;
}

test('a service with its own user and state dir (perms): runs as uid 1000 and writes its state; umoci shows the owners', { skip: missingTools([NIX, BWRAP, ['umoci', 'umoci'], ...PODMAN]) }, (t) => {
  const { busybox } = fixtures();
  const dir = project(t, {
    contents: [busybox],
    extraCommands: 'mkdir -p var/lib/svc tmp',
    perms: [{ path: '/var/lib/svc', uid: 1000, gid: 1000, mode: '0700' }, { path: '/tmp', mode: '1777' }],
    config: { User: '1000:1000', Cmd: ['/bin/sh', '-c', 'id -u; echo saved > /var/lib/svc/state; cat /var/lib/svc/state'] },
  });
  const tag = builtTag(dir);
  assert.equal(runImage(t, join(dir, 'out', 'img.tar'), []), '1000\nsaved\n');
  if (process.getuid?.() !== 0) return t.diagnostic('owners on disk need umoci as root; skipped that part');
  assert.deepEqual(unpackedOwners(t, dir, tag, ['var/lib/svc', 'tmp', 'bin']), { 'var/lib/svc': '0700 1000:1000', tmp: '1777 0:0', bin: '0755 0:0' });
});

test('fakeRootCommands: chown in the script gives the owner in the image', { skip: missingTools([NIX, BWRAP, ['fakeroot', 'fakeroot'], ...PODMAN]) }, (t) => {
  const { busybox } = fixtures();
  const dir = project(t, {
    contents: [busybox],
    extraCommands: 'mkdir -p home/alice',
    fakeRootCommands: 'chown 1000:1000 home/alice && chmod 700 home/alice',
    config: { User: '1000', Cmd: ['/bin/sh', '-c', 'touch /home/alice/ok && ls -ln /home | grep alice'] },
  });
  nixdockOk(dir, ['build']);
  assert.match(runImage(t, join(dir, 'out', 'img.tar'), []), /^drwx------ +\d+ 1000 +1000 .* alice$/m);
});

test('users, binSh, usrBinEnv, caCertificates and tmp: a non-root user by name, with its home, a shell, env, CAs and /tmp', { skip: missingTools([NIX, ['umoci', 'umoci'], ...PODMAN]) }, (t) => {
  const { busybox } = fixtures();
  const [cacert] = nixBuild(drv('fake-cacert', 'export PATH=/usr/bin:/bin; mkdir -p $out/etc/ssl/certs; echo "-----BEGIN CERTIFICATE-----" > $out/etc/ssl/certs/ca-bundle.crt'));
  const dir = project(t, {
    users: [{ name: 'alice', uid: 1000, description: 'Alice' }],
    groups: [{ name: 'staff', gid: 50, members: ['alice'] }],
    binSh: `${busybox}/bin/sh`,
    usrBinEnv: `${busybox}/bin/busybox`,
    caCertificates: cacert,
    tmp: true,
    config: { User: 'alice', Cmd: ['/bin/sh', '-c', 'id; cd; pwd; touch ~/mine /tmp/scratch; /usr/bin/env sh -c "head -1 /etc/ssl/certs/ca-certificates.crt"'] },
  });
  const tag = builtTag(dir);
  const output = runImage(t, join(dir, 'out', 'img.tar'), []);
  assert.match(output, /^uid=1000\(alice\) gid=1000\(alice\) groups=50\(staff\),1000\(alice\)$/m);
  assert.match(output, /^\/home\/alice\n-----BEGIN CERTIFICATE-----\n$/m);
  if (process.getuid?.() !== 0) return t.diagnostic('owners on disk need umoci as root; skipped that part');
  assert.deepEqual(unpackedOwners(t, dir, tag, ['home/alice', 'root', 'tmp', 'etc/shadow', 'etc/passwd']), {
    'home/alice': '0755 1000:1000', root: '0755 0:0', tmp: '1777 0:0', 'etc/shadow': '0600 0:0', 'etc/passwd': '0644 0:0',
  });
});

/** NIX_ENV with PATH rebuilt from links to every program but `hidden`. */
function envWithout(t: Parameters<typeof tempDir>[0], hidden: string): NodeJS.ProcessEnv {
  const linked = tempDir(t, 'nixdock-path-');
  for (const dir of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) if (name !== hidden && !existsSync(join(linked, name))) symlinkSync(join(dir, name), join(linked, name));
  }
  return { ...NIX_ENV, PATH: linked };
}

/** A project with a base image (busybox + /etc/base-file, tag base) and `app` built on it with runAsRoot. */
function runAsRootProject(t: Parameters<typeof tempProject>[0], runAsRoot: string): string {
  const { busybox } = fixtures();
  return tempProject(t, {
    'nixdock.config.json': {
      formats: ['oci', 'docker-archive'],
      images: [
        { name: 'base', tag: 'base', contents: [busybox, './rootfs'] },
        { name: 'app', tag: 'app', fromImage: 'oci:./out/oci:base', contents: [busybox], runAsRoot, config: { Cmd: ['/bin/sh', '-c', 'cat /etc/base-file 2>/dev/null || echo base-file-gone; ls -lnd /var/lib/svc; cat /hello'] } },
      ],
    },
    'rootfs/etc/base-file': 'from-base\n',
  }).dir;
}

const RUN_AS_ROOT = 'rm /etc/base-file; mkdir -p /var/lib/svc; chown 1000:1000 /var/lib/svc; echo hi > /hello';

test('runAsRoot over a base image: its deletion is a whiteout podman honours, its chown and files are one more layer, and it is reproducible', { skip: missingTools([NIX, BWRAP, ...PODMAN]) }, (t) => {
  const dir = runAsRootProject(t, RUN_AS_ROOT);
  nixdockOk(dir, ['build', 'base']);
  const layersOf = () => (JSON.parse(nixdockOk(dir, ['build', 'app', '--json']).stdout) as { images: Array<{ layers: Array<{ diffId: string }> }> }).images[0]!.layers.map((l) => l.diffId);
  const first = layersOf();
  const output = runImage(t, join(dir, 'out', 'app.tar'), []);
  assert.match(output, /^base-file-gone$/m);
  if (process.getuid?.() === 0) assert.match(output, /^drwxr-xr-x +\d+ 1000 +1000 .*\/var\/lib\/svc$/m);
  assert.match(output, /^hi$/m);
  rmSync(join(dir, '.nixdock'), { recursive: true, force: true });
  assert.deepEqual(layersOf(), first, 'the same config built again from a cold cache gives the same layers');
});

test('a failing runAsRoot fails the build with exit 1 and leaves the previous outputs intact', { skip: missingTools([NIX, BWRAP]) }, (t) => {
  const dir = runAsRootProject(t, 'echo fine > /ok');
  nixdockOk(dir, ['build']);
  const before = snapshot(join(dir, 'out'));
  const config = join(dir, 'nixdock.config.json');
  const spec = JSON.parse(readFileSync(config, 'utf8'));
  spec.images[1].runAsRoot = 'echo about to fail >&2; false; echo not reached > /x';
  writeFileSync(config, JSON.stringify(spec));
  const run = nixdock(dir, ['build', 'app']);
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stderr, /error\[LAYER_BUILD\]: runAsRoot failed \(exit status 1\)/);
  assert.match(run.stderr, /about to fail/);
  assert.deepEqual(snapshot(join(dir, 'out')), before);
});

test('runAsRoot without bubblewrap on PATH: TOOL_MISSING (exit 3) naming it', { skip: missingTools([NIX]) }, (t) => {
  const dir = runAsRootProject(t, 'true');
  const run = nixdock(dir, ['build', 'base'], envWithout(t, 'bwrap'));
  assert.equal(run.status, 0, run.stderr);
  const failed = nixdock(dir, ['build', 'app'], envWithout(t, 'bwrap'));
  assert.equal(failed.status, 3, failed.stderr);
  assert.match(failed.stderr, /error\[TOOL_MISSING\]: runAsRoot needs `bwrap`/);
  assert.match(failed.stderr, /bubblewrap/);
});

test('examples/dockertools: every image builds and runs in podman as its comment says', { skip: missingTools([NIX, BWRAP, ['busybox', 'busybox-static'], ...PODMAN]) }, (t) => {
  const { dir } = tempProject(t, {});
  copyFromRepo(dir, ['examples/dockertools']);
  const project = join(dir, 'examples', 'dockertools');
  nixdockOk(project, ['build', 'shell']);
  nixdockOk(project, ['build']);
  const run = (image: string, args: string[] = []) => runImage(t, join(project, 'out', `${image}.tar`), args);
  assert.equal(run('shell', ['/bin/sh', '-c', 'id; stat -c %a /tmp']), 'uid=0(root) gid=0(root)\n1777\n');
  assert.equal(run('counter'), 'run 1 as counter\n');
  assert.equal(run('nix-db'), 'store verified\n');
  assert.equal(run('on-shell'), 'layered on /bin/sh with PATH=/bin\n');
  assert.equal(run('store-symlink'), 'linked through /bin\n');
  assert.equal(run('non-root'), 'alice\n/home/alice\nset up by root\n');
  assert.equal(run('copied'), 'copied: 1000:1000 -r-xr-xr-x\n');
});

test('fromImageName/fromImageTag choose one image of a multi-image docker-archive (podman save -m)', { skip: missingTools([NIX, ...PODMAN]) }, (t) => {
  const { busybox } = fixtures();
  const { dir } = tempProject(t, {
    'nixdock.config.json': {
      formats: ['docker-archive'],
      images: [
        { name: 'first', tag: 'one', contents: [busybox, './a'] },
        { name: 'second', tag: 'two', contents: [busybox, './b'] },
        { name: 'app', fromImage: 'docker-archive:./multi.tar', fromImageName: 'second', fromImageTag: 'two', config: { Cmd: ['/bin/cat', '/etc/which'] } },
      ],
    },
    'a/etc/which': 'first\n',
    'b/etc/which': 'second\n',
  });
  nixdockOk(dir, ['build', 'first', 'second']);
  const store = join(tempDir(t, 'nixdock-pd-'), 'podman');
  for (const name of ['first', 'second']) podman(store, ['load', '-q', '-i', join(dir, 'out', `${name}.tar`)]);
  podman(store, ['save', '-q', '-m', '-o', join(dir, 'multi.tar'), 'localhost/first:one', 'localhost/second:two']);
  nixdockOk(dir, ['build', 'app']);
  assert.equal(runImage(t, join(dir, 'out', 'app.tar'), []), 'second\n');
  const spec = JSON.parse(readFileSync(join(dir, 'nixdock.config.json'), 'utf8'));
  spec.images[2].fromImageTag = 'three';
  writeFileSync(join(dir, 'nixdock.config.json'), JSON.stringify(spec));
  const missing = nixdock(dir, ['build', 'app']);
  assert.equal(missing.status, 2, missing.stderr);
  assert.match(missing.stderr, /holds no image second:three/);
  assert.match(missing.stderr, /localhost\/second:two/);
});
