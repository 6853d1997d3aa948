/**
 * Streams bytes to a temporary file while hashing them, so a blob's digest and size are known
 * before it is uploaded or stored, and memory stays bounded whatever the layer size.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, type Duplex, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Digest } from '../types.js';

export interface SpooledBlob {
  path: string;
  digest: Digest;
  size: number;
  /** Deletes the temp file (idempotent). */
  remove(): Promise<void>;
}

/** Writes `source` to a new temp file in `dir` (default the OS temp dir), hashing as it goes. */
export async function spool(source: Readable, opts: { dir?: string; signal?: AbortSignal; through?: Duplex } = {}): Promise<SpooledBlob> {
  const dir = opts.dir ?? tmpdir();
  const path = join(dir, `.nixdock-blob-${randomBytes(8).toString('hex')}.tmp`);
  const remove = () => rm(path, { force: true });
  const hash = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  try {
    const write = createWriteStream(path, { flags: 'wx', mode: 0o644 });
    const signal = opts.signal;
    await (opts.through ? pipeline(source, opts.through, tap, write, { signal }) : pipeline(source, tap, write, { signal }));
  } catch (err) {
    await remove();
    throw err;
  }
  return { path, digest: `sha256:${hash.digest('hex')}`, size, remove };
}
