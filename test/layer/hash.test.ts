import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { DigestStream } from '../../src/digest.js';
import { hashLayer } from '../../src/layer/hash.js';
import type { LayerSource } from '../../src/types.js';
import { readAll, sha256 } from '../helpers/bytes.js';

/** Compressible but not trivial: text-like runs mixed with random bytes, a few MiB. */
const INPUT = Buffer.concat(Array.from({ length: 64 }, (_, i) => Buffer.concat([Buffer.from(`line ${i} `.repeat(2000)), randomBytes(4096)])));

function chunked(bytes: Buffer, size: number): Readable {
  return Readable.from(Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size)));
}

function sourceOf(bytes: Buffer): LayerSource {
  return { kind: 'base', key: 'test', storePaths: [], description: 'test bytes', size: async () => bytes.length, open: () => chunked(bytes, 65536) };
}

describe('layer hashing', () => {
  test('DigestStream passes bytes through unchanged and reports their sha256 and count', async () => {
    const digest = new DigestStream();
    const out = await readAll(chunked(INPUT, 1000).pipe(digest));
    assert.ok(out.equals(INPUT));
    assert.equal(digest.digest(), sha256(INPUT));
    assert.equal(digest.bytes, INPUT.length);
  });

  test('hashLayer gives the diff_id and size of what the source streams, and stops on abort', async () => {
    const result = await hashLayer(sourceOf(INPUT));
    assert.deepEqual(result, { diffId: sha256(INPUT), size: INPUT.length });
    await assert.rejects(hashLayer(sourceOf(INPUT), AbortSignal.abort()), { name: 'AbortError' });
  });
});
