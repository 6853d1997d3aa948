import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { DigestStream, gzipDeterministic, hashLayer } from '../../src/layer/hash.js';
import type { LayerSource } from '../../src/types.js';
import { missingTools } from '../helpers/tools.js';
import { readAll } from './fixtures.js';

/** Compressible but not trivial: text-like runs mixed with random bytes, a few MiB. */
const INPUT = Buffer.concat(Array.from({ length: 64 }, (_, i) => Buffer.concat([Buffer.from(`line ${i} `.repeat(2000)), randomBytes(4096)])));

function chunked(bytes: Buffer, size: number): Readable {
  return Readable.from(Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size)));
}

function gzip(bytes: Buffer, chunkSize: number): Promise<Buffer> {
  return readAll(chunked(bytes, chunkSize).pipe(gzipDeterministic()));
}

function sourceOf(bytes: Buffer): LayerSource {
  return { kind: 'base', key: 'test', storePaths: [], description: 'test bytes', size: async () => bytes.length, open: () => chunked(bytes, 65536) };
}

describe('layer hashing', () => {
  test('DigestStream passes bytes through unchanged and reports their sha256 and count', async () => {
    const digest = new DigestStream();
    const out = await readAll(chunked(INPUT, 1000).pipe(digest));
    assert.ok(out.equals(INPUT));
    assert.equal(digest.digest(), `sha256:${createHash('sha256').update(INPUT).digest('hex')}`);
    assert.equal(digest.bytes, INPUT.length);
  });

  test('hashLayer gives the diff_id and size of what the source streams, and stops on abort', async () => {
    const result = await hashLayer(sourceOf(INPUT));
    assert.deepEqual(result, { diffId: `sha256:${createHash('sha256').update(INPUT).digest('hex')}`, size: INPUT.length });
    await assert.rejects(hashLayer(sourceOf(INPUT), AbortSignal.abort()), { name: 'AbortError' });
  });
});

describe('deterministic gzip', () => {
  test('equal input gives equal bytes however it is chunked, with a fixed header', async () => {
    const outputs = await Promise.all([gzip(INPUT, 1 << 20), gzip(INPUT, 4096), gzip(INPUT, 777)]);
    assert.ok(outputs[0]!.equals(outputs[1]!) && outputs[0]!.equals(outputs[2]!));
    const header = outputs[0]!.subarray(0, 10);
    assert.deepEqual([...header], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3], 'no name, mtime 0, XFL 0 (level 6), OS Unix');
    assert.ok(outputs[0]!.length < INPUT.length / 2, 'it compresses');
  });

  test('gzip -d restores the input exactly', { skip: missingTools([['gzip', 'gzip']]) }, async () => {
    const restored = execFileSync('gzip', ['-dc'], { input: await gzip(INPUT, 65536), maxBuffer: 64 * 1024 * 1024 });
    assert.ok(restored.equals(INPUT));
  });
});
