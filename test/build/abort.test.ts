/**
 * Stopping a build between layers (Ctrl-C in the CLI, a newer change in the daemon): the build
 * ends ABORTED, the layers it finished are cached for the next build, and the outputs of the
 * previous build are as they were.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { NixdockError } from '../../src/errors.js';
import { rejectsWith } from '../helpers/errors.js';
import { exampleProject, fileHashes, LAYERS, layoutDir, layoutProblems } from './helpers.js';

test('an abort after the first layer: ABORTED, that layer cached, the previous outputs intact', async (t) => {
  const o = await exampleProject(t);
  const previous = await o.build();
  const outputs = fileHashes(o.config.outDir);

  // Another mtime changes every layer's bytes, so the next build has all of them to write.
  await o.reconfigure({ tag: 'v2', mtime: '2024-01-01T00:00:00Z' });
  o.events.length = 0;
  const controller = new AbortController();
  const stopped = o.build({
    signal: controller.signal,
    onEvent: (e) => {
      if (e.type === 'layer:built') controller.abort(new NixdockError('ABORTED', 'stopped by the test'));
    },
  });
  await rejectsWith(stopped, { code: 'ABORTED' });
  assert.equal(o.events.filter((e) => e.type === 'layer:built').length, 1, 'one layer finished before the abort');
  assert.ok(!o.events.some((e) => e.type === 'build:failed'), 'a stopped build is not a failure');

  const after = fileHashes(o.config.outDir);
  for (const [file, hash] of Object.entries(outputs)) assert.equal(after[file], hash, `${file} is as the previous build left it`);
  assert.deepEqual(Object.keys(after).filter((f) => !(f in outputs) && !f.startsWith('oci/blobs/')), [], 'no new index.json, archive or temp file');
  assert.deepEqual(layoutProblems(layoutDir(o), 'v1'), [], 'the previous image is still valid');
  assert.deepEqual(readdirSync(o.config.outDir).filter((f) => f.includes('nixdock-tmp')), []);

  const resumed = await o.build();
  assert.deepEqual([resumed.layersBuilt, resumed.layersReused], [LAYERS - 1, 1], 'the layer finished before the abort is reused');
  assert.notEqual(resumed.manifestDigest, previous.manifestDigest);
  assert.deepEqual(layoutProblems(layoutDir(o), 'v2'), []);
  assert.deepEqual(layoutProblems(layoutDir(o), 'v1'), []);
});

test('a signal aborted before the build starts writes nothing', async (t) => {
  const o = await exampleProject(t);
  const controller = new AbortController();
  controller.abort(new NixdockError('ABORTED', 'stopped before it began'));
  await rejectsWith(o.build({ signal: controller.signal }), { code: 'ABORTED' });
  assert.ok(!o.events.some((e) => e.type === 'layer:built' || e.type === 'build:succeeded'));
  const resumed = await o.build();
  assert.deepEqual([resumed.layersBuilt, resumed.layersReused], [LAYERS, 0]);
});
