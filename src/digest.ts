/**
 * Digests: naming content by its sha256, and the one stream that hashes bytes as they flow —
 * to learn a layer's diff_id, to check a base image's blobs against what the image says, and to
 * check a layer on its way into an output against its recorded digest and size.
 */
import { createHash, type Hash } from 'node:crypto';
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
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

/** `sha256:<hex>` of everything a stream yields (a blob file, say); its errors reject. */
export async function sha256Of(stream: AsyncIterable<Buffer | string>): Promise<Digest> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
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

export interface DigestStreamOptions {
  /** Run once every byte has passed; an error it returns fails the stream. */
  check?: (bytes: number, digest: Digest) => NixdockError | undefined;
  /**
   * The most recent chunk is held back until `check` passed, so a mismatch fails the stream
   * before its consumer receives the last chunk: a wrong layer never ends up complete in an output.
   */
  holdLast?: boolean;
  /** The bytes are already known to have this digest: count them, skip hashing. */
  trusted?: Digest;
  /** Runs on a copy of the bytes (the layer safety scan), so one read does both; its rejection fails the stream. */
  sideCheck?: (bytes: Readable) => Promise<void>;
}

/** Passes bytes through unchanged while hashing and counting them, and optionally checks them at the end. */
export class DigestStream extends Transform {
  /** Bytes seen so far. */
  bytes = 0;
  private readonly hash: Hash | undefined;
  private result: Digest | undefined;
  private held: Buffer | undefined;
  private readonly side: PassThrough | undefined;
  private readonly sideDone: Promise<void>;

  constructor(private readonly opts: DigestStreamOptions = {}) {
    super();
    this.hash = opts.trusted === undefined ? createHash('sha256') : undefined;
    this.side = opts.sideCheck ? new PassThrough() : undefined;
    this.sideDone = this.side && opts.sideCheck ? opts.sideCheck(this.side) : Promise.resolve();
    if (this.side) {
      const side = this.side;
      // A side check that fails early (an unsafe entry) stops the read right away.
      this.sideDone.catch((err: unknown) => this.destroy(err as Error));
      // Read only partly (consumer stopped early): stop the side check too, rather than leave it waiting.
      this.on('close', () => {
        if (!side.writableFinished) side.destroy(new Error('read stopped before the end'));
      });
    }
  }

  /** The sha256 of everything that passed; call once the stream has finished (later calls return the same value). */
  digest(): Digest {
    this.result ??= this.opts.trusted ?? `sha256:${this.hash!.digest('hex')}`;
    return this.result;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash?.update(chunk);
    this.bytes += chunk.length;
    let out: Buffer | undefined = chunk;
    if (this.opts.holdLast) [out, this.held] = [this.held, chunk];
    if (this.side && !this.side.write(chunk)) this.side.once('drain', () => callback(null, out));
    else callback(null, out);
  }

  override _flush(callback: TransformCallback): void {
    this.side?.end();
    this.sideDone.then(() => {
      const failed = this.opts.check?.(this.bytes, this.digest());
      if (failed) return callback(failed);
      callback(null, this.held);
    }, callback);
  }
}

/** What an output expects of a layer's uncompressed bytes. */
export interface Expected {
  /** Absent: only the byte count is checked (a cold layer, whose digest is being computed). */
  digest?: Digest;
  size: number;
  /** Named in the error, e.g. `layer 2 (/nix/store/…-hello)`. */
  what: string;
  /** The bytes are already known to match `digest`: count them, skip hashing. */
  trusted?: boolean;
}

/** A stream that checks a layer flowing into an output against `expect`, failing before its last chunk passes. */
export function expectingStream(expect: Expected): DigestStream {
  return new DigestStream({
    holdLast: true,
    ...(expect.trusted && expect.digest !== undefined && { trusted: expect.digest }),
    check: (bytes, actual) => checkExpected(expect, bytes, actual),
  });
}

/** Throws when `bytes` and the `actual` digest (computed by whoever wrote them, e.g. LayerSource.writeToFd) are not what was expected. */
export function assertExpected(expect: Expected, bytes: number, actual: Digest): void {
  const mismatch = checkExpected(expect, bytes, actual);
  if (mismatch) throw mismatch;
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
