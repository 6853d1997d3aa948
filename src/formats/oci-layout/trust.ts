/**
 * Which blobs of an OCI layout a build may use without reading them again. Re-hashing every
 * reused blob would make a no-change rebuild read the whole image, so the build cache keeps each
 * blob's stat fingerprint (see OciLayout.blobFingerprint) from when its bytes were known good;
 * only a blob whose fingerprint changed (a write, a truncation, a `touch`, a copy) is re-hashed,
 * and a damaged one is removed so the layer is written again under its name.
 * Not caught: changes that leave size, mtime and ctime as they were — writing the block device
 * underneath, bit rot, or a clock set back to the same nanosecond (skopeo and umoci still check
 * digests when they read the layout).
 */
import type { Codec, Digest, Layer } from '../../types.js';
import { layerSourceWith } from '../../layer/source-view.js';
import type { OciLayout } from './write.js';

/** Where the fingerprints of blobs known good are kept (the build cache). */
export interface FingerprintStore {
  blobFingerprint(digest: Digest, dir: string): string | undefined;
  recordBlobFingerprint(digest: Digest, dir: string, fingerprint: string): void;
}

/** Whether a blob in the layout still holds the bytes its name says; checked before it is reused. */
export async function intactBlob(layout: OciLayout, blob: { digest: Digest; size: number }, store: FingerprintStore): Promise<boolean> {
  // Taken before hashing: a change during the hash changes ctime, so the next check re-hashes.
  const fingerprint = await layout.blobFingerprint(blob.digest, blob.size);
  if (fingerprint === undefined) return false;
  if (store.blobFingerprint(blob.digest, layout.dir) === fingerprint) return true;
  if (!(await layout.blobHashesTo(blob.digest))) {
    await layout.discardBlob(blob.digest);
    return false;
  }
  store.recordBlobFingerprint(blob.digest, layout.dir, fingerprint);
  return true;
}

/** Records the fingerprint of a blob just written (or verified by hashing), so the next build trusts it by stat. */
export async function trustBlob(layout: OciLayout, blob: { digest: Digest; size: number }, store: FingerprintStore): Promise<void> {
  const fingerprint = await layout.blobFingerprint(blob.digest, blob.size);
  if (fingerprint !== undefined) store.recordBlobFingerprint(blob.digest, layout.dir, fingerprint);
}

/** The blob a layout holds for a layer: the tar itself, or its compressed form. */
export function storedBlob(layer: Layer, codec: Codec): { digest: Digest; size: number } {
  return codec === 'none' ? { digest: layer.diffId, size: layer.size } : layer.compressed[codec]!;
}

/**
 * Once a layer's blob is in the layout uncompressed, later sinks (docker-archive, push) read the
 * blob instead of walking the store again: one sequential file instead of thousands of small ones.
 * Only blobs just written or trusted by intactBlob get here, so sinks need not hash them again.
 */
export function blobBacked(layer: Layer, layout: OciLayout, codec: Codec): Layer {
  if (codec !== 'none') return layer;
  const source = layer.source;
  const tarFile = layout.blobPath(layer.diffId);
  return { ...layer, verifiedBytes: true, source: layerSourceWith(source, { tarFile, size: async () => layer.size, open: () => layout.openBlob(layer.diffId) }) };
}
