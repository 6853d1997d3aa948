/**
 * Spec files are data: the real CLI refuses a JSON spec carrying commands unless the config opts
 * in, and when it does, the commands run without the caller's environment, so a registry
 * password exported for `nixdock push` is not visible to them (checked in the built image's bytes).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempProject } from '../helpers/project.js';
import { BUSYBOX, NIX_ENV, nixBuild } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { nixdock } from '../helpers/cli.js';

const NEEDS = missingTools([['nix-build', 'nix-bin'], ['bwrap', 'bubblewrap'], ['fakeroot', 'fakeroot']]);
const SECRET = 'hunter2-do-not-leak-7f3a';

function project(t: Parameters<typeof tempProject>[0], specs: unknown): string {
  const busybox = nixBuild(BUSYBOX)[0]!;
  return tempProject(t, {
    'nixdock.config.json': { formats: ['docker-archive'], specs },
    'images/app.json': {
      name: 'app',
      tag: 't',
      contents: [busybox],
      extraCommands: 'mkdir -p etc; env > etc/extra-env',
      fakeRootCommands: 'env > etc/fakeroot-env',
      runAsRoot: 'env > /run-as-root-env',
    },
  }).dir;
}

const callerEnv = { ...NIX_ENV, NIXDOCK_REGISTRY_PASSWORD: SECRET, AWS_SECRET_ACCESS_KEY: SECRET };

test('nixdock build refuses a JSON spec with commands (exit 2, nothing written) unless specs.allowCommands is set', { skip: NEEDS }, (t) => {
  const dir = project(t, ['images/*.json']);
  const run = nixdock(dir, ['build'], callerEnv);
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, /error\[SPEC_INVALID\]: The JSON spec file .*app\.json carries extraCommands/);
  assert.match(run.stderr, /allowCommands: true/);
  assert.equal(existsSync(join(dir, 'out')), false);
});

test('opted in, extraCommands, fakeRootCommands and runAsRoot run, and none of them sees a secret of the caller\'s environment', { skip: NEEDS }, (t) => {
  const dir = project(t, { files: ['images/*.json'], allowCommands: true });
  const run = nixdock(dir, ['build'], callerEnv);
  assert.equal(run.status, 0, run.stderr);
  const image = readFileSync(join(dir, 'out', 'app.tar'));
  // The layers of a docker-archive are uncompressed tars: every file the scripts wrote is in these bytes as is.
  for (const marker of ['etc/extra-env', 'etc/fakeroot-env', 'run-as-root-env']) assert.ok(image.includes(marker), `${marker} is in the image`);
  assert.ok(image.includes('HOME=/homeless-shelter'), 'extraCommands wrote its environment');
  assert.ok(image.includes('HOME=/root'), 'runAsRoot wrote its environment');
  assert.equal(image.includes(SECRET), false, 'the secret reached the image');
  assert.equal(image.includes('NIXDOCK_REGISTRY_PASSWORD'), false);
});
