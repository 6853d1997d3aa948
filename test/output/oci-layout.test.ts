import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { NixdockError } from '../../src/errors.js';
import { MediaType } from '../../src/image/manifest.js';
import { OciLayout } from '../../src/formats/oci-layout/write.js';
import type { Codec, Image } from '../../src/types.js';
import { missingTools } from '../helpers/tools.js';
import { skopeoInspect, skopeoManifest } from '../helpers/skopeo.js';
import { assemble, failingSource, fileLayerSource, helloImage } from './fixtures.js';
import { tempDir } from '../helpers/tmp.js';
import { sha256 } from '../helpers/bytes.js';

const NIX = ['nix-build', 'nix-bin'] as [string, string];
const SKOPEO = ['skopeo', 'skopeo'] as [string, string];
const UMOCI = ['umoci', 'umoci'] as [string, string];

/** Writes every layer with the codec, then the image: what the build orchestrator does. */
async function writeImage(layout: OciLayout, image: Image, codec: Codec): Promise<Image> {
  const layers = [];
  for (const layer of image.layers) layers.push(await layout.writeLayer(layer.source, codec));
  const written = { ...image, layers };
  await layout.addImage(written, codec);
  return written;
}

function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const path = join(dir, name);
    if (statSync(path).isFile()) files.set(name, sha256(readFileSync(path)));
  }
  return files;
}

function umociUnpack(layoutDir: string, tag: string, bundle: string): void {
  execFileSync('umoci', ['unpack', '--rootless', '--image', `${layoutDir}:${tag}`, bundle], { stdio: ['ignore', 'pipe', 'pipe'] });
}

test('an uncompressed layout passes skopeo and umoci, with the diff_ids as layer digests', { skip: missingTools([NIX, SKOPEO, UMOCI]) }, async (t) => {
  const { image, closure } = helloImage(t);
  const dir = tempDir(t);
  const layout = new OciLayout(join(dir, 'oci'));
  const result = await layout.addImage(image, 'none');

  assert.equal(result.format, 'oci');
  const inspected = skopeoInspect(`oci:${layout.dir}:${image.tag}`, dir);
  assert.deepEqual(inspected.Layers, image.layers.map((l) => l.diffId));
  assert.equal(inspected.Digest, result.manifestDigest);
  assert.ok(skopeoManifest(`oci:${layout.dir}:${image.tag}`, dir).layers.every((l) => l.mediaType === MediaType.layerTar));

  umociUnpack(layout.dir, image.tag, join(dir, 'bundle'));
  const script = readFileSync(join(dir, 'bundle', 'rootfs', closure.app, 'bin', 'hello'), 'utf8');
  assert.match(script, /share\/message/);
  const index = JSON.parse(readFileSync(join(layout.dir, 'index.json'), 'utf8'));
  assert.deepEqual(index.manifests[0].annotations, { 'io.containerd.image.name': `hello:${image.tag}`, 'org.opencontainers.image.ref.name': image.tag });
});

test('a gzip layout: deterministic blobs that gunzip to the diff_id, accepted by umoci', { skip: missingTools([NIX, SKOPEO, UMOCI]) }, async (t) => {
  const { image } = helloImage(t);
  const dir = tempDir(t);
  const layout = new OciLayout(join(dir, 'oci'));
  const written = await writeImage(layout, image, 'gzip');

  for (const layer of written.layers) {
    const blob = readFileSync(layout.blobPath(layer.compressed.gzip!.digest));
    assert.equal(sha256(blob), layer.compressed.gzip!.digest);
    assert.equal(sha256(gunzipSync(blob)), layer.diffId);
    assert.deepEqual([...blob.subarray(4, 10)], [0, 0, 0, 0, 0, 3], 'mtime 0, no extra flags, OS byte 3 (Unix)');
    assert.equal(blob[3]! & 0x08, 0, 'no file name in the gzip header');
  }
  const manifest = skopeoManifest(`oci:${layout.dir}:${image.tag}`, dir);
  assert.deepEqual(manifest.layers.map((l) => [l.mediaType, l.digest]), written.layers.map((l) => [MediaType.layerGzip, l.compressed.gzip!.digest]));
  umociUnpack(layout.dir, image.tag, join(dir, 'bundle'));

  const again = new OciLayout(join(dir, 'oci-again'));
  const rewritten = await writeImage(again, image, 'gzip');
  assert.deepEqual(rewritten.layers.map((l) => l.compressed.gzip), written.layers.map((l) => l.compressed.gzip), 'same tar → same gzip digest');
});

test('zstd layers decompress to the diff_id and are deterministic', { skip: missingTools([NIX, SKOPEO, ['zstd', 'zstd']]) }, async (t) => {
  const { image } = helloImage(t);
  const dir = tempDir(t);
  const layout = new OciLayout(join(dir, 'oci'));
  const written = await writeImage(layout, image, 'zstd');
  const blob = layout.blobPath(written.layers[1]!.compressed.zstd!.digest);
  assert.equal(sha256(execFileSync('zstd', ['-d', '-c', blob], { maxBuffer: 1 << 28 })), written.layers[1]!.diffId);
  const manifest = skopeoManifest(`oci:${layout.dir}:${image.tag}`, dir);
  assert.ok(manifest.layers.every((l) => l.mediaType === MediaType.layerZstd));
  const again = await new OciLayout(join(dir, 'again')).writeLayer(image.layers[1]!.source, 'zstd');
  assert.deepEqual(again.compressed.zstd, written.layers[1]!.compressed.zstd);
});

test('two images in one layout share blobs and both tags resolve', { skip: missingTools([NIX, SKOPEO]) }, async (t) => {
  const first = helloImage(t, { tag: 'one' });
  const second = helloImage(t, { tag: 'two', message: 'a second app' });
  const dir = tempDir(t);
  const layout = new OciLayout(join(dir, 'oci'));
  await writeImage(layout, first.image, 'none');
  await writeImage(layout, second.image, 'none');

  for (const { image } of [first, second]) {
    assert.deepEqual(skopeoInspect(`oci:${layout.dir}:${image.tag}`, dir).Layers, image.layers.map((l) => l.diffId));
  }
  const layerDigests = new Set([...first.image.layers, ...second.image.layers].map((l) => l.diffId));
  assert.ok(layerDigests.size < first.image.layers.length + second.image.layers.length, 'busybox is in both');
  const blobs = readdirSync(join(layout.dir, 'blobs', 'sha256'));
  assert.equal(blobs.length, layerDigests.size + 2 * 2, 'each layer once, plus a config and a manifest per image');

  assert.deepEqual((await layout.refs()).map((r) => r.name), ['hello:one', 'hello:two']);
  const read = await layout.readImage('hello:two');
  assert.deepEqual(read.config.rootfs.diff_ids, second.image.layers.map((l) => l.diffId));
  assert.equal((await layout.readImage('one')).config.config.Cmd?.[0], `${first.closure.app}/bin/hello`);
  await assert.rejects(layout.readImage('three'), (err: NixdockError) => err.code === 'IMAGE_NOT_FOUND' && /hello:one/.test(err.expected ?? ''));
});

test('rewriting an image gives identical bytes; a new image under the same tag replaces the entry', { skip: missingTools([NIX]) }, async (t) => {
  const { image } = helloImage(t, { tag: 'latest' });
  const dir = tempDir(t);
  const layout = new OciLayout(join(dir, 'oci'));
  await writeImage(layout, image, 'gzip');
  const before = snapshot(layout.dir);
  await writeImage(layout, image, 'gzip');
  assert.deepEqual(snapshot(layout.dir), before);

  const changed = assemble('hello', image.layers, { Cmd: ['/bin/other'] }, 'latest');
  await writeImage(layout, changed, 'gzip');
  const refs = await layout.refs();
  assert.equal(refs.length, 1);
  assert.equal((await layout.readImage('latest')).config.config.Cmd?.[0], '/bin/other');
});

test('a failing or lying layer source leaves no blob, no temp file and the index untouched', { skip: missingTools([NIX]) }, async (t) => {
  const { image } = helloImage(t, { tag: 'good' });
  const dir = tempDir(t);
  const layout = new OciLayout(join(dir, 'oci'));
  await writeImage(layout, image, 'none');
  const before = snapshot(layout.dir);

  await assert.rejects(layout.writeLayer(failingSource(), 'gzip'), /vanished/);
  const real = image.layers[0]!.source;
  const shortBy = { ...fileLayerSource('/dev/null', 'short'), size: async () => (await real.size()) + 512, open: () => real.open() };
  await assert.rejects(layout.writeLayer(shortBy, 'none'), (err: NixdockError) => err.code === 'LAYER_BUILD');
  const wrongDigest = { ...shortBy, size: () => real.size(), diffId: image.layers[1]!.diffId };
  await assert.rejects(layout.writeLayer(wrongDigest, 'gzip'), (err: NixdockError) => err.code === 'DIGEST_MISMATCH');

  assert.deepEqual(snapshot(layout.dir), before);
});
