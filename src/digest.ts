/** Digest helpers shared by every stage that names content by its sha256. */
import { createHash } from 'node:crypto';
import { NixdockError } from './errors.js';
import type { Digest } from './types.js';

/** The only digest grammar nixdock accepts: what it writes, and what a blob file may be named by. */
const DIGEST = /^sha256:[0-9a-f]{64}$/;

export function isDigest(value: unknown): value is Digest {
  return typeof value === 'string' && DIGEST.test(value);
}

/** `sha256:<hex>` of a buffer. */
export function sha256(bytes: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * The 64 hex characters of a digest (its blob file name). Checked here, the one place a digest
 * becomes a path, so a digest from a registry or a base image (`sha256:../../etc/passwd`) can
 * never name a file outside blobs/.
 */
export function digestHex(digest: Digest): string {
  if (!isDigest(digest)) {
    throw new NixdockError('INPUT_INVALID', 'A digest is not sha256:<64 lowercase hex>', {
      found: JSON.stringify(String(digest).slice(0, 100)),
      expected: 'sha256:<64 hex>',
      hint: 'The image (or the registry serving it) names content by a malformed digest; nothing was read or written by that name.',
    });
  }
  return digest.slice('sha256:'.length);
}
