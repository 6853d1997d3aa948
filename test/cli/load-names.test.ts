/**
 * Every name nixdock prints for a built image is the one the engine stores it under: the
 * `nixdock build` hints, run as printed against a private podman store, leave exactly the name
 * the hint's `podman run` uses, and `podman load` of the docker-archive gives the same name.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadedName } from '../../src/reference.js';
import { tempProject } from '../helpers/project.js';
import { missingTools } from '../helpers/tools.js';
import { nixdockOk } from '../helpers/cli.js';
import { helloClosure } from '../helpers/nix.js';
import { podman, podmanStoreFlags, RUN_FLAGS } from '../helpers/podman.js';
import { tempDir } from '../helpers/tmp.js';

test('podman qualifies names without a registry with localhost/; docker and registry names stay as they are', () => {
  assert.equal(loadedName('podman', 'app', 'dev'), 'localhost/app:dev');
  assert.equal(loadedName('podman', 'team/app', 'dev'), 'localhost/team/app:dev');
  assert.equal(loadedName('podman', 'ghcr.io/me/app', 'dev'), 'ghcr.io/me/app:dev');
  assert.equal(loadedName('podman', 'localhost:5000/app', 'dev'), 'localhost:5000/app:dev');
  assert.equal(loadedName('docker', 'app', 'dev'), 'app:dev');
});

const tools = missingTools([['nix-build', 'nix-bin'], ['skopeo', 'skopeo'], ['podman', 'podman'], ['runc', 'runc']]);

test('the printed load commands store the image under the name the printed run command uses', { skip: tools }, (t) => {
  const { app, message } = helloClosure('named as podman names it');
  const { dir } = tempProject(t, {
    'nixdock.config.json': { formats: ['oci', 'docker-archive'], images: [{ name: 'team/app', tag: 'dev', contents: [app], config: { Cmd: ['/bin/hello'] } }] },
  });
  const { stderr } = nixdockOk(dir, ['build']);
  const skopeoLine = /load:\s+skopeo copy (oci:\S+) containers-storage:(\S+)/.exec(stderr);
  const runLine = /podman run --rm (\S+)/.exec(stderr);
  assert.ok(skopeoLine && runLine, stderr);
  assert.equal(skopeoLine[2], 'localhost/team/app:dev');
  assert.equal(runLine[1], skopeoLine[2]);

  // The skopeo command as printed, with the store made private to this test.
  const viaSkopeo = tempDir(t, 'nixdock-names-skopeo-');
  const [root, runroot] = [join(viaSkopeo, 'root'), join(viaSkopeo, 'runroot')];
  execFileSync('skopeo', ['--tmpdir', viaSkopeo, 'copy', skopeoLine[1]!, `containers-storage:[vfs@${root}+${runroot}]${skopeoLine[2]}`], { stdio: 'pipe' });
  const names = (store: string) => podman(store, ['images', '--format', '{{.Repository}}:{{.Tag}}']).trim().split('\n');
  assert.deepEqual(names(viaSkopeo), [runLine[1]]);
  assert.equal(podman(viaSkopeo, [...RUN_FLAGS, runLine[1]!]).trim(), message);

  const viaLoad = tempDir(t, 'nixdock-names-load-');
  execFileSync('podman', [...podmanStoreFlags(viaLoad), 'load', '-i', join(dir, 'out', 'team_app.tar')], { stdio: 'pipe' });
  assert.deepEqual(names(viaLoad), [runLine[1]]);
});
