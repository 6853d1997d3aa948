/**
 * Checked hashing while bytes flow into an output: like src/layer/hash.ts's DigestStream, plus a
 * check of the byte count (and digest, when known) that fails the stream before its consumer
 * receives the last chunk, so a wrong layer never ends up complete in an output.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { NixdockError } from '../errors.js';
import type { Digest } from '../types.js';

export interface Expected {
  /** Absent: only the byte count is checked (a cold layer, whose digest is being computed). */
  digest?: Digest;
  size: number;
  /** Named in the error, e.g. `layer 2 (/nix/store/…-hello)`. */
  what: string;
  /** The bytes are already known to match `digest`: count them, skip hashing (digest() is then unavailable). */
  trusted?: boolean;
}

/** Throws when `bytes` and the `actual` digest (computed by whoever wrote them, e.g. LayerSource.writeToFd) are not what was expected. */
export function assertExpected(expect: Expected, bytes: number, actual: Digest): void {
  const mismatch = checkExpected(expect, bytes, actual);
  if (mismatch) throw mismatch;
}

export class CheckedDigestStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private held: Buffer | undefined;
  private result: Digest | undefined;
  /** Bytes seen so far. */
  bytes = 0;

  /** The most recent chunk is held back until the end, so a mismatch fails before it passes. */
  constructor(private readonly expect: Expected) {
    super();
  }

  /** `sha256:<hex>` of everything that passed; only valid once the stream has ended. */
  digest(): Digest {
    if (!this.result) throw new NixdockError('INTERNAL', 'CheckedDigestStream.digest() called before the stream ended');
    return this.result;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.expect.trusted) this.hash.update(chunk);
    this.bytes += chunk.length;
    const previous = this.held;
    this.held = chunk;
    callback(null, previous);
  }

  override _flush(callback: TransformCallback): void {
    this.result = this.expect.trusted ? this.expect.digest! : `sha256:${this.hash.digest('hex')}`;
    const mismatch = checkExpected(this.expect, this.bytes, this.result);
    if (mismatch) return callback(mismatch);
    callback(null, this.held);
  }
}

function checkExpected(expect: Expected, bytes: number, actual: Digest): NixdockError | undefined {
  if (bytes !== expect.size) {
    return new NixdockError('LAYER_BUILD', `${expect.what} produced ${bytes} bytes, but its size was computed as ${expect.size}`, {
      found: `${bytes} bytes`,
      expected: `${expect.size} bytes`,
      hint: 'A store path changed while the layer was being written; build again.',
    });
  }
  if (expect.digest === undefined || actual === expect.digest) return undefined;
  return new NixdockError('DIGEST_MISMATCH', `The bytes of ${expect.what} do not match its recorded digest`, {
    found: actual,
    expected: expect.digest,
    hint: 'A store path changed after its layer was cached, or the cache is stale: run `nixdock gc` or delete the cache directory and build again.',
  });
}
