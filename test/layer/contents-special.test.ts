/**
 * Local `contents` directories with what cannot go into an image: a FIFO (which used to hang the
 * build in copyFileSync's open()), a character device (which became an empty file), and a
 * relative symlink climbing above the root (which built, and then the reader refused the image).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { NixdockError } from '../../src/errors.js';
import { copyLocalDir } from '../../src/layer/stage-tree.js';
import { createEntryChecker } from '../../src/tar/safety.js';

describe('copyLocalDir refuses what an image cannot hold', () => {
  let work: string;
  let n = 0;
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'nixdock-contents-special-'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  /** A contents dir with one ordinary file and whatever `add` puts in etc/. */
  function contents(add: (etc: string) => void): { src: string; dest: string } {
    const src = join(work, `src-${++n}`);
    mkdirSync(join(src, 'etc'), { recursive: true });
    writeFileSync(join(src, 'etc', 'ok'), 'ok');
    add(join(src, 'etc'));
    const dest = join(work, `dest-${n}`);
    mkdirSync(dest);
    return { src, dest };
  }

  test('a FIFO is refused at once (no hang), naming the file', { timeout: 10_000 }, async () => {
    const { src, dest } = contents((etc) => execFileSync('mkfifo', [join(etc, 'pipe')]));
    await assert.rejects(copyLocalDir(src, dest), (err: NixdockError) => {
      assert.equal(err.code, 'INPUT_INVALID');
      assert.match(err.message, /etc\/pipe is a named pipe \(FIFO\)/);
      return true;
    });
  });

  test('a character device is refused, not copied as an empty file', async (t) => {
    const { src, dest } = contents((etc) => {
      try {
        execFileSync('mknod', [join(etc, 'null'), 'c', '1', '3'], { stdio: 'ignore' });
      } catch {
        t.skip('mknod not permitted here');
      }
    });
    await assert.rejects(copyLocalDir(src, dest), /is a character device/);
  });

  test('a relative symlink climbing above the root is refused; the reader refuses the same link and accepts the rest', async () => {
    const bad = contents((etc) => symlinkSync('../../secret', join(etc, 'x')));
    await assert.rejects(copyLocalDir(bad.src, bad.dest), (err: NixdockError) => {
      assert.match(err.message, /\/etc\/x -> \.\.\/\.\.\/secret climbs above the image root/);
      assert.match(err.hint ?? '', /\/secret/);
      return true;
    });
    const check = createEntryChecker('the layer');
    assert.throws(() => check({ name: 'etc/x', type: 'symlink', linkname: '../../secret' }), /resolves outside the root/);

    const good = contents((etc) => {
      symlinkSync('../secret', join(etc, 'y'));
      symlinkSync('/abs/../../x', join(etc, 'z'));
    });
    await copyLocalDir(good.src, good.dest);
    assert.equal(readlinkSync(join(good.dest, 'etc', 'y')), '../secret');
    check({ name: 'etc/y', type: 'symlink', linkname: '../secret' });
    check({ name: 'etc/z', type: 'symlink', linkname: '/abs/../../x' });
  });
});
