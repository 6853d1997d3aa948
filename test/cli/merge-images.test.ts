/**
 * `nixdock merge` (dockerTools mergeImages): several project images in one docker-archive; real
 * `podman load` must bring in every tag, each runnable, with the image ids `nixdock build` gives.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempProject } from '../config/project.js';
import { BUSYBOX, NIX_ENV, nixBuild } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { RUN_FLAGS, podman, tempDir } from '../output/fixtures.js';
import { nixdock, nixdockIntoPodman, nixdockOk } from './helpers.js';

const NIX: [string, string] = ['nix-build', 'nix-bin'];
const PODMAN: Array<[string, string]> = [['podman', 'podman'], ['runc', 'runc']];

function mergeProject(t: Parameters<typeof tempProject>[0]): string {
  const [busybox] = nixBuild(BUSYBOX);
  return tempProject(t, {
    'nixdock.config.json': {
      images: [
        { name: 'first', tag: 'one', contents: [busybox, './a'], config: { Cmd: ['/bin/cat', '/etc/which'] } },
        { name: 'second', tag: 'two', contents: [busybox, './b'], config: { Cmd: ['/bin/cat', '/etc/which'] } },
        { name: 'third', contents: [busybox], config: { Cmd: ['/bin/echo', 'third'] } },
        // dockerTools' fromImageName on a mergeImages archive (build it after the merge)
        { name: 'on-merged', tag: 'v1', fromImage: 'docker-archive:./all.tar', fromImageName: 'second', config: { Cmd: ['/bin/cat', '/etc/which'] } },
      ],
    },
    'a/etc/which': 'first\n',
    'b/etc/which': 'second\n',
  });
}

/** `podman images` of a private store as `name:tag id` lines. */
function loadedImages(store: string): string[] {
  return podman(store, ['images', '--no-trunc', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']).trim().split('\n').sort();
}

test('nixdock merge -o FILE: one docker-archive that podman load turns into every tag, each runnable, with the ids nixdock build gives', { skip: missingTools([NIX, ...PODMAN]) }, (t) => {
  const dir = mergeProject(t);
  const built = JSON.parse(nixdockOk(dir, ['build', 'first', 'second', 'third', '--json']).stdout) as { images: Array<{ name: string; tag: string; configDigest: string }> };
  const merged = JSON.parse(nixdockOk(dir, ['merge', 'first', 'second', 'third', '-o', 'all.tar', '--json']).stdout) as { path: string; images: string[] };
  const third = built.images.find((image) => image.name === 'third')!;
  assert.deepEqual(merged.images, ['first:one', 'second:two', `third:${third.tag}`]);
  const store = join(tempDir(t, 'nixdock-pd-'), 'podman');
  podman(store, ['load', '-q', '-i', merged.path]);
  const expected = built.images.map((image) => `localhost/${image.name}:${image.tag} ${image.configDigest}`).sort();
  assert.deepEqual(loadedImages(store), expected);
  assert.equal(podman(store, [...RUN_FLAGS, 'localhost/first:one']), 'first\n');
  assert.equal(podman(store, [...RUN_FLAGS, 'localhost/second:two']), 'second\n');
  assert.equal(podman(store, [...RUN_FLAGS, `localhost/third:${third.tag}`]), 'third\n');
  nixdockOk(dir, ['build', 'on-merged', '--format', 'docker-archive']);
  podman(store, ['load', '-q', '-i', join(dir, 'out', 'on-merged.tar')]);
  assert.equal(podman(store, [...RUN_FLAGS, 'localhost/on-merged:v1']), 'second\n', 'fromImageName chose the second image of the merged archive');
});

test('nixdock merge to stdout pipes into podman load; a name that is not an image is refused (exit 2) before anything is written', { skip: missingTools([NIX, ...PODMAN]) }, async (t) => {
  const dir = mergeProject(t);
  const store = join(tempDir(t, 'nixdock-pd-'), 'podman');
  const { cli, podman: load } = await nixdockIntoPodman(dir, ['merge', '--quiet', 'second', 'first'], store, ['load']);
  assert.equal(cli.status, 0, cli.stderr);
  assert.equal(load.status, 0, load.stderr);
  assert.deepEqual(loadedImages(store).map((line) => line.split(' ')[0]), ['localhost/first:one', 'localhost/second:two']);
  const missing = nixdock(dir, ['merge', 'first', 'fourth', '-o', 'bad.tar']);
  assert.equal(missing.status, 2, missing.stderr);
  assert.match(missing.stderr, /No image named "fourth"/);
});

test('nixdock merge docker-archive:… (dockerTools tarballs, gzip or not) needs no project; archives and project images mix, each keeping its id', { skip: missingTools([NIX, ['gzip', 'gzip'], ...PODMAN]) }, (t) => {
  const dir = mergeProject(t);
  const built = JSON.parse(nixdockOk(dir, ['build', 'first', 'second', 'third', '--format', 'docker-archive', 'oci', '--json']).stdout) as { images: Array<{ name: string; tag: string; configDigest: string }> };
  const elsewhere = tempDir(t, 'nixdock-no-project-');
  execFileSync('sh', ['-c', `gzip -c ${join(dir, 'out', 'first.tar')} > ${join(elsewhere, 'first.tar.gz')}`]);
  const env = { ...NIX_ENV, XDG_CACHE_HOME: join(elsewhere, 'cache') };
  const archives = nixdock(elsewhere, ['merge', 'docker-archive:first.tar.gz', `docker-archive:${join(dir, 'out', 'second.tar')}`, '-o', 'both.tar', '--json'], env);
  assert.equal(archives.status, 0, archives.stderr);
  assert.deepEqual(JSON.parse(archives.stdout).images, ['first:one', 'second:two']);
  const mixed = JSON.parse(nixdockOk(dir, ['merge', 'third', `docker-archive:${join(elsewhere, 'both.tar')}`, '-o', 'mixed.tar', '--json']).stdout) as { path: string; images: string[] };
  const third = built.images.find((image) => image.name === 'third')!;
  assert.deepEqual(mixed.images, [`third:${third.tag}`, 'first:one', 'second:two']);
  const store = join(tempDir(t, 'nixdock-pd-'), 'podman');
  podman(store, ['load', '-q', '-i', mixed.path]);
  assert.deepEqual(loadedImages(store), built.images.map((image) => `localhost/${image.name}:${image.tag} ${image.configDigest}`).sort());
  assert.equal(podman(store, [...RUN_FLAGS, 'localhost/second:two']), 'second\n');
});
