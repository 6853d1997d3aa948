/**
 * The build history the orchestrator leaves in the cache: one row per build, newest first, with
 * its status (succeeded, failed, superseded when stopped) and its layer counts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NixdockError } from '../../src/errors.js';
import { rejectsWith } from '../helpers/errors.js';
import { exampleProject, LAYERS } from './helpers.js';

const MISSING = '/nix/store/00000000000000000000000000000000-not-in-the-store';

test('succeeded, stopped and failed builds each leave a row with their status and counts', async (t) => {
  const o = await exampleProject(t);
  const first = await o.build();
  await o.build();

  await o.reconfigure({ tag: 'v2', mtime: '2024-01-01T00:00:00Z' });
  const controller = new AbortController();
  const stopped = o.build({ signal: controller.signal, onEvent: (e) => e.type === 'layer:built' && controller.abort(new NixdockError('ABORTED', 'stopped')) });
  await rejectsWith(stopped, { code: 'ABORTED' });

  await o.reconfigure({ tag: 'v3', contents: [MISSING] });
  await rejectsWith(o.build(), { code: 'STORE_PATH_MISSING' });

  const rows = o.cache.history('hello', 10);
  assert.deepEqual(
    rows.map((r) => [r.status, r.layersBuilt, r.layersReused]),
    [['failed', 0, 0], ['superseded', 1, 0], ['succeeded', 0, LAYERS], ['succeeded', LAYERS, 0]],
  );
  assert.ok(rows.every((r) => r.reason === 'test' && r.finishedAt !== undefined && r.finishedAt >= r.startedAt));
  const [failed, superseded, reused, built] = rows as [typeof rows[0], typeof rows[0], typeof rows[0], typeof rows[0]];
  assert.match(failed.error ?? '', new RegExp(MISSING));
  assert.ok(superseded.error, 'a stopped build says why');
  assert.equal(built.manifestDigest, first.manifestDigest);
  assert.equal(reused.manifestDigest, first.manifestDigest);
  assert.equal(built.tag, 'v1');
  assert.deepEqual(built.layers.map((l) => [l.diffId, l.built]), first.layers.map((l) => [l.diffId, true]));
  assert.deepEqual(reused.layers.map((l) => l.built), [false, false, false]);
  assert.deepEqual(built.outputs.map((out) => out.format), ['oci', 'docker-archive']);
  assert.deepEqual(o.cache.lastBuild('hello', 'succeeded')?.id, reused.id);
});
