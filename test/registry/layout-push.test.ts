import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { OciLayout } from '../../src/formats/oci-layout/write.js';
import { imageFromLayout } from '../../src/formats/oci-layout/image.js';
import { pushImage } from '../../src/registry/push.js';
import { helloApp, nixBuild, NIX_ENV } from '../helpers/nix.js';
import { REGISTRY_BIN, REGISTRY_PACKAGE, startRegistry, tarImage, type TestRegistry } from '../helpers/registry.js';
import { missingTools } from '../helpers/tools.js';

const skip = missingTools([[REGISTRY_BIN, REGISTRY_PACKAGE], ['skopeo', 'skopeo'], ['nix-build', 'nix-bin'], ['tar', 'tar']]);
const auth = { authFiles: [], env: {} };

describe('pushing an image read from an OCI layout', { skip }, () => {
  let registry: TestRegistry;
  let work: string;
  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'nixdock-layout-push-'));
    registry = await startRegistry();
  });
  after(async () => {
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('a gzip layout is pushed byte for byte: same manifest digest as the layout lists', async () => {
    const [app] = nixBuild(helloApp('from a layout'));
    const paths = execFileSync('nix-store', ['-qR', app], { env: NIX_ENV, encoding: 'utf8' }).trim().split('\n').sort();
    const built = tarImage(work, 'hello', paths.map((p) => [p]), ['/bin/hello']);
    const layoutDir = join(work, 'oci');
    const written = await new OciLayout(layoutDir).addImage({ ...built, tag: '1' }, 'gzip');

    const image = await imageFromLayout(layoutDir, 'hello:1', join(work, 'cache'));
    assert.deepEqual(image.layers.map((l) => l.diffId), built.layers.map((l) => l.diffId));
    assert.deepEqual(image.layers.map((l) => l.size), built.layers.map((l) => l.size));
    const result = await pushImage({ image, codec: 'gzip' }, `${registry.host}/hello:1`, { auth });
    assert.equal(result.manifestDigest, written.manifestDigest);
    const inspect = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/hello:1`], { encoding: 'utf8' }));
    assert.deepEqual(inspect.layers.map((l: { digest: string }) => l.digest), result.blobs.filter((b) => b.kind === 'layer').map((b) => b.digest));
  });
});
