import assert from 'node:assert/strict';
import { createWriteStream, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { test } from 'node:test';
import tar from 'tar-stream';
import type { NixdockError } from '../../src/errors.js';
import { streamDockerArchive, writeDockerArchive, writeDockerArchiveFile, writeDockerArchiveFileOnce } from '../../src/formats/docker-archive/write.js';
import { hashLayer } from '../../src/layer/hash.js';
import { storeLayerSource } from '../../src/layer/store-layer.js';
import type { Image, Layer } from '../../src/types.js';
import { missingTools } from '../helpers/tools.js';
import { RUN_FLAGS, podman } from '../helpers/podman.js';
import { skopeoConfig, skopeoInspect } from '../helpers/skopeo.js';
import { assemble, failingSource, helloImage } from './fixtures.js';
import { tempDir } from '../helpers/tmp.js';

const NIX = ['nix-build', 'nix-bin'] as [string, string];
const SKOPEO = ['skopeo', 'skopeo'] as [string, string];
const PODMAN = [['podman', 'podman'], ['runc', 'runc']] as Array<[string, string]>;

/** Entry names and contents of a tar file, in archive order. */
async function readTar(file: string): Promise<Array<{ name: string; bytes: Buffer }>> {
  const extract = tar.extract();
  extract.end(readFileSync(file));
  const entries: Array<{ name: string; bytes: Buffer }> = [];
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    entries.push({ name: entry.header.name, bytes: Buffer.concat(chunks) });
  }
  return entries;
}

async function streamToFile(file: string, opts: Omit<Parameters<typeof streamDockerArchive>[0], 'out'>): Promise<Image> {
  return streamDockerArchive({ ...opts, out: createWriteStream(file) });
}

const coldAssemble = (cmd: string) => (layers: Layer[]) => assemble('hello', layers, { Cmd: [cmd] }, 'cold');

test('the hybrid archive has the OCI layout and manifest.json, and skopeo reads its layers', { skip: missingTools([NIX, SKOPEO]) }, async (t) => {
  const { image } = helloImage(t);
  const dir = tempDir(t);
  const file = join(dir, 'hello.tar');
  const result = await writeDockerArchiveFile([image], file);

  assert.deepEqual(result, { format: 'docker-archive', path: file, manifestDigest: result.manifestDigest });
  const inspected = skopeoInspect(`docker-archive:${file}`, dir);
  assert.deepEqual(inspected.Layers, image.layers.map((l) => l.diffId));
  assert.deepEqual(skopeoConfig(`docker-archive:${file}`, dir).rootfs.diff_ids, image.layers.map((l) => l.diffId));

  const entries = await readTar(file);
  const names = entries.map((e) => e.name);
  for (const name of ['oci-layout', 'index.json', 'manifest.json', `blobs/sha256/${image.configDigest.slice(7)}`]) assert.ok(names.includes(name), name);
  const manifestJson = JSON.parse(entries.find((e) => e.name === 'manifest.json')!.bytes.toString());
  assert.deepEqual(manifestJson, [{ Config: `blobs/sha256/${image.configDigest.slice(7)}`, RepoTags: [`hello:${image.tag}`], Layers: image.layers.map((l) => `blobs/sha256/${l.diffId.slice(7)}`) }]);
  const index = JSON.parse(entries.find((e) => e.name === 'index.json')!.bytes.toString());
  assert.equal(index.manifests[0].digest, result.manifestDigest);

  const again = join(dir, 'again.tar');
  await writeDockerArchiveFile([image], again);
  assert.ok(readFileSync(again).equals(readFileSync(file)), 'same image → byte-identical archive');
});

test('an archive file with cold layers is written in one pass, byte for byte the archive of the known image', { skip: missingTools([NIX]) }, async (t) => {
  const { image, sources, closure } = helloImage(t);
  const dir = tempDir(t);
  // Stream sources (GNU tar files), and a store layer whose workers write into the file itself.
  const store = storeLayerSource({ paths: closure.paths, settings: { mtime: 1, uid: 0, gid: 0, uname: 'root', gname: 'root' }, storeDir: '/nix/store', physicalPath: (p) => p });
  const storeLayer: Layer = { source: store, ...(await hashLayer(store)), built: true, compressed: {} };
  const knownImage = assemble('hello', [...image.layers, storeLayer], image.config.config ?? {}, image.tag);
  await writeDockerArchiveFile([knownImage], join(dir, 'known.tar'));

  const reported: number[] = [];
  const { image: written, result } = await writeDockerArchiveFileOnce(
    { layers: [...sources, store], assemble: (layers) => assemble('hello', layers, image.config.config ?? {}, image.tag), onLayer: (_, index) => reported.push(index) },
    join(dir, 'cold.tar'),
  );
  assert.equal(written.configDigest, knownImage.configDigest);
  assert.deepEqual(reported, [...sources.keys(), sources.length]);
  assert.ok(readFileSync(join(dir, 'cold.tar')).equals(readFileSync(join(dir, 'known.tar'))), 'one pass gives the bytes of two');
  assert.equal(result.manifestDigest, (await writeDockerArchiveFile([knownImage], join(dir, 'again.tar'))).manifestDigest);
});

test('a cold stream names layers by index, hashes them on the way and ends with config and manifest.json', { skip: missingTools([NIX, SKOPEO]) }, async (t) => {
  const { image, sources, closure } = helloImage(t);
  const dir = tempDir(t);
  const file = join(dir, 'cold.tar');
  const seen: number[] = [];
  const streamed = await streamToFile(file, { layers: sources, assemble: coldAssemble(`${closure.app}/bin/hello`), onLayer: (_, i) => seen.push(i) });

  assert.deepEqual(streamed.layers.map((l) => l.diffId), image.layers.map((l) => l.diffId), 'diff_ids computed while streaming');
  assert.deepEqual(seen, [0, 1, 2]);
  const names = (await readTar(file)).map((e) => e.name);
  assert.deepEqual(names, ['layers/', 'layers/000.tar', 'layers/001.tar', 'layers/002.tar', `${streamed.configDigest.slice(7)}.json`, 'manifest.json']);
  assert.deepEqual(skopeoInspect(`docker-archive:${file}`, dir).Layers, image.layers.map((l) => l.diffId));

  const warm = join(dir, 'warm.tar');
  await streamToFile(warm, { layers: image.layers, assemble: (layers) => ({ ...image, layers }) });
  assert.ok((await readTar(warm)).some((e) => e.name === 'index.json'), 'all layers known → hybrid form');
});

test('podman loads and runs both the hybrid archive and the cold stream', { skip: missingTools([NIX, ...PODMAN]) }, async (t) => {
  const { image, sources, closure } = helloImage(t, { tag: 'hybrid' });
  const dir = tempDir(t);
  await writeDockerArchiveFile([image], join(dir, 'hybrid.tar'));
  const cold = await streamToFile(join(dir, 'cold.tar'), { layers: sources, assemble: coldAssemble(`${closure.app}/bin/hello`) });

  // vfs storage and `run --rm`: no mounts or containers outlive the test; the temp dir removal cleans all.
  const store = join(dir, 'podman');
  for (const [archive, id] of [['hybrid.tar', image.configDigest], ['cold.tar', cold.configDigest]] as const) {
    podman(store, ['load', '-q', '-i', join(dir, archive)]);
    assert.equal(podman(store, [...RUN_FLAGS, id.slice(7)]).trim(), closure.message, archive);
  }
});

test('a failure mid-write keeps the previous archive and leaves no temp file', { skip: missingTools([NIX]) }, async (t) => {
  const { image } = helloImage(t);
  const dir = tempDir(t);
  const file = join(dir, 'hello.tar');
  writeFileSync(file, 'the previous archive');

  const broken = { source: failingSource(), diffId: `sha256:${'ab'.repeat(32)}` as const, size: 1 << 20, built: true, compressed: {} };
  await assert.rejects(writeDockerArchiveFile([{ ...image, layers: [image.layers[0]!, broken] }], file), /vanished/);
  const lying = { ...image.layers[1]!, diffId: image.layers[0]!.diffId, size: image.layers[1]!.size };
  await assert.rejects(writeDockerArchiveFile([{ ...image, layers: [lying] }], file), (err: NixdockError) => err.code === 'DIGEST_MISMATCH');

  assert.equal(readFileSync(file, 'utf8'), 'the previous archive');
  assert.deepEqual(readdirSync(dir), ['hello.tar']);

  const nowhere = join(dir, 'missing-dir', 'hello.tar');
  await assert.rejects(writeDockerArchiveFile([image], nowhere), (err: NixdockError) => err.code === 'OUTPUT_NOT_WRITABLE' && err.location?.file === nowhere && err.hint !== undefined);
});

test('a stream whose layer fails ends in an error, never in a complete archive', { skip: missingTools([NIX]) }, async (t) => {
  const { image, closure } = helloImage(t);
  const received: Buffer[] = [];
  const out = new PassThrough();
  out.on('data', (c: Buffer) => received.push(c));
  await assert.rejects(streamDockerArchive({ layers: [image.layers[0]!, failingSource()], assemble: coldAssemble(`${closure.app}/bin/hello`), out }), /vanished/);
  assert.ok(!Buffer.concat(received).includes('manifest.json'), 'no manifest.json was written');

  const sink = new Writable({ write: (_c, _e, cb) => cb(new Error('disk went away')) });
  await assert.rejects(writeDockerArchive([image], sink), /disk went away/);
});
