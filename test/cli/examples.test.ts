/**
 * The examples as a user meets them: the repository's default example builds on a machine
 * without Nix and its image runs; examples/nix builds with Nix and says what to install without.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempProject } from '../helpers/project.js';
import { missingTools } from '../helpers/tools.js';
import { RUN_FLAGS, podman } from '../helpers/podman.js';
import { REPO, nixdock, nixdockOk } from '../helpers/cli.js';
import { copyFromRepo, envWithoutNix } from './helpers.js';
import { tempDir } from '../helpers/tmp.js';

const PODMAN: Array<[string, string]> = [['podman', 'podman'], ['runc', 'runc']];

/** Loads a docker-archive into a private podman store and runs the image it names; returns the output. */
function loadAndRun(t: Parameters<typeof tempDir>[0], archive: string): string {
  const store = join(tempDir(t, 'nixdock-example-run-'), 'podman');
  const loaded = /Loaded image: (\S+)/.exec(podman(store, ['load', '-q', '-i', archive]));
  assert.ok(loaded, `podman load named no image for ${archive}`);
  return podman(store, [...RUN_FLAGS, loaded[1]!]);
}

function greetingOf(storeDir: string): string {
  const greetingPath = readdirSync(storeDir).find((name) => name.endsWith('-hello-greeting'));
  assert.ok(greetingPath, `no hello-greeting in ${storeDir}`);
  return readFileSync(join(storeDir, greetingPath, 'share', 'greeting'), 'utf8');
}

test('the default example (nixdock.config.ts + examples/store) builds without Nix and runs in podman', { skip: missingTools(PODMAN) }, (t) => {
  const { dir } = tempProject(t, {});
  copyFromRepo(dir, ['nixdock.config.ts', 'examples/store']);
  const { stderr } = nixdockOk(dir, ['build'], envWithoutNix(t));
  const archive = join(dir, 'out', 'hello.tar');
  assert.ok(stderr.includes(`podman load -i ${archive}`), stderr);
  assert.equal(loadAndRun(t, archive), greetingOf(join(REPO, 'examples', 'store')));
});

test('examples/nix builds with Nix and its image prints the greeting', { skip: missingTools([['nix-build', 'nix-bin'], ['busybox', 'busybox-static'], ...PODMAN]) }, (t) => {
  const { dir } = tempProject(t, {});
  copyFromRepo(dir, ['examples/nix']);
  const project = join(dir, 'examples', 'nix');
  nixdockOk(project, ['build']);
  assert.equal(loadAndRun(t, join(project, 'out', 'hello-nix.tar')).trim(), 'Hello from nixdock! This image was built from the real Nix store.');
});

test('examples/nix without Nix on PATH: NIX_MISSING names the package nix-bin (exit 3)', (t) => {
  const { dir } = tempProject(t, {});
  copyFromRepo(dir, ['examples/nix']);
  const run = nixdock(join(dir, 'examples', 'nix'), ['build'], envWithoutNix(t));
  assert.equal(run.status, 3, run.stderr);
  assert.match(run.stderr, /^error\[NIX_MISSING\]: /m);
  assert.match(run.stderr, /nix-bin/);
});
