/**
 * includeNixDB: the image carries a Nix database that registers exactly its store paths, checked
 * the way a user would: unpack the image with umoci, read the database with SQLite, and let the real
 * `nix-store --verify --check-contents` judge the unpacked root as a Nix store.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readlinkSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { NIX_ENV, helloApp, nixBuild } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import type { BuildJsonImage } from '../../src/commands/build.js';
import { nixdock, nixdockJson } from '../helpers/cli.js';
import { tempProject } from '../helpers/project.js';
import type { Cleanup } from '../helpers/tmp.js';

const skip = missingTools([['nix-build', 'nix-bin'], ['umoci', 'umoci']]);
const MTIME = '2023-11-14T22:13:20Z';
const MTIME_SECONDS = 1_700_000_000;

/** Builds the project's only image and unpacks it with umoci; returns the image root and the build result. */
function buildAndUnpack(project: string): { rootfs: string; image: BuildJsonImage } {
  const image = nixdockJson(project, ['build', '--format', 'oci']).images[0]!;
  const bundle = join(project, 'bundle');
  execFileSync('umoci', ['unpack', '--rootless', '--image', `${join(project, 'out', 'oci')}:${image.tag}`, bundle], { stdio: ['ignore', 'pipe', 'pipe'] });
  return { rootfs: join(bundle, 'rootfs'), image };
}

/** What the database says: path → sorted references, and every registrationTime. */
function readRegistrations(rootfs: string): { refs: Map<string, string[]>; times: number[] } {
  const db = new Database(join(rootfs, 'nix/var/nix/db/db.sqlite'), { readonly: true });
  try {
    const rows = db.prepare('SELECT path, registrationTime AS time FROM ValidPaths ORDER BY path').all() as Array<{ path: string; time: number }>;
    const refs = new Map(rows.map((row) => [row.path, [] as string[]]));
    const pairs = db.prepare(`SELECT a.path AS referrer, b.path AS reference FROM Refs
      JOIN ValidPaths a ON a.id = Refs.referrer JOIN ValidPaths b ON b.id = Refs.reference ORDER BY 1, 2`).all() as Array<{ referrer: string; reference: string }>;
    for (const { referrer, reference } of pairs) refs.get(referrer)!.push(reference);
    return { refs, times: rows.map((row) => row.time) };
  } finally {
    db.close();
  }
}

function nixStore(args: string[]): string {
  return execFileSync('nix-store', args, { env: NIX_ENV, encoding: 'utf8' });
}

function verifyAsStore(rootfs: string): void {
  // Throws (exit 1) when a registered path is missing or its contents do not match its NAR hash.
  execFileSync('nix-store', ['--store', `local?root=${rootfs}`, '--verify', '--check-contents'], { env: NIX_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('includeNixDB', { skip }, () => {
  let app = '';
  before(() => {
    app = nixBuild(helloApp('nix-db'))[0]!;
  });

  /** A project whose only image is the app from the Nix store, with its database. */
  const nixStoreImage = (t: Cleanup) =>
    tempProject(t, { 'nixdock.config.json': { store: 'nix', images: [{ name: 'nixdb', contents: [app], includeNixDB: true, mtime: MTIME, config: { Cmd: ['/bin/hello'] } }] } }).dir;

  test('registers exactly the closure with its references, and roots the contents', (t) => {
    const project = nixStoreImage(t);
    const { rootfs } = buildAndUnpack(project);

    const closure = nixStore(['-qR', app]).trim().split('\n').sort();
    const expected = new Map(closure.map((path) => [path, nixStore(['-q', '--references', path]).trim().split('\n').filter(Boolean).sort()]));
    const { refs, times } = readRegistrations(rootfs);
    assert.deepEqual(refs, expected);
    assert.ok(times.every((time) => time === MTIME_SECONDS), `registrationTime is the image mtime, not the clock: ${times}`);

    const roots = join(rootfs, 'nix/var/nix/gcroots/docker');
    assert.deepEqual(readdirSync(roots).map((name) => readlinkSync(join(roots, name))), [app]);
    verifyAsStore(rootfs);
  });

  test('the same closure gives the same layer bytes', (t) => {
    const diffIds = ['a', 'b'].map(() => nixdockJson(nixStoreImage(t), ['build', '--format', 'oci']).images[0]!.layers.map((l) => l.diffId));
    assert.deepEqual(diffIds[0], diffIds[1]);
  });

  test('works with a dir store, and says what is missing without nix-store', (t) => {
    const greeting = '/nix/store/0c9s5wn5wsya8yp1kl3s3jlyrx5d8k3w-greeting';
    const project = tempProject(t, {
      'store/0c9s5wn5wsya8yp1kl3s3jlyrx5d8k3w-greeting/share/greeting': 'hi\n',
      'nixdock.config.json': { store: { type: 'dir', path: 'store' }, images: [{ name: 'nixdb', contents: [greeting], includeNixDB: true }] },
    }).dir;

    const { rootfs } = buildAndUnpack(project);
    assert.deepEqual(readRegistrations(rootfs).refs, new Map([[greeting, []]]));
    verifyAsStore(rootfs); // the dir store's NAR hash is the one Nix computes from the files

    const emptyPath = join(project, 'no-tools');
    mkdirSync(emptyPath);
    const run = nixdock(project, ['build'], { PATH: emptyPath });
    assert.equal(run.status, 3, run.stderr);
    assert.match(run.stderr, /includeNixDB needs `nix-store`/);
    assert.match(run.stderr, /nix-bin/);
  });
});
