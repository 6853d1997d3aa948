/**
 * A pass-through stream that hashes what flows through it and, at the end, fails with
 * DIGEST_MISMATCH when the bytes are not what the image says they are. Optionally feeds the same
 * bytes to a side check (the layer safety scan) so one read does both.
 */
import { createHash } from 'node:crypto';
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { NixdockError } from '../errors.js';
import type { Digest } from '../types.js';

export interface VerifyOptions {
  expected: Digest;
  /** Names the bytes in the error, e.g. `layer 2/3 of docker-archive:/x.tar`. */
  what: string;
  /** Which digest this is, for the message: the uncompressed `diff_id` or the stored `blob digest`. */
  digestKind: 'diff_id' | 'blob digest';
  /** Runs on a copy of the bytes; its rejection fails the stream. */
  sideCheck?: (bytes: Readable) => Promise<void>;
  /** Called once the whole stream matched, with its byte count. */
  onVerified?: (size: number) => void;
}

export function verifyingStream(opts: VerifyOptions): Transform {
  const hash = createHash('sha256');
  let size = 0;
  const side = opts.sideCheck ? new PassThrough() : undefined;
  const sideDone = side && opts.sideCheck ? opts.sideCheck(side) : Promise.resolve();

  const stream = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      hash.update(chunk);
      size += chunk.length;
      if (side && !side.write(chunk)) side.once('drain', () => callback(null, chunk));
      else callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      side?.end();
      sideDone.then(() => {
        const actual: Digest = `sha256:${hash.digest('hex')}`;
        if (actual !== opts.expected) return callback(mismatch(opts, actual));
        opts.onVerified?.(size);
        callback();
      }, callback);
    },
  });
  // A side check that fails early (an unsafe entry) stops the read right away.
  sideDone.catch((err: unknown) => stream.destroy(err as Error));
  // Read only partly (consumer stopped early): stop the side check too, rather than leave it waiting.
  stream.on('close', () => {
    if (side && !side.writableFinished) side.destroy(new Error('read stopped before the end'));
  });
  return stream;
}

function mismatch(opts: VerifyOptions, actual: Digest): NixdockError {
  return new NixdockError('DIGEST_MISMATCH', `The bytes of ${opts.what} do not match its ${opts.digestKind}`, {
    location: { file: opts.what },
    found: actual,
    expected: opts.expected,
    hint: 'The base image is corrupt or was changed after it was written; re-create or re-pull it.',
  });
}
