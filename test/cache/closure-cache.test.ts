/**
 * The index as a ClosureCache: closures walked through recorded references, trusted only when
 * every path carries a nix-store fingerprint; layer recipes forgotten when a path's NAR hash
 * changes; and an index written by the V2 schema upgraded in place.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { BuildCache } from '../../src/cache/cache.js';
import { MIGRATIONS, SCHEMA_VERSION } from '../../src/cache/schema.js';
import type { StorePathInfo } from '../../src/types.js';
import { storePaths } from './helpers.js';
import { tempDir } from '../helpers/tmp.js';
import { sha256 } from '../helpers/bytes.js';

/** app → lib → libc, app → data; every path also refers to itself, as Nix reports it. */
function chain(): { app: StorePathInfo; lib: StorePathInfo; libc: StorePathInfo; data: StorePathInfo; all: StorePathInfo[] } {
  const [app, lib, libc, data] = storePaths('chain', 4) as [StorePathInfo, StorePathInfo, StorePathInfo, StorePathInfo];
  app.references = [app.path, lib.path, data.path];
  lib.references = [lib.path, libc.path];
  return { app, lib, libc, data, all: [app, lib, libc, data] };
}

const fingerprintsOf = (paths: StorePathInfo[]) => new Map(paths.map((p, i) => [p.path, `1:${100 + i}:${i}`]));
const pathsOf = (closure: ReturnType<BuildCache['recordedClosure']>) => closure?.map((entry) => entry.info.path).sort();

test('the recorded closure of a root is every path reachable through references, with fingerprints', (t) => {
  const index = BuildCache.open(tempDir(t));
  t.after(() => index.close());
  const { app, lib, libc, data, all } = chain();
  index.recordStorePaths(all, fingerprintsOf(all));

  const closure = index.recordedClosure([app.path])!;
  assert.deepEqual(pathsOf(closure), [app, lib, libc, data].map((p) => p.path).sort());
  assert.deepEqual(closure.find((entry) => entry.info.path === lib.path), { info: lib, fingerprint: fingerprintsOf(all).get(lib.path) });
  assert.deepEqual(pathsOf(index.recordedClosure([lib.path, data.path])), [lib, libc, data].map((p) => p.path).sort());
});

test('no cached closure when a path of it is unknown or was recorded without a fingerprint', (t) => {
  const index = BuildCache.open(tempDir(t));
  t.after(() => index.close());
  const { app, lib, libc, all } = chain();
  index.recordStorePaths(all.filter((p) => p !== libc), fingerprintsOf(all));
  assert.equal(index.recordedClosure([app.path]), undefined, 'libc was never recorded');
  assert.equal(index.recordedClosure(['/nix/store/0123456789abcdfghijklmnpqrsvwxyz-unknown']), undefined);

  index.recordStorePaths(all, fingerprintsOf(all));
  assert.ok(index.recordedClosure([app.path]));
  // A `dir` store's answer carries no fingerprint; it must not leave the nix store's one behind.
  index.recordStorePaths([lib]);
  assert.equal(index.recordedClosure([app.path]), undefined);
});

test('a store path whose NAR hash changed makes the layers containing it unknown', (t) => {
  const index = BuildCache.open(tempDir(t));
  t.after(() => index.close());
  const { app, lib, all } = chain();
  index.recordStorePaths(all);
  index.recordLayer({ key: 'with-lib', diffId: sha256('a'), size: 10240, storePaths: [lib.path] });
  index.recordLayer({ key: 'without-lib', diffId: sha256('b'), size: 10240, storePaths: [app.path] });

  index.recordStorePaths(all);
  assert.ok(index.lookupLayer('with-lib'), 'recording the same hash again keeps the layer');
  index.recordStorePaths([{ ...lib, narHash: `sha256:${'1'.repeat(52)}` }]);
  assert.equal(index.lookupLayer('with-lib'), undefined);
  assert.ok(index.lookupLayer('without-lib'));
});

test('an index at schema version 2 is upgraded in place and keeps its rows', (t) => {
  const cache = tempDir(t);
  const [old] = storePaths('v2', 1) as [StorePathInfo];
  const v2 = new Database(join(cache, 'index.sqlite'));
  v2.exec(MIGRATIONS.slice(0, 2).join('\n'));
  v2.pragma('user_version = 2');
  v2.prepare(`INSERT INTO store_paths (path, nar_size, nar_hash, refs, seen_at) VALUES (?, ?, ?, ?, 1)`)
    .run(old.path, old.narSize, old.narHash, JSON.stringify(old.references));
  v2.close();

  const warnings: string[] = [];
  const index = BuildCache.open(cache, { onRecovered: (m) => warnings.push(m) });
  t.after(() => index.close());
  assert.deepEqual(warnings, []);
  assert.deepEqual(index.lookupStorePaths([old.path]).get(old.path), old);
  assert.equal(index.recordedClosure([old.path]), undefined, 'rows from before V3 have no fingerprint');
  index.recordStorePaths([old], new Map([[old.path, '1:2:3']]));
  assert.deepEqual(index.recordedClosure([old.path]), [{ info: old, fingerprint: '1:2:3' }]);

  const db = new Database(join(cache, 'index.sqlite'), { readonly: true });
  t.after(() => db.close());
  assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
});
