/** Digest helpers shared by every stage that names content by its sha256. */
import { createHash } from 'node:crypto';
import type { Digest } from './types.js';

/** `sha256:<hex>` of a buffer. */
export function sha256(bytes: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** The 64 hex characters of a digest (its blob file name). */
export function digestHex(digest: Digest): string {
  return digest.slice('sha256:'.length);
}
