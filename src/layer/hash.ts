/** A layer's diff_id: the sha256 of its uncompressed tar. */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestStream } from '../digest.js';
import type { Digest, LayerSource } from '../types.js';

/** Reads a layer once to learn its diff_id (sha256 of the uncompressed tar) and size. */
export async function hashLayer(source: LayerSource, signal?: AbortSignal): Promise<{ diffId: Digest; size: number }> {
  if (source.writeToFd) return { diffId: await source.writeToFd(undefined, { signal }), size: await source.size() };
  const digest = new DigestStream();
  const discard = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  await pipeline(source.open(), digest, discard, signal ? { signal } : {});
  return { diffId: digest.digest(), size: digest.bytes };
}
