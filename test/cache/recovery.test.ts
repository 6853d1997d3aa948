/**
 * A damaged index, or one written by a newer nixdock, is set aside with a warning and replaced:
 * the index is a cache, so the build goes on with an empty one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import { BuildCache } from '../../src/cache/cache.js';
import { SCHEMA_VERSION } from '../../src/cache/schema.js';
import { storePaths } from './helpers.js';
import { tempDir } from '../helpers/tmp.js';
import { sha256 } from '../helpers/bytes.js';

/** An index with enough rows to span many pages; returns its file. */
function filledIndex(cache: string): string {
  const index = BuildCache.open(cache);
  index.recordStorePaths(storePaths('p', 3000));
  index.recordLayer({ key: 'k', diffId: sha256('x'), size: 1, storePaths: [] });
  index.close();
  return join(cache, 'index.sqlite');
}

/** Opens after damage; asserts one warning, the old file moved aside, and a working empty index. */
function assertRecovered(t: TestContext, cache: string, asideSuffix: RegExp): void {
  const warnings: string[] = [];
  const index = BuildCache.open(cache, { onRecovered: (m) => warnings.push(m) });
  t.after(() => index.close());
  assert.equal(warnings.length, 1, 'one warning');
  const aside = readdirSync(cache).filter((f) => asideSuffix.test(f));
  assert.equal(aside.length, 1, `moved aside: ${readdirSync(cache).join(', ')}`);
  assert.match(warnings[0]!, new RegExp(`moved to .*${aside[0]!.replace(/[.]/g, '\\.')}`));
  assert.equal(index.lookupLayer('k'), undefined, 'the fresh index starts empty');
  index.recordLayer({ key: 'k2', diffId: sha256('y'), size: 2, storePaths: [] });
  assert.equal(index.lookupLayer('k2')?.size, 2);
  const db = new Database(join(cache, 'index.sqlite'), { readonly: true });
  t.after(() => db.close());
  assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
}

test('a missing index is simply created, with no warning', (t) => {
  const cache = join(tempDir(t), 'not', 'yet');
  const warnings: string[] = [];
  BuildCache.open(cache, { onRecovered: (m) => warnings.push(m) }).close();
  assert.ok(existsSync(join(cache, 'index.sqlite')));
  assert.deepEqual(warnings, []);
});

test('a truncated index is detected, moved aside and replaced', (t) => {
  const cache = tempDir(t);
  const file = filledIndex(cache);
  truncateSync(file, Math.floor(statSync(file).size / 2));
  assertRecovered(t, cache, /^index\.sqlite\.corrupt-[0-9T-]+Z$/);
});

test('garbage bytes instead of an index are detected, moved aside and replaced', (t) => {
  const cache = tempDir(t);
  writeFileSync(join(cache, 'index.sqlite'), randomBytes(3 * 4096));
  assertRecovered(t, cache, /^index\.sqlite\.corrupt-/);
});

test('a valid SQLite file with one broken b-tree page fails quick_check and is replaced', (t) => {
  const cache = tempDir(t);
  const file = filledIndex(cache);
  const raw = new Database(file, { readonly: true });
  const root = raw.prepare(`SELECT rootpage FROM sqlite_master WHERE name = 'store_paths'`).pluck().get() as number;
  const page = raw.pragma('page_size', { simple: true }) as number;
  raw.close();
  // Overwrite the root page of the store_paths b-tree (pages are numbered from 1).
  const fd = openSync(file, 'r+');
  writeSync(fd, randomBytes(page), 0, page, (root - 1) * page);
  closeSync(fd);
  // Still opens as SQLite: the header is intact, only the page is wrong.
  const reopened = new Database(file, { readonly: true });
  assert.equal(reopened.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  reopened.close();
  assertRecovered(t, cache, /^index\.sqlite\.corrupt-/);
});

test('an index from a newer nixdock (higher user_version) is moved aside as .newer-<v>', (t) => {
  const cache = tempDir(t);
  const file = filledIndex(cache);
  const db = new Database(file);
  db.pragma('user_version = 99');
  db.close();
  assertRecovered(t, cache, /^index\.sqlite\.newer-99$/);
  // The newer file is kept intact for that newer nixdock (or a human) to use.
  const aside = new Database(join(cache, 'index.sqlite.newer-99'), { readonly: true });
  t.after(() => aside.close());
  assert.equal(aside.prepare('SELECT COUNT(*) FROM store_paths').pluck().get(), 3000);
});
