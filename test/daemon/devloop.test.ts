/**
 * What a day in `nixdock watch` needs beyond rebuilding: bounded disk, a dashboard address that
 * survives restarts, a daemon that starts on a broken config, `events` that never waits forever.
 * The real `nixdock watch` process on real Nix derivations, judged by files and WebSocket messages.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { ServerMessage } from '../../src/daemon/protocol.js';
import { exited, nixdock, spawnNixdock } from '../helpers/cli.js';
import { NIX_ENV } from '../helpers/nix.js';
import { missingTools } from '../helpers/tools.js';
import { until } from '../helpers/wait.js';
import { appProject, appSpec, connected, readInfo, refusal, settled, startDaemon } from './helpers.js';

const skip = missingTools([['nix-build', 'nix-bin']]);
type Msg<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>;
const is = <T extends ServerMessage['type']>(type: T) => (m: ServerMessage): m is Msg<T> => m.type === type;

/** Cleanups run newest first (node:test runs t.after hooks in the order they were added). */
function deferrer(t: TestContext): (cleanup: () => unknown) => void {
  const stack: Array<() => unknown> = [];
  t.after(async () => {
    for (const cleanup of stack.reverse()) await cleanup();
  });
  return (cleanup) => void stack.push(cleanup);
}

/** The tag `events --until-built --json` ended on: its last line, a snapshot (already built) or a build:succeeded. */
function builtTag(stdout: string): string {
  const last = JSON.parse(stdout.trim().split('\n').at(-1)!) as ServerMessage;
  if (last.type === 'snapshot') return last.images[0]!.lastBuild!.tag!;
  assert.ok(last.type === 'event' && last.event.type === 'build:succeeded', JSON.stringify(last));
  return last.event.tag;
}

function layoutTags(dir: string): string[] {
  const index = JSON.parse(readFileSync(join(dir, 'out', 'oci', 'index.json'), 'utf8')) as { manifests: Array<{ annotations: Record<string, string> }> };
  return index.manifests.map((m) => m.annotations['org.opencontainers.image.ref.name']!);
}

test('watch runs gc after each build: out/oci keeps gc.keepBuilds images, not one per edit', { skip }, async (t) => {
  const defer = deferrer(t);
  const project = appProject({ after: defer });
  project.write('nixdock.config.json', { specs: ['images/*.json'], daemon: { port: 0, debounceMs: 100 }, gc: { keepBuilds: 1 } });
  const daemon = await startDaemon(project);
  defer(() => daemon.stop());
  await settled(daemon.info, 'app');
  const client = await connected(daemon.info);
  defer(() => client.ws.close());
  for (const round of ['2', '3']) {
    const seen = client.messages.length;
    project.write('images/app.json', appSpec({ ROUND: round }));
    await client.waitFor((m): m is Msg<'gc'> => m.type === 'gc' && client.messages.indexOf(m) >= seen, `gc after build ${round}`);
  }
  const succeeded = client.events('app').filter((e) => e.type === 'build:succeeded');
  assert.deepEqual(layoutTags(project.dir), [(succeeded.at(-1) as { tag: string }).tag]);
  const gc = client.messages.filter(is('gc'));
  assert.ok(gc.every((m) => m.images.length === 1 && m.blobs >= 2 && m.bytes > 0), JSON.stringify(gc));
  assert.match(daemon.stdout(), /gc: removed app:\S+ and \d+ blob file\(s\)/);
});

test('the token and port survive a restart; --rotate-token makes a new token', { skip }, async (t) => {
  const defer = deferrer(t);
  const project = appProject({ after: defer });
  const first = await startDaemon(project);
  defer(() => first.stop());
  await first.stop();
  const identity = statSync(join(project.dir, '.nixdock', 'daemon-identity.json'));
  assert.equal(identity.mode & 0o777, 0o600, 'only the owner may read the token');

  const second = await startDaemon(project);
  defer(() => second.stop());
  assert.equal(second.info.token, first.info.token);
  assert.equal(second.info.port, first.info.port, 'port 0 reuses the port of the last start when it is free');
  await second.stop();

  const rotated = await startDaemon(project, ['--rotate-token']);
  defer(() => rotated.stop());
  assert.notEqual(rotated.info.token, first.info.token);
  // The old token no longer opens the WebSocket.
  const refused = await refusal(rotated.info.wsUrl, { Authorization: `Bearer ${first.info.token}` });
  assert.equal(refused.status, 401);
});

test('a configured port that is taken falls back to a free one, printed and written to daemon.json', { skip }, async (t) => {
  const defer = deferrer(t);
  const project = appProject({ after: defer });
  const blocker = createServer();
  await new Promise<void>((done) => blocker.listen(0, '127.0.0.1', done));
  defer(() => blocker.close());
  const taken = (blocker.address() as AddressInfo).port;
  project.write('nixdock.config.json', JSON.stringify({ specs: ['images/*.json'], daemon: { port: taken, debounceMs: 100 } }));
  const proc = spawnNixdock(project.dir, ['watch']);
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  defer(async () => {
    proc.kill('SIGTERM');
    await exited(proc);
  });
  const info = await until(() => readInfo(project)?.pid === proc.pid && readInfo(project), 'daemon.json');
  assert.notEqual(info.port, taken);
  await until(() => err.includes(`port ${taken} is in use; listening on ${info.port} instead`), 'the printed port');
  const client = await connected(info);
  client.ws.close();
});

test('watch --open hands the dashboard URL with its token to $BROWSER', { skip }, async (t) => {
  const defer = deferrer(t);
  const project = appProject({ after: defer });
  const opened = join(project.dir, 'opened.txt');
  project.write('browser.sh', `#!/bin/sh\nprintf '%s' "$1" > '${opened}'\n`);
  chmodSync(join(project.dir, 'browser.sh'), 0o755);
  const proc = spawnNixdock(project.dir, ['watch', '--port', '0', '--open'], { env: { ...NIX_ENV, BROWSER: join(project.dir, 'browser.sh') } });
  defer(async () => {
    proc.kill('SIGTERM');
    await exited(proc);
  });
  const info = await until(() => readInfo(project)?.pid === proc.pid && readInfo(project), 'daemon.json');
  const url = await until(() => existsSync(opened) && readFileSync(opened, 'utf8'), 'the browser to be started');
  assert.equal(url, `${info.url}#token=${info.token}`);
});

test('watch starts on a broken config, reports it, and builds once a save fixes it', { skip }, async (t) => {
  const defer = deferrer(t);
  const project = appProject({ after: defer });
  project.write('images/app.json', '{"name": "app", "contents": [');
  const daemon = await startDaemon(project);
  defer(() => daemon.stop());
  const client = await connected(daemon.info);
  defer(() => client.ws.close());
  const snapshot = client.messages.find(is('snapshot'))!;
  assert.equal(snapshot.configError?.code, 'SPEC_INVALID');
  // The watcher is ready once `watch` says what it watches; a save before that would go unseen.
  await until(() => /watching 0 image\(s\)/.test(daemon.stdout()), 'the watcher');
  assert.match(daemon.stdout(), /config error, keeping the last good config/);

  project.write('images/app.json', appSpec({}));
  await client.waitFor(is('config-reloaded'), 'the config to load');
  await client.waitForEvent((e) => e.type === 'build:succeeded' && e.image === 'app', 'the first build');
});

test('events --until-built returns at once when the image is built from the current files, and --timeout bounds the wait', { skip }, async (t) => {
  const defer = deferrer(t);
  const project = appProject({ after: defer });
  const daemon = await startDaemon(project);
  defer(() => daemon.stop());
  await settled(daemon.info, 'app');
  const started = Date.now();
  const built = nixdock(project.dir, ['events', '--until-built', 'app', '--json', '--timeout', '30']);
  assert.equal(built.status, 0, built.stderr);
  assert.ok(Date.now() - started < 20_000, 'it did not wait for the timeout');
  const before = builtTag(built.stdout);

  // A save right before: the answer is the build of the saved files (a new tag), never the one before.
  project.write('images/app.json', appSpec({ SAVED: 'yes' }));
  const after = nixdock(project.dir, ['events', '--until-built', 'app', '--json', '--timeout', '60']);
  assert.equal(after.status, 0, after.stderr);
  assert.notEqual(builtTag(after.stdout), before);
  await daemon.stop();

  // No daemon at all: --timeout ends the wait with exit code 124.
  const timedOut = nixdock(project.dir, ['events', '--until-built', 'app', '--timeout', '0.5']);
  assert.equal(timedOut.status, 124);
  assert.match(timedOut.stderr, /TIMEOUT/);
});

/** A derivation that logs to stderr and fails, as a broken build does. */
const FAILING_NIX = `derivation {
  name = "broken-app";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "echo 'compiling part one' >&2; echo 'compiling part two' >&2; echo 'error: widget.c:3: expected ;' >&2; exit 3" ];
}`;

test('a failing nix-build: its log lines reach clients as log events, and the whole log stays with the build', { skip }, async (t) => {
  const defer = deferrer(t);
  const project = appProject({ after: defer });
  const daemon = await startDaemon(project);
  defer(() => daemon.stop());
  await settled(daemon.info, 'app');
  const client = await connected(daemon.info);
  defer(() => client.ws.close());

  project.write('app.nix', FAILING_NIX);
  const failed = await client.waitForEvent((e) => e.type === 'build:failed', 'the failed build');
  const logLines = client.events('app').filter((e) => e.type === 'log').map((e) => (e as { line: string }).line);
  for (const line of ['compiling part one', 'compiling part two', 'error: widget.c:3: expected ;']) assert.ok(logLines.includes(line), `log event ${line}: ${logLines.join(' | ')}`);
  assert.ok(logLines.some((l) => /^building '\/nix\/store\/.*-broken-app\.drv'/.test(l)), 'Nix says which derivation it builds');
  assert.ok(failed.type === 'build:failed' && failed.error.code === 'NIX_FAILED');
  assert.match(failed.error.message, /compiling part one\ncompiling part two\nerror: widget\.c:3: expected ;/, 'the whole log, one line per line');

  // The history keeps the log with the build, and inspect prints it with its newlines.
  client.send({ type: 'history', image: 'app', limit: 1 });
  const history = await client.waitFor(is('history'), 'history');
  assert.match(history.builds[0]!.error ?? '', /compiling part one\ncompiling part two/);
  const inspected = nixdock(project.dir, ['inspect', 'app']);
  assert.equal(inspected.status, 0, inspected.stderr);
  assert.match(inspected.stderr, /the latest build \(#\d+, [^)]+\) failed:\n.*\ncompiling part one\ncompiling part two\n/s);
  assert.match(daemon.stdout(), /app: nix: compiling part two\n/, 'watch prints the Nix log as it comes');
});
