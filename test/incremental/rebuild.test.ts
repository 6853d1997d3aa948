/**
 * Incremental builds as a user sees them: the real CLI in a temp project, real Nix derivations.
 * An unchanged image builds no layer; a changed leaf package rebuilds only the layers that hold
 * it, the image still runs, and `nixdock inspect` says which new store paths caused the rebuild.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { helloApp } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { podman, RUN_FLAGS } from '../helpers/podman.js';
import { nixdockAsync } from '../helpers/cli.js';
import type { Project } from '../helpers/project.js';
import { build, imagesProject, type BuiltImage, type ImageInput } from './helpers.js';

const skip = missingTools([['nix-build', 'nix-bin'], ['podman', 'podman'], ['runc', 'runc']]);

/** Loads the build's docker-archive into a private podman store and runs the image. */
function runArchive(t: TestContext, image: BuiltImage): string {
  const store = mkdtempSync(join(tmpdir(), 'nixdock-incr-podman-'));
  t.after(() => rmSync(store, { recursive: true, force: true }));
  const archive = image.outputs.find((o) => o.format === 'docker-archive')!.path!;
  podman(store, ['load', '-q', '-i', archive]);
  return podman(store, [...RUN_FLAGS, `${image.name}:${image.tag}`]).trim();
}

const storeName = (path: string) => path.replace(/^\/nix\/store\/[0-9a-z]{32}-/, '');
const builtFlags = (image: BuiltImage) => image.layers.map((l) => l.built);

/**
 * Builds v1, rebuilds it unchanged (nothing built, same digests), then changes the message in the
 * hello-data leaf (→ new hello-data and hello-app paths) and rebuilds. Returns the v1 and v2 builds.
 */
async function changeLeaf(t: TestContext, image: ImageInput): Promise<{ v1: BuiltImage; v2: BuiltImage; project: Project }> {
  const project = imagesProject(t, [image], { 'app.nix': helloApp('message v1') });
  const [v1] = await build(project);
  assert.equal(v1!.layersBuilt, v1!.layers.length);

  const [again] = await build(project);
  assert.equal(again!.layersBuilt, 0, 'an unchanged image builds no layer');
  assert.equal(again!.layersReused, v1!.layers.length);
  assert.deepEqual(builtFlags(again!), v1!.layers.map(() => false));
  assert.equal(again!.manifestDigest, v1!.manifestDigest);

  project.write('app.nix', helloApp('message v2'));
  const [v2] = await build(project);
  assert.equal(runArchive(t, v2!), 'message v2');
  return { v1: v1!, v2: v2!, project };
}

test('stable layering: a changed leaf rebuilds its own layers and the customisation layer only', { skip }, async (t) => {
  const { v1, v2, project } = await changeLeaf(t, { name: 'app', nix: 'app.nix' });
  // One layer per store path (busybox, hello-data, hello-app) + the customisation layer.
  assert.deepEqual(v1.layers.map((l) => l.storePaths.map(storeName)), [['busybox-static'], ['hello-data'], ['hello-app'], []]);
  assert.deepEqual(builtFlags(v2), [false, true, true, true]);
  assert.equal(v2.layersBuilt, 3);
  assert.equal(v2.layersReused, 1);
  assert.equal(v2.layers[0]!.diffId, v1.layers[0]!.diffId, 'busybox layer unchanged');

  const inspect = await nixdockAsync(project.dir, ['inspect', 'app']);
  assert.equal(inspect.status, 0, inspect.stderr);
  const newPaths = [v2.layers[1]!.storePaths[0]!, v2.layers[2]!.storePaths[0]!];
  for (const path of newPaths) assert.match(inspect.stdout, new RegExp(`rebuilt because new: ${path}`));
  assert.doesNotMatch(inspect.stdout, /busybox-static\n\s+rebuilt/);
  assert.match(inspect.stdout, /reused\s+busybox-static/);
});

test('popularity layering: the changed paths share the bulk layer, so two layers are rebuilt', { skip }, async (t) => {
  // maxLayers 3 = 2 store layers + customisation: the most popular path alone, the rest in bulk.
  const { v1, v2 } = await changeLeaf(t, { name: 'app', nix: 'app.nix', layering: 'popularity', maxLayers: 3 });
  assert.deepEqual(v1.layers.map((l) => l.storePaths.map(storeName).sort()), [['busybox-static'], ['hello-app', 'hello-data'], []]);
  assert.deepEqual(builtFlags(v2), [false, true, true]);
  assert.equal(v2.layersBuilt, 2);
  assert.equal(v2.layersReused, 1);
});
