/**
 * Disk full while writing a layer: a real small tmpfs as the output directory (needs root, or a
 * mount the sandbox allows). The build fails with DISK_FULL and a hint, leaves no temp file, and
 * the output already in that directory stays intact.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { helloApp } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { bigApp, build, makeProject, misnamedBlobs, nixdock, tempFiles } from './helpers.js';

const skip = missingTools([['nix-build', 'nix-bin'], ['mount', 'mount']]);

/** A fresh tmpfs of `size`, unmounted after the test; or why mounting is not allowed here. */
function smallDisk(t: TestContext, size: string): string | { refused: string } {
  const dir = mkdtempSync(join(tmpdir(), 'nixdock-full-'));
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (mounted.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return { refused: mounted.stderr.trim() || `mount exited with ${mounted.status}` };
  }
  t.after(() => {
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

test('disk full while writing a layer: DISK_FULL with a hint, no temp files, the previous output intact', { skip }, async (t) => {
  const out = smallDisk(t, '8m');
  if (typeof out !== 'string') {
    t.skip(`cannot mount a tmpfs here (${out.refused}); run as root to test a full disk`);
    return;
  }
  const project = makeProject(t, [{ name: 'app', nix: 'app.nix' }, { name: 'big', nix: 'big.nix' }], {
    'app.nix': helloApp('before the disk filled up'),
    'big.nix': bigApp('disk-full', 1, 16),
  });
  await build(project, ['--out', out, 'app']);
  const indexJson = readFileSync(join(out, 'oci', 'index.json'));
  const archive = readFileSync(join(out, 'app.tar'));

  const failed = await nixdock(project, ['build', '--json', '--out', out, 'big']);
  assert.equal(failed.status, 1, failed.stderr);
  const { error } = JSON.parse(failed.stdout) as { ok: false; error: { code: string; message: string; hint?: string; location?: { file?: string } } };
  assert.equal(error.code, 'DISK_FULL');
  assert.match(error.message, /No space left/);
  // It names the file it could not write, which is on the full disk.
  assert.ok(error.location?.file?.startsWith(`${out}/`), `location: ${JSON.stringify(error)}`);
  assert.ok(error.message.includes(error.location!.file!), error.message);
  assert.match(error.hint ?? '', /Free some disk space/);
  assert.match(failed.stderr, /error\[DISK_FULL\]/);

  assert.deepEqual(tempFiles(out), [], 'nothing half-written is left behind');
  assert.deepEqual(misnamedBlobs(join(out, 'oci')), []);
  assert.ok(readFileSync(join(out, 'oci', 'index.json')).equals(indexJson), 'the layout still lists the previous image');
  assert.ok(readFileSync(join(out, 'app.tar')).equals(archive), 'the previous docker-archive is intact');
});
