/** Which images a changed path affects: the pure mapping behind the daemon's watcher. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ImageSpec, ResolvedConfig } from '../../src/config/types.js';
import { classify, watchTargets } from '../../src/daemon/watcher.js';

const root = '/p';
function image(name: string, extra: Partial<ImageSpec>): ImageSpec {
  return { name, contents: [], watch: [], source: { file: `${root}/images/${name}.json`, field: '' }, ...extra } as ImageSpec;
}
const config = {
  configFile: `${root}/nixdock.config.ts`,
  root,
  dependencies: [`${root}/nixdock.config.ts`, `${root}/lib/shared.ts`, `${root}/images/web.json`],
  specGlobs: ['images/*.json'],
  daemon: { host: '127.0.0.1', port: 0, debounceMs: 150, watch: ['global/**'] },
  images: [
    image('web', { contents: [{ kind: 'installable', installable: { kind: 'file', file: 'nix/web.nix', attr: 'app' } }] }),
    image('api', { contents: [{ kind: 'installable', installable: { kind: 'file', file: `${root}/nix/api.nix` } }], watch: ['src/api/**/*.go'] }),
  ],
} as unknown as ResolvedConfig;
const targets = watchTargets(config);
const at = (path: string) => classify(targets, root, `${root}/${path}`);

test('config, its imports, spec files and new files matching spec globs reload the config', () => {
  for (const file of ['nixdock.config.ts', 'lib/shared.ts', 'images/web.json', 'images/new-one.json']) {
    assert.deepEqual(at(file), { config: true, images: [] }, file);
  }
});

test('a .nix file, a result link next to it and image watch globs affect only their images', () => {
  assert.deepEqual(at('nix/web.nix'), { config: false, images: ['web'] });
  assert.deepEqual(at('nix/api.nix'), { config: false, images: ['api'] });
  assert.deepEqual(at('nix/result')?.images.sort(), ['api', 'web']);
  assert.deepEqual(at('src/api/handlers/user.go'), { config: false, images: ['api'] });
  assert.deepEqual(at('global/x.txt')?.images.sort(), ['api', 'web']);
});

test('anything else is not a change', () => {
  for (const file of ['README.md', 'nix/other.nix', 'src/web/main.go', 'images/notes.txt']) assert.equal(at(file), undefined, file);
});
