import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { NixdockError } from '../../src/errors.js';
import { DirStore } from '../../src/store/dir.js';
import { openStore } from '../../src/store/open.js';
import { NixStore } from '../../src/store/nix.js';
import type { Closure } from '../../src/types.js';
import { NIX_ENV, drv, helloApp, nixBuild } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';

process.env.NIX_CONFIG = NIX_ENV.NIX_CONFIG;

/**
 * A store path with what NAR serialisation and reference scanning must get right: a self-reference,
 * a symlink into another path, an executable, empty file and directory, non-ASCII and mixed-case
 * names (byte order), and a reference that straddles the scanner's 1 MiB read boundary.
 */
function edgeCases(): string {
  const data = drv('edge-data', 'export PATH=/usr/bin:/bin; mkdir -p $out/share; echo data > $out/share/message');
  const tail = drv('edge-tail', 'echo tail > $out');
  const script = [
    'export PATH=/usr/bin:/bin',
    'mkdir -p $out/bin $out/empty-dir $out/share',
    'echo "self: $out" > $out/share/self',
    'ln -s ${data}/share/message $out/share/link',
    ': > $out/share/empty',
    "printf '#!/bin/sh\\necho hi\\n' > $out/bin/run; chmod 555 $out/bin/run",
    'echo x > $out/share/Zebra; echo y > $out/share/apple; echo z > $out/share/ünïcode',
    // 1048576 - 16 - 11 zero bytes, then "/nix/store/<hash>…": the hash spans bytes 1048560..1048591.
    'head -c 1048549 /dev/zero > $out/share/big; echo -n ${tail} >> $out/share/big',
  ].join('\n');
  const edge = drv('edge-cases', script, { data, tail });
  const single = drv('edge-single-file', 'echo ${edge}/bin/run > $out', { edge });
  return drv('edge-symlink-root', 'export PATH=/usr/bin:/bin; ln -s ${single} $out', { single });
}

function copyIntoDir(closure: Closure, dir: string): void {
  execFileSync('cp', ['-a', ...closure.paths.keys(), dir]);
}

function plain(closure: Closure): unknown {
  return { storeDir: closure.storeDir, roots: closure.roots, paths: [...closure.paths.entries()] };
}

describe('DirStore matches what Nix registers', { skip: missingTools([['nix', 'nix-bin'], ['nix-build', 'nix-bin']]) }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nixdock-dirstore-'));
  });
  after(() => {
    execFileSync('chmod', ['-R', 'u+w', dir]);
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [name, expression] of [['hello app', helloApp()], ['edge cases', edgeCases()]] as const) {
    test(`${name}: same paths, references, NAR sizes and hashes as nix path-info`, async () => {
      const root = nixBuild(expression)[0]!;
      const fromNix = await new NixStore().closure([root]);
      copyIntoDir(fromNix, dir);
      const fromDir = await openStore({ type: 'dir', path: dir, storeDir: '/nix/store' }).closure([root]);
      assert.deepEqual(plain(fromDir), plain(fromNix));
    });
  }

  test('physical paths map the logical store dir onto the directory', () => {
    const store = new DirStore(dir, '/nix/store');
    assert.equal(store.physicalPath('/nix/store/0123456789abcdfghijklmnpqrsvwxyz-x'), `${dir}/0123456789abcdfghijklmnpqrsvwxyz-x`);
    assert.equal(store.physicalPath('/nix/store/0123456789abcdfghijklmnpqrsvwxyz-x/bin/y'), `${dir}/0123456789abcdfghijklmnpqrsvwxyz-x/bin/y`);
    assert.throws(() => store.physicalPath('/usr/bin/env'), (err: unknown) => err instanceof NixdockError && err.code === 'STORE_PATH_OUTSIDE');
  });
});

describe('DirStore on its own', () => {
  const a = '0000000000000000000000000000000a-app';
  const b = '1111111111111111111111111111111b-lib';
  const c = '2222222222222222222222222222222c-unused';
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nixdock-dirstore-own-'));
    mkdirSync(join(dir, a, 'bin'), { recursive: true });
    symlinkSync(`/opt/store/${b}/lib/x.so`, join(dir, a, 'bin', 'link'));
    mkdirSync(join(dir, b));
    writeFileSync(join(dir, b, 'data'), `no refs, but text that is not a hash: ${'z'.repeat(40)}`);
    writeFileSync(join(dir, c), 'a single-file path');
    writeFileSync(join(dir, 'README.md'), 'not a store entry, ignored');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('finds references in symlink targets, under a custom logical store dir', async () => {
    const closure = await new DirStore(dir, '/opt/store').closure([`/opt/store/${a}`]);
    assert.deepEqual([...closure.paths.keys()], [`/opt/store/${a}`, `/opt/store/${b}`]);
    assert.deepEqual(closure.paths.get(`/opt/store/${a}`)!.references, [`/opt/store/${b}`]);
    assert.deepEqual(closure.paths.get(`/opt/store/${b}`)!.references, []);
  });

  test('sees paths added to the directory after the first scan', async () => {
    const store = new DirStore(dir, '/opt/store');
    await store.closure([`/opt/store/${a}`]);
    const d = '3333333333333333333333333333333d-late';
    writeFileSync(join(dir, d), `uses /opt/store/${c}`);
    try {
      const closure = await store.closure([`/opt/store/${d}`]);
      assert.deepEqual([...closure.paths.keys()], [`/opt/store/${c}`, `/opt/store/${d}`]);
    } finally {
      rmSync(join(dir, d));
    }
  });

  test('a missing root gives STORE_PATH_MISSING naming it', async () => {
    const missing = '/opt/store/4444444444444444444444444444444d-missing';
    const err = await new DirStore(dir, '/opt/store').closure([missing]).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof NixdockError);
    assert.equal(err.code, 'STORE_PATH_MISSING');
    assert.match(err.message, new RegExp(missing));
  });

  test('cannot realise installables, and says what to do', async () => {
    const err = await new DirStore(dir).realise({ kind: 'file', file: 'default.nix', attr: 'app' }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof NixdockError);
    assert.equal(err.code, 'NIX_MISSING');
    assert.match(err.hint ?? '', /nix-bin/);
  });
});

describe('the example store shipped in examples/store', () => {
  const exampleDir = join(dirname(fileURLToPath(import.meta.url)), '../../examples/store');
  const hello = '/nix/store/lmyy4dl2bzjln51xcr9cjadm3x1nq9fm-hello-static';
  const greeting = '/nix/store/2cbx68g0aaqllvk0bwl3kkf782lm67ab-hello-greeting';

  test('the hello binary references the greeting path, so the closure has both', async () => {
    const closure = await new DirStore(exampleDir).closure([`${hello}/bin/hello`]);
    assert.deepEqual([...closure.paths.keys()], [greeting, hello]);
    assert.deepEqual(closure.paths.get(hello)!.references, [greeting]);
  });

  test('make.py regenerates it byte for byte', { skip: missingTools([['python3', 'python3']]) }, async () => {
    const copy = mkdtempSync(join(tmpdir(), 'nixdock-example-store-'));
    try {
      copyFileSync(join(exampleDir, 'make.py'), join(copy, 'make.py'));
      execFileSync('python3', [join(copy, 'make.py')], { stdio: 'ignore' });
      const [shipped, regenerated] = await Promise.all([exampleDir, copy].map((dir) => new DirStore(dir).closure([hello])));
      // Equal NAR hashes: same names, bytes and executable bits.
      assert.deepEqual([...regenerated!.paths.values()], [...shipped!.paths.values()]);
    } finally {
      execFileSync('chmod', ['-R', 'u+w', copy]);
      rmSync(copy, { recursive: true, force: true });
    }
  });
});
