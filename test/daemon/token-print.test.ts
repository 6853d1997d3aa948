/**
 * The daemon token is printed only where a person reads it: not into a pipe (CI logs, supervisors)
 * unless --show-token; daemon.json (0600) always has it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { exited, spawnNixdock } from '../helpers/cli.js';
import { cleanupList } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';
import { appProject, readInfo } from './helpers.js';

async function firstLines(args: string[]): Promise<{ out: string; token: string }> {
  const files = cleanupList();
  const project = appProject(files);
  const proc = spawnNixdock(project.dir, ['watch', '--port', '0', ...args]);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  try {
    await until(() => /dashboard/.test(out) && out.includes('\n'), 'the listening line');
    const info = await until(() => readInfo(project), 'daemon.json');
    return { out, token: info.token };
  } finally {
    proc.kill('SIGTERM');
    await exited(proc);
    await files.run();
  }
}

test('watch into a pipe prints the dashboard URL without the token, and where to find it', async () => {
  const { out, token } = await firstLines([]);
  assert.ok(!out.includes(token), out);
  assert.match(out, /token: in .*daemon\.json, or run with --show-token/);
});

test('--json into a pipe: the listening line has no token; --show-token puts it back', async () => {
  const hidden = await firstLines(['--json']);
  const listening = JSON.parse(hidden.out.split('\n').find((l) => l.includes('"listening"'))!) as { dashboard: string };
  assert.ok(!hidden.out.includes(hidden.token));
  assert.doesNotMatch(listening.dashboard, /#token=/);
  const shown = await firstLines(['--json', '--show-token']);
  assert.ok(shown.out.includes(`#token=${shown.token}`));
});
