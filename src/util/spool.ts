/**
 * Streams bytes to a temporary file while hashing them, so a blob's digest and size are known
 * before it is uploaded or stored, and memory stays bounded whatever the layer size.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestStream } from '../digest.js';
import { withWritePath } from '../errors.js';
import type { Digest } from '../types.js';

export interface SpooledBlob {
  path: string;
  digest: Digest;
  size: number;
  /** Deletes the temp file (idempotent). */
  remove(): Promise<void>;
}

/** Writes `source` to a new temp file in `dir` (default the OS temp dir), hashing as it goes. */
export async function spool(source: Readable, opts: { dir?: string; signal?: AbortSignal; through?: Array<Duplex | undefined> } = {}): Promise<SpooledBlob> {
  const dir = opts.dir ?? tmpdir();
  const path = join(dir, `.nixdock-blob-${randomBytes(8).toString('hex')}.tmp`);
  const remove = () => rm(path, { force: true });
  const tap = new DigestStream();
  try {
    const write = createWriteStream(path, { flags: 'wx', mode: 0o644 });
    const signal = opts.signal;
    const through = (opts.through ?? []).filter((d): d is Duplex => d !== undefined);
    await pipeline([source, ...through, tap, write], { signal });
  } catch (err) {
    await remove();
    throw withWritePath(err, path);
  }
  return { path, digest: tap.digest(), size: tap.bytes, remove };
}
