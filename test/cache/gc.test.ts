/**
 * gc on real OCI image layouts: it keeps what the last N builds use and what any layout's
 * index.json still references (checked by unpacking with umoci), and removes the rest.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import tar from 'tar-stream';
import { collectGarbage } from '../../src/cache/gc.js';
import { BuildCache } from '../../src/cache/cache.js';
import { blobPath } from '../../src/formats/oci-layout/blobs.js';
import type { Digest } from '../../src/types.js';
import { missingTools } from '../helpers/tools.js';
import { steppingClock } from './helpers.js';
import { tempDir } from '../helpers/tmp.js';
import { sha256 } from '../helpers/bytes.js';

interface Blob {
  digest: Digest;
  size: number;
  bytes: Buffer;
}

interface FakeBuild {
  id: number;
  layers: Blob[];
  config: Blob;
  manifest: Blob;
}

async function layerTar(file: string, text: string): Promise<Buffer> {
  const pack = tar.pack();
  pack.entry({ name: file, mode: 0o644, mtime: new Date(1000) }, text);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function blob(bytes: Buffer | string): Blob {
  const buffer = Buffer.from(bytes);
  return { digest: sha256(buffer), size: buffer.length, bytes: buffer };
}

function writeBlob(dir: string, b: Blob): void {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(blobPath(dir, b.digest), b.bytes);
}

function descriptor(mediaType: string, b: Blob, annotations?: Record<string, string>) {
  return { mediaType, digest: b.digest, size: b.size, ...(annotations && { annotations }) };
}

/** Records one succeeded build of `app` (a shared base layer + its own app layer) in the index. */
function recordBuild(index: BuildCache, base: Blob, app: Blob, round: number): FakeBuild {
  const layers = [base, app];
  const config = blob(JSON.stringify({
    architecture: 'amd64', os: 'linux', config: {},
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
    history: layers.map(() => ({ created_by: 'nixdock' })),
  }));
  const manifest = blob(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: descriptor('application/vnd.oci.image.config.v1+json', config),
    layers: layers.map((l) => descriptor('application/vnd.oci.image.layer.v1.tar', l)),
  }));
  const id = index.startBuild('app', `round ${round}`);
  const layerRows = layers.map((l, i) => ({ index: i, key: `key-${l.digest}`, diffId: l.digest, size: l.size, built: true, storePaths: [] }));
  for (const row of layerRows) index.recordLayer({ key: row.key, diffId: row.diffId, size: row.size, storePaths: [] });
  index.finishBuild(id, {
    status: 'succeeded', tag: `r${round}`, configDigest: config.digest, manifestDigest: manifest.digest,
    layersBuilt: 2, layersReused: 0, bytesWritten: 0, layers: layerRows,
  });
  return { id, layers, config, manifest };
}

function writeLayout(dir: string, builds: FakeBuild[], tags: Map<FakeBuild, string>): void {
  for (const b of builds) for (const x of [...b.layers, b.config, b.manifest]) writeBlob(dir, x);
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [...tags].map(([b, tag]) => descriptor('application/vnd.oci.image.manifest.v1+json', b.manifest, { 'org.opencontainers.image.ref.name': tag })),
  }));
}

function blobsOf(b: FakeBuild): Blob[] {
  return [b.layers[1]!, b.config, b.manifest];
}

test('gc keeps the last N builds and every blob a layout references; removes the rest', { skip: missingTools([['umoci', 'umoci']]) }, async (t) => {
  const root = tempDir(t);
  const cache = join(root, 'cache');
  const layout = join(root, 'out', 'app');
  const blobCache = join(cache, 'blobs-cache');
  const index = BuildCache.open(cache, { clock: steppingClock() });
  t.after(() => index.close());

  const base = blob(await layerTar('base.txt', 'shared base'));
  const builds: FakeBuild[] = [];
  for (let round = 1; round <= 4; round++) builds.push(recordBuild(index, base, blob(await layerTar('app.txt', `app ${round}`)), round));
  const [b1, b2, b3, b4] = builds as [FakeBuild, FakeBuild, FakeBuild, FakeBuild];
  // The layout holds every build's blobs, but its index.json names only build 4 and an old tag of build 1.
  writeLayout(layout, builds, new Map([[b1, 'old'], [b4, 'latest']]));
  for (const b of builds) for (const x of [...b.layers, b.config, b.manifest]) index.recordBlobLocation(x.digest, layout);
  // Build 2's layer is also in the blob cache (a directory without index.json).
  writeBlob(blobCache, b2.layers[1]!);
  index.recordBlobLocation(b2.layers[1]!.digest, blobCache);

  const dryRun = collectGarbage(index, { keepBuilds: 2, dryRun: true });
  assert.deepEqual(dryRun.builds, [b1.id, b2.id]);
  for (const x of blobsOf(b2)) assert.ok(existsSync(blobPath(layout, x.digest)), 'a dry run removes nothing');

  const result = collectGarbage(index, { keepBuilds: 2, dryRun: false });
  const removed = new Map(result.blobs.map((b) => [b.digest, b.dirs]));
  assert.deepEqual(removed, new Map([
    [b2.layers[1]!.digest, [blobCache, layout].sort()],
    [b2.config.digest, [layout]],
    [b2.manifest.digest, [layout]],
  ]));
  assert.deepEqual(result.blobs, dryRun.blobs, 'the dry run said exactly what would go');
  assert.equal(result.bytes, blobsOf(b2).reduce((n, x) => n + x.size, 0) + b2.layers[1]!.size);

  // On disk: build 2's blobs are gone everywhere; builds 1 (referenced), 3 and 4 (kept) are whole.
  for (const x of blobsOf(b2)) assert.equal(existsSync(blobPath(layout, x.digest)), false);
  assert.equal(existsSync(blobPath(blobCache, b2.layers[1]!.digest)), false);
  for (const b of [b1, b3, b4]) for (const x of [...b.layers, b.config, b.manifest]) assert.ok(existsSync(blobPath(layout, x.digest)));
  // In the index: history keeps builds 4 and 3; the layer row of build 2 went, build 1's stays (its blob is live).
  assert.deepEqual(index.history('app', 10).map((b) => b.id), [b4.id, b3.id]);
  assert.equal(index.lookupLayer(`key-${b2.layers[1]!.digest}`), undefined);
  assert.ok(index.lookupLayer(`key-${b1.layers[1]!.digest}`));
  assert.deepEqual(index.blobLocations(b2.layers[1]!.digest), []);

  // umoci verifies every digest it reads: both tags still unpack.
  for (const tag of ['old', 'latest']) {
    execFileSync('umoci', ['unpack', '--rootless', '--image', `${layout}:${tag}`, join(root, `bundle-${tag}`)], { stdio: 'pipe' });
    assert.ok(existsSync(join(root, `bundle-${tag}`, 'rootfs', 'app.txt')));
  }

  // A second gc finds nothing more to do.
  const again = collectGarbage(index, { keepBuilds: 2, dryRun: false });
  assert.deepEqual({ builds: again.builds, blobs: again.blobs }, { builds: [], blobs: [] });
});

test('gc leaves alone what a running build recorded, and the latest successful build even with --keep 0', (t) => {
  const root = tempDir(t);
  const index = BuildCache.open(join(root, 'cache'), { clock: steppingClock() });
  t.after(() => index.close());
  const dir = join(root, 'blob-cache');
  const put = (name: string) => {
    const b = blob(name);
    writeBlob(dir, b);
    index.recordBlobLocation(b.digest, dir);
    return b;
  };
  const good = put('good layer');
  const ok = index.startBuild('app', 'first');
  index.finishBuild(ok, { status: 'succeeded', layersBuilt: 1, layersReused: 0, bytesWritten: 10, layers: [{ index: 0, diffId: good.digest, size: good.size, built: true, storePaths: [] }] });

  const running = index.startBuild('app', 'in progress');
  const fresh = put('layer of the running build');
  assert.deepEqual(collectGarbage(index, { keepBuilds: 0, dryRun: false }).blobs, []);
  assert.ok(existsSync(blobPath(dir, fresh.digest)) && existsSync(blobPath(dir, good.digest)));

  // Once that build has failed, its blob is no longer protected; the successful build's still is.
  index.finishBuild(running, { status: 'failed', error: 'boom', layersBuilt: 0, layersReused: 0, bytesWritten: 0 });
  const result = collectGarbage(index, { keepBuilds: 0, dryRun: false });
  assert.deepEqual(result.blobs.map((b) => b.digest), [fresh.digest]);
  assert.deepEqual(result.builds, [running]);
  assert.ok(existsSync(blobPath(dir, good.digest)));
});

test('gc refuses to guess when a layout index.json is unreadable', (t) => {
  const root = tempDir(t);
  const index = BuildCache.open(join(root, 'cache'), { clock: steppingClock() });
  t.after(() => index.close());
  const layout = join(root, 'out');
  const b = blob('orphan');
  writeBlob(layout, b);
  writeFileSync(join(layout, 'index.json'), '{"manifests": [');
  index.recordBlobLocation(b.digest, layout);
  assert.throws(() => collectGarbage(index, { keepBuilds: 1, dryRun: false }), (err: Error & { code?: string; location?: { file?: string } }) =>
    err.code === 'INPUT_INVALID' && err.location?.file === join(layout, 'index.json'));
  assert.ok(existsSync(blobPath(layout, b.digest)));
});
