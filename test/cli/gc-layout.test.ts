/**
 * `nixdock gc` bounds the disk an OCI output layout uses: three real builds of an image with a
 * content-derived tag leave three entries in out/oci; `gc --keep 1` leaves one, removes the blobs
 * only the others used, and skopeo still reads what is left.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempProject } from '../helpers/project.js';
import { missingTools } from '../helpers/tools.js';
import type { BuildJsonImage } from '../../src/commands/build.js';
import { nixdockJson, nixdockOk } from '../helpers/cli.js';
import { helloClosure } from '../helpers/nix.js';
import { tempDir } from '../helpers/tmp.js';

function build(dir: string): BuildJsonImage {
  return nixdockJson(dir, ['build']).images[0]!;
}

function blobs(layout: string): Set<string> {
  return new Set(readdirSync(join(layout, 'blobs', 'sha256')).map((hex) => `sha256:${hex}`));
}

function entries(layout: string): Array<{ digest: string; annotations: Record<string, string> }> {
  return JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')).manifests;
}

test('gc --keep 1 leaves one image in a layout that three builds wrote, with exactly its blobs', { skip: missingTools([['nix-build', 'nix-bin'], ['skopeo', 'skopeo']]) }, (t) => {
  const { app } = helloClosure('gc keeps what is current');
  const { dir } = tempProject(t, {
    'nixdock.config.json': { images: [{ name: 'app', contents: [app, './rootfs'], config: { Cmd: ['/bin/hello'] } }] },
    'rootfs/etc/round': '1',
  });
  const layout = join(dir, 'out', 'oci');
  const builds: BuildJsonImage[] = [];
  for (const round of ['1', '2', '3']) {
    writeFileSync(join(dir, 'rootfs', 'etc', 'round'), `round ${round}\n`);
    builds.push(build(dir));
  }
  const [first, , last] = builds as [BuildJsonImage, BuildJsonImage, BuildJsonImage];
  assert.equal(new Set(builds.map((b) => b.tag)).size, 3, 'each build has its own derived tag');
  assert.equal(entries(layout).length, 3);
  const before = blobs(layout);

  const dry = nixdockJson(dir, ['gc', '--keep', '1', '--dry-run']);
  assert.equal(dry.entries.length, 2);
  assert.deepEqual(blobs(layout), before, 'a dry run removes nothing');

  const { stderr } = nixdockOk(dir, ['gc', '--keep', '1']);
  assert.match(stderr, /Removed 2 old images from OCI layouts, 6 blob files/);
  const left = entries(layout);
  assert.deepEqual(left.map((e) => e.annotations['io.containerd.image.name']), [`app:${last.tag}`]);
  // Left: the last build's manifest, config and layers; gone: the two older customisation layers, configs and manifests.
  const wanted = new Set([last.manifestDigest, last.configDigest, ...last.layers.map((l) => l.diffId)]);
  assert.deepEqual(blobs(layout), wanted);
  assert.ok(!existsSync(join(layout, 'blobs', 'sha256', first.manifestDigest!.slice(7))));

  const tmp = tempDir(t, 'nixdock-gc-skopeo-');
  const inspected = JSON.parse(execFileSync('skopeo', ['--tmpdir', tmp, 'inspect', `oci:${layout}:${last.tag}`], { encoding: 'utf8' })) as { Layers: string[] };
  assert.deepEqual(inspected.Layers, last.layers.map((l) => l.diffId));

  // The next build and gc work on what is left, and a second gc finds nothing.
  writeFileSync(join(dir, 'rootfs', 'etc', 'round'), 'round 4\n');
  const fourth = build(dir);
  nixdockOk(dir, ['gc', '--keep', '1']);
  assert.deepEqual(entries(layout).map((e) => e.annotations['org.opencontainers.image.ref.name']), [fourth.tag]);
  assert.match(nixdockOk(dir, ['gc', '--keep', '1']).stderr, /Removed 0 blob files/);
});

test('gc leaves images it did not build in a layout alone', { skip: missingTools([['nix-build', 'nix-bin'], ['skopeo', 'skopeo']]) }, (t) => {
  const { app } = helloClosure('gc keeps what is current');
  const { dir } = tempProject(t, {
    'nixdock.config.json': { images: [{ name: 'app', tag: 'dev', contents: [app], config: { Cmd: ['/bin/hello'] } }] },
  });
  const layout = join(dir, 'out', 'oci');
  build(dir);
  // Someone copies the image into the same layout under another name: not nixdock's to remove.
  const tmp = tempDir(t, 'nixdock-gc-skopeo-');
  execFileSync('skopeo', ['--tmpdir', tmp, 'copy', '--preserve-digests', `oci:${layout}:dev`, `oci:${layout}:other`], { stdio: 'pipe' });
  nixdockOk(dir, ['gc', '--keep', '0']);
  assert.deepEqual(entries(layout).map((e) => e.annotations['org.opencontainers.image.ref.name']).sort(), ['dev', 'other']);
});
