/**
 * The build history is written by a reporter on the event bus, for `nixdock stream` as for
 * `nixdock build`: a streamed image gets its history row, and a failed stream its build:failed
 * event and a failed row. Runs on the dir store of examples/store (no Nix needed).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { streamImage } from '../../src/build/build.js';
import { BuildCache } from '../../src/cache/cache.js';
import { normalizeImage, normalizeTopLevel } from '../../src/config/normalize.js';
import type { ResolvedConfig } from '../../src/config/types.js';
import { EventBus, type BuildEvent } from '../../src/events.js';

const STORE = fileURLToPath(new URL('../../examples/store', import.meta.url));
const HELLO = '/nix/store/lmyy4dl2bzjln51xcr9cjadm3x1nq9fm-hello-static';

test('nixdock stream writes a history row, and a failed stream emits build:failed and records it', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'nixdock-history-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const config: ResolvedConfig = { configFile: join(root, 'nixdock.config.ts'), ...normalizeTopLevel({ store: { type: 'dir', path: STORE } }, root), images: [], dependencies: [] };
  const cache = BuildCache.open(config.cacheDir);
  t.after(() => cache.close());
  const bus = new EventBus();
  const events: BuildEvent[] = [];
  bus.on((event) => events.push(event));
  const spec = (name: string, contents: string[]) => normalizeImage({ name, contents }, { code: 'CONFIG_INVALID', file: config.configFile, field: '', root, storeDir: '/nix/store' });
  const out = new PassThrough();
  out.resume();

  const image = await streamImage(spec('hello', [HELLO]), { config, bus, index: cache, reason: 'nixdock stream' }, out);
  const streamed = cache.lastBuild('hello');
  assert.equal(streamed?.status, 'succeeded');
  assert.equal(streamed.reason, 'nixdock stream');
  assert.equal(streamed.configDigest, image.configDigest);
  assert.deepEqual(streamed.outputs, [{ format: 'stream' }]);
  assert.deepEqual(streamed.layers.map((l) => l.diffId), image.layers.map((l) => l.diffId));

  const missing = `/nix/store/${'a'.repeat(32)}-missing`;
  await assert.rejects(streamImage(spec('broken', [missing]), { config, bus, index: cache }, out));
  const failed = events.find((e) => e.type === 'build:failed' && e.image === 'broken');
  assert.ok(failed, 'a failed stream emits build:failed');
  assert.equal(cache.lastBuild('broken')?.status, 'failed');
});
