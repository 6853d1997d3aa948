/**
 * `nixdock build` then `nixdock push` against a real docker-registry, checked with skopeo: the
 * digest reported is the one the registry serves, and only blobs the registry lacks are uploaded —
 * also when the index is gone and after a one-leaf change.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { helloApp } from '../helpers/nix.js';
import { REGISTRY_BIN, REGISTRY_PACKAGE, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { missingTools } from '../helpers/tools.js';
import type { PushJson } from '../../src/commands/push.js';
import { nixdock, nixdockJson } from '../helpers/cli.js';
import { tempProject } from '../helpers/project.js';
import { tempDir } from '../helpers/tmp.js';
import { plannedPush } from './helpers.js';

const skip = missingTools([[REGISTRY_BIN, REGISTRY_PACKAGE], ['skopeo', 'skopeo'], ['nix-build', 'nix-bin']]);

const layers = (push: PushJson) => push.blobs.filter((b) => b.kind === 'layer');
const uploadedLayerBytes = (push: PushJson) => layers(push).filter((b) => b.action === 'uploaded').reduce((sum, b) => sum + b.size, 0);

describe('nixdock push', { skip }, () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startRegistry();
  });
  after(() => registry?.stop());

  test('pushes what was built, then uploads only what the registry lacks', (t) => {
    const project = tempProject(t, {
      'app.nix': helloApp('v1'),
      'nixdock.config.json': { store: 'nix', images: [{ name: 'app', contents: [{ nix: './app.nix' }], config: { Cmd: ['/bin/hello'] } }] },
    }).dir;
    const built = nixdockJson(project, ['build']).images[0]!;

    const cold = plannedPush(project, ['app', `${registry.host}/team/app:one`]);
    assert.equal(cold.ref, `${registry.host}/team/app:one`);
    assert.ok(layers(cold).every((b) => b.action === 'uploaded'));
    assert.equal(layers(cold).length, built.layers.length);
    assert.equal(cold.layersTarred, 0, 'the blobs the build wrote are uploaded as they are');

    // The registry serves the manifest digest push reported, and its layers hold the built diff_ids.
    const copy = tempDir(t, 'nixdock-push-copy-');
    execFileSync('skopeo', ['--insecure-policy', 'copy', '-q', '--preserve-digests', '--src-tls-verify=false', `docker://${cold.ref}`, `oci:${copy}:one`]);
    const index = JSON.parse(readFileSync(join(copy, 'index.json'), 'utf8'));
    assert.equal(index.manifests[0].digest, cold.manifestDigest);
    const config = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci:${copy}:one`], { encoding: 'utf8' }));
    assert.deepEqual(config.rootfs.diff_ids, built.layers.map((l) => l.diffId));

    const again = nixdockJson(project, ['push', 'app', `${registry.host}/team/app:two`]);
    assert.equal(again.manifestDigest, cold.manifestDigest);
    assert.ok(layers(again).every((b) => b.action === 'skipped'));
    assert.equal(uploadedLayerBytes(again), 0);

    // Without the index, the gzip digests are found by compressing again: still nothing uploaded.
    rmSync(join(project, '.nixdock'), { recursive: true, force: true });
    const fresh = nixdockJson(project, ['push', 'app', `${registry.host}/team/app:three`]);
    assert.equal(fresh.manifestDigest, cold.manifestDigest);
    assert.equal(uploadedLayerBytes(fresh), 0);

    writeFileSync(join(project, 'app.nix'), helloApp('v2'));
    const rebuilt = nixdockJson(project, ['build']).images[0]!;
    const changed = rebuilt.layers.flatMap((l, i) => (built.layers.some((old) => old.diffId === l.diffId) ? [] : [i]));
    const leaf = nixdockJson(project, ['push', 'app', `${registry.host}/team/app:four`]);
    const uploaded = layers(leaf).flatMap((b, i) => (b.action === 'uploaded' ? [i] : []));
    assert.ok(changed.length > 0 && changed.length < rebuilt.layers.length, `changed layers: ${changed}`);
    assert.deepEqual(uploaded, changed);
    assert.ok(layers(leaf).filter((b) => b.action !== 'uploaded').every((b) => b.action === 'skipped'));
  });

  test('compression as configured: a zstd image pushes zstd layers, and --compression overrides it', { skip: missingTools([['zstd', 'zstd']]) }, (t) => {
    const ref = `${registry.host}/team/zstd:built`;
    const project = tempProject(t, {
      'app.nix': helloApp('zstd'),
      'nixdock.config.json': { store: 'nix', images: [{ name: 'app', compression: 'zstd', push: [ref], contents: [{ nix: './app.nix' }], config: { Cmd: ['/bin/hello'] } }] },
    }).dir;
    const built = nixdockJson(project, ['build']).images[0]!;
    const mediaTypes = (pushed: string) =>
      JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${pushed}`], { encoding: 'utf8' })).layers.map((l: { mediaType: string }) => l.mediaType);
    assert.deepEqual(new Set(mediaTypes(ref)), new Set(['application/vnd.oci.image.layer.v1.tar+zstd']), 'the push: target of a zstd image');

    const again = nixdockJson(project, ['push', 'app', `${registry.host}/team/zstd:cli`]);
    assert.deepEqual(new Set(mediaTypes(again.ref)), new Set(['application/vnd.oci.image.layer.v1.tar+zstd']), 'push defaults to the spec');
    assert.equal(uploadedLayerBytes(again), 0, 'the same zstd blobs');
    const gzip = nixdockJson(project, ['push', 'app', `${registry.host}/team/zstd:gzip`, '--compression', 'gzip']);
    assert.deepEqual(new Set(mediaTypes(gzip.ref)), new Set(['application/vnd.oci.image.layer.v1.tar+gzip']));

    // Both pull back to the diff_ids built (skopeo decompresses and checks them).
    for (const pushed of [again.ref, gzip.ref]) {
      const copy = tempDir(t, 'nixdock-push-copy-');
      execFileSync('skopeo', ['--insecure-policy', 'copy', '-q', '--src-tls-verify=false', `docker://${pushed}`, `oci:${copy}:x`]);
      const config = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci:${copy}:x`], { encoding: 'utf8' }));
      assert.deepEqual(config.rootfs.diff_ids, built.layers.map((l) => l.diffId));
    }
    const bad = nixdock(project, ['push', 'app', `${registry.host}/team/zstd:bad`, '--compression', 'brotli']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /gzip, zstd or none/);
  });
});
