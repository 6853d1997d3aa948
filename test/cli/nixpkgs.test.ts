/**
 * The nixpkgs drop-in as someone migrating from dockerTools uses it: the conf.json of a
 * streamLayeredImage result, handed to `nixdock stream --nixpkgs-conf` in a directory with no
 * nixdock config, gives the layers nixpkgs' own script would (same diff_ids), and podman runs it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempProject } from '../helpers/project.js';
import { missingTools } from '../helpers/tools.js';
import { helloClosure } from '../helpers/nix.js';
import { referenceLayers } from '../helpers/nixpkgs-reference.js';
import { RUN_FLAGS, podman } from '../helpers/podman.js';
import { skopeoConfig } from '../helpers/skopeo.js';
import type { TarSettings } from '../../src/types.js';
import { nixdockToFile } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { sha256 } from '../helpers/bytes.js';

const NEEDS = missingTools([['nix-build', 'nix-bin'], ['python3', 'python3'], ['tar', 'tar'], ['skopeo', 'skopeo'], ['podman', 'podman'], ['runc', 'runc']]);

/** Owner and time settings unlike the defaults, so a drop-in that ignored them would show. */
const SETTINGS: TarSettings = { mtime: 1_700_000_000, uid: 1000, gid: 100, uname: 'app', gname: 'users' };

/** nixpkgs' customisation layer: a directory holding layer.tar (made by GNU tar in the image derivation) and its sha256 in `checksum`. */
function customisationLayer(dir: string, app: string): string {
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'bin'), { recursive: true });
  symlinkSync(`${app}/bin/hello`, join(tree, 'bin', 'hello'));
  const layerDir = join(dir, 'customisation-layer');
  mkdirSync(layerDir);
  const tar = join(layerDir, 'layer.tar');
  execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@1', '--hard-dereference', '-C', tree, '-cf', tar, '.']);
  writeFileSync(join(layerDir, 'checksum'), sha256(readFileSync(tar)).slice(7));
  return layerDir;
}

test('nixdock stream --nixpkgs-conf writes nixpkgs\' layers without a nixdock config, and podman runs it', { skip: NEEDS }, (t) => {
  const closure = helloClosure('hello from a nixpkgs conf.json');
  const [busybox, data, app] = closure.paths as [string, string, string];
  const { dir } = tempProject(t, {});
  const storeLayers = [[busybox], [data, app]];
  const conf = {
    architecture: 'amd64',
    config: { Cmd: ['/bin/hello'] },
    created: '2023-11-14T22:13:20Z',
    mtime: new Date(SETTINGS.mtime * 1000).toISOString(),
    uid: SETTINGS.uid,
    gid: SETTINGS.gid,
    uname: SETTINGS.uname,
    gname: SETTINGS.gname,
    store_dir: '/nix/store',
    from_image: null,
    store_layers: storeLayers,
    customisation_layer: customisationLayer(dir, app),
    repo_tag: 'nixpkgs-hello:v1',
  };
  writeFileSync(join(dir, 'conf.json'), JSON.stringify(conf, null, 2));

  const archive = join(tempDir(t, 'nixdock-nixpkgs-'), 'image.tar');
  const run = nixdockToFile(dir, ['stream', '--quiet', '--nixpkgs-conf', 'conf.json'], archive);
  assert.equal(run.status, 0, run.stderr);

  const expected = [
    ...referenceLayers(storeLayers.map((paths) => ({ paths, settings: SETTINGS }))).map((bytes) => sha256(bytes)),
    `sha256:${readFileSync(join(conf.customisation_layer, 'checksum'), 'utf8').trim()}`,
  ];
  const work = tempDir(t, 'nixdock-nixpkgs-check-');
  assert.deepEqual(skopeoConfig(`docker-archive:${archive}`, work).rootfs.diff_ids, expected);
  const manifest = JSON.parse(execFileSync('tar', ['-xOf', archive, 'manifest.json'], { encoding: 'utf8' })) as Array<{ RepoTags: string[] }>;
  assert.deepEqual(manifest.map((m) => m.RepoTags), [['nixpkgs-hello:v1']]);

  podman(join(work, 'podman'), ['load', '-q', '-i', archive]);
  assert.equal(podman(join(work, 'podman'), [...RUN_FLAGS, 'nixpkgs-hello:v1']).trim(), closure.message);
});
