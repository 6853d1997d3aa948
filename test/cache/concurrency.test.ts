/**
 * Sharing one index between processes (a CLI build beside the daemon), and surviving a process
 * killed mid-write. Real child processes, one real SQLite file.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import { BuildCache } from '../../src/cache/cache.js';
import { LAYERS_PER_BUILD } from './helpers.js';
import { tempDir } from '../helpers/tmp.js';

const CHILD = fileURLToPath(new URL('./writer-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function startWriter(t: TestContext, cache: string, name: string, rounds: number | 'forever', pathsPerRound: number): ChildProcess & { stderrText: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, cache, name, String(rounds), String(pathsPerRound)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  return Object.assign(child, { stderrText: () => stderr });
}

async function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode };
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  return { code, signal };
}

function openRaw(t: TestContext, cache: string): Database.Database {
  const db = new Database(join(cache, 'index.sqlite'), { readonly: true });
  t.after(() => db.close());
  return db;
}

test('two processes writing one index concurrently: no SQLITE_BUSY, no lost rows', async (t) => {
  // No index yet: the two writers also race to create the database and run its migrations.
  const cache = tempDir(t);
  const ROUNDS = 300;
  const PATHS = 20;
  const writers = [startWriter(t, cache, 'cli', ROUNDS, PATHS), startWriter(t, cache, 'daemon', ROUNDS, PATHS)];
  const exits = await Promise.all(writers.map(exitOf));

  for (const [i, exit] of exits.entries()) {
    assert.deepEqual(exit, { code: 0, signal: null }, `writer ${i} failed: ${writers[i]!.stderrText()}`);
    assert.doesNotMatch(writers[i]!.stderrText(), /SQLITE_BUSY|locked/);
  }
  const db = openRaw(t, cache);
  const count = (sql: string, ...params: unknown[]) => db.prepare(sql).pluck().get(...params);
  for (const name of ['cli', 'daemon']) {
    assert.equal(count(`SELECT COUNT(*) FROM builds WHERE image = ? AND status = 'succeeded'`, name), ROUNDS);
    assert.equal(count(`SELECT COUNT(*) FROM build_layers JOIN builds ON builds.id = build_id WHERE image = ?`, name), ROUNDS * LAYERS_PER_BUILD);
    assert.equal(count(`SELECT COUNT(*) FROM layers WHERE key LIKE ?`, `${name}-%`), ROUNDS * LAYERS_PER_BUILD);
    assert.equal(count(`SELECT COUNT(*) FROM store_paths WHERE path LIKE ?`, `%-${name}-%`), ROUNDS * PATHS);
  }
  assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
  // Guard the test's meaning: the two writers' builds must interleave, not run one after the other.
  const order = db.prepare(`SELECT image FROM builds ORDER BY id`).pluck().all() as string[];
  // One after the other would switch from one image to the other exactly once.
  const switches = order.filter((image, i) => i > 0 && image !== order[i - 1]).length;
  assert.ok(switches > 1, 'the writers overlapped');
});

test('a writer killed with SIGKILL mid-loop leaves a consistent index of whole transactions', async (t) => {
  const cache = tempDir(t);
  // Big store-path batches make each transaction long, so the kill usually lands inside one.
  const PATHS = 3000;
  const writer = startWriter(t, cache, 'victim', 'forever', PATHS);
  const lines = createInterface({ input: writer.stdout! });
  for await (const line of lines) {
    if (line === 'round 5') break;
  }
  writer.kill('SIGKILL');
  assert.deepEqual(await exitOf(writer), { code: null, signal: 'SIGKILL' });

  const warnings: string[] = [];
  const index = BuildCache.open(cache, { onRecovered: (m) => warnings.push(m) });
  t.after(() => index.close());
  assert.deepEqual(warnings, [], 'no recovery needed');

  const db = openRaw(t, cache);
  assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
  const count = (sql: string) => db.prepare(sql).pluck().get() as number;
  assert.ok(count(`SELECT COUNT(*) FROM builds WHERE status = 'succeeded'`) >= 6);
  assert.equal(count(`SELECT COUNT(*) FROM store_paths`) % PATHS, 0, 'store-path batches are all or nothing');
  // A finished build always has all of its layer rows; an interrupted one none.
  const perBuild = db.prepare(`
    SELECT status, (SELECT COUNT(*) FROM build_layers WHERE build_id = builds.id) AS layers FROM builds`).all() as Array<{ status: string; layers: number }>;
  for (const build of perBuild) {
    assert.equal(build.layers, build.status === 'succeeded' ? LAYERS_PER_BUILD : 0, JSON.stringify(build));
  }
  assert.ok(perBuild.filter((b) => b.status === 'running').length <= 1);

  // The next build uses the index as usual.
  const id = index.startBuild('victim', 'after the kill');
  index.finishBuild(id, { status: 'succeeded', layersBuilt: 0, layersReused: 0, bytesWritten: 0 });
  assert.equal(index.lastBuild('victim')?.reason, 'after the kill');
});
