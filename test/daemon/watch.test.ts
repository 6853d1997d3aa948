/**
 * The real `nixdock watch` process on a temp project of real Nix derivations, driven through
 * file edits and real WebSocket clients.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import type { BuildEvent } from '../../src/events.js';
import type { ServerMessage } from '../../src/daemon/protocol.js';
import { missingTools } from '../helpers/tools.js';
import { helloApp } from '../helpers/nix.js';
import { exited, spawnNixdock } from '../helpers/cli.js';
import type { Project } from '../helpers/project.js';
import { cleanupList } from '../helpers/tmp.js';
import {
  appProject, appSpec, connected, readInfo, refusal, settled, startDaemon,
  type Client, type DaemonProcess,
} from './helpers.js';

const skip = missingTools([['nix-build', 'nix-bin']]);
let project: Project;
const files = cleanupList();
let daemon: DaemonProcess;

before(async () => {
  if (skip) return;
  project = appProject(files);
  daemon = await startDaemon(project);
  await settled(daemon.info, 'app');
});

after(async () => {
  await daemon?.stop();
  await files.run();
});

/** Env of the image tagged `tag` in the project's OCI layout output (out/oci). */
function imageEnv(tag: string): string[] {
  const blob = (digest: string) => JSON.parse(readFileSync(join(project.dir, 'out', 'oci', 'blobs', 'sha256', digest.slice('sha256:'.length)), 'utf8'));
  const index = JSON.parse(readFileSync(join(project.dir, 'out', 'oci', 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  assert.ok(entry, `tag ${tag} in out/oci/index.json`);
  return blob(blob(entry.digest).config.digest).config.Env ?? [];
}

type Msg<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>;
const is = <T extends ServerMessage['type']>(type: T) => (m: ServerMessage): m is Msg<T> => m.type === type;

/** Messages from the first `change` to the build:succeeded that follows it. */
async function rebuildAfterChange(client: Client): Promise<{ change: Msg<'change'>; events: BuildEvent[] }> {
  const change = await client.waitFor(is('change'), 'a change message');
  const from = client.messages.indexOf(change);
  await client.waitFor((m): m is Msg<'event'> => client.messages.indexOf(m) > from && m.type === 'event' && m.event.type === 'build:succeeded', 'the rebuild');
  const events = client.messages.slice(from).flatMap((m) => (m.type === 'event' ? [m.event] : []));
  return { change, events };
}

function assertBuildOrder(events: BuildEvent[]): Extract<BuildEvent, { type: 'build:succeeded' }> {
  const types = events.map((e) => e.type).filter((t) => t !== 'progress' && t !== 'resolve:done' && t !== 'plan:done' && t !== 'output:written');
  assert.equal(types[0], 'build:started', `first event: ${types.join(', ')}`);
  assert.equal(types.at(-1), 'build:succeeded');
  assert.ok(types.slice(1, -1).every((t) => t === 'layer:built' || t === 'layer:reused'), `layer events in between: ${types.join(', ')}`);
  const ids = new Set(events.map((e) => e.buildId));
  assert.equal(ids.size, 1, 'all events belong to one build');
  return events.at(-1) as Extract<BuildEvent, { type: 'build:succeeded' }>;
}

test('a client gets hello, then a snapshot of every image with its last build', { skip }, async () => {
  const client = await connected(daemon.info);
  const [hello, snapshot] = client.messages;
  assert.equal(hello?.type, 'hello');
  assert.equal((hello as Msg<'hello'>).protocol, 1);
  assert.deepEqual((hello as Msg<'hello'>).images, ['app']);
  const app = (snapshot as Msg<'snapshot'>).images[0]!;
  assert.equal(app.name, 'app');
  assert.equal(app.lastBuild?.status, 'succeeded');
  assert.ok(app.lastBuild!.layers.length >= 2, 'the last build lists its layers');
  assert.ok(app.source.file.endsWith('images/app.json'));
  client.ws.close();
});

test('editing the spec file rebuilds its image, reusing every layer', { skip }, async () => {
  const client = await connected(daemon.info);
  project.write('images/app.json', appSpec({ MODE: 'edited' }));
  const { change, events } = await rebuildAfterChange(client);
  assert.ok(change.files.some((f) => f.endsWith('images/app.json')));
  assert.equal(change.config, true);
  const done = assertBuildOrder(events);
  assert.equal(done.layersBuilt, 0, 'a config-only change writes no layer');
  assert.ok(done.layersReused >= 2);
  client.ws.close();
});

test('editing the .nix file rebuilds only the layers whose store paths changed', { skip }, async () => {
  const client = await connected(daemon.info);
  project.write('app.nix', helloApp('v2: edited'));
  const { change, events } = await rebuildAfterChange(client);
  assert.ok(change.files.some((f) => f.endsWith('app.nix')));
  assert.deepEqual(change.images, ['app']);
  const done = assertBuildOrder(events);
  const built = events.filter((e) => e.type === 'layer:built') as Array<Extract<BuildEvent, { type: 'layer:built' }>>;
  const reused = events.filter((e) => e.type === 'layer:reused') as Array<Extract<BuildEvent, { type: 'layer:reused' }>>;
  assert.equal(done.layersBuilt, built.length);
  assert.ok(built.length >= 1, 'the changed app is rebuilt');
  assert.ok(reused.some((e) => e.storePaths.some((p) => p.endsWith('-busybox-static'))), 'busybox is reused');
  assert.ok(built.every((e) => !e.storePaths.some((p) => p.endsWith('-busybox-static'))), 'busybox is not rebuilt');
  client.ws.close();
});

test('a spec file with invalid JSON mid-save is reported; the last good config keeps serving', { skip }, async () => {
  const client = await connected(daemon.info);
  project.write('images/app.json', '{ "name": "app", ');
  const error = await client.waitFor(is('config-error'), 'config-error');
  assert.equal(error.error.code, 'SPEC_INVALID');
  assert.ok(error.error.location?.file?.endsWith('images/app.json'));
  const reconnect = await connected(daemon.info);
  const snapshot = reconnect.messages.find(is('snapshot'))!;
  assert.equal(snapshot.configError?.code, 'SPEC_INVALID', 'a new client sees the current config error');
  assert.deepEqual(snapshot.images.map((i) => i.name), ['app']);
  project.write('images/app.json', appSpec({ MODE: 'fixed' }));
  await client.waitFor(is('config-reloaded'), 'config-reloaded');
  await client.waitForEvent((e) => e.type === 'build:succeeded', 'the rebuild after the fix');
  assert.equal(client.events().filter((e) => e.type === 'build:started').length, 1, 'the broken save started no build');
  client.ws.close();
  reconnect.ws.close();
});

test('50 clients connected at once all receive the events of a rebuild', { skip }, async () => {
  const clients = await Promise.all(Array.from({ length: 50 }, () => connected(daemon.info)));
  clients[0]!.send({ type: 'rebuild', image: 'app' });
  await Promise.all(clients.map((c) => c.waitForEvent((e) => e.type === 'build:succeeded', 'build:succeeded on every client')));
  const sequences = clients.map((c) => c.events().map((e) => e.type).filter((t) => t !== 'progress').join(','));
  assert.equal(new Set(sequences).size, 1, 'every client saw the same events in the same order');
  assert.match(sequences[0]!, /^build:started,.*build:succeeded$/);
  for (const c of clients) c.ws.close();
});

test('connections without the token, with a wrong one or from another Origin are refused; others keep working', { skip }, async () => {
  const { info } = daemon;
  const bystander = await connected(info);
  assert.equal((await refusal(info.wsUrl, {})).status, 401);
  assert.equal((await refusal(info.wsUrl, { Authorization: 'Bearer not-the-token' })).status, 401);
  assert.equal((await refusal(info.wsUrl, { Origin: 'http://evil.example' }, ['nixdock.v1', `nixdock.token.${info.token}`])).status, 403);
  const foreign = await refusal(info.wsUrl, { Authorization: `Bearer ${info.token}`, Origin: `http://localhost:${info.port + 1}` });
  assert.equal(foreign.status, 403);
  assert.match(foreign.body, /Origin/);

  // The dashboard's own way in: its origin, the token as a subprotocol.
  const selected = await new Promise<string>((resolve, reject) => {
    const ws = new WebSocket(info.wsUrl, ['nixdock.v1', `nixdock.token.${info.token}`], { headers: { Origin: `http://127.0.0.1:${info.port}` } });
    ws.on('open', () => { resolve(ws.protocol); ws.close(); });
    ws.on('error', reject);
  });
  assert.equal(selected, 'nixdock.v1');

  bystander.send({ type: 'history', image: 'app', limit: 5 });
  const history = await bystander.waitFor(is('history'), 'history reply');
  assert.ok(history.builds.length >= 1);
  assert.ok(history.builds.every((b) => b.image === 'app'));
  bystander.ws.close();
});

test('malformed, oversized, binary and unknown messages are refused with a reason; the daemon keeps serving', { skip }, async () => {
  const malformed = await connected(daemon.info);
  malformed.send('{not json');
  assert.deepEqual(await malformed.closed, { code: 1008, reason: 'Malformed JSON' });

  const oversized = await connected(daemon.info);
  oversized.send(JSON.stringify({ type: 'history', pad: 'x'.repeat(70 * 1024) }));
  assert.equal((await oversized.closed).code, 1009);

  const binary = await connected(daemon.info);
  binary.ws.send(Buffer.from([1, 2, 3]));
  assert.equal((await binary.closed).code, 1003);

  const client = await connected(daemon.info);
  client.send({ type: 'launch-missiles' });
  const unknown = await client.waitFor(is('error'), 'error reply');
  assert.equal(unknown.error.code, 'INPUT_INVALID');
  assert.match(unknown.error.message, /unknown message type "launch-missiles"/);
  client.send({ type: 'rebuild', image: 'nope' });
  const missing = await client.waitFor((m): m is Msg<'error'> => m.type === 'error' && m.error.code === 'IMAGE_NOT_FOUND', 'IMAGE_NOT_FOUND');
  assert.equal(missing.request, 'rebuild');
  assert.equal(client.ws.readyState, client.ws.OPEN, 'a bad request does not cost the connection');
  client.ws.close();
});

test('200 rapid saves coalesce into at most 3 builds, the last one of the final content', { skip }, async () => {
  const client = await connected(daemon.info);
  for (let i = 0; i < 200; i++) {
    project.write('images/app.json', appSpec({ SAVE: String(i) }));
    await new Promise((r) => setTimeout(r, 1));
  }
  const lastSave = appSpec({ SAVE: '199' });
  await client.waitForEvent((e) => e.type === 'build:succeeded', 'a build after the saves');
  await settled(daemon.info, 'app');
  const started = client.events().filter((e) => e.type === 'build:started');
  assert.ok(started.length >= 1 && started.length <= 3, `${started.length} builds started`);
  assert.equal(project.read('images/app.json'), lastSave);
  client.send({ type: 'history', image: 'app', limit: 1 });
  const history = await client.waitFor(is('history'), 'history');
  const newest = history.builds[0]!;
  assert.equal(newest.status, 'succeeded', 'the newest build finished');
  assert.ok(imageEnv(newest.tag!).includes('SAVE=199'), 'the newest image has the content of the last save');
  client.ws.close();
});

test('a second daemon on the same project refuses to start and says where the first one is', { skip }, async () => {
  const second = spawnNixdock(project.dir, ['watch', '--port', '0']);
  let stderr = '';
  second.stderr!.on('data', (d) => (stderr += d));
  const code = await exited(second);
  assert.equal(code, 1);
  assert.ok(stderr.includes(`already running for this project at ${daemon.info.url} (pid ${daemon.info.pid})`), stderr);
  assert.equal(readInfo(project)?.pid, daemon.info.pid, 'daemon.json still names the first daemon');
});

test('SIGTERM closes clients, frees the port and removes daemon.json', { skip }, async () => {
  const client = await connected(daemon.info);
  const code = await daemon.stop();
  assert.equal(code, 0, daemon.stderr());
  assert.equal((await client.closed).code, 1001);
  assert.equal(readInfo(project), undefined);
  const refused = await new Promise<boolean>((resolve) => {
    const socket = tcpConnect(daemon.info.port, daemon.info.host);
    socket.on('connect', () => { socket.destroy(); resolve(false); });
    socket.on('error', () => resolve(true));
  });
  assert.ok(refused, 'nothing listens on the port any more');
});
