/**
 * Hashing and deterministic compression of layer bytes.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zlib, createGzip } from 'node:zlib';
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

/** Fixed so a blob's digest depends only on the tar; changing any of these changes every compressed digest. */
const GZIP_OPTIONS = { level: 6, memLevel: 8, windowBits: 15, strategy: zlib.Z_DEFAULT_STRATEGY } as const;
/** The gzip header's OS byte (offset 9): zlib writes the build platform's (3 on Unix, 19 on macOS …); always say Unix. */
const GZIP_OS_OFFSET = 9;
const GZIP_OS_UNIX = 3;

/**
 * A gzip compressor whose output depends only on its input: fixed level and parameters, header mtime 0
 * (zlib writes 0 when no mtime is given) and no file name, and the OS byte forced to Unix.
 * Equal on every machine running the same bundled zlib (Node ships its own); the index records
 * diff_id → compressed digest, so a different zlib elsewhere never breaks a push, it only re-uploads.
 */
export function gzipDeterministic(): Transform {
  const gzip = createGzip(GZIP_OPTIONS);
  // zlib offers no option for the OS byte, so patch it in the output as it is pushed. The pushed
  // chunk is a slice of zlib's output buffer that is never written again, so editing it is safe.
  const push = gzip.push.bind(gzip);
  let offset = 0;
  gzip.push = (chunk: Buffer | null, encoding?: BufferEncoding): boolean => {
    if (chunk !== null) {
      if (offset <= GZIP_OS_OFFSET && offset + chunk.length > GZIP_OS_OFFSET) chunk[GZIP_OS_OFFSET - offset] = GZIP_OS_UNIX;
      offset += chunk.length;
    }
    return push(chunk, encoding);
  };
  return gzip;
}
