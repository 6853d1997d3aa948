import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NixdockError } from '../../src/errors.js';
import { assembleImage, buildImageConfig, serializeConfig } from '../../src/image/config.js';
import { MediaType, ociManifest } from '../../src/image/manifest.js';
import type { Layer, LayerSource } from '../../src/types.js';
import { sha256, sha256Hex } from '../helpers/bytes.js';


function fakeLayer(name: string, size = 10240): Layer {
  const source: LayerSource = { kind: 'store', key: name, storePaths: [name], description: name, size: async () => size, open: () => { throw new Error('not read'); } };
  return { source, diffId: sha256(name), size, built: true, compressed: {} };
}

const layers = [fakeLayer('/nix/store/aaa-busybox'), fakeLayer('/nix/store/bbb-hello')];
const layerRefs = layers.map((l) => ({ diffId: l.diffId, description: l.source.description }));

function config(overrides: Partial<Parameters<typeof buildImageConfig>[0]> = {}) {
  return buildImageConfig({ created: '1970-01-01T00:00:01Z', architecture: 'amd64', config: { Cmd: ['/bin/hello'] }, layers: layerRefs, ...overrides });
}

function rejects(fn: () => unknown, code: string, field?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof NixdockError);
    assert.equal(err.code, code);
    if (field) assert.equal(err.location?.field, field);
    assert.ok(err.hint, 'the error says what to do');
    return true;
  });
}

test('the config has rootfs diff_ids in order and one non-empty history entry per layer', () => {
  const c = config();
  assert.deepEqual(c.rootfs, { type: 'layers', diff_ids: layers.map((l) => l.diffId) });
  assert.equal(c.os, 'linux');
  assert.deepEqual(c.history.map((h) => [h.created, h.created_by, h.empty_layer]), [
    ['1970-01-01T00:00:01Z', '/nix/store/aaa-busybox', undefined],
    ['1970-01-01T00:00:01Z', '/nix/store/bbb-hello', undefined],
  ]);
});

test('a base image history covers its layers; each further layer gets its own entry', () => {
  const baseHistory = [{ created_by: 'ENV X=1', empty_layer: true }, { created_by: 'ADD rootfs' }];
  const c = config({ baseHistory });
  assert.deepEqual(c.history.map((h) => h.created_by), ['ENV X=1', 'ADD rootfs', '/nix/store/bbb-hello']);
  assert.equal(c.history.filter((h) => !h.empty_layer).length, c.rootfs.diff_ids.length);
});

test('platforms are written as OCI values', () => {
  assert.deepEqual([config({ architecture: 'arm64' }).architecture, config({ architecture: 'arm64' }).variant], ['arm64', 'v8']);
  for (const alias of ['aarch64', 'arm64v8']) {
    const c = config({ architecture: alias });
    assert.deepEqual([c.architecture, c.variant], ['arm64', 'v8'], alias);
  }
  assert.deepEqual([config({ architecture: 'x86_64' }).architecture, config({ architecture: 'x86_64' }).variant], ['amd64', undefined]);
  assert.equal(config({ architecture: 'arm', variant: 'v6' }).variant, 'v6');
  rejects(() => config({ architecture: 'amd65' }), 'INPUT_INVALID', 'architecture');
});

test('created must be RFC 3339; "now" becomes the current time', () => {
  assert.equal(config({ created: '2024-05-01T12:00:00+02:00' }).created, '2024-05-01T12:00:00+02:00');
  for (const bad of ['2024-05-01', '2024-05-01T12:00:00', 'yesterday', '2024-13-45T99:00:00Z']) rejects(() => config({ created: bad }), 'INPUT_INVALID', 'created');
  const now = config({ created: 'now' }).created;
  assert.match(now, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
  assert.ok(Math.abs(Date.parse(now) - Date.now()) < 60_000);
});

test('serializeConfig is canonical: fixed key order, sorted maps, no whitespace', () => {
  const a = config({ config: { Cmd: ['/bin/hello'], Env: ['A=1'], Labels: { z: '1', a: '2' }, ExposedPorts: { '80/tcp': {} } } });
  const b = config({ config: { ExposedPorts: { '80/tcp': {} }, Labels: { a: '2', z: '1' }, Env: ['A=1'], Cmd: ['/bin/hello'] } });
  const bytes = serializeConfig(a);
  assert.deepEqual(bytes, serializeConfig(b));
  const text = bytes.toString();
  assert.ok(text.startsWith('{"created":"1970-01-01T00:00:01Z","architecture":"amd64","os":"linux","config":{"ExposedPorts"'), text);
  assert.ok(text.includes('"Labels":{"a":"2","z":"1"}'));
  assert.equal(text, JSON.stringify(JSON.parse(text)), 'compact: no whitespace between tokens');
  assert.deepEqual(JSON.parse(text), JSON.parse(JSON.stringify(a)));
});

test('assembleImage derives a stable tag from the config digest when none is given', () => {
  const image = assembleImage({ name: 'hello', layers, config: config() });
  const hex = sha256Hex(image.configBytes);
  assert.equal(image.configDigest, `sha256:${hex}`);
  assert.equal(image.tag, hex.slice(0, 32));
  assert.equal(assembleImage({ name: 'hello', layers, config: config() }).tag, image.tag, 'same input, same tag');
  assert.notEqual(assembleImage({ name: 'hello', layers, config: config({ config: { Cmd: ['/bin/other'] } }) }).tag, image.tag);
  assert.equal(assembleImage({ name: 'hello', tag: 'v1.2', layers, config: config() }).tag, 'v1.2');
});

test('assembleImage refuses a bad tag and layers that do not match the config', () => {
  rejects(() => assembleImage({ name: 'hello', tag: '-bad', layers, config: config() }), 'REFERENCE_INVALID', 'tag');
  assert.throws(() => assembleImage({ name: 'hello', layers: layers.slice(1), config: config() }), /different layers/);
});

test('ociManifest lists the config and layers with OCI media types per codec', () => {
  const image = assembleImage({ name: 'hello', tag: 't', layers, config: config() });
  const plain = ociManifest(image, 'none');
  const parsed = JSON.parse(plain.bytes.toString());
  assert.equal(parsed.mediaType, MediaType.ociManifest);
  assert.deepEqual(parsed.config, { mediaType: MediaType.ociConfig, digest: image.configDigest, size: image.configBytes.length });
  assert.deepEqual(parsed.layers.map((l: { mediaType: string; digest: string }) => [l.mediaType, l.digest]), layers.map((l) => [MediaType.layerTar, l.diffId]));
  assert.equal(plain.digest, sha256(plain.bytes));
  assert.deepEqual(plain.descriptor.platform, { os: 'linux', architecture: 'amd64' });

  assert.throws(() => ociManifest(image, 'gzip'), /no known gzip blob/);
  const gz = layers.map((l) => ({ ...l, compressed: { gzip: { codec: 'gzip' as const, digest: sha256(`gz ${l.diffId}`), size: 99 } } }));
  const zipped = JSON.parse(ociManifest({ ...image, layers: gz }, 'gzip').bytes.toString());
  // Each planned layer names its recipe and store paths (nix-snapshotter's keys, without its nix-layer marker).
  const annotations = {
    'dev.nixdock.layer.recipe': '/nix/store/aaa-busybox',
    'dev.nixdock.layer.size': String(layers[0]!.size),
    'containerd.io/snapshot/nix-store-path.0': '/nix/store/aaa-busybox',
  };
  assert.deepEqual(zipped.layers[0], { mediaType: MediaType.layerGzip, digest: gz[0]!.compressed.gzip.digest, size: 99, annotations });
});
