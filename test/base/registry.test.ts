import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { readBaseImage } from '../../src/base/read.js';
import { registryPull } from '../../src/registry/source.js';
import { missingTools } from '../helpers/tools.js';
import { imageConfig, tarDirectory, writeOciLayout } from '../helpers/base-images.js';
import { readAll, sha256 } from '../helpers/bytes.js';

const skip = missingTools([
  ['docker-registry', 'docker-registry'],
  ['skopeo', 'skopeo'],
  ['tar', 'tar'],
]);

let work: string;
let registry: ChildProcess | undefined;
let port: number;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port: free } = server.address() as { port: number };
      server.close(() => resolve(free));
    });
  });
}

async function waitForRegistry(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('docker-registry did not start');
}

before(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), 'nixdock-base-registry-'));
  port = await freePort();
  // Debian's packaged config enables auth; this one is plain HTTP on loopback.
  writeFileSync(join(work, 'registry.yml'), `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${work}/data\nhttp:\n  addr: 127.0.0.1:${port}\n`);
  registry = spawn('docker-registry', ['serve', join(work, 'registry.yml')], { stdio: 'ignore' });
  await waitForRegistry();
});

after(() => {
  registry?.kill();
  if (work) rmSync(work, { recursive: true, force: true });
});

test('fromImage from a registry (pinned by digest) is pulled into the cache and read like an OCI layout', { skip }, async () => {
  const root = join(work, 'rootfs');
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc', 'motd'), 'from the registry\n');
  const layers = [tarDirectory(root)];
  writeOciLayout(join(work, 'oci'), [{ tag: 'v1', layers, config: { Env: ['FROM=registry'] }, gzip: true }]);
  const ref = `127.0.0.1:${port}/base`;
  execFileSync('skopeo', ['--insecure-policy', 'copy', '-q', '--dest-tls-verify=false', '--preserve-digests', `oci:${join(work, 'oci')}:v1`, `docker://${ref}:v1`]);
  const digest = execFileSync('skopeo', ['inspect', '--tls-verify=false', '--format', '{{.Digest}}', `docker://${ref}:v1`], { encoding: 'utf8' }).trim();

  const image = await readBaseImage({ kind: 'registry', ref: `${ref}@${digest}`, allowTag: false }, { cacheDir: join(work, 'cache'), pull: registryPull });
  assert.deepEqual(image.config.config.Env, ['FROM=registry']);
  assert.equal(image.description, `registry:${ref}@${digest}`);
  assert.equal(image.layers[0]!.diffId, sha256(layers[0]!));
  assert.equal(await image.layers[0]!.size(), layers[0]!.length);
  assert.equal(sha256(await readAll(image.layers[0]!.open())), sha256(layers[0]!));
});

/** Monolithic blob upload straight to the registry (the test builds manifests by hand). */
async function putBlob(repo: string, bytes: Buffer): Promise<{ digest: string; size: number }> {
  const digest = sha256(bytes);
  const start = await fetch(`http://127.0.0.1:${port}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  const location = new URL(start.headers.get('location')!, `http://127.0.0.1:${port}`);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, { method: 'PUT', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(put.status, 201);
  return { digest, size: bytes.length };
}

async function putManifest(repo: string, reference: string, doc: object, mediaType: string): Promise<{ digest: string; size: number }> {
  const bytes = Buffer.from(JSON.stringify(doc));
  const res = await fetch(`http://127.0.0.1:${port}/v2/${repo}/manifests/${reference}`, { method: 'PUT', body: bytes, headers: { 'content-type': mediaType } });
  assert.equal(res.status, 201, await res.text());
  return { digest: sha256(bytes), size: bytes.length };
}

test("a multi-platform fromImage gives the image's own architecture/variant; another platform's base is an error naming both", { skip }, async () => {
  const root = join(work, 'rootfs-multi');
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc', 'motd'), 'multi\n');
  const layer = tarDirectory(root);
  const repo = 'multi';
  const layerDesc = { mediaType: 'application/vnd.oci.image.layer.v1.tar', ...(await putBlob(repo, layer)) };
  const manifests = [];
  for (const [architecture, variant] of [['amd64', undefined], ['arm64', 'v8'], ['arm', 'v7']] as const) {
    const config = JSON.parse(imageConfig([layer], { Env: [`ARCH=${architecture}`] }).toString());
    const configDesc = { mediaType: 'application/vnd.oci.image.config.v1+json', ...(await putBlob(repo, Buffer.from(JSON.stringify({ ...config, architecture, ...(variant && { variant }) })))) };
    const manifestType = 'application/vnd.oci.image.manifest.v1+json';
    const m = await putManifest(repo, architecture, { schemaVersion: 2, mediaType: manifestType, config: configDesc, layers: [layerDesc] }, manifestType);
    manifests.push({ mediaType: manifestType, ...m, platform: { os: 'linux', architecture, ...(variant && { variant }) } });
  }
  const indexType = 'application/vnd.oci.image.index.v1+json';
  const index = await putManifest(repo, 'multi', { schemaVersion: 2, mediaType: indexType, manifests }, indexType);
  const ref = `127.0.0.1:${port}/${repo}@${index.digest}`;
  const cacheDir = join(work, 'cache-multi');

  for (const [architecture, variant] of [['arm64', 'v8'], ['amd64', undefined], ['aarch64', undefined]] as const) {
    const base = await readBaseImage({ kind: 'registry', ref, allowTag: false }, { cacheDir, pull: registryPull, platform: { architecture, ...(variant && { variant }) } });
    const expected = architecture === 'aarch64' ? 'arm64' : architecture;
    assert.deepEqual(base.config.config.Env, [`ARCH=${expected}`], `picked for ${architecture}`);
  }
  // A single-platform base (the amd64 manifest by digest) under an arm64 image: refused, naming both.
  const amd64 = `127.0.0.1:${port}/${repo}@${manifests[0]!.digest}`;
  await assert.rejects(readBaseImage({ kind: 'registry', ref: amd64, allowTag: false }, { cacheDir, pull: registryPull, platform: { architecture: 'arm64', variant: 'v8' } }), (err: any) => {
    assert.equal(err.code, 'INPUT_INVALID');
    assert.match(err.message, /is for linux\/amd64, but the image is for linux\/arm64\/v8/);
    return true;
  });
  // An index without the image's platform names what it offers.
  await assert.rejects(readBaseImage({ kind: 'registry', ref, allowTag: false }, { cacheDir, pull: registryPull, platform: { architecture: 's390x' } }), /no image for linux\/s390x/);
});
