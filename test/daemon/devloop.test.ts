/**
 * What a day in `nixdock watch` needs beyond rebuilding: bounded disk, a dashboard address that
 * survives restarts, a daemon that starts on a broken config, `events` that never waits forever.
 * The real `nixdock watch` process on real Nix derivations, judged by files and WebSocket messages.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ServerMessage } from '../../src/daemon/protocol.js';
import { missingTools } from '../helpers/tools.js';
import { appSpec, connected, makeProject, settled, startDaemon } from './helpers.js';

const skip = missingTools([['nix-build', 'nix-bin']]);
type Msg<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>;
const is = <T extends ServerMessage['type']>(type: T) => (m: ServerMessage): m is Msg<T> => m.type === type;

function layoutTags(dir: string): string[] {
  const index = JSON.parse(readFileSync(join(dir, 'out', 'oci', 'index.json'), 'utf8')) as { manifests: Array<{ annotations: Record<string, string> }> };
  return index.manifests.map((m) => m.annotations['org.opencontainers.image.ref.name']!);
}

test('watch runs gc after each build: out/oci keeps gc.keepBuilds images, not one per edit', { skip }, async (t) => {
  const project = makeProject();
  t.after(() => project.cleanup());
  project.write('nixdock.config.json', JSON.stringify({ specs: ['images/*.json'], daemon: { port: 0, debounceMs: 100 }, gc: { keepBuilds: 1 } }));
  const daemon = await startDaemon(project);
  t.after(() => daemon.stop());
  await settled(daemon.info, 'app');
  const client = await connected(daemon.info);
  t.after(() => client.ws.close());
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
