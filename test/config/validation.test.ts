import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { formatError } from '../../src/errors.js';
import { rejectsWith, type Expected } from '../helpers/errors.js';
import { tempProject } from '../helpers/project.js';

type Case = [label: string, image: Record<string, unknown>, want: Omit<Expected, 'code' | 'file'>];

/** Each bad image, written inline in a JSON config; the error must point at the field and say something useful. */
const BAD_IMAGES: Case[] = [
  ['typo at image level', { name: 'a', maxLayer: 3 }, { field: 'images[0].maxLayer', message: /did you mean `maxLayers`\?/, hint: /Rename `maxLayer` to `maxLayers`/, expected: /maxLayers/ }],
  ['typo in config', { name: 'a', config: { Entrypiont: ['/x'] } }, { field: 'images[0].config.Entrypiont', message: /did you mean `Entrypoint`/ }],
  ['typo in a contents object', { name: 'a', contents: [{ nix: './x.nix', atr: 'y' }] }, { field: 'images[0].contents[0].atr', message: /did you mean `attr`/ }],
  ['typo in fromImage object', { name: 'a', fromImage: { regisry: 'alpine:3' } }, { field: 'images[0].fromImage.regisry', message: /did you mean `registry`/ }],
  ['unknown field without a near name', { name: 'a', colour: 'red' }, { field: 'images[0].colour', message: /^Unknown field `images\[0\]\.colour`$/, hint: /nixdock schema/ }],
  ['Cmd as a string', { name: 'a', config: { Cmd: '/bin/sh -c x' } }, { field: 'images[0].config.Cmd', message: /must be an array, not a string/, found: /"\/bin\/sh -c x"/ }],
  ['uid as a string', { name: 'a', uid: '0' }, { field: 'images[0].uid', message: /must be a number, not a string/ }],
  ['maxLayers 0', { name: 'a', maxLayers: 0 }, { field: 'images[0].maxLayers', message: /at least 2/, expected: /from 2 to 127/, found: /^0$/ }],
  ['maxLayers 1', { name: 'a', maxLayers: 1 }, { field: 'images[0].maxLayers', message: /at least 2/, hint: /customisation layer/ }],
  ['maxLayers 128', { name: 'a', maxLayers: 128 }, { field: 'images[0].maxLayers', message: /at most 127/, hint: /containerd and overlayfs/ }],
  ['maxLayers 2.5', { name: 'a', maxLayers: 2.5 }, { field: 'images[0].maxLayers', message: /whole number, not 2\.5/ }],
  ['missing name', { tag: 'x' }, { field: 'images[0].name', message: /Missing required field `images\[0\]\.name`/ }],
  ['uppercase name', { name: 'Hello' }, { field: 'images[0].name', message: /must be lowercase/, found: /"Hello"/ }],
  ['name with a tag', { name: 'hello:1.0' }, { field: 'images[0].name', message: /give the tag in `tag`/ }],
  ['name with bad characters', { name: 'my app' }, { field: 'images[0].name', message: /path component `my app`/ }],
  ['tag starting with a dash', { name: 'a', tag: '-x' }, { field: 'images[0].tag', message: /must not start with "\." or "-"/ }],
  ['tag too long', { name: 'a', tag: 'v'.repeat(129) }, { field: 'images[0].tag', message: /at most 128/ }],
  ['arm64v8', { name: 'a', architecture: 'arm64v8' }, { field: 'images[0].architecture', hint: /use architecture: 'arm64', variant: 'v8'/, expected: /"arm64"/ }],
  ['x86_64', { name: 'a', architecture: 'x86_64' }, { field: 'images[0].architecture', hint: /'amd64'/ }],
  ['variant of another architecture', { name: 'a', architecture: 'arm64', variant: 'v7' }, { field: 'images[0].variant', message: /arm64 has no variant v7/, expected: /v8/ }],
  ['created not RFC 3339', { name: 'a', created: '2024-13-01' }, { field: 'images[0].created', message: /not an RFC 3339 timestamp/, expected: /"now"/ }],
  ['Env entry without =', { name: 'a', config: { Env: ['DEBUG'] } }, { field: 'images[0].config.Env[0]', message: /NAME=value/ }],
  ['port name', { name: 'a', config: { ExposedPorts: ['http'] } }, { field: 'images[0].config.ExposedPorts[0]', message: /8080\/tcp/ }],
  ['contents number', { name: 'a', contents: [42] }, { field: 'images[0].contents[0]', message: /wrong form/, expected: /\{storePath\}/ }],
  ['contents bare word', { name: 'a', contents: ['hello'] }, { field: 'images[0].contents[0]', hint: /"\.\/hello".*"nixpkgs#hello"/ }],
  ['contents missing dir', { name: 'a', contents: ['./rootfs'] }, { field: 'images[0].contents[0]', message: /`\.\/rootfs`, which does not exist/ }],
  ['file inside a store path', { name: 'a', contents: ['/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello/bin/hello'] }, { field: 'images[0].contents[0]', hint: /Name the store path \(\/nix\/store\/0123456789abcdfghijklmnpqrsvwxyz-hello\)/ }],
  ['unpinned registry base', { name: 'a', fromImage: 'alpine:3.19' }, { field: 'images[0].fromImage', message: /not pinned by digest/, hint: /allowTag: true/ }],
  ['bad push reference', { name: 'a', push: ['localhost:5000/App'] }, { field: 'images[0].push[0]', message: /must be lowercase/ }],
  ['bad load engine', { name: 'a', load: ['containerd'] }, { field: 'images[0].load[0]', expected: /"podman", "docker"/ }],
];

test('each bad image field → CONFIG_INVALID pointing at the file and field, with found/expected/hint', async (t) => {
  for (const [label, image, want] of BAD_IMAGES) {
    const { dir } = tempProject(t, { 'nixdock.config.json': { images: [image] } });
    await t.test(label, async () => {
      await rejectsWith(loadConfig({ cwd: dir }), { code: 'CONFIG_INVALID', file: join(dir, 'nixdock.config.json'), ...want });
    });
  }
});

test('bad top-level fields', async (t) => {
  const cases: Array<[Record<string, unknown>, Omit<Expected, 'code'>]> = [
    [{ imags: [] }, { field: 'imags', message: /did you mean `images`/ }],
    [{ store: 'nixx' }, { field: 'store', expected: /\{type: "dir", path, storeDir\?\}/ }],
    [{ store: { type: 'dir' } }, { field: 'store.path', message: /Missing required field/ }],
    [{ daemon: { prot: 1 } }, { field: 'daemon.prot', message: /did you mean `port`/ }],
    [{ daemon: { port: 70000 } }, { field: 'daemon.port', message: /at most 65535/ }],
    [{ formats: ['tar'] }, { field: 'formats[0]', expected: /"oci", "docker-archive"/ }],
    [{ images: {} }, { field: 'images', message: /must be an array, not an object/ }],
  ];
  for (const [config, want] of cases) {
    const { dir } = tempProject(t, { 'nixdock.config.json': config });
    await rejectsWith(loadConfig({ cwd: dir }), { code: 'CONFIG_INVALID', file: join(dir, 'nixdock.config.json'), ...want });
  }
});

test('problems in spec files are SPEC_INVALID with the spec file and the path inside it; others are counted', async (t) => {
  const { dir } = tempProject(t, {
    'nixdock.config.json': { specs: ['specs/*'] },
    'specs/web.ts': `export default { images: [{ name: 'ok' }, { name: 'web', tag: 'v1', config: { Cmd: 'x' }, maxLayers: 500, uid: -1 }] };`,
  });
  const err = await rejectsWith(loadConfig({ cwd: dir }), { code: 'SPEC_INVALID', file: join(dir, 'specs/web.ts'), field: 'images[1].config.Cmd' });
  assert.match(err.message, /and 2 more problems, listed below/);
  // All three, each at its line and column in the TS file (its object literal read as written).
  assert.deepEqual(err.problems?.map((p) => [p.location?.field, p.location?.line, p.location?.column]), [
    ['images[1].config.Cmd', 1, 79],
    ['images[1].maxLayers', 1, 91],
    ['images[1].uid', 1, 107],
  ]);

  const single = tempProject(t, { 'nixdock.config.json': { specs: ['one.json'] }, 'one.json': { name: 'x', archtecture: 'arm64' } }).dir;
  await rejectsWith(loadConfig({ cwd: single }), { code: 'SPEC_INVALID', file: join(single, 'one.json'), field: 'archtecture', message: /did you mean `architecture`/ });

  const list = tempProject(t, { 'nixdock.config.json': { specs: ['list.json'] }, 'list.json': [{ name: 'x' }, { name: 'y', maxLayers: 1 }] }).dir;
  await rejectsWith(loadConfig({ cwd: list }), { code: 'SPEC_INVALID', field: '[1].maxLayers' });
});

test('shorthand forms are normalised to the OCI config forms', async (t) => {
  const { dir } = tempProject(t, {
    'nixdock.config.json': {
      images: [{
        name: 'localhost:5000/team/app',
        tag: 'v1',
        config: { Env: { A: '1', B: 'x=y' }, ExposedPorts: ['80', '53/udp'], Volumes: ['/data'], Labels: { 'org.opencontainers.image.title': 'app' } },
        fromImage: { registry: 'alpine:3.19', allowTag: true },
        created: '2024-05-01T12:00:00Z',
        push: ['localhost:5000/team/app:v1'],
        load: ['podman'],
      }],
    },
  });
  const [image] = (await loadConfig({ cwd: dir })).images;
  assert.deepEqual(image?.config, {
    Env: ['A=1', 'B=x=y'],
    ExposedPorts: { '80/tcp': {}, '53/udp': {} },
    Volumes: { '/data': {} },
    Labels: { 'org.opencontainers.image.title': 'app' },
  });
  assert.deepEqual(image?.fromImage, { kind: 'registry', ref: 'alpine:3.19', allowTag: true });
  assert.equal(image?.mtime, '1970-01-01T00:00:01Z', 'mtime stays at 1970 whatever created says, as in dockerTools');
  assert.deepEqual([image?.push, image?.load], [['localhost:5000/team/app:v1'], ['podman']]);
});

test('every problem of a config file comes at once, each at its line and column (TS config, JSON spec, package.json)', async (t) => {
  const ts = [
    "import { defineConfig } from 'nixdock';",
    '// { a brace in a comment',
    'export default defineConfig({',
    '  images: [',
    "    { name: 'a', maxLayer: 3, config: { Cmd: `/bin/${'x'}` } },",
    "    { name: 'b', architecture: 'x86_64' },",
    '  ],',
    '});',
  ].join('\n');
  const { dir } = tempProject(t, { 'nixdock.config.ts': ts });
  const err = await rejectsWith(loadConfig({ cwd: dir }), { code: 'CONFIG_INVALID', field: 'images[0].maxLayer', message: /and 2 more problems/ });
  assert.deepEqual(err.problems?.map((p) => [p.location?.field, p.location?.line, p.location?.column]), [
    ['images[0].maxLayer', 5, 18],
    ['images[0].config.Cmd', 5, 41],
    ['images[1].architecture', 6, 18],
  ]);
  assert.deepEqual([err.location?.line, err.location?.column], [5, 18]);
  // The CLI prints them all.
  const printed = formatError(err);
  for (const at of ['nixdock.config.ts:5:18 → images[0].maxLayer', 'nixdock.config.ts:5:41 → images[0].config.Cmd', 'nixdock.config.ts:6:18 → images[1].architecture']) assert.ok(printed.includes(at), printed);

  const { dir: spec } = tempProject(t, {
    'nixdock.config.json': { specs: ['s.json'] },
    's.json': '{\n  "images": [\n    { "name": "c", "bogus": 1 },\n    { "name": "d", "maxLayers": 500 }\n  ]\n}\n',
  });
  const specErr = await rejectsWith(loadConfig({ cwd: spec }), { code: 'SPEC_INVALID', field: 'images[0].bogus' });
  assert.deepEqual(specErr.problems?.map((p) => [p.location?.field, p.location?.line, p.location?.column]), [
    ['images[0].bogus', 3, 20],
    ['images[1].maxLayers', 4, 20],
  ]);

  const { dir: pkg } = tempProject(t, { 'package.json': '{\n  "name": "x",\n  "nixdock": {\n    "images": [{ "name": "e", "uid": "0" }]\n  }\n}\n' });
  await rejectsWith(loadConfig({ cwd: pkg }), { code: 'CONFIG_INVALID', field: 'nixdock.images[0].uid' }).then((e) => assert.deepEqual([e.location?.line, e.location?.column], [4, 31]));
});

test('a contents .nix file that does not exist is bad input naming the field, for every image of the file', async (t) => {
  const { dir } = tempProject(t, {
    'nixdock.config.json': { images: [{ name: 'a', contents: ['./missing.nix#app'] }, { name: 'b', contents: [{ nix: './gone.nix' }] }] },
  });
  const err = await rejectsWith(loadConfig({ cwd: dir }), { code: 'CONFIG_INVALID', field: 'images[0].contents[0]', message: /missing\.nix, which does not exist/, found: /"\.\/missing\.nix"/ });
  assert.equal(err.exitCode, 2);
  assert.deepEqual(err.problems?.map((p) => p.location?.field), ['images[0].contents[0]', 'images[1].contents[0].nix']);
});
