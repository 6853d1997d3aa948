import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig, loadSpecFile } from '../../src/config/load.js';
import { needTool } from '../helpers/tools.js';
import { helloApp, nixBuild } from '../helpers/nix.js';
import { rejectsWith } from '../helpers/errors.js';
import { tempProject } from '../helpers/project.js';

const STORE_PATH = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-1.0';

test('nixdock.config.ts importing defineConfig from "nixdock" and a local module loads, with its dependencies', async (t) => {
  const { dir } = tempProject(t, {
    'nixdock.config.ts': `
      import { defineConfig } from 'nixdock';
      import { base } from './shared/base';
      const port: number = 8080;
      export default defineConfig({
        outDir: 'build',
        store: { type: 'dir', path: './store' },
        daemon: { port: 9000 },
        images: [{ ...base, name: 'web', config: { Cmd: ['/bin/web'], ExposedPorts: [String(port)], Env: { MODE: 'prod' } } }],
      });`,
    'shared/base.ts': `import { tags } from './tags.js';\nexport const base = { tag: tags.stable, maxLayers: 50 } as const;`,
    'shared/tags.ts': `export const tags: Record<string, string> = { stable: '1.0' };`,
  });
  const config = await loadConfig({ cwd: join(dir, 'shared') });
  assert.equal(config.configFile, join(dir, 'nixdock.config.ts'));
  assert.equal(config.root, dir);
  assert.equal(config.outDir, join(dir, 'build'));
  assert.equal(config.cacheDir, join(dir, '.nixdock'));
  assert.deepEqual(config.store, { type: 'dir', path: join(dir, 'store'), storeDir: '/nix/store' });
  assert.deepEqual(config.daemon, { host: '127.0.0.1', port: 9000, debounceMs: 150, watch: [] });
  assert.deepEqual(config.formats, ['oci']);
  const [web] = config.images;
  assert.equal(web?.name, 'web');
  assert.equal(web?.tag, '1.0');
  assert.equal(web?.maxLayers, 50);
  assert.deepEqual(web?.config, { Cmd: ['/bin/web'], ExposedPorts: { '8080/tcp': {} }, Env: ['MODE=prod'] });
  assert.deepEqual(web?.source, { file: join(dir, 'nixdock.config.ts'), field: 'images[0]' });
  assert.deepEqual([...config.dependencies].sort(), [join(dir, 'nixdock.config.ts'), join(dir, 'shared/base.ts'), join(dir, 'shared/tags.ts')]);
  // The compiled temporaries are gone.
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.mjs')), []);
  assert.deepEqual(readdirSync(join(dir, 'shared')).sort(), ['base.ts', 'tags.ts']);
});

test('every config file format is found: .mjs, .json, .nixdockrc, package.json key, .cjs', async (t) => {
  const image = { name: 'app', contents: [STORE_PATH] };
  const cases: Array<[string, Record<string, string | object>]> = [
    ['nixdock.config.mjs', { 'nixdock.config.mjs': `export default { images: ${JSON.stringify([image])} };` }],
    ['nixdock.config.json', { 'nixdock.config.json': { images: [image] } }],
    ['.nixdockrc', { '.nixdockrc': JSON.stringify({ images: [image] }) }],
    ['.nixdockrc.json', { '.nixdockrc.json': { images: [image] } }],
    ['package.json', { 'package.json': { name: 'x', nixdock: { images: [image] } } }],
    ['nixdock.config.cjs', { 'nixdock.config.cjs': `module.exports = { images: ${JSON.stringify([image])} };` }],
  ];
  for (const [file, files] of cases) {
    const { dir } = tempProject(t, files);
    const config = await loadConfig({ cwd: dir });
    assert.equal(config.configFile, join(dir, file), file);
    assert.deepEqual(config.images[0]?.contents, [{ kind: 'storePath', path: STORE_PATH }], file);
  }
});

test('spec files: JSON, TS with defineImage, {images: […]}, arrays; paths relative to the spec file', async (t) => {
  const { dir } = tempProject(t, {
    'nixdock.config.json': { specs: ['images/*.json', 'specs/**/*.ts'], store: { type: 'nix', storeDir: '/nix/store' } },
    'images/one.json': { name: 'one', contents: ['./root/', '../default.nix#app', '.#pkg', 'nixpkgs#hello'], watch: ['src/**'] },
    'images/root/etc/motd': 'hi',
    'default.nix': '{ app = null; }',
    'images/many.json': { images: [{ name: 'two', fromImage: 'oci:../base:v1' }, { name: 'three', nixpkgsConf: './conf.json' }] },
    'images/notes.txt': 'not a spec',
    'specs/deep/list.ts': `
      import { defineImage } from 'nixdock';
      export default [defineImage({ name: 'four', architecture: 'arm64' }), defineImage({ name: 'five', architecture: 'arm' })];`,
  });
  const config = await loadConfig({ cwd: dir });
  assert.deepEqual(config.images.map((i) => i.name), ['two', 'three', 'one', 'four', 'five']);
  const byName = Object.fromEntries(config.images.map((i) => [i.name, i]));
  assert.deepEqual(byName.one?.contents, [
    { kind: 'localDir', path: join(dir, 'images/root') },
    { kind: 'installable', installable: { kind: 'file', file: join(dir, 'default.nix'), attr: 'app' } },
    { kind: 'installable', installable: { kind: 'flake', ref: `${join(dir, 'images')}#pkg` } },
    { kind: 'installable', installable: { kind: 'flake', ref: 'nixpkgs#hello' } },
  ]);
  assert.deepEqual(byName.one?.watch, ['images/src/**']);
  assert.deepEqual(byName.one?.source, { file: join(dir, 'images/one.json'), field: '' });
  assert.deepEqual(byName.two?.fromImage, { kind: 'oci', path: join(dir, 'base'), tag: 'v1' });
  assert.deepEqual(byName.two?.source, { file: join(dir, 'images/many.json'), field: 'images[0]' });
  assert.equal(byName.three?.nixpkgsConf, join(dir, 'images/conf.json'));
  assert.deepEqual([byName.four?.architecture, byName.four?.variant, byName.five?.architecture, byName.five?.variant], ['arm64', 'v8', 'arm', 'v7']);
  assert.deepEqual(byName.four?.source, { file: join(dir, 'specs/deep/list.ts'), field: '[0]' });
  assert.deepEqual(config.specGlobs, ['images/*.json', 'specs/**/*.ts']);
  assert.deepEqual([...config.dependencies].sort(), [
    join(dir, 'images/many.json'), join(dir, 'images/one.json'), join(dir, 'nixdock.config.json'), join(dir, 'specs/deep/list.ts'),
  ]);
  // The daemon reloads one spec file on its own.
  const reloaded = await loadSpecFile(join(dir, 'images/many.json'), dir);
  assert.deepEqual(reloaded.map((i) => i.name), ['two', 'three']);
});

test('defaults follow dockerTools and the host platform', async (t) => {
  const { dir } = tempProject(t, { 'nixdock.config.json': { images: [{ name: 'd' }] } });
  const [image] = (await loadConfig({ cwd: dir })).images;
  const host = { x64: 'amd64', arm64: 'arm64' }[process.arch as 'x64' | 'arm64'];
  assert.ok(image);
  assert.equal(image.architecture, host);
  assert.deepEqual(
    [image.maxLayers, image.layering, image.created, image.mtime, image.uid, image.gid, image.uname, image.gname, image.compression, image.includeStorePaths, image.includeNixDB],
    [100, 'stable', '1970-01-01T00:00:01Z', '1970-01-01T00:00:01Z', 0, 0, 'root', 'root', 'none', true, false],
  );
  assert.equal(image.tag, undefined);
});

test('a real Nix store path in contents is taken as a store path', async (t) => {
  if (!needTool(t, 'nix-build', 'nix-bin')) return;
  const [hello] = nixBuild(helloApp());
  const { dir } = tempProject(t, { 'nixdock.config.json': { images: [{ name: 'hello', contents: [hello, { storePath: hello }], config: { Cmd: [`${hello}/bin/hello`] } }] } });
  const [image] = (await loadConfig({ cwd: dir })).images;
  assert.deepEqual(image?.contents, [{ kind: 'storePath', path: hello }, { kind: 'storePath', path: hello }]);
});

test('no config anywhere → CONFIG_NOT_FOUND with a minimal nixdock.config.ts in the hint', async (t) => {
  const { dir } = tempProject(t, {});
  await rejectsWith(loadConfig({ cwd: dir }), { code: 'CONFIG_NOT_FOUND', hint: /defineConfig\(\{[\s\S]*images:/, message: new RegExp(dir) });
  await rejectsWith(loadConfig({ cwd: dir, configFile: 'nope.ts' }), { code: 'CONFIG_NOT_FOUND', file: join(dir, 'nope.ts') });
});

test('--config picks a file explicitly', async (t) => {
  const { dir } = tempProject(t, { 'other/custom.json': { images: [{ name: 'custom' }] } });
  const config = await loadConfig({ cwd: dir, configFile: 'other/custom.json' });
  assert.equal(config.root, join(dir, 'other'));
  assert.deepEqual(config.images.map((i) => i.name), ['custom']);
});

test('a config that throws → CONFIG_LOAD with the file and the message; a TS syntax error has line and column', async (t) => {
  const { dir } = tempProject(t, { 'nixdock.config.ts': `const x: number = 1;\nthrow new Error('no registry password set');\nexport default {};` });
  await rejectsWith(loadConfig({ cwd: dir }), { code: 'CONFIG_LOAD', file: join(dir, 'nixdock.config.ts'), message: /no registry password set/ });
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.mjs')), [], 'temporaries removed after a failure too');

  const broken = tempProject(t, { 'nixdock.config.ts': `export default {\n  images: [\n    { name: 'x' ]\n};` }).dir;
  const err = await rejectsWith(loadConfig({ cwd: broken }), { code: 'CONFIG_LOAD', file: join(broken, 'nixdock.config.ts'), message: /syntax error/ });
  assert.equal(err.location?.line, 3);

  const missingImport = tempProject(t, { 'nixdock.config.mjs': `import x from 'not-installed-pkg';\nexport default x;` }).dir;
  await rejectsWith(loadConfig({ cwd: missingImport }), { code: 'CONFIG_LOAD', hint: /Install `not-installed-pkg`/ });
});

test('invalid JSON in a spec file → SPEC_INVALID with line and column', async (t) => {
  const { dir } = tempProject(t, {
    'nixdock.config.json': { specs: ['images/*.json'] },
    'images/bad.json': '{\n  "name": "x",\n  "tag": "1",\n}\n',
  });
  const err = await rejectsWith(loadConfig({ cwd: dir }), { code: 'SPEC_INVALID', file: join(dir, 'images/bad.json'), message: /not valid JSON/ });
  assert.deepEqual([err.location?.line, err.location?.column], [4, 1]);
});

test('a glob matching nothing is fine; a named spec file that is missing is SPEC_NOT_FOUND', async (t) => {
  const { dir } = tempProject(t, { 'nixdock.config.json': { specs: ['images/*.json'] } });
  assert.deepEqual((await loadConfig({ cwd: dir })).images, []);
  const named = tempProject(t, { 'nixdock.config.json': { specs: ['images/*.json', 'images/app.json'] } }).dir;
  await rejectsWith(loadConfig({ cwd: named }), { code: 'SPEC_NOT_FOUND', file: join(named, 'nixdock.config.json'), field: 'specs[1]', message: /images\/app\.json/ });
  await rejectsWith(loadSpecFile('gone.json', named), { code: 'SPEC_NOT_FOUND', file: join(named, 'gone.json') });
});

test('two images with the same name → an error naming both places', async (t) => {
  const { dir } = tempProject(t, {
    'nixdock.config.json': { images: [{ name: 'app' }], specs: ['app.json'] },
    'app.json': { name: 'app' },
  });
  const err = await rejectsWith(loadConfig({ cwd: dir }), { code: 'SPEC_INVALID', file: join(dir, 'app.json'), field: 'name' });
  assert.match(err.message, /images\[0\] in .*nixdock\.config\.json/);
  assert.match(err.message, /app\.json/);
});

test('package.json configs report fields under the nixdock key', async (t) => {
  const { dir } = tempProject(t, { 'package.json': { name: 'x', nixdock: { images: [{ name: 'a', maxLayer: 3 }] } } });
  await rejectsWith(loadConfig({ cwd: dir }), { code: 'CONFIG_INVALID', field: 'nixdock.images[0].maxLayer', message: /did you mean `maxLayers`/ });
  assert.ok(!existsSync(join(dir, 'out')));
});
