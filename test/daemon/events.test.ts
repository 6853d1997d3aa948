/**
 * `nixdock events` against the real daemon: JSON lines, reconnecting across a daemon restart,
 * and `--until-built` exit codes.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import type { ServerMessage } from '../../src/daemon/protocol.js';
import { missingTools } from '../helpers/tools.js';
import { exited, spawnNixdock } from '../helpers/cli.js';
import type { Project } from '../helpers/project.js';
import { cleanupList } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';
import { appProject, appSpec, settled, startDaemon, type DaemonProcess } from './helpers.js';

const skip = missingTools([['nix-build', 'nix-bin']]);
let project: Project;
const files = cleanupList();
let daemon: DaemonProcess;
const children: ChildProcess[] = [];

before(async () => {
  if (skip) return;
  project = appProject(files);
  daemon = await startDaemon(project);
  await settled(daemon.info, 'app');
});

after(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await Promise.all(children.map(exited));
  await daemon?.stop();
  await files.run();
});

/** Runs `nixdock events …` and parses its stdout as JSON lines as they come. */
function follow(args: string[]) {
  const proc = spawnNixdock(project.dir, ['events', '--json', ...args]);
  children.push(proc);
  const messages: ServerMessage[] = [];
  let buffer = '';
  let stderr = '';
  proc.stdout!.on('data', (d) => {
    buffer += d;
    const lines = buffer.split('\n');
    buffer = lines.pop()!;
    for (const line of lines) if (line) messages.push(JSON.parse(line) as ServerMessage);
  });
  proc.stderr!.on('data', (d) => (stderr += d));
  const hellos = () => messages.filter((m): m is Extract<ServerMessage, { type: 'hello' }> => m.type === 'hello');
  return { proc, messages, hellos, stderr: () => stderr };
}

const succeededAfter = (messages: ServerMessage[], from: number) =>
  messages.slice(from).some((m) => m.type === 'event' && m.event.type === 'build:succeeded');

test('`nixdock events --json` keeps printing across a daemon restart', { skip }, async () => {
  const events = follow([]);
  await until(() => events.hellos().length === 1, 'the first hello');
  assert.equal(events.hellos()[0]!.pid, daemon.info.pid);

  assert.equal(await daemon.stop(), 0);
  daemon = await startDaemon(project);
  await until(() => events.hellos().length === 2, 'a hello from the restarted daemon');
  assert.equal(events.hellos()[1]!.pid, daemon.info.pid);
  assert.match(events.stderr(), /connection to the daemon lost; reconnecting/);
  await settled(daemon.info, 'app');

  const from = events.messages.length;
  project.write('images/app.json', appSpec({ AFTER: 'restart' }));
  await until(() => succeededAfter(events.messages, from), 'the rebuild, printed by the same events process');
  assert.equal(events.proc.exitCode, null, 'still following');
  events.proc.kill('SIGINT');
  assert.equal(await exited(events.proc), 0);
});

test('--until-built answers at once when the image is built, else waits for the build of the saved files: 0 succeeded, 1 failed', { skip }, async () => {
  await settled(daemon.info, 'app');
  const at = follow(['--until-built', 'app']);
  assert.equal(await exited(at.proc), 0, at.stderr());
  assert.ok(!at.messages.some((m) => m.type === 'event'), 'answered from the snapshot, without waiting for a build');

  project.write('images/app.json', appSpec({ UNTIL: 'built' }));
  const ok = follow(['--until-built', 'app']);
  assert.equal(await exited(ok.proc), 0, ok.stderr());

  await settled(daemon.info, 'app');
  project.write('app.nix', 'this is { not nix');
  const failing = follow(['--until-built', 'app']);
  assert.equal(await exited(failing.proc), 1, failing.stderr());
  const failed = failing.messages.some((m) =>
    (m.type === 'event' && m.event.type === 'build:failed') ||
    (m.type === 'snapshot' && m.images.some((i) => i.lastBuild?.status === 'failed')));
  assert.ok(failed, 'the failure was printed before exiting');
});

test('--until-built with an image the daemon does not have exits 2', { skip }, async () => {
  const wrong = follow(['--until-built', 'nope']);
  assert.equal(await exited(wrong.proc), 2);
  assert.match(wrong.stderr(), /no image "nope" \(it has: app\)/);
});
