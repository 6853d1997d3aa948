/**
 * One daemon per project: the lock is exclusive, held for the daemon's life, and released by the
 * kernel when its process dies, even by SIGKILL. Four `nixdock watch` started at the same instant
 * leave exactly one running.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { NixdockError } from '../../src/errors.js';
import { acquireDaemonLock } from '../../src/daemon/lock.js';
import { missingTools } from '../helpers/tools.js';
import { exited, spawnNixdock } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';
import { appProject, readInfo } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'nixdock-lock-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('the lock is exclusive while held and free once released', () => {
  const dir = join(work, 'a');
  const first = acquireDaemonLock(dir);
  assert.throws(() => acquireDaemonLock(dir), (err: NixdockError) => err.code === 'DAEMON' && /already running/.test(err.message));
  first.release();
  acquireDaemonLock(dir).release();
});

test('a daemon killed with SIGKILL leaves no lock behind', async () => {
  const dir = join(work, 'b');
  const lockModule = new URL('../../src/daemon/lock.ts', import.meta.url).href;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `const { acquireDaemonLock } = await import(${JSON.stringify(lockModule)}); acquireDaemonLock(${JSON.stringify(dir)}); console.log('locked'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout!.on('data', (d) => String(d).includes('locked') && resolve()));
  assert.throws(() => acquireDaemonLock(dir), /already running/);
  child.kill('SIGKILL');
  await exited(child);
  acquireDaemonLock(dir).release();
});

test('four daemons started together on one project: one runs, three refuse', { skip: missingTools([['nix-build', 'nix-bin']]) }, async (t) => {
  const project = appProject(t);
  const procs = Array.from({ length: 4 }, () => spawnNixdock(project.dir, ['watch', '--port', '0']));
  const stderr = procs.map(() => '');
  procs.forEach((p, i) => p.stderr!.on('data', (d) => (stderr[i] += d)));
  try {
    const refused = await until(() => {
      const done = procs.filter((p) => p.exitCode !== null);
      return done.length === 3 ? done : undefined;
    }, 'three of four daemons to give up');
    for (const p of refused) {
      assert.equal(p.exitCode, 1);
      assert.match(stderr[procs.indexOf(p)]!, /already running for this project/);
    }
    const survivor = procs.find((p) => p.exitCode === null)!;
    const info = await until(() => readInfo(project), 'daemon.json');
    assert.equal(info.pid, survivor.pid);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(survivor.exitCode, null, 'the first daemon keeps running');
  } finally {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
    await Promise.all(procs.map(exited));
  }
});
