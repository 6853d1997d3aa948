/**
 * `fromImage` through the real CLI: a busybox base image as a docker-archive written by skopeo
 * (plain and gzip), as an OCI layout, and pulled from a real registry by digest. Each result runs
 * in podman using the base's shell and the Nix app; the base's layers come first, unchanged, and
 * count against maxLayers; a malicious base is refused with nothing written.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { helloApp } from '../helpers/nix.js';
import { REGISTRY_BIN, REGISTRY_PACKAGE, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { missingTools } from '../helpers/tools.js';
import { gzipN, hybridDockerArchive, skopeoToDockerArchive, tarDirectory, writeOciLayout } from '../helpers/base-images.js';
import { podman, RUN_FLAGS } from '../helpers/podman.js';
import { skopeoConfig } from '../helpers/skopeo.js';
import type { BuildJsonImage } from '../../src/commands/build.js';
import { nixdock, nixdockJson } from '../helpers/cli.js';
import { tempProject } from '../helpers/project.js';
import { sha256 } from '../helpers/bytes.js';

const skip = missingTools([
  [REGISTRY_BIN, REGISTRY_PACKAGE], ['skopeo', 'skopeo'], ['nix-build', 'nix-bin'], ['podman', 'podman'], ['runc', 'runc'], ['busybox', 'busybox-static'], ['tar', 'tar'],
]);

const BASE_ENV = ['PATH=/bin', 'BASEVAR=from-base', 'SHARED=base'];
const APP_CONFIG = {
  Env: ['SHARED=own', 'OWNVAR=mine'],
  Cmd: ['/bin/sh', '-c', 'echo $BASEVAR $SHARED $OWNVAR; cat /etc/base-release; hello'],
};
const EXPECTED_OUTPUT = 'from-base own mine\nbusybox base 1\nfrom the nix app';

/** Layer 1: static busybox with /bin/sh → busybox. Layer 2: /etc/base-release. */
function baseLayers(work: string): Buffer[] {
  const shell = join(work, 'rootfs-shell');
  mkdirSync(join(shell, 'bin'), { recursive: true });
  copyFileSync(execFileSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).trim(), join(shell, 'bin', 'busybox'));
  symlinkSync('busybox', join(shell, 'bin', 'sh'));
  const release = join(work, 'rootfs-release');
  mkdirSync(join(release, 'etc'), { recursive: true });
  writeFileSync(join(release, 'etc', 'base-release'), 'busybox base 1\n');
  return [tarDirectory(shell), tarDirectory(release)];
}

/** Pushes the layout's image with skopeo and returns `host/base@sha256:…` (the digest skopeo wrote). */
function pushBase(layout: string, registry: TestRegistry, work: string): string {
  const digestFile = join(work, 'base.digest');
  execFileSync('skopeo', ['--insecure-policy', 'copy', '-q', '--dest-tls-verify=false', '--digestfile', digestFile, `oci:${layout}:v1`, `docker://${registry.host}/base:v1`]);
  return `${registry.host}/base@${readFileSync(digestFile, 'utf8').trim()}`;
}

describe('fromImage end to end', { skip }, () => {
  const project = tempProject({ after });
  const work = project.dir;
  let registry: TestRegistry;
  let layers: Buffer[];
  let built: Map<string, BuildJsonImage>;
  const sources = ['from-archive', 'from-archive-gz', 'from-oci', 'from-registry'];

  before(async () => {
    registry = await startRegistry();
    layers = baseLayers(work);
    const layout = join(work, 'layout');
    writeOciLayout(layout, [{ tag: 'v1', layers, config: { Env: BASE_ENV, Cmd: ['/bin/sh'] } }]);
    skopeoToDockerArchive(layout, 'v1', join(work, 'base.tar'));
    writeFileSync(join(work, 'base.tar.gz'), gzipN(readFileSync(join(work, 'base.tar'))));
    const pinned = pushBase(layout, registry, work);

    project.write('app.nix', helloApp('from the nix app'));
    const image = (name: string, fromImage: unknown, extra: object = {}) => ({ name, tag: 'e2e', contents: [{ nix: './app.nix' }], config: APP_CONFIG, maxLayers: 5, fromImage, ...extra });
    project.write('nixdock.config.json', {
      store: 'nix',
      images: [
        image('from-archive', 'docker-archive:base.tar'),
        image('from-archive-gz', { dockerArchive: 'base.tar.gz' }),
        image('from-oci', { oci: 'layout', tag: 'v1' }),
        image('from-registry', pinned),
        image('too-many', 'oci:layout:v1', { maxLayers: 3 }),
        image('evil', 'docker-archive:evil.tar'),
      ],
    });
    const result = nixdockJson(work, ['build', ...sources, '--format', 'oci', 'docker-archive']);
    built = new Map(result.images.map((i) => [i.name, i]));
  });
  after(async () => {
    await registry?.stop();
  });

  test('each base runs in podman with its shell, its files and its Env (own values win)', () => {
    const store = join(work, 'podman');
    for (const name of sources) {
      podman(store, ['load', '-q', '-i', join(work, 'out', `${name}.tar`)]);
      assert.equal(podman(store, [...RUN_FLAGS, `localhost/${name}:e2e`]).trim(), EXPECTED_OUTPUT, name);
      const env = skopeoConfig(`docker-archive:${join(work, 'out', `${name}.tar`)}`, work).config.Env!;
      assert.deepEqual([...env].sort(), ['BASEVAR=from-base', 'OWNVAR=mine', 'PATH=/bin', 'SHARED=own'], name);
    }
  });

  test('base layers come first with their diff_ids unchanged, and count against maxLayers', () => {
    const baseDiffIds = layers.map((l) => sha256(l));
    for (const name of sources) {
      const image = built.get(name)!;
      assert.equal(image.layers.length, 5, `${name}: 2 base + 2 store + 1 customisation = maxLayers`);
      assert.deepEqual(image.layers.slice(0, 2).map((l) => [l.kind, l.diffId]), baseDiffIds.map((d) => ['base', d]), name);
      assert.deepEqual(image.layers.slice(2).map((l) => l.kind), ['store', 'store', 'customisation'], name);
    }
  });

  test('maxLayers that leaves no room beside the base layers is a clear input error', () => {
    const run = nixdock(work, ['build', 'too-many']);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /INPUT_INVALID\]: maxLayers 3 leaves no room for store layers/);
    assert.match(run.stderr, /found: +2 base layer\(s\)/);
    assert.match(run.stderr, /maxLayers ≥ 4/);
  });

  test('a base tarball with a `..` entry is refused (UNSAFE_ARCHIVE, exit 2) and nothing is written', () => {
    const files = join(work, 'evil-files');
    mkdirSync(files);
    writeFileSync(join(files, 'escaped'), 'pwned\n');
    // GNU tar keeps `../` in names only with -P: what an attacker would do.
    const evil = execFileSync('tar', ['-P', '--transform', 's,^,../,', '-C', files, '-cf', '-', 'escaped']);
    hybridDockerArchive(join(work, 'evil-layout'), [layers[1]!, evil], { Cmd: ['/bin/sh'] }, join(work, 'evil.tar'));

    const out = join(work, 'evil-out');
    const run = nixdock(work, ['build', 'evil', '--out', out, '--format', 'oci', 'docker-archive']);
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /UNSAFE_ARCHIVE/);
    assert.match(run.stderr, /\.\.\/escaped/);
    assert.equal(existsSync(join(out, 'oci', 'index.json')), false, 'no image in the OCI layout');
    assert.equal(existsSync(join(out, 'evil.tar')), false, 'no docker-archive');
    assert.equal(existsSync(join(work, 'escaped')), false);
  });
});
