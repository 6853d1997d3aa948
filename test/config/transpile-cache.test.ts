/**
 * The transpile cache: loading an unchanged TS config must not load `typescript` (~0.75 s of every
 * no-change rebuild), yet an edit is seen at once and a broken cache never breaks a load. Each load
 * runs in a fresh child process, since "typescript was not loaded" only means something there.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { tempProject } from '../helpers/project.js';
import { tempDir } from '../helpers/tmp.js';

const TSX = import.meta.resolve('tsx');
const LOAD_MODULE = new URL('../../src/config/load.ts', import.meta.url).href;
const STORE_PATH = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-1.0';

/** What one child process saw: the resolved config (or the load error) and whether typescript was loaded. */
interface ChildLoad {
  config?: { images: Array<{ name: string }> };
  error?: { code: string; line?: number; column?: number };
  typescriptLoaded: boolean;
}

const CHILD = `
import { createRequire } from 'node:module';
const { loadConfig } = await import(${JSON.stringify(LOAD_MODULE)});
const result = await loadConfig({ cwd: process.cwd() }).then(
  (config) => ({ config }),
  (err) => ({ error: { code: err.code, line: err.location?.line, column: err.location?.column } }),
);
const typescriptLoaded = Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes('/node_modules/typescript/'));
console.log(JSON.stringify({ ...result, typescriptLoaded }));
`;

/** Loads the config of `project` in a new node process whose user cache is `cacheHome`. */
function loadInChild(project: string, cacheHome: string): ChildLoad {
  const run = spawnSync(process.execPath, ['--import', TSX, '--input-type=module', '-e', CHILD], {
    cwd: project,
    env: { ...process.env, XDG_CACHE_HOME: cacheHome },
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout) as ChildLoad;
}

function tempCacheHome(t: TestContext): string {
  return tempDir(t, 'nixdock-xdg-cache-');
}

function cacheEntries(cacheHome: string): string[] {
  const dir = join(cacheHome, 'nixdock', 'transpiled');
  return existsSync(dir) ? readdirSync(dir).map((name) => join(dir, name)) : [];
}

function tsConfig(imageName: string): string {
  return `
    import { defineConfig } from 'nixdock';
    import { contents } from './contents';
    const name: string = ${JSON.stringify(imageName)};
    export default defineConfig({ images: [{ name, contents }] });`;
}

const imageNames = (load: ChildLoad) => load.config?.images.map((image) => image.name);

test('a second load of an unchanged TS config does not load typescript and resolves the same; an edit is seen at once', (t) => {
  const cacheHome = tempCacheHome(t);
  const { dir: project } = tempProject(t, {
    'nixdock.config.ts': tsConfig('first'),
    'contents.ts': `export const contents: string[] = [${JSON.stringify(STORE_PATH)}];`,
  });

  const cold = loadInChild(project, cacheHome);
  assert.equal(cold.typescriptLoaded, true, 'the first load transpiles');
  assert.deepEqual(imageNames(cold), ['first']);
  assert.equal(cacheEntries(cacheHome).length, 2, 'one entry per compiled file: the config and the module it imports');

  const warm = loadInChild(project, cacheHome);
  assert.equal(warm.typescriptLoaded, false);
  assert.deepEqual(warm.config, cold.config);

  writeFileSync(join(project, 'nixdock.config.ts'), tsConfig('edited'));
  const edited = loadInChild(project, cacheHome);
  assert.deepEqual(imageNames(edited), ['edited']);
  assert.equal(edited.typescriptLoaded, true, 'only the edited file is transpiled again');
  assert.equal(cacheEntries(cacheHome).length, 3);
});

test('an unusable cache directory (XDG_CACHE_HOME is a file) never fails a load', (t) => {
  const cacheHome = join(tempCacheHome(t), 'a-file');
  writeFileSync(cacheHome, 'not a directory');
  const { dir: project } = tempProject(t, {
    'nixdock.config.ts': tsConfig('app'),
    'contents.ts': `export const contents: string[] = [${JSON.stringify(STORE_PATH)}];`,
  });
  assert.deepEqual(imageNames(loadInChild(project, cacheHome)), ['app']);
});

test('a truncated or garbled cache entry is not used: the config is transpiled again and loads correctly', (t) => {
  const cacheHome = tempCacheHome(t);
  // Cut after its first statements, this module still imports fine, with one image instead of two.
  const { dir: project } = tempProject(t, {
    'nixdock.config.ts': `
      const images: Array<{ name: string; contents: string[] }> = [{ name: 'one', contents: [${JSON.stringify(STORE_PATH)}] }];
      export default { images };
      images.push({ name: 'two', contents: [${JSON.stringify(STORE_PATH)}] });`,
  });
  assert.deepEqual(imageNames(loadInChild(project, cacheHome)), ['one', 'two']);
  const [entry] = cacheEntries(cacheHome);
  assert.ok(entry);

  const lines = readFileSync(entry, 'utf8').trimEnd().split('\n');
  writeFileSync(entry, lines.slice(0, -1).join('\n'));
  const afterTruncation = loadInChild(project, cacheHome);
  assert.deepEqual(imageNames(afterTruncation), ['one', 'two']);
  assert.equal(afterTruncation.typescriptLoaded, true);

  writeFileSync(entry, Buffer.from([0xff, 0xfe, 0x00, 0x0a, 0x80, 0x41]));
  assert.deepEqual(imageNames(loadInChild(project, cacheHome)), ['one', 'two']);
  // The entry was repaired: the next load is served from it.
  assert.equal(loadInChild(project, cacheHome).typescriptLoaded, false);
});

test('a syntax error is never cached: every load reports it with line and column', (t) => {
  const cacheHome = tempCacheHome(t);
  const project = tempProject(t, { 'nixdock.config.ts': `export default {\n  images: [\n    { name: 'x' contents: [] },\n  ],\n};\n` }).dir;
  for (let load = 0; load < 2; load++) {
    assert.deepEqual(loadInChild(project, cacheHome).error, { code: 'CONFIG_LOAD', line: 3, column: 17 });
  }
  assert.deepEqual(cacheEntries(cacheHome), []);
});
