/**
 * Bad input as a user meets it: after a good build, each mistake gets a clear error on stderr,
 * the documented exit code and a `--json` error object, and the outputs of the good build stay
 * byte-identical with no temporary files left in out/.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { SerializedError } from '../../src/errors.js';
import { tempProject } from '../helpers/project.js';
import { helloApp, nixBuild } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { jsonFailure, nixdock, nixdockOk } from '../helpers/cli.js';
import { envWithoutNix, snapshot } from './helpers.js';

const NIX_EXPRESSION_ERROR = 'nixdock-test: this expression is broken on purpose';
const NIX_BUILD_ERROR = 'nixdock-test: this builder fails on purpose';

interface BadCase {
  /** The image in nixdock.config.json (the good one when absent). */
  image?: Record<string, unknown>;
  args?: string[];
  env?: (t: TestContext) => NodeJS.ProcessEnv;
  exit: number;
  code: SerializedError['code'];
  /** What the human-readable error on stderr must say. */
  says: RegExp[];
}

test('bad input: clear errors, exit codes, --json errors, and the last good outputs stay as they were', { skip: missingTools([['nix-build', 'nix-bin']]) }, async (t) => {
  const [app] = nixBuild(helloApp('the good build'));
  const good = { name: 'app', contents: [app], config: { Cmd: ['/bin/hello'] } };
  const { dir } = tempProject(t, {
    'app.nix': helloApp('the good build'),
    'broken-eval.nix': `throw "${NIX_EXPRESSION_ERROR}"`,
    'broken-build.nix': `derivation { name = "broken"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo '${NIX_BUILD_ERROR}' >&2; exit 1" ]; }`,
    'not-a-dir': 'a regular file',
  });
  const configure = (image: Record<string, unknown>) =>
    writeFileSync(join(dir, 'nixdock.config.json'), JSON.stringify({ formats: ['oci', 'docker-archive'], images: [image] }, null, 2));
  configure(good);
  nixdockOk(dir, ['build']);
  const out = join(dir, 'out');
  const before = snapshot(out);
  assert.ok(Object.keys(before).includes('app.tar'));

  const cases: Record<string, BadCase> = {
    'a config file that does not exist': {
      args: ['--config', 'nixdock.config.mts'], exit: 2, code: 'CONFIG_NOT_FOUND', says: [/nixdock\.config\.mts does not exist/],
    },
    'a typo in a field name': {
      image: { ...good, maxLayer: 10 }, exit: 2, code: 'CONFIG_INVALID', says: [/images\[0\]\.maxLayer\b/, /did you mean `maxLayers`\?/],
    },
    'an image name that breaks the reference grammar': {
      image: { ...good, name: 'My App' }, exit: 2, code: 'CONFIG_INVALID', says: [/images\[0\]\.name/, /My App/],
    },
    'a tag that breaks the reference grammar': {
      image: { ...good, tag: '-v1!' }, exit: 2, code: 'CONFIG_INVALID', says: [/images\[0\]\.tag/, /-v1!/],
    },
    'maxLayers above 127': {
      image: { ...good, maxLayers: 200 }, exit: 2, code: 'CONFIG_INVALID', says: [/images\[0\]\.maxLayers/, /200/, /127/],
    },
    'a store path that does not exist': {
      image: { ...good, contents: ['/nix/store/00000000000000000000000000000000-not-there'] },
      exit: 2, code: 'STORE_PATH_MISSING', says: [/00000000000000000000000000000000-not-there/, /images\[0\]\.contents\[0\]/],
    },
    'a path outside the store': {
      image: { ...good, contents: [{ storePath: '/usr/bin/busybox' }] },
      exit: 2, code: 'CONFIG_INVALID', says: [/\/usr\/bin\/busybox/, /not a store path/],
    },
    'a Nix file that does not exist': {
      image: { ...good, contents: ['./app.nix', './not-there.nix#app'] },
      exit: 2, code: 'CONFIG_INVALID', says: [/images\[0\]\.contents\[1\]/, /not-there\.nix, which does not exist/, /nixdock\.config\.json:\d+:\d+/],
    },
    'a Nix expression that fails to evaluate': {
      image: { ...good, contents: ['./broken-eval.nix'] }, exit: 1, code: 'NIX_FAILED', says: [new RegExp(NIX_EXPRESSION_ERROR)],
    },
    'a derivation that fails to build': {
      image: { ...good, contents: ['./broken-build.nix'] }, exit: 1, code: 'NIX_FAILED', says: [/broken\.drv/, /exit code 1/],
    },
    'no nix CLI on PATH for a Nix installable': {
      image: { ...good, contents: ['./app.nix'] }, env: envWithoutNix, exit: 3, code: 'NIX_MISSING', says: [/nix-build/, /nix-bin/],
    },
    'an output directory below a regular file': {
      args: ['--out', join(dir, 'not-a-dir', 'out')], exit: 2, code: 'OUTPUT_NOT_WRITABLE', says: [/not-a-dir/],
    },
  };

  for (const [name, bad] of Object.entries(cases)) {
    await t.test(name, (t) => {
      configure(bad.image ?? good);
      const run = nixdock(dir, ['build', '--json', ...(bad.args ?? [])], bad.env?.(t));
      assert.equal(run.status, bad.exit, run.stderr);
      const printed = jsonFailure(run);
      assert.equal(printed.ok, false);
      assert.equal(printed.error.code, bad.code);
      assert.ok(printed.error.message.length > 0);
      assert.match(run.stderr, new RegExp(`^error\\[${bad.code}\\]: `, 'm'));
      for (const pattern of bad.says) assert.match(run.stderr, pattern);
      assert.deepEqual(snapshot(out), before, 'the outputs of the good build are untouched and no temp files are left');
    });
  }
});

test('nixdock build where no config is found says how to create one (exit 2)', (t) => {
  const { dir } = tempProject(t, {});
  const run = nixdock(dir, ['build']);
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, /^error\[CONFIG_NOT_FOUND\]: /m);
  assert.match(run.stderr, /nixdock\.config\.ts/);
  assert.match(run.stderr, /defineConfig/);
});
