import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Codec, CompressedBlob, Digest } from '../../src/types.js';
import { pushImage } from '../../src/registry/push.js';
import type { CompressedDigestCache } from '../../src/registry/types.js';
import { NixdockError } from '../../src/errors.js';
import { helloApp, nixBuild, NIX_ENV } from '../helpers/nix.js';
import { REGISTRY_BIN, REGISTRY_PACKAGE, REGISTRY_PASSWORD, REGISTRY_USER, startProxy, startRegistry, tarImage, type TestRegistry } from '../helpers/registry.js';
import { missingTools } from '../helpers/tools.js';

const skip = missingTools([[REGISTRY_BIN, REGISTRY_PACKAGE], ['skopeo', 'skopeo'], ['nix-build', 'nix-bin'], ['tar', 'tar']]);

/** The layer index's role, in memory: diff_id → compressed blob. */
class MemoryCache implements CompressedDigestCache {
  readonly entries = new Map<string, CompressedBlob>();
  getCompressed(diffId: Digest, codec: Codec) {
    return this.entries.get(`${diffId} ${codec}`);
  }
  putCompressed(diffId: Digest, blob: CompressedBlob) {
    this.entries.set(`${diffId} ${blob.codec}`, blob);
  }
}

const noAuthFiles = { authFiles: [], env: {} };

function closure(root: string): string[] {
  return execFileSync('nix-store', ['--query', '--requisites', root], { env: NIX_ENV, encoding: 'utf8' }).trim().split('\n').sort();
}

function layerBytes(result: Awaited<ReturnType<typeof pushImage>>): number {
  return result.blobs.filter((b) => b.kind === 'layer' && b.action === 'uploaded').reduce((n, b) => n + b.size, 0);
}

describe('pushImage against docker-registry', { skip }, () => {
  let registry: TestRegistry;
  let work: string;
  let paths: string[];
  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'nixdock-push-'));
    const [app] = nixBuild(helloApp('pushed by nixdock'));
    paths = closure(app);
    registry = await startRegistry();
  });
  after(async () => {
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('pushes an image that skopeo copies back with the same manifest digest', async () => {
    const image = tarImage(work, 'hello', paths.map((p) => [p]), ['/bin/hello']);
    const cache = new MemoryCache();
    const ref = `${registry.host}/hello:1`;
    const result = await pushImage({ image, codec: 'gzip' }, ref, { cache, auth: noAuthFiles });
    assert.equal(result.ref, ref);
    assert.deepEqual(result.blobs.map((b) => b.action), [...paths.map(() => 'uploaded'), 'uploaded']);
    assert.equal(cache.entries.size, paths.length, 'every gzip digest is recorded');

    const out = join(work, 'copied');
    execFileSync('skopeo', ['copy', '--preserve-digests', '--src-tls-verify=false', `docker://${ref}`, `oci:${out}:t`], { stdio: 'pipe' });
    const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8'));
    assert.equal(index.manifests[0].digest, result.manifestDigest);
    // The layer bytes decompress to the diff_ids in the config (what umoci/podman check).
    const manifest = JSON.parse(readFileSync(join(out, 'blobs', 'sha256', result.manifestDigest.slice(7)), 'utf8'));
    const first = join(out, 'blobs', 'sha256', manifest.layers[0].digest.slice(7));
    const diffId = execFileSync('sh', ['-c', `gzip -dc '${first}' | sha256sum`], { encoding: 'utf8' }).split(' ')[0];
    assert.equal(`sha256:${diffId}`, image.layers[0].diffId);
  });

  test('a second push, and a push with an empty cache, upload no layer bytes', async () => {
    const image = tarImage(work, 'again', paths.map((p) => [p]), ['/bin/hello']);
    const ref = `${registry.host}/again:1`;
    const first = await pushImage({ image, codec: 'gzip' }, ref, { cache: new MemoryCache(), auth: noAuthFiles });
    const again = await pushImage({ image, codec: 'gzip' }, ref, { cache: new MemoryCache(), auth: noAuthFiles });
    assert.equal(again.bytesUploaded, 0);
    assert.ok(again.blobs.every((b) => b.action === 'skipped'));
    assert.equal(again.manifestDigest, first.manifestDigest, 'compression is deterministic');
  });

  test('a warm cache skips without reading the layers at all', async () => {
    const image = tarImage(work, 'warm', paths.map((p) => [p]), ['/bin/hello']);
    const cache = new MemoryCache();
    const ref = `${registry.host}/warm:1`;
    await pushImage({ image, codec: 'gzip' }, ref, { cache, auth: noAuthFiles });
    const unreadable = { ...image, layers: image.layers.map((l) => ({ ...l, source: { ...l.source, open: () => assert.fail('layer bytes read') } })) };
    const again = await pushImage({ image: unreadable, codec: 'gzip' }, ref, { cache, auth: noAuthFiles });
    assert.equal(again.bytesUploaded, 0);
  });

  test('a changed leaf uploads only the layers that changed', async () => {
    const ref = `${registry.host}/leaf:1`;
    await pushImage({ image: tarImage(work, 'leaf', paths.map((p) => [p]), ['/bin/hello']), codec: 'gzip' }, ref, { auth: noAuthFiles });
    const [changedApp] = nixBuild(helloApp('a changed message'));
    const changedPaths = closure(changedApp);
    const image = tarImage(work, 'leaf', changedPaths.map((p) => [p]), ['/bin/hello']);
    const result = await pushImage({ image, codec: 'gzip' }, ref, { auth: noAuthFiles });
    const uploaded = result.blobs.flatMap((b, i) => (b.kind === 'layer' && b.action === 'uploaded' ? [changedPaths[i]] : []));
    assert.deepEqual(uploaded, changedPaths.filter((p) => !paths.includes(p)));
    assert.ok(uploaded.length > 0 && uploaded.length < changedPaths.length);
  });

  test('layers already in a sibling repository are mounted, not uploaded', async () => {
    const image = tarImage(work, 'mount', paths.map((p) => [p]), ['/bin/hello']);
    await pushImage({ image, codec: 'gzip' }, `${registry.host}/source-repo:1`, { auth: noAuthFiles });
    const result = await pushImage({ image, codec: 'gzip' }, `${registry.host}/other-repo:1`, { auth: noAuthFiles, mountFrom: ['source-repo'] });
    assert.equal(result.bytesUploaded, 0);
    assert.ok(result.blobs.every((b) => b.action === 'mounted'));
  });

  test('falls back to a chunked upload when the registry refuses a monolithic PUT', async () => {
    const proxy = await startProxy(registry.port, {
      refuse: (r) => (r.method === 'PUT' && r.url.includes('/blobs/uploads/') && r.bodyBytes > 0 ? 413 : undefined),
    });
    try {
      const image = tarImage(work, 'chunked', [paths], ['/bin/hello']);
      const result = await pushImage({ image, codec: 'gzip' }, `${proxy.host}/chunked:1`, { auth: noAuthFiles, chunkSize: 4096 });
      const layer = result.blobs[0];
      assert.equal(layer.action, 'uploaded');
      const patches = proxy.requests.filter((r) => r.method === 'PATCH');
      assert.equal(patches.reduce((n, r) => n + r.bodyBytes, 0) >= layer.size, true);
      assert.ok(patches.length > 1, 'several chunks');
      execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${registry.host}/chunked:1`], { stdio: 'pipe' });
    } finally {
      await proxy.stop();
    }
  });

  test('retries a 5xx, and an interrupted push is completed by the next one', async () => {
    let failures = 0;
    const proxy = await startProxy(registry.port, {
      // Every manifest PUT fails: the push is "interrupted" after its blobs went up.
      refuse: (r) => (r.method === 'PUT' && r.url.includes('/manifests/') ? (failures++, 503) : undefined),
    });
    const image = tarImage(work, 'interrupted', paths.map((p) => [p]), ['/bin/hello']);
    const ref = `${registry.host}/interrupted:1`;
    try {
      await assert.rejects(
        pushImage({ image, codec: 'gzip' }, `${proxy.host}/interrupted:1`, { auth: noAuthFiles, backoffMs: 1 }),
        (err: NixdockError) => err.code === 'REGISTRY' && /503/.test(err.message),
      );
      assert.equal(failures, 4, 'bounded retries');
    } finally {
      await proxy.stop();
    }
    const result = await pushImage({ image, codec: 'gzip' }, ref, { auth: noAuthFiles });
    assert.equal(layerBytes(result), 0, 'the layers of the interrupted push are reused');
    execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`], { stdio: 'pipe' });
  });
});

describe('pushImage with htpasswd auth', { skip }, () => {
  let registry: TestRegistry;
  let work: string;
  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'nixdock-push-auth-'));
    registry = await startRegistry({ auth: true });
  });
  after(async () => {
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('credentials from an auth.json file are used', async () => {
    const [app] = nixBuild(helloApp('pushed by nixdock'));
    const authFile = join(work, 'auth.json');
    const auth = Buffer.from(`${REGISTRY_USER}:${REGISTRY_PASSWORD}`).toString('base64');
    writeFileSync(authFile, JSON.stringify({ auths: { [registry.host]: { auth } } }));
    const image = tarImage(work, 'secret', [closure(app)], ['/bin/hello']);
    const result = await pushImage({ image, codec: 'gzip' }, `${registry.host}/secret:1`, { auth: { env: { REGISTRY_AUTH_FILE: authFile } } });
    assert.equal(result.blobs[0].action, 'uploaded');
  });

  test('wrong credentials fail with REGISTRY_AUTH at once, without retries and without the password', async () => {
    const proxy = await startProxy(registry.port);
    try {
      const image = tarImage(work, 'secret', [[nixBuild(helloApp('pushed by nixdock'))[0]]], ['/bin/hello']);
      await assert.rejects(
        pushImage({ image, codec: 'gzip' }, `${proxy.host}/secret:1`, { auth: { username: REGISTRY_USER, password: 'wrong-password' } }),
        (err: NixdockError) => {
          assert.equal(err.code, 'REGISTRY_AUTH');
          assert.doesNotMatch(JSON.stringify(err.toJSON()), /wrong-password/);
          return true;
        },
      );
      assert.ok(proxy.requests.length <= 2, `${proxy.requests.length} requests`);
    } finally {
      await proxy.stop();
    }
  });

  test('no credentials at all: REGISTRY_AUTH with a hint', async () => {
    const image = tarImage(work, 'secret', [[nixBuild(helloApp('pushed by nixdock'))[0]]], ['/bin/hello']);
    await assert.rejects(pushImage({ image, codec: 'gzip' }, `${registry.host}/secret:1`, { auth: noAuthFiles }), (err: NixdockError) => {
      assert.equal(err.code, 'REGISTRY_AUTH');
      assert.match(err.hint ?? '', /NIXDOCK_REGISTRY_USER/);
      return true;
    });
  });
});
