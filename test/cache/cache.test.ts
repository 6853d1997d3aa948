/** The index on a real SQLite file: schema creation, persistence, and the records builds write. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { BuildCache } from '../../src/cache/cache.js';
import { SCHEMA_VERSION } from '../../src/cache/schema.js';
import { storePaths } from './helpers.js';
import { tempDir } from '../helpers/tmp.js';
import { sha256 } from '../helpers/bytes.js';

test('an empty file is migrated to the current schema in WAL mode, without a recovery warning', (t) => {
  const cache = tempDir(t);
  writeFileSync(join(cache, 'index.sqlite'), '');
  const warnings: string[] = [];
  BuildCache.open(cache, { onRecovered: (m) => warnings.push(m) }).close();

  const db = new Database(join(cache, 'index.sqlite'), { readonly: true });
  t.after(() => db.close());
  assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).pluck().all();
  assert.deepEqual(tables, ['blob_locations', 'build_layers', 'build_outputs', 'builds', 'compressed', 'layers', 'sqlite_sequence', 'store_paths']);
  assert.deepEqual(warnings, []);
});

test('rows survive closing and reopening the index', (t) => {
  const cache = tempDir(t);
  const paths = storePaths('hello', 3);
  const diffId = sha256('layer');
  const gz = { codec: 'gzip' as const, digest: sha256('layer.gz'), size: 42 };

  const first = BuildCache.open(cache);
  first.recordStorePaths(paths);
  first.recordLayer({ key: 'k1', diffId, size: 10240, storePaths: [paths[0]!.path] });
  first.putCompressed(diffId, gz);
  first.recordBlobLocation(diffId, '/out/hello');
  first.close();

  const again = BuildCache.open(cache);
  t.after(() => again.close());
  assert.deepEqual(again.lookupStorePaths(paths.map((p) => p.path)).get(paths[1]!.path), paths[1]);
  assert.deepEqual({ ...again.lookupLayer('k1'), createdAt: undefined }, { key: 'k1', diffId, size: 10240, storePaths: [paths[0]!.path], createdAt: undefined });
  assert.deepEqual(again.getCompressed(diffId, 'gzip'), gz);
  assert.equal(again.getCompressed(diffId, 'zstd'), undefined);
  assert.deepEqual(again.blobLocations(diffId), ['/out/hello']);
  assert.equal(again.lookupLayer('unknown'), undefined);
});

test('recording a layer again replaces it and keeps when it was first seen', (t) => {
  const index = BuildCache.open(tempDir(t), { clock: () => 1000 });
  t.after(() => index.close());
  index.recordLayer({ key: 'k', diffId: sha256('a'), size: 1, storePaths: [] });
  index.recordLayer({ key: 'k', diffId: sha256('b'), size: 2, storePaths: ['/nix/store/x'], createdAt: 5 });
  assert.deepEqual(index.lookupLayer('k'), { key: 'k', diffId: sha256('b'), size: 2, storePaths: ['/nix/store/x'], createdAt: 1000 });
});

test('build history: statuses, layers with the store paths new since the last successful build, outputs', (t) => {
  const index = BuildCache.open(tempDir(t));
  t.after(() => index.close());
  const [libc, app1, app2] = ['/nix/store/aaa-libc', '/nix/store/bbb-app-1', '/nix/store/ccc-app-2'];

  const first = index.startBuild('app', 'nixdock build');
  assert.equal(index.lastBuild('app')?.status, 'running');
  index.finishBuild(first, {
    status: 'succeeded', tag: 't1', configDigest: sha256('c1'), manifestDigest: sha256('m1'),
    layersBuilt: 2, layersReused: 0, bytesWritten: 300,
    layers: [
      { index: 0, key: 'L', diffId: sha256('libc'), size: 100, built: true, storePaths: [libc] },
      { index: 1, key: 'A1', diffId: sha256('app1'), size: 200, built: true, storePaths: [app1] },
    ],
  });
  index.recordImageOutput(first, { format: 'oci', path: '/out/app', manifestDigest: sha256('m1') });
  index.recordImageOutput(first, { format: 'docker-archive', path: '/out/app.tar' });

  const failed = index.startBuild('app', 'change: app.nix');
  index.finishBuild(failed, { status: 'failed', error: 'nix-build failed', layersBuilt: 0, layersReused: 1, bytesWritten: 0 });

  const third = index.startBuild('app', 'change: app.nix');
  index.finishBuild(third, {
    status: 'succeeded', tag: 't2', configDigest: sha256('c2'), layersBuilt: 1, layersReused: 1, bytesWritten: 200,
    layers: [
      { index: 0, key: 'L', diffId: sha256('libc'), size: 100, built: false, storePaths: [libc] },
      { index: 1, key: 'A2', diffId: sha256('app2'), size: 200, built: true, storePaths: [app2] },
    ],
  });

  const last = index.lastBuild('app');
  assert.equal(last?.id, third);
  assert.deepEqual(last?.layers.map((l) => ({ built: l.built, newPaths: l.newPaths })), [
    { built: false, newPaths: [] },
    { built: true, newPaths: [app2] },
  ]);
  // The first build of an image: everything is new.
  assert.deepEqual(index.build(first)?.layers.map((l) => l.newPaths), [[libc], [app1]]);
  assert.deepEqual(index.build(first)?.outputs, [
    { format: 'oci', path: '/out/app', manifestDigest: sha256('m1') },
    { format: 'docker-archive', path: '/out/app.tar' },
  ]);
  assert.equal(index.lastBuild('app', 'failed')?.error, 'nix-build failed');
  assert.deepEqual(index.history('app', 2).map((b) => b.status), ['succeeded', 'failed']);
  assert.equal(index.lastBuild('other'), undefined);
});

test('finishing a build the index does not know is an INDEX error that says what to do', (t) => {
  const index = BuildCache.open(tempDir(t));
  t.after(() => index.close());
  assert.throws(
    () => index.finishBuild(99, { status: 'succeeded', layersBuilt: 0, layersReused: 0, bytesWritten: 0 }),
    (err: Error & { code?: string; hint?: string }) => err.code === 'INDEX' && /build with id 99/.test(err.message) && !!err.hint,
  );
});

test('a cache directory that cannot be created is an INDEX error naming it', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'file'), '');
  assert.throws(() => BuildCache.open(join(dir, 'file', 'cache')), (err: Error & { code?: string; location?: { file?: string } }) =>
    err.code === 'INDEX' && err.location?.file === join(dir, 'file', 'cache'));
});
