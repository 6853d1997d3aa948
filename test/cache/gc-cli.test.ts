/** `nixdock gc` as a user runs it: the real CLI in a temporary project, exit codes and --json output. */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BuildCache } from '../../src/cache/cache.js';
import { blobPath } from '../../src/formats/oci-layout/blobs.js';
import { sha256 } from '../helpers/bytes.js';
import { jsonOf, nixdock } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

/** A project whose index knows two builds of `app`, each with one blob in the blob cache. */
function project(root: string, keepBuilds: number): { oldBlob: string; newBlob: string } {
  writeFileSync(join(root, 'nixdock.config.json'), JSON.stringify({ images: [], cacheDir: 'cache', gc: { keepBuilds } }));
  const cache = join(root, 'cache');
  const blobDir = join(cache, 'blobs-cache');
  mkdirSync(join(blobDir, 'blobs', 'sha256'), { recursive: true });
  let tick = 1_000;
  const index = BuildCache.open(cache, { clock: () => tick++ });
  const files: string[] = [];
  for (const content of ['old layer', 'new layer']) {
    const digest = sha256(content);
    writeFileSync(blobPath(blobDir, digest), content);
    index.recordBlobLocation(digest, blobDir);
    const id = index.startBuild('app', content);
    index.finishBuild(id, { status: 'succeeded', layersBuilt: 1, layersReused: 0, bytesWritten: content.length, layers: [{ index: 0, diffId: digest, size: content.length, built: true, storePaths: [] }] });
    files.push(blobPath(blobDir, digest));
  }
  index.close();
  return { oldBlob: files[0]!, newBlob: files[1]! };
}

test('nixdock gc --dry-run --json reports, nixdock gc removes; gc.keepBuilds comes from the config', (t) => {
  const root = tempDir(t);
  const { oldBlob, newBlob } = project(root, 1);

  const dry = nixdock(root, ['gc', '--dry-run', '--json']);
  assert.equal(dry.status, 0, dry.stderr);
  const planned = jsonOf('gc', dry);
  assert.equal(planned.ok, true);
  assert.equal(planned.keepBuilds, 1);
  assert.deepEqual(planned.blobs.map((b) => b.digest), [sha256('old layer')]);
  assert.ok(existsSync(oldBlob));

  const real = nixdock(root, ['gc']);
  assert.equal(real.status, 0, real.stderr);
  assert.match(real.stderr, /Removed 1 blob file \(9 B\), 1 build record/);
  assert.equal(existsSync(oldBlob), false);
  assert.ok(existsSync(newBlob));
});

test('nixdock gc --keep overrides the config; a bad --keep is bad input (exit 2)', (t) => {
  const root = tempDir(t);
  const { oldBlob } = project(root, 0);
  const kept = nixdock(root, ['gc', '--keep', '2', '--json']);
  assert.equal(kept.status, 0, kept.stderr);
  assert.deepEqual(jsonOf('gc', kept).blobs, []);
  assert.ok(existsSync(oldBlob));

  const bad = nixdock(root, ['gc', '--keep', 'many']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /error\[INPUT_INVALID\]: --keep must be a whole number/);
  assert.match(bad.stderr, /found: +"many"/);
});
