import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { NixdockError } from '../../src/errors.js';
import { customisationLayerSource, type CustomisationLayerOptions } from '../../src/layer/customisation-layer.js';
import { hashLayer } from '../../src/layer/hash.js';
import type { TarSettings } from '../../src/types.js';
import { helloApp, nixBuild } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { tempDir } from '../helpers/tmp.js';
import { readAll, sha256 } from '../helpers/bytes.js';

const NEEDS = missingTools([['nix-build', 'nix-bin'], ['tar', 'tar']]);
const SETTINGS: TarSettings = { mtime: 1_700_000_000, uid: 1000, gid: 100, uname: 'nixuser', gname: 'users' };
const EXTRA = 'mkdir -p tmp && chmod 1777 tmp && echo "welcome" > etc/motd && ln -s bin/hello entrypoint && chmod 0600 etc/secret';

describe('customisation layer', { skip: NEEDS }, () => {
  let app = '';
  let data = '';
  const work = tempDir({ after }, 'nixdock-custom-');
  let local = '';

  before(() => {
    app = nixBuild(helloApp('custom'))[0]!;
    data = execFileSync('nix-store', ['-q', '--references', app], { encoding: 'utf8' }).split('\n').find((p) => p.endsWith('-hello-data'))!;
    local = join(work, 'local');
    mkdirSync(join(local, 'etc'), { recursive: true });
    mkdirSync(join(local, 'bin'));
    writeFileSync(join(local, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n', { mode: 0o644 });
    writeFileSync(join(local, 'etc/secret'), 'shh\n', { mode: 0o644 });
    writeFileSync(join(local, 'bin/tool'), '#!/bin/sh\n', { mode: 0o755 });
    symlinkSync('passwd', join(local, 'etc/passwd-link'));
  });

  const options = (overrides: Partial<CustomisationLayerOptions> = {}): CustomisationLayerOptions => ({
    storeRoots: [app, data],
    localDirs: [local],
    extraCommands: EXTRA,
    settings: SETTINGS,
    storeDir: '/nix/store',
    physicalPath: (p) => p,
    tmpDir: join(work, 'tmp'),
    ...overrides,
  });

  test('holds the merged store trees, the local files and what extraCommands made', async () => {
    const layer = await customisationLayerSource(options());
    try {
      const tarPath = join(work, 'custom.tar');
      writeFileSync(tarPath, await readAll(layer.open()));
      const listing = execFileSync('tar', ['--quoting-style=literal', '-tvf', tarPath], { env: { ...process.env, TZ: 'UTC' }, encoding: 'utf8' });
      const lines = new Map(listing.trimEnd().split('\n').map((line) => {
        const [perms, owner, , date, time, ...name] = line.split(/ +/);
        return [name.join(' '), `${perms} ${owner} ${date} ${time}`];
      }));
      const stamp = 'root/root 2023-11-14 22:13';
      assert.deepEqual(Object.fromEntries(lines), {
        'bin/': `drwxr-xr-x ${stamp}`,
        [`bin/hello -> ${app}/bin/hello`]: `lrwxrwxrwx ${stamp}`,
        'bin/tool': `-rwxr-xr-x ${stamp}`,
        'entrypoint -> bin/hello': `lrwxrwxrwx ${stamp}`,
        'etc/': `drwxr-xr-x ${stamp}`,
        'etc/motd': `-rw-r--r-- ${stamp}`,
        'etc/passwd': `-rw-r--r-- ${stamp}`,
        'etc/passwd-link -> passwd': `lrwxrwxrwx ${stamp}`,
        'etc/secret': `-rw------- ${stamp}`,
        'share/': `drwxr-xr-x ${stamp}`,
        [`share/message -> ${data}/share/message`]: `lrwxrwxrwx ${stamp}`,
        'tmp/': `drwxrwxrwt ${stamp}`,
      });
      assert.equal(execFileSync('tar', ['-xOf', tarPath, 'etc/motd'], { encoding: 'utf8' }), 'welcome\n');
      assert.equal(execFileSync('tar', ['-xOf', tarPath, 'etc/passwd'], { encoding: 'utf8' }), 'root:x:0:0::/root:/bin/sh\n');
      assert.deepEqual(await hashLayer(layer), { diffId: layer.diffId, size: await layer.size() });
    } finally {
      await layer.dispose();
    }
    assert.deepEqual(readdirSync(join(work, 'tmp')), [], 'staging tree and tar are gone');
  });

  test('is reproducible: the same input gives the same bytes and key, a changed file a new key', async () => {
    const first = await customisationLayerSource(options());
    const second = await customisationLayerSource(options({ tmpDir: join(work, 'tmp2') }));
    try {
      assert.equal(sha256(await readAll(first.open())), sha256(await readAll(second.open())));
      assert.equal(first.key, second.key);
      assert.equal(first.diffId, second.diffId);
      const changed = await customisationLayerSource(options({ extraCommands: `${EXTRA} && echo more >> etc/motd` }));
      assert.notEqual(changed.key, first.key);
      await changed.dispose();
    } finally {
      await first.dispose();
      await second.dispose();
    }
  });

  test('a failing extraCommands is a LAYER_BUILD error with its stderr, and leaves nothing behind', async () => {
    const tmpDir = join(work, 'tmp-fail');
    await assert.rejects(customisationLayerSource(options({ tmpDir, extraCommands: 'chmod 555 etc && echo "no such tool: frobnicate" >&2 && exit 3' })), (err: NixdockError) => {
      assert.equal(err.code, 'LAYER_BUILD');
      assert.equal(err.location?.field, 'extraCommands');
      assert.match(err.message, /exit status 3/);
      assert.match(err.found!, /no such tool: frobnicate/);
      return true;
    });
    assert.deepEqual(readdirSync(tmpDir), []);
  });

  test('store roots alone are keyed by the roots\' NAR hashes and tarred without staging, to the bytes staging gives', async () => {
    const hashes = new Map(execFileSync('nix-store', ['-q', '--hash', app, data], { encoding: 'utf8' }).trim().split('\n').map((hash, i) => [[app, data][i]!, hash]));
    const tmpDir = join(work, 'tmp-lazy');
    const storeOnly = (narHashOf: (path: string) => string | undefined) =>
      customisationLayerSource(options({ localDirs: [], extraCommands: undefined, tmpDir, narHashOf }));
    const lazy = await storeOnly((path) => hashes.get(path));
    const again = await storeOnly((path) => hashes.get(path));
    const rebuiltRoot = await storeOnly((path) => (path === data ? 'sha256:0000' : hashes.get(path)));
    const eager = await storeOnly(() => undefined);
    try {
      assert.equal(lazy.diffId, undefined, 'not packed yet');
      assert.equal(lazy.key, again.key);
      assert.notEqual(lazy.key, rebuiltRoot.key, 'a root with other contents is another recipe');
      const bytes = await readAll(lazy.open());
      assert.equal(bytes.length, await lazy.size());
      assert.equal(sha256(bytes), eager.diffId, 'the same bytes as staging the tree and walking it');
      assert.equal(readdirSync(tmpDir).length, 1, 'only the eager source staged anything');
    } finally {
      for (const layer of [lazy, again, rebuiltRoot, eager]) await layer.dispose();
    }
    assert.deepEqual(readdirSync(tmpDir), [], 'disposed: nothing staged is left');
  });

  test('bad contents are input errors that name the entry', async () => {
    const cases: Array<[Partial<CustomisationLayerOptions>, string, string]> = [
      [{ localDirs: ['relative/dir'] }, 'INPUT_INVALID', 'relative/dir'],
      [{ localDirs: [join(work, 'missing')] }, 'INPUT_INVALID', join(work, 'missing')],
      [{ storeRoots: ['/etc'] }, 'STORE_PATH_OUTSIDE', '/etc'],
      [{ storeRoots: [`${app}-gone`] }, 'STORE_PATH_MISSING', `${app}-gone`],
    ];
    for (const [overrides, code, file] of cases) {
      await assert.rejects(customisationLayerSource(options(overrides)), (err: NixdockError) => {
        assert.equal(err.code, code);
        assert.equal(err.location?.file, file);
        return true;
      });
    }
  });
});
