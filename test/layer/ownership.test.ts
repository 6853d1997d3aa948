/**
 * Owners, modes and device nodes in the customisation layer without privileges: `perms` and
 * fakeRootCommands (fakeroot's recorded state), read back with GNU tar as a user would.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { NixdockError } from '../../src/errors.js';
import { customisationLayerSource, type CustomisationLayerOptions } from '../../src/layer/customisation-layer.js';
import { hashLayer } from '../../src/layer/hash.js';
import { BUSYBOX, nixBuild } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { readAll } from '../helpers/bytes.js';
import { tempDir } from '../helpers/tmp.js';

const NEEDS = missingTools([['nix-build', 'nix-bin'], ['bwrap', 'bubblewrap'], ['fakeroot', 'fakeroot'], ['tar', 'tar']]);
const SETTINGS = { mtime: 1, uid: 0, gid: 0, uname: 'root', gname: 'root' };

describe('customisation layer ownership', { skip: NEEDS }, () => {
  let busybox = '';
  const work = tempDir({ after }, 'nixdock-owner-');

  before(() => {
    busybox = nixBuild(BUSYBOX)[0]!;
  });

  const options = (overrides: Partial<CustomisationLayerOptions>): CustomisationLayerOptions => ({
    storeRoots: [busybox],
    localDirs: [],
    settings: SETTINGS,
    storeDir: '/nix/store',
    physicalPath: (p) => p,
    tmpDir: join(work, 'tmp'),
    ...overrides,
  });

  /** `tar -tv --numeric-owner` lines of the layer, by name: "mode uid/gid" (devices: "mode uid/gid major,minor"). */
  async function listing(overrides: Partial<CustomisationLayerOptions>): Promise<Record<string, string>> {
    const layer = await customisationLayerSource(options(overrides));
    try {
      const tar = join(work, 'layer.tar');
      writeFileSync(tar, await readAll(layer.open()));
      assert.deepEqual(await hashLayer(layer), { diffId: layer.diffId, size: await layer.size() });
      const lines = execFileSync('tar', ['--numeric-owner', '-tvf', tar], { encoding: 'utf8' }).trimEnd().split('\n');
      return Object.fromEntries(lines.map((line) => {
        const fields = line.split(/ +/);
        const device = fields[0]!.startsWith('c') || fields[0]!.startsWith('b');
        const name = fields.slice(5).join(' ').replace(/ -> .*/, '');
        return [name, device ? `${fields[0]} ${fields[1]} ${fields[2]}` : `${fields[0]} ${fields[1]}`];
      }));
    } finally {
      await layer.dispose();
    }
  }

  test('perms set uid, gid and mode of a path, and of everything below it when recursive', async () => {
    const entries = await listing({
      extraCommands: 'mkdir -p home/alice/.config var/lib/app/data tmp && touch home/alice/.config/rc var/lib/app/data/db',
      perms: [
        { path: '/home/alice', uid: 1000, gid: 1000, mode: 0o700 },
        { path: '/var/lib/app', uid: 999, gid: 998, recursive: true },
        { path: '/tmp', mode: 0o1777 },
      ],
    });
    assert.equal(entries['home/alice/'], 'drwx------ 1000/1000');
    assert.equal(entries['home/alice/.config/'], 'drwxr-xr-x 0/0', 'not recursive: only the path itself');
    assert.equal(entries['var/lib/app/'], 'drwxr-xr-x 999/998');
    assert.equal(entries['var/lib/app/data/'], 'drwxr-xr-x 999/998');
    assert.equal(entries['var/lib/app/data/db'], '-rw-r--r-- 999/998');
    assert.equal(entries['tmp/'], 'drwxrwxrwt 0/0');
    assert.equal(entries['bin/'], 'drwxr-xr-x 0/0');
  });

  test('a perm naming a path the layer lacks is an error naming the entry', async () => {
    await assert.rejects(customisationLayerSource(options({ perms: [{ path: '/home/bob', uid: 1 }] })), (err: NixdockError) => {
      assert.equal(err.code, 'INPUT_INVALID');
      assert.equal(err.location?.field, 'perms[0].path');
      return true;
    });
  });

  test('fakeRootCommands: chown, chmod and mknod land in the headers; the rest stays root', async () => {
    const entries = await listing({
      extraCommands: 'mkdir -p home/alice dev',
      fakeRootCommands: 'chown 1000:100 home/alice; chmod 0750 home/alice; touch home/alice/notes; chown 1000 home/alice/notes; mknod dev/null c 1 3; mknod dev/loop0 b 7 0',
    });
    assert.equal(entries['home/alice/'], 'drwxr-x--- 1000/100');
    assert.equal(entries['home/alice/notes'], '-rw-r--r-- 1000/0');
    assert.equal(entries['dev/null'], 'crw-r--r-- 0/0 1,3');
    assert.equal(entries['dev/loop0'], 'brw-r--r-- 0/0 7,0');
    assert.equal(entries['dev/'], 'drwxr-xr-x 0/0');
  });

  test('perms apply after fakeRootCommands, and the same input gives the same digest', async () => {
    const input = { extraCommands: 'mkdir -p srv', fakeRootCommands: 'chown 5:5 srv', perms: [{ path: '/srv', mode: 0o700 }] };
    const entries = await listing(input);
    assert.equal(entries['srv/'], 'drwx------ 5/5');
    const [a, b] = [await customisationLayerSource(options(input)), await customisationLayerSource(options(input))];
    assert.equal(a.diffId, b.diffId);
    await a.dispose();
    await b.dispose();
  });
});
