import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readBaseImage } from '../../src/base/read.js';
import { NixdockError } from '../../src/errors.js';
import type { ImageSource } from '../../src/types.js';
import { BUSYBOX, nixBuild } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { gzipN, hybridDockerArchive, skopeoToDockerArchive, tarDirectory, tarStorePaths, writeOciLayout } from '../helpers/base-images.js';
import { readAll, sha256 } from '../helpers/bytes.js';

const skip = missingTools([
  ['nix-build', 'nix-bin'],
  ['skopeo', 'skopeo'],
  ['gzip', 'gzip'],
]);

describe('readBaseImage', { skip }, () => {
  let work: string;
  let layers: Buffer[];
  const config = { Env: ['PATH=/bin', 'LANG=C.UTF-8'], Cmd: ['/bin/sh'], WorkingDir: '/srv' };

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'nixdock-base-'));
    const [busybox] = nixBuild(BUSYBOX);
    const etc = join(work, 'rootfs');
    mkdirSync(join(etc, 'etc'), { recursive: true });
    writeFileSync(join(etc, 'etc', 'greeting'), 'hi\n');
    layers = [tarStorePaths([busybox!]), tarDirectory(etc)];
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  const cache = () => mkdtempSync(join(work, 'cache-'));

  /** What a user checks: the config survived, and every layer's bytes hash to its diff_id. */
  async function assertImage(image: ImageSource): Promise<void> {
    assert.deepEqual(image.config.config.Env, config.Env);
    assert.deepEqual(image.config.config.Cmd, config.Cmd);
    assert.deepEqual(image.config.rootfs.diff_ids, layers.map((l) => sha256(l)));
    assert.equal(image.layers.length, 2);
    for (const [i, layer] of image.layers.entries()) {
      assert.equal(layer.kind, 'base');
      assert.equal(layer.diffId, sha256(layers[i]!));
      assert.equal(layer.key, `base:${sha256(layers[i]!)}`);
      assert.equal(await layer.size(), layers[i]!.length);
      const bytes = await readAll(layer.open());
      assert.equal(sha256(bytes), layer.diffId);
      // A second read (already verified) gives the same bytes.
      assert.equal(sha256(await readAll(layer.open())), layer.diffId);
    }
  }

  test('an OCI layout with gzip layers, chosen by tag', async () => {
    const dir = join(work, 'oci-gzip');
    writeOciLayout(dir, [
      { tag: 'v1', layers, config, gzip: true },
      { tag: 'other', layers: [layers[1]!], config: {} },
    ]);
    const image = await readBaseImage({ kind: 'oci', path: dir, tag: 'v1' }, { cacheDir: cache() });
    assert.equal(image.description, `oci:${dir}:v1`);
    await assertImage(image);
  });

  test('an OCI layout with several images needs a tag, and an unknown tag names the ones there', async () => {
    const dir = join(work, 'oci-two');
    writeOciLayout(dir, [
      { tag: 'v1', layers, config },
      { tag: 'v2', layers, config },
    ]);
    await assert.rejects(readBaseImage({ kind: 'oci', path: dir }, { cacheDir: cache() }), { code: 'IMAGE_NOT_FOUND' });
    await assert.rejects(readBaseImage({ kind: 'oci', path: dir, tag: 'v3' }, { cacheDir: cache() }), (err: NixdockError) => {
      assert.equal(err.code, 'IMAGE_NOT_FOUND');
      assert.match(err.found ?? '', /v1, v2/);
      return true;
    });
  });

  test('a docker-archive written by skopeo is read in place', async () => {
    const dir = join(work, 'oci-plain');
    writeOciLayout(dir, [{ tag: 'v1', layers, config }]);
    const archive = join(work, 'skopeo.tar');
    skopeoToDockerArchive(dir, 'v1', archive);
    const cacheDir = cache();
    const image = await readBaseImage({ kind: 'docker-archive', path: archive }, { cacheDir });
    assert.equal(image.description, `docker-archive:${archive}`);
    await assertImage(image);
    assert.equal(existsSync(join(cacheDir, 'base', 'archives')), false, 'an uncompressed archive is not copied');
  });

  test('a gzip-compressed docker-archive is decompressed once into the cache', async () => {
    const dir = join(work, 'oci-for-gz');
    writeOciLayout(dir, [{ tag: 'v1', layers, config }]);
    const archive = join(work, 'skopeo-for-gz.tar');
    skopeoToDockerArchive(dir, 'v1', archive);
    const gz = join(work, 'base.tar.gz');
    writeFileSync(gz, gzipN(readFileSync(archive)));
    const cacheDir = cache();
    await assertImage(await readBaseImage({ kind: 'docker-archive', path: gz }, { cacheDir }));
    assert.deepEqual(readdirSync(join(cacheDir, 'base', 'archives')), [`${sha256(readFileSync(gz)).slice(7)}.tar`]);
    await assertImage(await readBaseImage({ kind: 'docker-archive', path: gz }, { cacheDir }));
  });

  test('a Docker 25+ docker save archive (OCI layout + manifest.json)', async () => {
    const archive = join(work, 'hybrid.tar');
    hybridDockerArchive(join(work, 'hybrid'), layers, config, archive);
    await assertImage(await readBaseImage({ kind: 'docker-archive', path: archive }, { cacheDir: cache() }));
  });

  test('a layer whose bytes do not match its diff_id fails with DIGEST_MISMATCH naming the layer', async () => {
    const archive = join(work, 'corrupt.tar');
    const wrong = [sha256(layers[0]!), sha256('something else')];
    hybridDockerArchive(join(work, 'corrupt'), layers, config, archive, wrong);
    const image = await readBaseImage({ kind: 'docker-archive', path: archive }, { cacheDir: cache() });
    assert.equal(sha256(await readAll(image.layers[0]!.open())), wrong[0]);
    await assert.rejects(readAll(image.layers[1]!.open()), (err: NixdockError) => {
      assert.equal(err.code, 'DIGEST_MISMATCH');
      assert.match(err.message, /layer 2\/2/);
      assert.equal(err.expected, wrong[1]);
      assert.equal(err.found, sha256(layers[1]!));
      return true;
    });
  });

  test('a layer read only partly can still be read (and verified) in full afterwards', async () => {
    const dir = join(work, 'oci-partial');
    writeOciLayout(dir, [{ tag: 'v1', layers, config, gzip: true }]);
    const image = await readBaseImage({ kind: 'oci', path: dir, tag: 'v1' }, { cacheDir: cache() });
    const partial = image.layers[0]!.open();
    for await (const chunk of partial) {
      assert.ok((chunk as Buffer).length > 0);
      break;
    }
    assert.equal(sha256(await readAll(image.layers[0]!.open())), image.layers[0]!.diffId);
  });

  test('a file that is not an image is refused with the path named', async () => {
    const bogus = join(work, 'bogus.tar');
    writeFileSync(bogus, 'not a tarball at all'.repeat(40));
    await assert.rejects(readBaseImage({ kind: 'docker-archive', path: bogus }, { cacheDir: cache() }), (err: NixdockError) => {
      assert.equal(err.code, 'INPUT_INVALID');
      assert.equal(err.location?.file, bogus);
      return true;
    });
    await assert.rejects(readBaseImage({ kind: 'oci', path: work }, { cacheDir: cache() }), { code: 'INPUT_INVALID' });
  });
});
