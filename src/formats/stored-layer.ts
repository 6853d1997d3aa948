/**
 * A base image layer as a LayerSource: its bytes are copied as stored (never re-tarred), served
 * decompressed, and checked the first time they are read — uncompressed sha256 against the
 * config's diff_id, and every entry against escaping the root.
 */
import { mkdir, readFile, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import type { Codec, Digest, LayerSource } from '../types.js';
import { writeFileAtomic } from '../util/atomic.js';
import { autoDecompress } from './decompress.js';
import { checkLayerSafety } from '../tar/safety.js';
import { DigestStream } from '../digest.js';
import { NixdockError } from '../errors.js';

export interface BaseLayerInit {
  diffId: Digest;
  /** Names the layer in errors and history, e.g. `layer 2/3 of oci:/x:v1`. */
  description: string;
  /** The blob as stored (possibly compressed). Each call starts a fresh stream. */
  openBlob(): Readable;
  /** sha256 of the stored blob, when the image names it (OCI layouts): checked as well. */
  blobDigest?: Digest;
  /** The stored blob's codec and size when it is compressed (lets push upload it as is). */
  compressed?: { codec: Exclude<Codec, 'none'>; size: number };
  /** Known without reading when the blob is stored uncompressed. */
  uncompressedSize?: number;
  /** Directory remembering uncompressed sizes by diff_id (a pure function of the content). */
  sizeCacheDir: string;
}

export class BaseLayer implements LayerSource {
  readonly kind = 'base' as const;
  readonly key: string;
  readonly storePaths: readonly string[] = [];
  readonly description: string;
  readonly diffId: Digest;
  private verified = false;
  private knownSize: number | undefined;

  constructor(private readonly init: BaseLayerInit) {
    this.diffId = init.diffId;
    this.key = `base:${init.diffId}`;
    this.description = init.description;
    this.knownSize = init.uncompressedSize;
  }

  async size(): Promise<number> {
    this.knownSize ??= await this.cachedSize();
    // Unknown: read the layer once (which also verifies it) and remember the result.
    this.knownSize ??= await countBytes(this.open());
    return this.knownSize;
  }

  open(): Readable {
    const streams: NodeJS.ReadWriteStream[] = [];
    const { blobDigest } = this.init;
    if (blobDigest && !this.verified) {
      streams.push(this.verifying(blobDigest, 'blob digest'));
    }
    streams.push(autoDecompress());
    if (!this.verified) {
      streams.push(
        this.verifying(this.diffId, 'diff_id', {
          sideCheck: (tar) => checkLayerSafety(tar, this.description),
          onVerified: (size) => this.markVerified(size),
        }),
      );
    }
    return (pipeline as (...streams: unknown[]) => Readable)(this.init.openBlob(), ...streams, () => undefined);
  }

  /** The stored compressed bytes, for sinks that want exactly this codec (push, OCI outputs). */
  openCompressed(codec: Codec): Readable | undefined {
    const { compressed, blobDigest } = this.init;
    if (!compressed || compressed.codec !== codec || !blobDigest) return undefined;
    return pipeline(this.init.openBlob(), this.verifying(blobDigest, 'blob digest'), () => undefined);
  }

  /** Fails with DIGEST_MISMATCH at the end when the bytes are not what the image says they are. */
  private verifying(expected: Digest, digestKind: 'diff_id' | 'blob digest', opts: { sideCheck?: (tar: Readable) => Promise<void>; onVerified?: (size: number) => void } = {}): DigestStream {
    return new DigestStream({
      ...(opts.sideCheck && { sideCheck: opts.sideCheck }),
      check: (size, actual) => {
        if (actual !== expected) return digestMismatch(this.description, digestKind, expected, actual);
        opts.onVerified?.(size);
        return undefined;
      },
    });
  }

  private markVerified(size: number): void {
    this.verified = true;
    if (this.knownSize === undefined) void this.rememberSize(size);
    this.knownSize = size;
  }

  private sizeFile(): string {
    return join(this.init.sizeCacheDir, this.diffId.slice('sha256:'.length));
  }

  private async cachedSize(): Promise<number | undefined> {
    const text = await readFile(this.sizeFile(), 'utf8').catch(() => undefined);
    // Marks it used, for gc (src/cache/gc-files.ts).
    if (text !== undefined) await utimes(this.sizeFile(), new Date(), new Date()).catch(() => undefined);
    const size = Number(text);
    return text !== undefined && Number.isSafeInteger(size) && size >= 0 ? size : undefined;
  }

  private async rememberSize(size: number): Promise<void> {
    try {
      await mkdir(this.init.sizeCacheDir, { recursive: true });
      await writeFileAtomic(this.sizeFile(), String(size));
    } catch {
      // Only a cache: the size is recomputed next time.
    }
  }
}

function digestMismatch(what: string, digestKind: string, expected: Digest, actual: Digest): NixdockError {
  return new NixdockError('DIGEST_MISMATCH', `The bytes of ${what} do not match its ${digestKind}`, {
    location: { file: what },
    found: actual,
    expected,
    hint: 'The base image is corrupt or was changed after it was written; re-create or re-pull it.',
  });
}

async function countBytes(stream: Readable): Promise<number> {
  let size = 0;
  for await (const chunk of stream) size += (chunk as Buffer).length;
  return size;
}
