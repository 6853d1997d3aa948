/**
 * A blob in the OCI layout whose bytes no longer match its name is found before it is reused,
 * and written again — without re-hashing every blob on a no-change rebuild (see intactBlob in
 * src/build.ts: the index keeps each blob's stat fingerprint from when its bytes were good).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, openSync, readFileSync, statSync, truncateSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { extract } from 'tar-stream';
import { nixdockToFile } from '../helpers/cli.js';
import { helloApp } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import type { Cleanup } from '../helpers/tmp.js';
import { build, imagesProject, misnamedBlobs, type BuiltImage } from './helpers.js';

const skip = missingTools([['nix-build', 'nix-bin']]);

function flipByte(file: string, offset: number): void {
  const fd = openSync(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    byte[0] = readFileSync(file)[offset]! ^ 0xff;
    writeSync(fd, byte, 0, 1, offset);
  } finally {
    closeSync(fd);
  }
}

async function builtProject(t: Cleanup) {
  const project = imagesProject(t, [{ name: 'app', nix: 'app.nix' }], { 'app.nix': helloApp('integrity') }, ['oci']);
  const [first] = await build(project);
  const layout = join(project.dir, 'out', 'oci');
  // The busybox layer: the biggest, the one a no-change rebuild would least like to re-read.
  const blob = join(layout, 'blobs', 'sha256', first!.layers[0]!.digest.slice(7));
  return { project, first: first!, layout, blob };
}

/** After damage, the next build rewrites exactly the damaged layer and the image is as before. */
function assertRepaired(rebuilt: BuiltImage, first: BuiltImage, layout: string): void {
  assert.deepEqual(rebuilt.layers.map((l) => l.built), [true, false, false, false]);
  assert.equal(rebuilt.manifestDigest, first.manifestDigest);
  assert.deepEqual(misnamedBlobs(layout), []);
}

test('a layer blob with one byte changed (same size) is detected and rewritten', { skip }, async (t) => {
  const { project, first, layout, blob } = await builtProject(t);
  flipByte(blob, 4096);
  assertRepaired((await build(project))[0]!, first, layout);
  const [next] = await build(project);
  assert.equal(next!.layersBuilt, 0, 'the rewritten blob is trusted again');
});

test('a change hidden by restoring the old mtime is still detected (ctime moved)', { skip }, async (t) => {
  const { project, first, layout, blob } = await builtProject(t);
  // touch -r copies the timestamps to the nanosecond (Node's utimes rounds them).
  const reference = join(project.dir, 'mtime-reference');
  writeFileSync(reference, '');
  execFileSync('touch', ['-m', '-r', blob, reference]);
  const before = statSync(blob, { bigint: true });
  flipByte(blob, 100);
  execFileSync('touch', ['-m', '-r', reference, blob]);
  assert.equal(statSync(blob, { bigint: true }).mtimeNs, before.mtimeNs);
  assertRepaired((await build(project))[0]!, first, layout);
});

test('a truncated layer blob is detected and rewritten', { skip }, async (t) => {
  const { project, first, layout, blob } = await builtProject(t);
  truncateSync(blob, 1000);
  assertRepaired((await build(project))[0]!, first, layout);
});

test('a touched but intact blob is re-hashed once and reused; a damaged config blob is rewritten', { skip }, async (t) => {
  const { project, first, layout, blob } = await builtProject(t);
  const now = new Date();
  utimesSync(blob, now, now);
  const config = join(layout, 'blobs', 'sha256', first.configDigest.slice(7));
  flipByte(config, 10);
  const [rebuilt] = await build(project);
  assert.equal(rebuilt!.layersBuilt, 0);
  assert.equal(rebuilt!.manifestDigest, first.manifestDigest);
  assert.deepEqual(misnamedBlobs(layout), []);
});

test('a warm stream reads layers from the layout, and a damaged blob there is not streamed', { skip }, async (t) => {
  const { project, blob } = await builtProject(t);
  flipByte(blob, 4096);
  const archive = join(project.dir, 'stream.tar');
  const run = nixdockToFile(project.dir, ['stream', 'app', '-q'], archive);
  assert.equal(run.status, 0, run.stderr);
  const { config, layers } = await readArchive(archive);
  assert.deepEqual(layers, config.rootfs.diff_ids, 'every streamed layer hashes to its diff_id');
});

/** The config's diff_ids and the sha256 of each layer entry, in manifest order, of a docker-archive. */
async function readArchive(file: string): Promise<{ config: { rootfs: { diff_ids: string[] } }; layers: string[] }> {
  const hashes = new Map<string, string>();
  const texts = new Map<string, string>();
  const reader = extract();
  reader.on('entry', (header, stream, next) => {
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    stream.on('data', (data: unknown) => {
      const chunk = data as Buffer;
      if (header.size! < 1 << 20) chunks.push(chunk);
      else hash.update(chunk);
    });
    stream.on('end', () => {
      if (chunks.length) hash.update(Buffer.concat(chunks));
      hashes.set(header.name, `sha256:${hash.digest('hex')}`);
      texts.set(header.name, Buffer.concat(chunks).toString('utf8'));
      next();
    });
  });
  await pipeline(createReadStream(file), reader);
  const [entry] = JSON.parse(texts.get('manifest.json')!) as Array<{ Config: string; Layers: string[] }>;
  return { config: JSON.parse(texts.get(entry!.Config)!), layers: entry!.Layers.map((name) => hashes.get(name)!) };
}
