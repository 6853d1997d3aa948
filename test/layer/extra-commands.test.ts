/**
 * extraCommands as dockerTools runs it: bash with errexit in a sandbox where the Nix store is
 * read-only, the environment is a builder's, the working directory has a fixed name and nothing
 * outside the tree is writable; the store paths it writes into the tree are found.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, readFileSync, readdirSync, readlinkSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { NixdockError } from '../../src/errors.js';
import { customisationLayerSource, type CustomisationLayerOptions } from '../../src/layer/customisation-layer.js';
import { drv, helloApp, nixBuild } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { readAll } from '../helpers/bytes.js';
import { tempDir } from '../helpers/tmp.js';

const NEEDS = missingTools([['nix-build', 'nix-bin'], ['bwrap', 'bubblewrap'], ['tar', 'tar']]);
const SETTINGS = { mtime: 1, uid: 0, gid: 0, uname: 'root', gname: 'root' };

describe('extraCommands', { skip: NEEDS }, () => {
  let app = '';
  let lib = '';
  const work = tempDir({ after }, 'nixdock-extra-');

  before(() => {
    app = nixBuild(helloApp('extra'))[0]!;
    lib = nixBuild(drv('extra-lib', 'export PATH=/usr/bin:/bin; mkdir -p $out/share; echo from-lib > $out/share/msg'))[0]!;
  });

  const options = (extraCommands: string, overrides: Partial<CustomisationLayerOptions> = {}): CustomisationLayerOptions => ({
    storeRoots: [app],
    localDirs: [],
    extraCommands,
    settings: SETTINGS,
    storeDir: '/nix/store',
    physicalPath: (p) => p,
    tmpDir: join(work, 'tmp'),
    ...overrides,
  });

  /** Builds the layer and returns its files as name → content (symlinks as `-> target`). */
  async function layerFiles(extraCommands: string): Promise<Map<string, string>> {
    const layer = await customisationLayerSource(options(extraCommands));
    try {
      const dir = join(work, `x-${Math.random().toString(36).slice(2)}`);
      mkdirSync(dir);
      execFileSync('tar', ['-xf', '-', '-C', dir], { input: await readAll(layer.open()) });
      const files = new Map<string, string>();
      const walk = (rel: string): void => {
        for (const name of readdirSync(join(dir, rel))) {
          const path = rel ? `${rel}/${name}` : name;
          const stats = lstatSync(join(dir, path));
          if (stats.isSymbolicLink()) files.set(path, `-> ${readlinkSync(join(dir, path))}`);
          else if (stats.isDirectory()) (files.set(`${path}/`, ''), walk(path));
          else files.set(path, readFileSync(join(dir, path), 'utf8'));
        }
      };
      walk('');
      return files;
    } finally {
      await layer.dispose();
    }
  }

  async function fails(extraCommands: string): Promise<NixdockError> {
    let caught: NixdockError | undefined;
    await assert.rejects(customisationLayerSource(options(extraCommands)), (err: NixdockError) => {
      caught = err;
      return err.code === 'LAYER_BUILD' && err.location?.field === 'extraCommands';
    });
    return caught!;
  }

  test('cannot modify the Nix store through the tree\'s symlinks: the build fails and the path still verifies', async () => {
    const hello = join(app, 'bin', 'hello');
    const before = readFileSync(hello);
    const err = await fails('echo x >> bin/hello; chmod 777 bin/hello');
    assert.match(err.found!, /Read-only file system/);
    await fails('chmod 777 bin/hello');
    assert.deepEqual(readFileSync(hello), before);
    execFileSync('nix-store', ['--verify-path', app], { stdio: 'pipe' });
  });

  test('runs bash with errexit: `false; true` fails with the status of `false`', async () => {
    const err = await fails('false; true');
    assert.match(err.message, /exit status 1/);
    await fails('cat nonexistent | true');
  });

  test('bash features work: brace expansion, [[ ]]', async () => {
    const files = await layerFiles('mkdir -p a/{b,c}; [[ -d a/b ]] && echo yes > a/c/ok');
    assert.ok(files.has('a/b/'), [...files.keys()].join(' '));
    assert.equal(files.get('a/c/ok'), 'yes\n');
    assert.ok(![...files.keys()].some((name) => name.includes('{')), [...files.keys()].join(' '));
  });

  test('a builder\'s clean environment and a fixed working directory, whatever the caller has', async () => {
    process.env.NIXDOCK_LEAK_TEST = 'secret';
    try {
      const files = await layerFiles('env | cut -d= -f1 | sort > env; pwd > pwd; echo "$HOME" > home');
      assert.deepEqual(files.get('env')!.trim().split('\n').filter((k) => k !== '_' && k !== 'SHLVL' && k !== 'OLDPWD'), [
        'HOME', 'NIX_BUILD_CORES', 'NIX_BUILD_TOP', 'NIX_STORE', 'PATH', 'PWD', 'SOURCE_DATE_EPOCH', 'TEMP', 'TEMPDIR', 'TERM', 'TMP', 'TMPDIR', 'TZ',
      ]);
      assert.equal(files.get('pwd'), '/build/root\n');
      assert.equal(files.get('home'), '/homeless-shelter\n');
    } finally {
      delete process.env.NIXDOCK_LEAK_TEST;
    }
  });

  test('cannot write outside the tree; /tmp is private to the script', async () => {
    // Not under /tmp, which the sandbox replaces: a host directory that exists and is writable.
    const hostDir = mkdtempSync(join('/var/tmp', 'nixdock-outside-'));
    try {
      const outside = join(hostDir, 'outside');
      const err = await fails(`touch ${outside}`);
      assert.match(err.found!, /Read-only file system/);
      assert.equal(existsSync(outside), false);
    } finally {
      rmSync(hostDir, { recursive: true, force: true });
    }
    const marker = `nixdock-extra-${process.pid}`;
    await layerFiles(`touch /tmp/${marker}; echo ok > done`);
    assert.equal(existsSync(join('/tmp', marker)), false, 'the script\'s /tmp is not the host\'s');
  });

  test('store paths it writes into the tree are its references', async () => {
    const layer = await customisationLayerSource(options(`mkdir -p etc; ln -s ${lib}/share/msg etc/msg; echo "${app}/bin/hello" > etc/which`));
    try {
      assert.deepEqual([...layer.references], [app, lib].sort());
    } finally {
      await layer.dispose();
    }
  });

  test('without bwrap on PATH: TOOL_MISSING naming bubblewrap', async () => {
    const bin = join(work, 'bin-without-bwrap');
    mkdirSync(bin);
    symlinkSync(execFileSync('sh', ['-c', 'command -v bash'], { encoding: 'utf8' }).trim(), join(bin, 'bash'));
    const saved = process.env.PATH;
    process.env.PATH = bin;
    try {
      await assert.rejects(customisationLayerSource(options('true')), (err: NixdockError) => {
        assert.equal(err.code, 'TOOL_MISSING');
        assert.match(err.hint!, /bubblewrap/);
        return true;
      });
    } finally {
      process.env.PATH = saved;
    }
  });
});
