/**
 * publish(): the after-build actions of a spec (`push:` references, `load:` engines) on an image
 * built by the real CLI — pushed to a real docker-registry, loaded into a private podman store
 * and run there.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test, type TestContext } from 'node:test';
import { projectImage } from '../../src/commands/push.js';
import { loadConfig } from '../../src/config/load.js';
import type { ImageSpec } from '../../src/config/types.js';
import { NixdockError } from '../../src/errors.js';
import { EventBus, type BuildEvent } from '../../src/events.js';
import { BuildCache } from '../../src/cache/cache.js';
import { publish } from '../../src/publish.js';
import type { Image } from '../../src/types.js';
import { helloApp } from '../helpers/nix.js';
import { REGISTRY_BIN, REGISTRY_PACKAGE, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { missingTools } from '../helpers/tools.js';
import { podman, podmanStoreFlags, RUN_FLAGS } from '../helpers/podman.js';
import { nixdockJson } from '../helpers/cli.js';
import { tempProject } from '../helpers/project.js';
import { tempDir } from '../helpers/tmp.js';

const skip = missingTools([[REGISTRY_BIN, REGISTRY_PACKAGE], ['skopeo', 'skopeo'], ['nix-build', 'nix-bin'], ['podman', 'podman'], ['runc', 'runc']]);

/** Sets an environment variable for the rest of the test. */
function setEnv(t: TestContext, name: string, value: string): void {
  const previous = process.env[name];
  process.env[name] = value;
  t.after(() => {
    if (previous === undefined) delete process.env[name];
    else process.env[name] = previous;
  });
}

describe('publish: push and load after a build', { skip }, () => {
  let registry: TestRegistry;
  const project = tempProject({ after }, { 'app.nix': helloApp('published') });
  let spec: ImageSpec;
  let image: Image;
  let index: BuildCache;
  before(async () => {
    registry = await startRegistry();
    const pushTo = [`${registry.host}/team/app:a`, `${registry.host}/other/app:b`];
    const images = [{ name: 'app', contents: [{ nix: './app.nix' }], config: { Cmd: ['/bin/hello'] }, push: pushTo, load: ['podman'] }];
    project.write('nixdock.config.json', { store: 'nix', images });
    nixdockJson(project.dir, ['build']);
    const config = await loadConfig({ cwd: project.dir });
    spec = config.images[0]!;
    index = BuildCache.open(config.cacheDir);
    image = await projectImage(config, index, 'app');
  });
  after(async () => {
    index?.close();
    await registry?.stop();
  });

  test('pushes to every `push` reference and loads into podman; each output is reported', async (t) => {
    const store = tempDir(t, 'nixdock-podman-');
    setEnv(t, 'NIXDOCK_PODMAN_ARGS', podmanStoreFlags(store).join(' '));
    const bus = new EventBus();
    const events: BuildEvent[] = [];
    bus.on((e) => events.push(e));

    const outputs = await publish(spec, image, { index, bus, buildId: 'b1' });

    assert.deepEqual(outputs.map((o) => [o.format, o.ref]), [
      ['registry', `${registry.host}/team/app:a`],
      ['registry', `${registry.host}/other/app:b`],
      ['podman', `localhost/app:${image.tag}`],
    ]);
    assert.deepEqual(events, outputs.map((output) => ({ type: 'output:written', image: 'app', buildId: 'b1', output })));
    for (const output of outputs.slice(0, 2)) {
      const remote = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${output.ref}`], { encoding: 'utf8' }));
      assert.equal(remote.Digest, output.manifestDigest);
    }
    // The reported ref is the name podman stored the image under, and it runs the new build.
    assert.deepEqual(podman(store, ['images', '--format', '{{.Repository}}:{{.Tag}}']).trim().split('\n'), [outputs[2]!.ref]);
    assert.equal(podman(store, [...RUN_FLAGS, outputs[2]!.ref!]).trim(), 'published');
  });

  test('an engine that is not installed is TOOL_MISSING (exit 3) naming the package', async (t) => {
    setEnv(t, 'PATH', '/nonexistent');
    const err = await publish({ ...spec, push: [] }, image, { index, bus: new EventBus(), buildId: 'b2' }).catch((e: unknown) => e);
    assert.ok(err instanceof NixdockError, String(err));
    assert.equal(err.code, 'TOOL_MISSING');
    assert.equal(err.exitCode, 3);
    assert.match(err.hint ?? '', /Debian package podman/);
  });

  test('an engine that refuses is LOAD_FAILED with its own message', async (t) => {
    setEnv(t, 'NIXDOCK_PODMAN_ARGS', '--no-such-podman-flag');
    const err = await publish({ ...spec, push: [] }, image, { index, bus: new EventBus(), buildId: 'b3' }).catch((e: unknown) => e);
    assert.ok(err instanceof NixdockError, String(err));
    assert.equal(err.code, 'LOAD_FAILED');
    assert.match(err.message, /no-such-podman-flag/);
  });
});
