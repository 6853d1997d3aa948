import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NixdockError } from '../../src/errors.js';
import { pullImage } from '../../src/registry/pull.js';
import { pushImage } from '../../src/registry/push.js';
import type { Digest } from '../../src/types.js';
import { helloApp, nixBuild, NIX_ENV } from '../helpers/nix.js';
import { REGISTRY_BIN, REGISTRY_PACKAGE, startProxy, startRegistry, tarImage, type TestRegistry } from '../helpers/registry.js';
import { hasTool, missingTools } from '../helpers/tools.js';
import { sha256 } from '../helpers/bytes.js';

const skip = missingTools([[REGISTRY_BIN, REGISTRY_PACKAGE], ['nix-build', 'nix-bin'], ['tar', 'tar']]);
const auth = { authFiles: [], env: {} };

describe('pullImage against docker-registry', { skip }, () => {
  let registry: TestRegistry;
  let work: string;
  let manifestDigest: Digest;
  let layerDigests: Digest[];
  const fresh = () => mkdtempSync(join(work, 'cache-'));

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'nixdock-pull-'));
    registry = await startRegistry();
    const [app] = nixBuild(helloApp('pulled by nixdock'));
    const paths = execFileSync('nix-store', ['-qR', app], { env: NIX_ENV, encoding: 'utf8' }).trim().split('\n').sort();
    const image = tarImage(work, 'img', paths.map((p) => [p]), ['/bin/hello']);
    const pushed = await pushImage({ image, codec: 'gzip' }, `${registry.host}/img:1`, { auth });
    manifestDigest = pushed.manifestDigest;
    layerDigests = pushed.blobs.filter((b) => b.kind === 'layer').map((b) => b.digest);
  });
  after(async () => {
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('pulls by digest into a verified OCI layout, then reuses it with the registry gone', async () => {
    const cacheDir = fresh();
    const proxy = await startProxy(registry.port);
    const ref = `${proxy.host}/img@${manifestDigest}`;
    const pulled = await pullImage(ref, { cacheDir, auth });
    await proxy.stop();
    assert.equal(pulled.manifestDigest, manifestDigest);
    assert.deepEqual(pulled.layers.map((l) => l.digest), layerDigests);
    assert.equal(pulled.resolvedFrom, undefined);
    for (const digest of [manifestDigest, ...layerDigests]) {
      const bytes = readFileSync(join(pulled.layoutDir, 'blobs', 'sha256', digest.slice(7)));
      assert.equal(sha256(bytes), digest);
    }
    const index = JSON.parse(readFileSync(join(pulled.layoutDir, 'index.json'), 'utf8'));
    assert.equal(index.manifests[0].annotations['org.opencontainers.image.ref.name'], manifestDigest);
    if (hasTool('umoci')) {
      const bundle = join(work, 'bundle');
      execFileSync('umoci', ['unpack', '--rootless', '--image', `${pulled.layoutDir}:${manifestDigest}`, bundle], { stdio: 'pipe' });
      rmSync(bundle, { recursive: true, force: true });
    }

    const again = await pullImage(ref, { cacheDir, auth, tries: 1 }); // the proxy is gone: no network allowed
    assert.equal(again.manifestDigest, manifestDigest);
  });

  test('a tag is refused unless allowed, and then the digest it resolved to is reported', async () => {
    const ref = `${registry.host}/img:1`;
    await assert.rejects(pullImage(ref, { cacheDir: fresh(), auth }), (err: NixdockError) => {
      assert.equal(err.code, 'REFERENCE_INVALID');
      assert.match(err.hint ?? '', /allow/);
      return true;
    });
    const pulled = await pullImage(ref, { cacheDir: fresh(), auth, allowTag: true });
    assert.equal(pulled.resolvedDigest, manifestDigest);
    assert.equal(pulled.resolvedFrom, ref);
  });

  test('a blob whose bytes do not match its digest is refused and nothing is cached', async () => {
    const bad = layerDigests[layerDigests.length - 1];
    const proxy = await startProxy(registry.port, {
      rewrite: (req, body) => {
        if (!req.url.endsWith(`/blobs/${bad}`)) return body;
        const flipped = Buffer.from(body);
        flipped[flipped.length >> 1] ^= 0xff;
        return flipped;
      },
    });
    const cacheDir = fresh();
    try {
      await assert.rejects(pullImage(`${proxy.host}/img@${manifestDigest}`, { cacheDir, auth }), (err: NixdockError) => {
        assert.equal(err.code, 'DIGEST_MISMATCH');
        assert.equal(err.expected, bad);
        return true;
      });
    } finally {
      await proxy.stop();
    }
    const layoutDir = join(cacheDir, 'pulled');
    assert.deepEqual(existsSync(layoutDir) ? readdirSync(layoutDir) : [], [], 'no blobs, no index, no staging left');
  });

  test('an index: the requested platform is chosen, a missing one lists those available', async () => {
    const manifest = await (await fetch(`${registry.url}/v2/img/manifests/${manifestDigest}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).arrayBuffer();
    const entry = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestDigest, size: manifest.byteLength };
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { ...entry, platform: { os: 'linux', architecture: 'amd64' } },
        { ...entry, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      ],
    });
    const put = await fetch(`${registry.url}/v2/img/manifests/multi`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' }, body: index });
    assert.equal(put.status, 201);
    const indexDigest = put.headers.get('docker-content-digest')!;

    const arm = await pullImage(`${registry.host}/img@${indexDigest}`, { cacheDir: fresh(), auth, platform: { os: 'linux', architecture: 'arm64' } });
    assert.equal(arm.manifestDigest, manifestDigest);
    await assert.rejects(
      pullImage(`${registry.host}/img@${indexDigest}`, { cacheDir: fresh(), auth, platform: { os: 'linux', architecture: 's390x' } }),
      (err: NixdockError) => err.code === 'INPUT_INVALID' && err.found === 'linux/amd64, linux/arm64/v8',
    );
  });

  test('a manifest of an unknown media type is refused with what is supported', async () => {
    const proxy = await startProxy(registry.port, {
      rewrite: (req, body) => (req.url.includes('/manifests/') ? Buffer.from(JSON.stringify({ schemaVersion: 1, mediaType: 'application/vnd.docker.distribution.manifest.v1+prettyjws' })) : body),
    });
    try {
      await assert.rejects(pullImage(`${proxy.host}/img:1`, { cacheDir: fresh(), auth, allowTag: true }), (err: NixdockError) => {
        assert.equal(err.code, 'INPUT_INVALID');
        assert.equal(err.found, 'application/vnd.docker.distribution.manifest.v1+prettyjws');
        assert.match(err.expected ?? '', /application\/vnd.oci.image.manifest.v1\+json/);
        return true;
      });
    } finally {
      await proxy.stop();
    }
  });
});
