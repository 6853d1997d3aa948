/**
 * The orchestrator's cache on the dir store: a second build reuses every layer and gives the same
 * digests; a damaged layer blob in the OCI layout is noticed, written again, and the image is valid.
 */
import assert from 'node:assert/strict';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { BuildEvent } from '../../src/events.js';
import { blobFile, exampleProject, LAYERS, layoutDir, layoutProblems, tarNames } from './helpers.js';

const layerEvents = (events: BuildEvent[]) => events.flatMap((e) => (e.type === 'layer:built' || e.type === 'layer:reused' ? [`${e.type} ${e.index}`] : []));

test('a second build reuses every layer: nothing built, the same digests, the same outputs', async (t) => {
  const o = await exampleProject(t);
  const first = await o.build();
  assert.equal(first.layers.length, LAYERS);
  assert.deepEqual([first.layersBuilt, first.layersReused], [LAYERS, 0]);
  assert.deepEqual(layerEvents(o.events), ['layer:built 0', 'layer:built 1', 'layer:built 2']);
  const archive = readFileSync(join(o.config.outDir, 'hello.tar'));

  o.events.length = 0;
  const second = await o.build();
  assert.deepEqual([second.layersBuilt, second.layersReused], [0, LAYERS]);
  assert.deepEqual(layerEvents(o.events), ['layer:reused 0', 'layer:reused 1', 'layer:reused 2']);
  assert.equal(second.configDigest, first.configDigest);
  assert.equal(second.manifestDigest, first.manifestDigest);
  assert.deepEqual(second.layers.map((l) => [l.diffId, l.digest]), first.layers.map((l) => [l.diffId, l.digest]));
  assert.ok(readFileSync(join(o.config.outDir, 'hello.tar')).equals(archive), 'the same docker-archive bytes');
  assert.deepEqual(layoutProblems(layoutDir(o), 'v1'), []);
  assert.ok(tarNames(join(o.config.outDir, 'hello.tar')).includes('manifest.json'));
});

for (const [damage, how] of [
  ['truncated', (file: string) => truncateSync(file, 100)],
  ['one byte changed, same size', (file: string) => {
    const bytes = readFileSync(file);
    bytes[bytes.length >> 1]! ^= 0xff;
    writeFileSync(file, bytes);
  }],
] as const) {
  test(`a layer blob ${damage} in the OCI layout is written again; the image is valid`, async (t) => {
    const o = await exampleProject(t);
    const first = await o.build();
    // The hello-static layer: the first store layer (its bytes are the 276-byte binary and its directories).
    const victim = first.layers[0]!;
    how(blobFile(layoutDir(o), victim.digest));
    assert.notDeepEqual(layoutProblems(layoutDir(o), 'v1'), [], 'the damage is visible in the layout');

    o.events.length = 0;
    const again = await o.build();
    assert.deepEqual(layerEvents(o.events), ['layer:built 0', 'layer:reused 1', 'layer:reused 2'], 'only the damaged layer is rebuilt');
    assert.deepEqual([again.layersBuilt, again.layersReused], [1, LAYERS - 1]);
    assert.equal(again.manifestDigest, first.manifestDigest);
    assert.deepEqual(again.layers.map((l) => l.diffId), first.layers.map((l) => l.diffId));
    assert.deepEqual(layoutProblems(layoutDir(o), 'v1'), []);
  });
}
