/**
 * `nixdock build`, `stream` and `inspect` as a user runs them: the real CLI in temporary projects
 * pointing at a real Nix closure, its outputs checked with skopeo, umoci and podman.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { BuildJsonImage } from '../../src/commands/build.js';
import { tempProject } from '../helpers/project.js';
import { missingTools } from '../helpers/tools.js';
import { helloClosure, type HelloClosure } from '../helpers/nix.js';
import { RUN_FLAGS, podman } from '../helpers/podman.js';
import { skopeoConfig, skopeoManifest } from '../helpers/skopeo.js';
import { nixdockIntoPodman, nixdockJson, nixdockOk } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { sha256 } from '../helpers/bytes.js';

const NIX: [string, string] = ['nix-build', 'nix-bin'];
const SKOPEO: [string, string] = ['skopeo', 'skopeo'];
const PODMAN: Array<[string, string]> = [['podman', 'podman'], ['runc', 'runc']];

let closure: HelloClosure | undefined;
/** The hello-app closure (busybox, data, app), built once per file. */
function hello(): HelloClosure {
  closure ??= helloClosure('hello from the nixdock CLI');
  return closure;
}

function appImage(app: string) {
  return { name: 'app', contents: [app], config: { Cmd: ['/bin/hello'] } };
}

/** A project with one image `app` of the hello closure, written as nixdock.config.json. */
function jsonProject(t: Parameters<typeof tempProject>[0], formats = ['oci', 'docker-archive']): string {
  return tempProject(t, { 'nixdock.config.json': { formats, images: [appImage(hello().app)] } }).dir;
}

function buildJson(dir: string): BuildJsonImage {
  const result = nixdockJson(dir, ['build']);
  assert.equal(result.ok, true);
  assert.equal(result.images.length, 1);
  return result.images[0]!;
}

test('nixdock build writes out/oci and out/app.tar and tells where they are and how to load them', { skip: missingTools([NIX]) }, (t) => {
  const dir = jsonProject(t);
  const { stderr } = nixdockOk(dir, ['build']);
  const archive = join(dir, 'out', 'app.tar');
  assert.ok(existsSync(join(dir, 'out', 'oci', 'index.json')));
  assert.ok(existsSync(archive));
  assert.match(stderr, new RegExp(`OCI layout +${join(dir, 'out', 'oci')}`));
  assert.ok(stderr.includes(`podman load -i ${archive}`), stderr);
  assert.match(stderr, /skopeo copy oci:/);
});

test('--json names every digest, layer and output, and skopeo reads the same from the outputs', { skip: missingTools([NIX, SKOPEO]) }, (t) => {
  const dir = jsonProject(t);
  const image = buildJson(dir);
  const oci = join(dir, 'out', 'oci');
  const archive = join(dir, 'out', 'app.tar');
  assert.equal(image.name, 'app');
  assert.deepEqual(image.outputs.map((o) => [o.format, o.path]), [['oci', oci], ['docker-archive', archive]]);

  const tmp = tempDir(t, 'nixdock-skopeo-');
  const ociRef = `oci:${oci}:${image.tag}`;
  const rawManifest = execFileSync('skopeo', ['--tmpdir', tmp, 'inspect', '--raw', ociRef]);
  assert.equal(sha256(rawManifest), image.manifestDigest);
  const manifest = skopeoManifest(ociRef, tmp) as ReturnType<typeof skopeoManifest> & { config: { digest: string } };
  assert.equal(manifest.config.digest, image.configDigest);
  assert.deepEqual(manifest.layers.map((l) => [l.digest, l.size]), image.layers.map((l) => [l.digest, l.size]));
  const diffIds = image.layers.map((l) => l.diffId);
  assert.deepEqual(skopeoConfig(ociRef, tmp).rootfs.diff_ids, diffIds);
  assert.deepEqual(skopeoConfig(`docker-archive:${archive}`, tmp).rootfs.diff_ids, diffIds);

  // One layer per store path here (3 paths, far under the budget), then the customisation layer.
  const storePaths = image.layers.flatMap((l) => l.storePaths).sort();
  assert.deepEqual(storePaths, [...hello().paths].sort());
  assert.deepEqual(image.layers.at(-1)!.storePaths, []);
});

test('the docker-archive runs in podman and the OCI layout unpacks with umoci', { skip: missingTools([NIX, ...PODMAN, ['umoci', 'umoci']]) }, (t) => {
  const dir = jsonProject(t);
  const image = buildJson(dir);
  const work = tempDir(t, 'nixdock-run-');

  podman(join(work, 'podman'), ['load', '-q', '-i', join(dir, 'out', 'app.tar')]);
  assert.equal(podman(join(work, 'podman'), [...RUN_FLAGS, `app:${image.tag}`]).trim(), hello().message);

  const bundle = join(work, 'bundle');
  execFileSync('umoci', ['unpack', '--image', `${join(dir, 'out', 'oci')}:${image.tag}`, bundle], { stdio: 'pipe' });
  const rootfs = join(bundle, 'rootfs');
  assert.equal(readlinkSync(join(rootfs, 'bin', 'hello')), `${hello().app}/bin/hello`);
  assert.ok(existsSync(join(rootfs, hello().app.slice(1), 'bin', 'hello')));
});

test('two fresh projects (a .ts and a .json config) build identical digests and derive the same tag', { skip: missingTools([NIX]) }, (t) => {
  const tsConfig = `import { defineConfig } from 'nixdock';\nexport default defineConfig({ images: [${JSON.stringify(appImage(hello().app))}] });\n`;
  const first = buildJson(tempProject(t, { 'nixdock.config.ts': tsConfig }).dir);
  const second = buildJson(jsonProject(t, ['oci']));
  assert.deepEqual(
    { tag: second.tag, manifestDigest: second.manifestDigest, configDigest: second.configDigest },
    { tag: first.tag, manifestDigest: first.manifestDigest, configDigest: first.configDigest },
  );
  assert.match(first.tag, /^[0-9a-f]{32}$/, 'no tag in the spec: derived from the content');
});

test('nixdock stream app | podman load runs; nixdock inspect app lists the layers by store path', { skip: missingTools([NIX, ...PODMAN]) }, async (t) => {
  const dir = jsonProject(t, ['oci']);
  const image = buildJson(dir);

  const { stdout } = nixdockOk(dir, ['inspect', 'app']);
  const lines = stdout.trim().split('\n').filter((line) => /^\s*\d+ /.test(line));
  assert.equal(lines.length, image.layers.length, stdout);
  for (const name of ['busybox-static', 'hello-data', 'hello-app']) assert.match(stdout, new RegExp(`\\b${name}\\b`));

  const store = join(tempDir(t, 'nixdock-stream-'), 'podman');
  const piped = await nixdockIntoPodman(dir, ['stream', 'app'], store, ['load']);
  assert.equal(piped.cli.status, 0, piped.cli.stderr);
  assert.equal(piped.podman.status, 0, piped.podman.stderr);
  assert.match(piped.podman.stdout, new RegExp(`Loaded image.*app:${image.tag}`));
  assert.equal(podman(store, [...RUN_FLAGS, `app:${image.tag}`]).trim(), hello().message);
  // The stream is the same image as the build: podman knows it by the built config digest.
  assert.equal(podman(store, ['image', 'inspect', '--format', '{{.Id}}', `app:${image.tag}`]).trim(), image.configDigest.slice(7));
});

test('inspect of a written archive reads the image itself', { skip: missingTools([NIX]) }, (t) => {
  const dir = jsonProject(t);
  const image = buildJson(dir);
  const inspected = nixdockJson(dir, ['inspect', join(dir, 'out', 'app.tar')]);
  assert.deepEqual(inspected.layers.map((l) => l.diffId), image.layers.map((l) => l.diffId));
  assert.deepEqual(inspected.layers.map((l) => l.storePaths), image.layers.map((l) => l.storePaths));
});
