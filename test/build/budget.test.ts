/**
 * The layer planners share maxLayers: base-image layers and the customisation layer are counted
 * first, the store closure gets what they leave, and a budget that leaves nothing is refused.
 */
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { rejectsWith } from '../helpers/errors.js';
import { exampleProject, GREETING, HELLO, LAYERS } from './helpers.js';

const kinds = (layers: ReadonlyArray<{ kind: string }>) => layers.map((l) => l.kind);

test('store layers get the budget the customisation layer leaves', async (t) => {
  const o = await exampleProject(t, { maxLayers: LAYERS });
  const roomy = await o.build();
  assert.deepEqual(kinds(roomy.layers), ['store', 'store', 'customisation']);

  await o.reconfigure({ maxLayers: 2 });
  const tight = await o.build();
  assert.deepEqual(kinds(tight.layers), ['store', 'customisation']);
  assert.deepEqual([...tight.layers[0]!.storePaths].sort(), [GREETING, HELLO]);
});

test('base-image layers count against maxLayers; too few left is INPUT_INVALID naming what used them', async (t) => {
  const o = await exampleProject(t);
  const base = await o.build();
  const archive = join(o.project.dir, 'base.tar');
  copyFileSync(join(o.config.outDir, 'hello.tar'), archive);

  await o.reconfigure({ tag: 'on-base', fromImage: 'docker-archive:./base.tar', maxLayers: LAYERS + 1 });
  await rejectsWith(o.build(), {
    code: 'INPUT_INVALID',
    message: /maxLayers 4 leaves no room for store layers/,
    found: /3 base layer\(s\) \+ 1 customisation layer/,
    expected: /maxLayers ≥ 5/,
  });

  await o.reconfigure({ tag: 'on-base', fromImage: 'docker-archive:./base.tar', maxLayers: LAYERS + 2 });
  const onBase = await o.build();
  assert.deepEqual(kinds(onBase.layers), ['base', 'base', 'base', 'store', 'customisation']);
  assert.deepEqual(onBase.layers.slice(0, LAYERS).map((l) => l.diffId), base.layers.map((l) => l.diffId));
  assert.deepEqual([...onBase.layers[LAYERS]!.storePaths].sort(), [GREETING, HELLO]);
});
