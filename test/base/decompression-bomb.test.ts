/**
 * Decompression of untrusted base images is bounded: a gzip bomb fails with a clear error naming
 * the override, and leaves no decompressed copy in the cache.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { NixdockError } from '../../src/errors.js';
import { decompressionLimits, decompressor } from '../../src/formats/decompress.js';
import { nixdock } from '../helpers/cli.js';

const work = mkdtempSync(join(tmpdir(), 'nixdock-bomb-'));
after(() => rmSync(work, { recursive: true, force: true }));
// 64 MiB of zeros is ~64 KiB of gzip: a 1000:1 ratio.
const BOMB = gzipSync(Buffer.alloc(64 * 1024 * 1024));

async function inflate(bytes: Buffer, env: NodeJS.ProcessEnv = {}): Promise<number> {
  let total = 0;
  await pipeline(Readable.from([bytes]), decompressor('gzip', decompressionLimits(env)), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) total += chunk.length;
  });
  return total;
}

test('a gzip bomb stops past 100:1 (plus 16 MiB), naming the override; ordinary data passes', async () => {
  await assert.rejects(inflate(BOMB), (err: NixdockError) => {
    assert.equal(err.code, 'INPUT_INVALID');
    assert.match(err.message, /expands to more than 100 times its compressed size/);
    assert.match(err.hint ?? '', /NIXDOCK_MAX_DECOMPRESSION_RATIO=<n>/);
    return true;
  });
  assert.equal(await inflate(gzipSync(Buffer.from('hello '.repeat(100_000)))), 600_000, 'within the slack');
  assert.equal(await inflate(BOMB, { NIXDOCK_MAX_DECOMPRESSION_RATIO: '0' }), 64 * 1024 * 1024, 'the override lets a genuine image through');
  await assert.rejects(inflate(BOMB, { NIXDOCK_MAX_DECOMPRESSION_RATIO: '0', NIXDOCK_MAX_DECOMPRESSED_BYTES: String(1 << 20) }), /more than 1048576 bytes/);
  assert.throws(() => decompressionLimits({ NIXDOCK_MAX_DECOMPRESSION_RATIO: 'lots' }), /not a non-negative number/);
});

test('nixdock inspect of a gzip-bomb docker-archive fails and leaves nothing in base/archives', () => {
  const archive = join(work, 'bomb.tar.gz');
  writeFileSync(archive, BOMB);
  const cache = join(work, 'xdg-cache');
  const run = nixdock(work, ['inspect', `docker-archive:${archive}`], { ...process.env, XDG_CACHE_HOME: cache });
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, /INPUT_INVALID/);
  assert.match(run.stderr, /decompression bomb/);
  const kept = existsSync(cache) ? readdirSync(cache, { recursive: true }).map(String).filter((f) => /archives\/./.test(f)) : [];
  assert.deepEqual(kept, [], 'no decompressed copy and no temp file');
});
