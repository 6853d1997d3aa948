/**
 * SIGKILL a real `nixdock build` at several points: mid-layer, right after a layer is finished,
 * and while the docker-archive is being written. Each time the index must open cleanly and pass
 * integrity_check, no partial blob may sit under a final digest name, and the outputs of the
 * previous good build must be byte for byte as they were. The build after that must succeed,
 * pass `umoci unpack`, leave no temp files in the layout, and the killed builds' history rows
 * must read 'failed', not 'running' forever.
 */
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { BuildCache } from '../../src/cache/cache.js';
import { blobPath, liveDigestsOfLayout } from '../../src/formats/oci-layout/blobs.js';
import { sha256Hex } from '../helpers/bytes.js';
import { exited, spawnNixdock } from '../helpers/cli.js';
import type { Project } from '../helpers/project.js';
import { missingTools } from '../helpers/tools.js';
import { bigApp, build, imagesProject, misnamedBlobs, tempFiles } from './helpers.js';

const skip = missingTools([['nix-build', 'nix-bin'], ['umoci', 'umoci']]);

/** Four 20 MiB store paths: each gets a layer of its own, and writing them takes a while. */
const BIG_PATHS = 4;
const BIG_MIB = 20;

interface Snapshot {
  indexJson: Buffer;
  archiveSha256: string;
}

function snapshot(out: string): Snapshot {
  return {
    indexJson: readFileSync(join(out, 'oci', 'index.json')),
    archiveSha256: sha256Hex(readFileSync(join(out, 'big.tar'))),
  };
}

/**
 * The first temp file of process `pid` in `dir` (temp names carry the writer's pid, so leftovers
 * of earlier killed builds do not count) whose name contains `marker` and that holds more than
 * `bytes` bytes.
 */
function growingTemp(dir: string, marker: string, bytes: number, pid: number): string | undefined {
  for (const name of readdirSync(dir)) {
    if (!name.startsWith('.nixdock-tmp-') || !name.includes(marker) || !name.includes(`-${pid}-`)) continue;
    try {
      if (statSync(join(dir, name)).size > bytes) return name;
    } catch {
      // renamed or removed between readdir and stat
    }
  }
  return undefined;
}

/**
 * Starts `nixdock build` and runs it in small steps (SIGCONT, a few ms, SIGSTOP), checking
 * `ready(stderr)` while it is stopped; once it holds, SIGKILLs it in exactly that state. Polling a
 * running build misses points that last only milliseconds: a 20 MiB layer is written in 50 ms.
 */
async function buildKilledWhen(project: Project, ready: (stderr: string, pid: number) => boolean, what: string): Promise<void> {
  const proc: ChildProcess = spawnNixdock(project.dir, ['build']);
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  proc.stdout!.resume();
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`the build ended (${proc.exitCode}) before ${what}:\n${stderr}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for the build to be ${what}:\n${stderr}`);
    proc.kill('SIGSTOP');
    await pause(10); // lets the lines written before the stop arrive
    if (ready(stderr, proc.pid!)) break;
    proc.kill('SIGCONT');
    await pause(STEP_MS);
  }
  proc.kill('SIGKILL');
  await exited(proc);
  assert.equal(proc.signalCode, 'SIGKILL', `killed ${what}`);
}

/** How long the build runs between two checks: a fraction of the time one layer takes. */
const STEP_MS = 3;

function assertIndexIntact(cacheDir: string): void {
  const index = BuildCache.open(cacheDir, { onRecovered: (message) => assert.fail(`the index had to be recovered: ${message}`) });
  index.close();
  const db = new Database(join(cacheDir, 'index.sqlite'), { readonly: true });
  try {
    assert.deepEqual(db.pragma('integrity_check', { simple: true }), 'ok');
  } finally {
    db.close();
  }
}

test('a build killed at any point leaves the index, the blobs and the previous outputs intact', { skip, timeout: 300_000 }, async (t) => {
  const project = imagesProject(t, [{ name: 'big', nix: 'big.nix' }], { 'big.nix': bigApp('v1', BIG_PATHS, BIG_MIB) });
  await build(project);
  const out = join(project.dir, 'out');
  const blobs = join(out, 'oci', 'blobs', 'sha256');
  const cacheDir = join(project.dir, '.nixdock');
  const good = snapshot(out);

  project.write('big.nix', bigApp('v2', BIG_PATHS, BIG_MIB));
  // [when, did the OCI layout output finish before that point (it is written before the archive)]
  const killPoints: Array<[string, (stderr: string, pid: number) => boolean, boolean]> = [
    ['in the middle of the first layer', (_, pid) => growingTemp(blobs, 'layer', 4 << 20, pid) !== undefined, false],
    ['right after the first layer was built', (stderr) => / layer \d+ built /.test(stderr), false],
    // The finished layers are reused now, so this one dies inside a later layer.
    ['in the middle of a later layer', (stderr, pid) => / layer \d+ reused /.test(stderr) && growingTemp(blobs, 'layer', 4 << 20, pid) !== undefined, false],
    ['while writing the docker-archive', (_, pid) => growingTemp(out, 'big.tar', 1 << 20, pid) !== undefined, true],
  ];
  for (const [what, ready, ociDone] of killPoints) {
    await buildKilledWhen(project, ready, what);
    assertIndexIntact(cacheDir);
    assert.deepEqual(misnamedBlobs(join(out, 'oci')), [], `no partial blob under a digest name after a kill ${what}`);
    const now = snapshot(out);
    assert.equal(now.archiveSha256, good.archiveSha256, `docker-archive unchanged after a kill ${what}`);
    if (!ociDone) assert.ok(now.indexJson.equals(good.indexJson), `index.json unchanged after a kill ${what}`);
    for (const digest of liveDigestsOfLayout(join(out, 'oci'))) {
      assert.ok(existsSync(blobPath(join(out, 'oci'), digest)), `index.json names only blobs that exist (${digest})`);
    }
  }

  const [v2] = await build(project);
  assert.deepEqual(misnamedBlobs(join(out, 'oci')), []);
  assert.deepEqual(tempFiles(out), [], 'temp files of killed builds (layout blobs, the archive) are cleaned up');
  const bundle = join(project.dir, 'bundle');
  execFileSync('umoci', ['unpack', '--image', `${join(out, 'oci')}:${v2!.tag}`, bundle], { stdio: 'pipe' });
  assert.ok(existsSync(join(bundle, 'rootfs', v2!.layers[0]!.storePaths[0]!.slice(1), 'blob')));

  const index = BuildCache.open(cacheDir);
  t.after(() => index.close());
  const statuses = index.history('big', 10).map((b) => b.status);
  assert.deepEqual(statuses, ['succeeded', 'failed', 'failed', 'failed', 'failed', 'succeeded']);
  assert.match(index.history('big', 2)[1]!.error ?? '', /killed/);
});
