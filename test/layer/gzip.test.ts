import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { CHUNK_SIZE, gzipDeterministic } from '../../src/layer/gzip.js';
import { missingTools } from '../helpers/tools.js';
import { readAll, sha256Hex } from '../helpers/bytes.js';

/** Compressible but not trivial, and several pieces long: text-like runs mixed with random bytes (~9 MiB). */
const INPUT = Buffer.concat(Array.from({ length: 160 }, (_, i) => Buffer.concat([Buffer.from(`line ${i} `.repeat(5000)), randomBytes(8192)])));

function chunked(bytes: Buffer, size: number): Readable {
  return Readable.from(Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size)));
}

function gzip(bytes: Buffer, opts: { chunk: number; threads: number }): Promise<Buffer> {
  return readAll(chunked(bytes, opts.chunk).pipe(gzipDeterministic({ threads: opts.threads })));
}

describe('deterministic parallel gzip', () => {
  test('1, 2 and 4 threads, and any input chunking, give the same bytes, with a fixed header', async () => {
    const outputs = await Promise.all([
      gzip(INPUT, { chunk: 1 << 20, threads: 1 }),
      gzip(INPUT, { chunk: 4096, threads: 2 }),
      gzip(INPUT, { chunk: 777, threads: 4 }),
    ]);
    assert.equal(sha256Hex(outputs[1]!), sha256Hex(outputs[0]!));
    assert.equal(sha256Hex(outputs[2]!), sha256Hex(outputs[0]!));
    assert.deepEqual([...outputs[0]!.subarray(0, 10)], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3], 'no name, mtime 0, XFL 0 (level 6), OS Unix');
    assert.ok(INPUT.length > 8 * CHUNK_SIZE, 'the input spans many pieces');
    // The dictionary carries matches across pieces: within 1 % of one zlib stream at the same level.
    assert.ok(outputs[0]!.length < gzipSync(INPUT, { level: 6 }).length * 1.01, 'it compresses like one stream');
  });

  test('gzip -t accepts it and zcat and zlib restore the input exactly', { skip: missingTools([['gzip', 'gzip']]) }, async () => {
    const compressed = await gzip(INPUT, { chunk: 65536, threads: 4 });
    execFileSync('gzip', ['-t'], { input: compressed });
    assert.ok(execFileSync('zcat', { input: compressed, maxBuffer: 64 << 20 }).equals(INPUT));
    assert.ok(gunzipSync(compressed).equals(INPUT));
  });

  test('edge lengths round-trip: empty, one byte, exactly one piece, one piece and one byte', { skip: missingTools([['gzip', 'gzip']]) }, async () => {
    for (const length of [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1]) {
      const input = INPUT.subarray(0, length);
      const compressed = await gzip(input, { chunk: 1000, threads: 2 });
      assert.ok(gunzipSync(compressed).equals(input), `length ${length}`);
      execFileSync('gzip', ['-t'], { input: compressed });
    }
  });

  test('a stream destroyed mid-way stops without an unhandled error', async () => {
    const gz = gzipDeterministic({ threads: 2 });
    gz.write(INPUT.subarray(0, 3 * CHUNK_SIZE));
    gz.destroy(new Error('consumer gone'));
    await assert.rejects(readAll(gz), /consumer gone/);
  });
});
