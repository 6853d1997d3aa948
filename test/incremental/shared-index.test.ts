/**
 * One project, one index, one OCI layout, several processes: two builds at once both succeed
 * and both images end up in index.json; an index overwritten with garbage is moved aside with a
 * warning and the build gives the same digests as before.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { helloApp } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { jsonOf, nixdockAsync } from '../helpers/cli.js';
import { build, imagesProject, misnamedBlobs } from './helpers.js';

const skip = missingTools([['nix-build', 'nix-bin']]);

test('two `nixdock build` processes at once share the index and the layout without losing an image', { skip }, async (t) => {
  const project = imagesProject(t, [{ name: 'a', nix: 'a.nix' }, { name: 'b', nix: 'b.nix' }], {}, ['oci']);
  const layout = join(project.dir, 'out', 'oci');
  // Several rounds, each changing both images, so every round writes blobs, index rows and index.json.
  // Tags come from content, so each round adds two entries and keeps the earlier ones.
  const expected: string[][] = [];
  for (const round of [1, 2, 3]) {
    project.write('a.nix', helloApp(`a round ${round}`));
    project.write('b.nix', helloApp(`b round ${round}`));
    const [a, b] = await Promise.all([nixdockAsync(project.dir, ['build', '--json', 'a']), nixdockAsync(project.dir, ['build', '--json', 'b'])]);
    for (const result of [a!, b!]) {
      assert.equal(result.status, 0, result.stderr);
      assert.doesNotMatch(result.stderr, /SQLITE_BUSY|database is locked/);
    }
    const built = [a!, b!].map((r) => jsonOf('build', r).images[0]!);
    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations: Record<string, string> }> };
    const listed = index.manifests.map((m) => [m.annotations['io.containerd.image.name'], m.digest]);
    expected.push(...built.map((i) => [`${i.name}:${i.tag}`, i.manifestDigest!]));
    assert.deepEqual(listed.sort(), [...expected].sort(), `round ${round}: every image built so far is listed`);
  }
  assert.deepEqual(misnamedBlobs(layout), []);
});

test('garbage over .nixdock/index.sqlite: a warning, the index is moved aside, the image comes out the same', { skip }, async (t) => {
  const project = imagesProject(t, [{ name: 'app', nix: 'app.nix' }], { 'app.nix': helloApp('corrupt index') });
  const [before] = await build(project);
  const cacheDir = join(project.dir, '.nixdock');
  writeFileSync(join(cacheDir, 'index.sqlite'), randomBytes(64 * 1024));

  const result = await nixdockAsync(project.dir, ['build', '--json']);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stderr, /warning: The layer index .*index\.sqlite could not be used: it is damaged.* moved to .*index\.sqlite\.corrupt-/s);
  const [after] = jsonOf('build', result).images;
  assert.equal(after!.manifestDigest, before!.manifestDigest);
  assert.equal(after!.configDigest, before!.configDigest);
  assert.deepEqual(after!.layers.map((l) => l.diffId), before!.layers.map((l) => l.diffId));
  assert.ok(readdirSync(cacheDir).some((name) => name.startsWith('index.sqlite.corrupt-')));
  assert.deepEqual(misnamedBlobs(join(project.dir, 'out', 'oci')), []);

  const [third] = await build(project);
  assert.equal(third!.layersBuilt, 0, 'the rebuilt index serves the next build');
});
