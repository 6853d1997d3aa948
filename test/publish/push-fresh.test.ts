/**
 * `nixdock push` from a fresh checkout (no .nixdock, no out/, no build first) against a real
 * docker-registry: a push costs what changed. Counted by the CLI's --json (layers tarred, blobs
 * uploaded) and checked with skopeo; a registry whose manifest pairs layers with the wrong blobs
 * must not make a wrong image.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { helloApp } from '../helpers/nix.js';
import { REGISTRY_BIN, REGISTRY_PACKAGE, startProxy, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { missingTools } from '../helpers/tools.js';
import { sha256 } from '../helpers/bytes.js';
import { nixdockJson } from '../helpers/cli.js';
import type { PushJson } from '../../src/commands/push.js';
import { tempProject } from '../helpers/project.js';
import { tempDir, type Cleanup } from '../helpers/tmp.js';
import { plannedPush, plannedPushAsync } from './helpers.js';

const skip = missingTools([[REGISTRY_BIN, REGISTRY_PACKAGE], ['skopeo', 'skopeo'], ['nix-build', 'nix-bin']]);


const uploaded = (push: PushJson) => push.blobs.filter((b) => b.action === 'uploaded').length;

/** A project as a CI machine checks it out: config and Nix files, nothing built. */
function freshProject(t: Cleanup, message: string): string {
  return tempProject(t, {
    'app.nix': helloApp(message),
    'nixdock.config.json': { store: 'nix', images: [{ name: 'app', contents: [{ nix: './app.nix' }], config: { Cmd: ['/bin/hello'] } }] },
  }).dir;
}

/** What a fresh checkout lacks: the cache and the outputs. */
function forget(project: string): void {
  rmSync(join(project, '.nixdock'), { recursive: true, force: true });
  rmSync(join(project, 'out'), { recursive: true, force: true });
}

async function registryJson(registry: TestRegistry, path: string, accept?: string): Promise<{ bytes: Buffer; json: any }> {
  const res = await fetch(`${registry.url}/v2/${path}`, { headers: accept ? { accept } : {} });
  assert.equal(res.status, 200, path);
  const bytes = Buffer.from(await res.arrayBuffer());
  return { bytes, json: JSON.parse(bytes.toString()) };
}

/** Pulls the image back with skopeo and checks every layer blob gunzips to its config diff_id. */
function assertPullsBackIntact(t: Cleanup, ref: string): void {
  const copy = tempDir(t, 'nixdock-push-copy-');
  execFileSync('skopeo', ['--insecure-policy', 'copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${copy}:x`]);
  const index = JSON.parse(readFileSync(join(copy, 'index.json'), 'utf8'));
  const blob = (digest: string) => readFileSync(join(copy, 'blobs', 'sha256', digest.slice(7)));
  const manifest = JSON.parse(blob(index.manifests[0].digest).toString());
  const config = JSON.parse(blob(manifest.config.digest).toString());
  const diffIds = manifest.layers.map((l: { digest: string }) => sha256(gunzipSync(blob(l.digest))));
  assert.deepEqual(diffIds, config.rootfs.diff_ids, 'each layer holds the tar its diff_id names');
}

describe('nixdock push from a fresh machine', { skip }, () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startRegistry();
  });
  after(() => registry?.stop());

  test('push, forget everything, push again: nothing tarred, nothing uploaded, the same manifest', (t) => {
    const project = freshProject(t, 'fresh');
    const ref = `${registry.host}/team/app:ci`;
    const cold = plannedPush(project, ['app', ref]);
    const layerCount = cold.blobs.length - 1;
    assert.equal(cold.layersTarred, layerCount, 'a cold push builds every layer');
    assert.equal(uploaded(cold), layerCount + 1);

    forget(project);
    const again = plannedPush(project, ['app', ref]);
    assert.equal(again.manifestDigest, cold.manifestDigest);
    assert.equal(again.layersTarred, 0, 'no layer tarred or compressed');
    assert.equal(again.layersFromRegistry, layerCount, 'every layer matched by its recipe annotation');
    assert.equal(uploaded(again), 0, 'no blob uploaded');
    assert.equal(again.bytesUploaded, 0);

    // What the registry taught is in the local cache now: the next push asks it nothing more.
    const warm = plannedPush(project, ['app', `${registry.host}/team/app:ci2`]);
    assert.equal(warm.manifestDigest, cold.manifestDigest);
    assert.deepEqual([warm.layersTarred, warm.layersFromRegistry, uploaded(warm)], [0, 0, 0]);
    assertPullsBackIntact(t, warm.ref);
  });

  test('--cache-from another repository: layers are matched by recipe and mounted, not tarred', (t) => {
    const project = freshProject(t, 'cache-from');
    const first = plannedPush(project, ['app', `${registry.host}/team/first:1`]);
    forget(project);
    const second = plannedPush(project, ['app', `${registry.host}/team/second:1`, '--cache-from', `${registry.host}/team/first:1`]);
    assert.equal(second.manifestDigest, first.manifestDigest);
    assert.equal(second.layersTarred, 0);
    assert.ok(second.blobs.filter((b) => b.kind === 'layer').every((b) => b.action === 'mounted'), JSON.stringify(second.blobs));
    assert.equal(second.bytesUploaded, 0);

    // The same through the config's cache.from.
    forget(project);
    writeFileSync(join(project, 'nixdock.config.json'), JSON.stringify({ store: 'nix', images: [{ name: 'app', contents: [{ nix: './app.nix' }], config: { Cmd: ['/bin/hello'] } }], cache: { from: [`${registry.host}/team/first:1`] } }));
    const third = plannedPush(project, ['app', `${registry.host}/team/third:1`]);
    assert.deepEqual([third.manifestDigest, third.layersTarred, third.bytesUploaded], [first.manifestDigest, 0, 0]);
  });

  test('a registry whose manifest pairs layers with the wrong blobs: detected, the layers built, the image correct', async (t) => {
    const project = freshProject(t, 'liar');
    const honest = plannedPush(project, ['app', `${registry.host}/team/liar:honest`]);
    // The lie: the first and last layers' blobs swapped in the manifest (annotations and config
    // unchanged). Both blobs exist, so every HEAD says yes.
    const type = 'application/vnd.oci.image.manifest.v1+json';
    const { json: manifest } = await registryJson(registry, `team/liar/manifests/honest`, type);
    const [a, z] = [manifest.layers[0], manifest.layers.at(-1)];
    assert.notEqual(a.size, z.size);
    [a.digest, a.size, z.digest, z.size] = [z.digest, z.size, a.digest, a.size];
    const put = await fetch(`${registry.url}/v2/team/liar/manifests/lie`, { method: 'PUT', body: JSON.stringify(manifest), headers: { 'content-type': type } });
    assert.equal(put.status, 201);

    forget(project);
    const pushed = plannedPush(project, ['app', `${registry.host}/team/liar:lie`]);
    assert.equal(pushed.claimsRejected, 2, 'both false pairings refused');
    assert.equal(pushed.layersTarred, 2, 'the two layers are built');
    assert.equal(pushed.manifestDigest, honest.manifestDigest, 'and the image is the honest one');
    assertPullsBackIntact(t, pushed.ref);
  });

  test('a push: target of an image with no file output places layers like nixdock push: a fresh build tars none', (t) => {
    const ref = `${registry.host}/team/targeted:1`;
    const project = tempProject(t, {
      'app.nix': helloApp('push-target'),
      'nixdock.config.json': { store: 'nix', formats: [], images: [{ name: 'app', contents: [{ nix: './app.nix' }], config: { Cmd: ['/bin/hello'] }, push: [ref] }] },
    }).dir;
    const cold = nixdockJson(project, ['build']).images[0]!;
    assert.equal(cold.layersBuilt, cold.layers.length);
    const pushed = cold.outputs.find((o) => o.format === 'registry');
    assert.ok(pushed?.manifestDigest, JSON.stringify(cold.outputs));

    forget(project);
    const again = nixdockJson(project, ['build']).images[0]!;
    assert.equal(again.layersBuilt, 0, 'every layer placed on the registry\'s verified claim, none tarred');
    assert.equal(again.layersReused, cold.layers.length);
    assert.deepEqual(again.outputs.filter((o) => o.format === 'registry'), cold.outputs.filter((o) => o.format === 'registry'));
    assertPullsBackIntact(t, ref);
  });

  test('a cold push streams each layer as it is compressed: a failed PATCH is retried by compressing again, a refused one falls back to a temp file', async (t) => {
    const project = freshProject(t, 'streamed');
    const patches = (requests: Array<{ method: string }>) => requests.filter((r) => r.method === 'PATCH').length;
    // The first two PATCHes fail with 503 (after their bytes went out): those layers are produced again and sent again.
    let failures = 0;
    const flaky = await startProxy(registry.port, {
      refuse: (r) => (r.method === 'PATCH' && failures < 2 ? (failures++, 503) : undefined),
    });
    let retried: Awaited<ReturnType<typeof plannedPushAsync>>;
    try {
      retried = await plannedPushAsync(project, ['app', `${flaky.host}/team/streamed:1`, '--compression', 'gzip']);
      assert.equal(patches(flaky.requests), retried.layersTarred + 2, 'a streamed PATCH per layer, and the two sent again');
    } finally {
      await flaky.stop();
    }
    assertPullsBackIntact(t, `${registry.host}/team/streamed:1`);

    // A registry that takes no streamed PATCH (it wants Content-Range): the same image through temp files.
    forget(project);
    const strict = await startProxy(registry.port, { refuse: (r) => (r.method === 'PATCH' ? 416 : undefined) });
    try {
      const fallback = await plannedPushAsync(project, ['app', `${strict.host}/team/strict:1`, '--compression', 'gzip']);
      assert.equal(fallback.manifestDigest, retried.manifestDigest);
      assert.equal(uploaded(fallback), fallback.blobs.length);
      assert.ok(strict.requests.some((r) => r.method === 'PUT' && r.bodyBytes > 0), 'monolithic uploads');
    } finally {
      await strict.stop();
    }
    assertPullsBackIntact(t, `${registry.host}/team/strict:1`);
  });

  test('--cache-to writes a cache artifact that a fresh machine pushing elsewhere reads: nothing tarred', async (t) => {
    const project = freshProject(t, 'cache-to');
    const cache = `${registry.host}/ci/cache`;
    const first = plannedPush(project, ['app', `${registry.host}/team/built:1`, '--cache-to', cache]);
    assert.equal(first.cacheRows, first.blobs.length - 1, 'one row per layer');

    // The artifact: its own media type, the empty config, one small JSON blob of rows.
    const type = 'application/vnd.oci.image.manifest.v1+json';
    const { json: artifact } = await registryJson(registry, 'ci/cache/manifests/nixdock-cache', type);
    assert.equal(artifact.artifactType, 'application/vnd.nixdock.layer-cache.v1+json');
    assert.equal(artifact.config.mediaType, 'application/vnd.oci.empty.v1+json');
    assert.deepEqual(artifact.layers.map((l: { mediaType: string }) => l.mediaType), ['application/vnd.nixdock.layer-cache.v1+json']);
    const { json: rows } = await registryJson(registry, `ci/cache/blobs/${artifact.layers[0].digest}`);
    assert.equal(rows.rows.length, first.cacheRows);
    assert.ok(rows.rows.every((r: { repository: string }) => r.repository === `${registry.host}/team/built`));

    // Another machine, another repository, cache from the config: every layer mounted by recipe.
    forget(project);
    writeFileSync(join(project, 'nixdock.config.json'), JSON.stringify({ store: 'nix', images: [{ name: 'app', contents: [{ nix: './app.nix' }], config: { Cmd: ['/bin/hello'] } }], cache: { registry: cache } }));
    const other = plannedPush(project, ['app', `${registry.host}/team/deployed:1`]);
    assert.equal(other.manifestDigest, first.manifestDigest);
    assert.equal(other.layersTarred, 0);
    assert.equal(other.bytesUploaded, 0);
    assert.ok(other.blobs.filter((b) => b.kind === 'layer').every((b) => b.action === 'mounted'));
    assert.equal(other.cacheRows, first.cacheRows! * 2, 'rows merge: the same recipes, now also in team/deployed');
  });
});
