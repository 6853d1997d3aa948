/**
 * Issue 14's first shape end to end: real Nix derivations, the real CLI, skopeo reading the
 * written images. Image `a` has contents [app] (app → lib → libz, busybox, cfg), image `b` has
 * [busybox, lib]. With the default layering both fit the budget, so every store path gets a layer
 * of its own, and the layers of busybox, lib and libz are the same blobs (diff_ids) in both images.
 * `nixdock inspect` prices each plan with the rebuild-cost model next to the popularity split.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { nixdock } from '../helpers/cli.js';
import { BUSYBOX, drv, nixBuild } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { skopeoConfig } from '../helpers/skopeo.js';

const skip = missingTools([['nix-build', 'nix-bin'], ['skopeo', 'skopeo']]);

const SH = 'export PATH=/usr/bin:/bin;';
const LIBZ = drv('libz', `${SH} mkdir -p $out/lib; printf 'libz 1.3\\n' > $out/lib/libz.so`);
const LIB = drv('lib', `${SH} mkdir -p $out/lib; printf '%s\\n' \${libz}/lib/libz.so > $out/lib/needs`, { libz: LIBZ });
const CFG = drv('cfg', `${SH} mkdir -p $out/etc; printf 'greeting=hi\\n' > $out/etc/app.conf`);
const APP = drv(
  'app',
  `${SH} mkdir -p $out/bin; printf '#!\${busybox}/bin/sh\\n# \${lib} \${cfg}\\necho hi\\n' > $out/bin/app; chmod 555 $out/bin/app`,
  { busybox: BUSYBOX, lib: LIB, cfg: CFG },
);

interface Built {
  name: string;
  tag: string;
  layers: Array<{ diffId: string; storePaths: string[] }>;
  outputs: Array<{ format: string; path?: string }>;
}

/** A temp project whose nixdock.config.json lists `images`; removed after the test. */
function project(t: TestContext, images: object[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'nixdock-shared-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'fixture', private: true }));
  writeFileSync(join(dir, 'nixdock.config.json'), JSON.stringify({ store: 'nix', formats: ['oci'], images }));
  return dir;
}

function build(dir: string): Built[] {
  const run = nixdock(dir, ['build', '--json']);
  assert.equal(run.status, 0, run.stderr);
  return (JSON.parse(run.stdout) as { images: Built[] }).images;
}

test('two images with common store paths share those paths\' layers (same diff_ids in both images)', { skip }, (t) => {
  const [app, busybox, lib] = nixBuild(`[ ${APP} ${BUSYBOX} ${LIB} ]`);
  const dir = project(t, [{ name: 'a', contents: [app] }, { name: 'b', contents: [busybox, lib] }]);
  const images = build(dir);
  const [a, b] = ['a', 'b'].map((name) => images.find((image) => image.name === name)!) as [Built, Built];

  // One layer per store path (5 and 3), plus each image's customisation layer.
  const layerOf = (image: Built) => new Map(image.layers.filter((l) => l.storePaths.length).map((l) => [l.storePaths.join(' '), l.diffId]));
  assert.deepEqual(a.layers.map((l) => l.storePaths.length), [1, 1, 1, 1, 1, 0]);
  assert.deepEqual(b.layers.map((l) => l.storePaths.length), [1, 1, 1, 0]);
  const common = [...layerOf(b).keys()];
  assert.equal(common.length, 3);
  for (const path of common) assert.equal(layerOf(a).get(path), layerOf(b).get(path), `${path}: same layer in a and b`);

  // What the written images say, read by skopeo: b's store layers are all layers of a too.
  const diffIds = (image: Built) => skopeoConfig(`oci:${image.outputs.find((o) => o.format === 'oci')!.path}:${image.tag}`, dir).rootfs.diff_ids;
  const inA = new Set(diffIds(a));
  const fromB = diffIds(b);
  assert.equal(fromB.length, 4);
  assert.deepEqual(fromB.slice(0, 3).filter((diffId) => inA.has(diffId)), fromB.slice(0, 3));
  assert.ok(!inA.has(fromB[3]!), 'the customisation layers differ (different contents)');
});

interface Costs {
  meanBytes: number;
  worstBytes: number;
  floorMeanBytes: number;
  totalBytes: number;
}

test('inspect prices the plan: one layer per path costs the floor; squeezed, stable costs less than popularity', { skip }, (t) => {
  const [app] = nixBuild(APP);
  // maxLayers 3: 2 store layers for 5 paths, beside the customisation layer.
  const dir = project(t, [{ name: 'a', contents: [app] }, { name: 'squeezed', contents: [app], maxLayers: 3 }]);
  build(dir);
  const planCost = (name: string) => {
    const run = nixdock(dir, ['inspect', name, '--json']);
    assert.equal(run.status, 0, run.stderr);
    return (JSON.parse(run.stdout) as { planCost: { layering: string; plan: Costs; popularity: Costs } }).planCost;
  };
  const roomy = planCost('a');
  assert.equal(roomy.layering, 'stable');
  assert.equal(roomy.plan.meanBytes, roomy.plan.floorMeanBytes);
  assert.deepEqual(roomy.popularity, roomy.plan);
  const squeezed = planCost('squeezed');
  assert.ok(squeezed.plan.meanBytes > squeezed.plan.floorMeanBytes);
  assert.ok(squeezed.plan.meanBytes < squeezed.popularity.meanBytes, `stable ${squeezed.plan.meanBytes}, popularity ${squeezed.popularity.meanBytes}`);
  assert.equal(squeezed.plan.totalBytes, roomy.plan.totalBytes);

  const text = nixdock(dir, ['inspect', 'squeezed']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /rebuilt by a one-path change .*floor.*\n\s+this plan \(stable\)\s+mean .*× floor\)\s+worst .*\n\s+popularity\s+mean /);
});
