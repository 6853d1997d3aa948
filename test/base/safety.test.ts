import assert from 'node:assert/strict';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import tar from 'tar-stream';
import { readBaseImage } from '../../src/base/read.js';
import { checkLayerSafety } from '../../src/tar/safety.js';
import { NixdockError } from '../../src/errors.js';
import { exportImage } from '../../src/export.js';
import { missingTools } from '../helpers/tools.js';
import { hybridDockerArchive, tarDirectory, tarStorePaths } from '../helpers/base-images.js';
import { readAll } from '../helpers/bytes.js';

/**
 * Crafted entry by entry with tar-stream, the way an attacker would: each spec is
 * [name, type, linkname?] with type file | dir | symlink | hardlink.
 */
async function craftTar(entries: Array<[string, 'file' | 'dir' | 'symlink' | 'hardlink', string?]>): Promise<Buffer> {
  const types = { file: 'file', dir: 'directory', symlink: 'symlink', hardlink: 'link' } as const;
  const pack = tar.pack();
  const bytes = readAll(pack as unknown as Readable);
  for (const [name, kind, linkname] of entries) {
    const header = { name, type: types[kind], mode: kind === 'dir' ? 0o755 : 0o644, mtime: new Date(1000), ...(linkname && { linkname }) };
    if (kind === 'file') pack.entry(header, 'pwned\n');
    else pack.entry(header);
  }
  pack.finalize();
  return bytes;
}

async function refusal(layer: Buffer, layerName = 'layer 1/1 of test'): Promise<NixdockError> {
  try {
    await checkLayerSafety(Readable.from([layer]), layerName);
  } catch (err) {
    assert.ok(err instanceof NixdockError, `expected a NixdockError, got ${err}`);
    return err;
  }
  assert.fail('the tarball was accepted');
}

const MALICIOUS: Record<string, { entries: Parameters<typeof craftTar>[0]; entry: string }> = {
  'a .. name climbing out of the root': { entries: [['etc/', 'dir'], ['../../etc/passwd', 'file']], entry: '../../etc/passwd' },
  'a symlink to ../../.. and a file written through it': { entries: [['x', 'symlink', '../../..'], ['x/evil', 'file']], entry: 'x' },
  'a file written through an (absolute) symlink of the same layer': { entries: [['d', 'symlink', '/tmp'], ['d/evil', 'file']], entry: 'd/evil' },
  'a hard link to ../outside': { entries: [['h', 'hardlink', '../outside']], entry: 'h' },
  'a symlink chain that climbs out': { entries: [['a/', 'dir'], ['a/up', 'symlink', '..'], ['a/out', 'symlink', 'up/../..']], entry: 'a/out' },
  'an absolute name with .. above the root': { entries: [['/nix/store/../../../root/.ssh/authorized_keys', 'file']], entry: '/nix/store/../../../root/.ssh/authorized_keys' },
};

describe('checkLayerSafety', { skip: missingTools([['tar', 'tar']]) }, () => {
  for (const [name, { entries, entry }] of Object.entries(MALICIOUS)) {
    test(`refuses ${name}`, async () => {
      const err = await refusal(await craftTar(entries), 'layer 3/4 of docker-archive:/x.tar');
      assert.equal(err.code, 'UNSAFE_ARCHIVE');
      assert.match(err.message, /layer 3\/4 of docker-archive:\/x\.tar/);
      assert.ok(err.message.includes(`entry ${entry} `), err.message);
      assert.ok(err.hint);
    });
  }

  test('accepts absolute /nix/store names, absolute symlink targets and relative ones that stay inside', async () => {
    const layer = await craftTar([
      ['/nix/', 'dir'],
      ['/nix/store/', 'dir'],
      ['/nix/store/abc-hello/', 'dir'],
      ['/nix/store/abc-hello/bin/hello', 'file'],
      ['/nix/store/abc-hello/bin/hi', 'symlink', 'hello'],
      ['/nix/store/abc-hello/lib', 'symlink', '../../../etc'],
      ['bin', 'symlink', '/nix/store/abc-hello/bin'],
      ['usr/lib/x', 'symlink', '../../etc/x'],
      ['usr/../etc/y', 'file'],
      ['etc/hard', 'hardlink', '/nix/store/abc-hello/bin/hello'],
    ]);
    await checkLayerSafety(Readable.from([layer]), 'layer 1/1');
  });

  test('accepts a GNU tar layer with absolute store names, as dockerTools writes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nixdock-safe-'));
    try {
      mkdirSync(join(dir, 'pkg', 'bin'), { recursive: true });
      writeFileSync(join(dir, 'pkg', 'bin', 'tool'), '#!/bin/sh\n');
      symlinkSync('tool', join(dir, 'pkg', 'bin', 'alias'));
      symlinkSync('/bin/sh', join(dir, 'pkg', 'sh'));
      await checkLayerSafety(Readable.from([tarStorePaths([join(dir, 'pkg')])]), 'layer 1/1');
      await checkLayerSafety(Readable.from([tarDirectory(dir)]), 'layer 1/1');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a truncated tar is reported as not readable, not as unsafe', async () => {
    const layer = (await craftTar([['etc/x', 'file']])).subarray(0, 700);
    const err = await refusal(Buffer.concat([layer, Buffer.from('garbage'.repeat(100))]));
    assert.equal(err.code, 'INPUT_INVALID');
  });
});

describe('a malicious base image', { skip: missingTools([['tar', 'tar']]) }, () => {
  let work: string;
  before(() => (work = mkdtempSync(join(tmpdir(), 'nixdock-evil-'))));
  after(() => rmSync(work, { recursive: true, force: true }));

  test('is refused when its layers are read or exported, and nothing lands outside the target', async () => {
    const evil = await craftTar([['x', 'symlink', '../../..'], ['x/evil', 'file'], ['../outside', 'file']]);
    const good = await craftTar([['etc/', 'dir'], ['etc/ok', 'file']]);
    const archive = join(work, 'evil.tar');
    hybridDockerArchive(join(work, 'layout'), [good, evil], { Cmd: ['/bin/sh'] }, archive);
    const image = await readBaseImage({ kind: 'docker-archive', path: archive }, { cacheDir: join(work, 'cache') });

    assert.equal((await readAll(image.layers[0]!.open())).length, good.length);
    await assert.rejects(readAll(image.layers[1]!.open()), (err: NixdockError) => {
      assert.equal(err.code, 'UNSAFE_ARCHIVE');
      assert.match(err.message, /layer 2\/2 .* of docker-archive:/);
      return true;
    });

    const target = join(work, 'target', 'deep');
    mkdirSync(target, { recursive: true });
    const before = readdirSync(work).sort();
    const out = join(target, 'rootfs.tar');
    await assert.rejects(exportImage(image.layers, createWriteStream(out)), { code: 'UNSAFE_ARCHIVE' });
    assert.deepEqual(readdirSync(work).sort(), before);
    assert.equal(existsSync(join(dirname(work), 'outside')), false);
    assert.equal(existsSync(join(work, 'evil')), false);
  });
});
