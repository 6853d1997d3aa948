import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { layerSourceWith } from '../../src/layer/source-view.js';
import type { Digest, LayerSource } from '../../src/types.js';

/** A source like a base layer: a class whose methods live on its prototype. */
class PrototypeSource implements LayerSource {
  readonly kind = 'base' as const;
  readonly key = 'base:x';
  readonly storePaths: readonly string[] = [];
  readonly description = 'a base layer';
  private readonly bytes = Buffer.from('layer bytes');
  async size(): Promise<number> {
    return this.bytes.length;
  }
  open(): Readable {
    return Readable.from([this.bytes]);
  }
}

test('a source seen with a recorded diffId keeps the methods of a class-instance source', async () => {
  const diffId = `sha256:${'a'.repeat(64)}` as Digest;
  const view = layerSourceWith(new PrototypeSource(), { diffId });
  assert.equal(view.diffId, diffId);
  assert.equal(await view.size(), 11);
  const chunks: Buffer[] = [];
  for await (const chunk of view.open()) chunks.push(chunk as Buffer);
  assert.equal(Buffer.concat(chunks).toString(), 'layer bytes');
  assert.equal(view.key, 'base:x');
  assert.equal(view.description, 'a base layer');
});

test('replaced parts win, the rest is delegated', async () => {
  const view = layerSourceWith(new PrototypeSource(), { size: async () => 42, tarFile: '/some/blob' });
  assert.equal(await view.size(), 42);
  assert.equal(view.tarFile, '/some/blob');
  assert.equal(view.writeToFd, undefined);
});
