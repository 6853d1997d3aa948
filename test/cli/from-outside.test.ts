/**
 * nixdock from outside this repository: `nixdock init` in a fresh project, the Nix packaging
 * (flake.nix, default.nix) and nix/lib.nix, whose dockerTools-named functions write a spec file
 * that `nixdock build` turns into an image that runs in podman.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempProject } from '../helpers/project.js';
import { NIX_ENV, helloApp } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { nixdock, nixdockOk, REPO } from '../helpers/cli.js';
import { podman, podmanStoreFlags, RUN_FLAGS } from '../helpers/podman.js';
import { tempDir } from '../helpers/tmp.js';

const NIX = missingTools([['nix-instantiate', 'nix-bin']]);
const PODMAN = missingTools([['nix-build', 'nix-bin'], ['podman', 'podman'], ['runc', 'runc']]);

test('flake.nix, default.nix and nix/lib.nix are valid Nix', { skip: NIX }, () => {
  for (const file of ['flake.nix', 'default.nix', 'nix/lib.nix']) {
    execFileSync('nix-instantiate', ['--parse', join(REPO, file)], { env: NIX_ENV, stdio: 'pipe' });
  }
});

test('nixdock init writes a config that builds the project\'s default.nix, and refuses to overwrite it', { skip: PODMAN }, (t) => {
  const { dir } = tempProject(t, { 'default.nix': helloApp('made by init'), '.gitignore': 'node_modules\n' });
  const { stderr } = nixdockOk(dir, ['init', '--name', 'hello']);
  assert.match(stderr, /Wrote .*nixdock\.config\.ts \(image "hello" from \.\/default\.nix\)/);
  assert.match(stderr, /npx nixdock build/);
  assert.deepEqual(readFileSync(join(dir, '.gitignore'), 'utf8').split('\n'), ['node_modules', '/out/', '/.nixdock/', '']);

  const again = nixdock(dir, ['init']);
  assert.equal(again.status, 2);
  assert.match(again.stderr, /already has a nixdock config/);

  const built = JSON.parse(nixdockOk(dir, ['build', '--json', '--format', 'docker-archive']).stdout) as { images: Array<{ name: string }> };
  assert.equal(built.images[0]!.name, 'hello');
  const store = tempDir(t, 'nixdock-init-podman-');
  execFileSync('podman', [...podmanStoreFlags(store), 'load', '-i', join(dir, 'out', 'hello.tar')], { stdio: 'pipe' });
  assert.equal(podman(store, [...RUN_FLAGS, 'localhost/hello:' + JSON.parse(nixdockOk(dir, ['build', '--json']).stdout).images[0].tag]).trim(), 'made by init');
});

/** A Nix file calling nix/lib.nix the way a dockerTools call site would, on the hello closure. */
function imageNix(fn: string, extra = ''): string {
  return `let
  nixdock = import ${join(REPO, 'nix', 'lib.nix')} { };
  hello = ${helloApp('built from nix/lib.nix')};
in nixdock.${fn} {
  name = "hello-lib";
  tag = "v1";
  contents = [ hello ];
  config = { Cmd = [ "\${hello}/bin/hello" ]; Env = [ "A=b" ]; };
  maxLayers = 20;
  compressor = "none";
  ${extra}
}`;
}

test('nix/lib.nix: dockerTools arguments become a spec with the store paths as references', { skip: NIX }, (t) => {
  const dir = tempDir(t, 'nixdock-lib-');
  writeFileSync(join(dir, 'image.nix'), imageNix('toSpec'));
  const spec = JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', join(dir, 'image.nix')], { env: NIX_ENV, encoding: 'utf8' }));
  assert.equal(spec.name, 'hello-lib');
  assert.equal(spec.tag, 'v1');
  assert.equal(spec.maxLayers, 20);
  assert.equal(spec.compressor, undefined, 'dockerTools-only arguments are dropped');
  assert.match(spec.contents[0], /^\/nix\/store\/[a-z0-9]{32}-hello-app$/);
  assert.deepEqual(spec.config, { Cmd: [`${spec.contents[0]}/bin/hello`], Env: ['A=b'] });
});

test('nix/lib.nix: buildLayeredImage writes a spec file that specs: picks up and nixdock builds into an image that runs', { skip: PODMAN }, (t) => {
  const { dir } = tempProject(t, {
    'image.nix': imageNix('buildLayeredImage'),
    'nixdock.config.json': { specs: ['nixdock-hello.json'], formats: ['docker-archive'] },
  });
  execFileSync('nix-build', ['image.nix', '-o', 'nixdock-hello.json'], { cwd: dir, env: NIX_ENV, stdio: 'pipe' });
  const specPath = execFileSync('readlink', [join(dir, 'nixdock-hello.json')], { encoding: 'utf8' }).trim();
  const refs = execFileSync('nix-store', ['--query', '--references', specPath], { env: NIX_ENV, encoding: 'utf8' });
  assert.match(refs, /-hello-app\n/, 'the spec file refers to the contents');

  const built = JSON.parse(nixdockOk(dir, ['build', '--json']).stdout) as { images: Array<{ name: string; tag: string }> };
  assert.deepEqual(built.images.map((i) => `${i.name}:${i.tag}`), ['hello-lib:v1']);
  const store = tempDir(t, 'nixdock-lib-podman-');
  execFileSync('podman', [...podmanStoreFlags(store), 'load', '-i', join(dir, 'out', 'hello-lib.tar')], { stdio: 'pipe' });
  assert.equal(podman(store, [...RUN_FLAGS, 'localhost/hello-lib:v1']).trim(), 'built from nix/lib.nix');
});
