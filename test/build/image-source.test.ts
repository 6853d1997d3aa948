/**
 * What a build writes reads back as one ImageSource whatever the format: the OCI layout and the
 * docker-archive give the same config and layers, and every layer's bytes are its diff_id.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { readImage } from '../../src/formats/source.js';
import type { ImageSource } from '../../src/types.js';
import { readAll, sha256 } from '../helpers/bytes.js';
import { rejectsWith } from '../helpers/errors.js';
import { exampleProject, layoutDir } from './helpers.js';

async function layerDigests(image: ImageSource): Promise<string[]> {
  const digests: string[] = [];
  for (const layer of image.layers) digests.push(sha256(await readAll(layer.open())));
  return digests;
}

test('an OCI layout and a docker-archive of one build read back as the same image', async (t) => {
  const o = await exampleProject(t);
  const built = await o.build();
  const cacheDir = o.config.cacheDir;
  const fromLayout = await readImage({ kind: 'oci', path: layoutDir(o), tag: 'v1' }, { cacheDir });
  const fromArchive = await readImage({ kind: 'docker-archive', path: join(o.config.outDir, 'hello.tar') }, { cacheDir });

  assert.equal(fromLayout.description, `oci:${layoutDir(o)}:v1`);
  assert.deepEqual(fromArchive.config, fromLayout.config);
  const diffIds = built.layers.map((l) => l.diffId);
  for (const image of [fromLayout, fromArchive]) {
    assert.deepEqual(image.layers.map((l) => l.diffId), diffIds);
    assert.deepEqual(await layerDigests(image), diffIds);
    assert.deepEqual(await Promise.all(image.layers.map((l) => l.size())), built.layers.map((l) => l.size));
  }
});

test('a registry location without a registry to pull from is a REGISTRY error naming it', async (t) => {
  const o = await exampleProject(t);
  await rejectsWith(readImage({ kind: 'registry', ref: 'localhost:5000/base@sha256:' + '0'.repeat(64), allowTag: false }, { cacheDir: o.config.cacheDir }), {
    code: 'REGISTRY',
    message: /Cannot pull localhost:5000\/base@sha256:0+: this command reads no registry images/,
  });
});
