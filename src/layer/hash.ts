/**
 * Hashing of layer bytes (deterministic compression is in gzip.ts).
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Digest, LayerSource } from '../types.js';

/** Passes bytes through unchanged while hashing and counting them. */
export class DigestStream extends Transform {
  bytes = 0;
  private readonly hash: Hash = createHash('sha256');
  private result: Digest | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  /** The sha256 of everything that passed; call once the stream has finished (later calls return the same value). */
  digest(): Digest {
    this.result ??= `sha256:${this.hash.digest('hex')}`;
    return this.result;
  }
}

/** Reads a layer once to learn its diff_id (sha256 of the uncompressed tar) and size. */
export async function hashLayer(source: LayerSource, signal?: AbortSignal): Promise<{ diffId: Digest; size: number }> {
  if (source.writeToFd) return { diffId: await source.writeToFd(undefined, { signal }), size: await source.size() };
  const digest = new DigestStream();
  const discard = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  await pipeline(source.open(), digest, discard, signal ? { signal } : {});
  return { diffId: digest.digest(), size: digest.bytes };
}
