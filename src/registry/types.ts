/**
 * The small interfaces the registry client depends on, so any implementation fits: the layer
 * index (diff_id → compressed digest), credentials, and the per-blob progress reported by push.
 */
import type { Readable } from 'node:stream';
import type { Codec, CompressedBlob, Digest, LayerSource } from '../types.js';

/** What push needs from the build cache: remember diff_id → compressed digest/size per codec. */
export interface CompressedDigestCache {
  getCompressed(diffId: Digest, codec: Codec): CompressedBlob | undefined;
  putCompressed(diffId: Digest, blob: CompressedBlob): void;
}

/** Where credentials come from. Everything is optional: by default env vars and the usual auth.json files. */
export interface AuthOptions {
  /** Explicit credentials win over everything else. */
  username?: string;
  password?: string;
  /** Environment to read NIXDOCK_REGISTRY_* and auth-file locations from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** auth.json files to consult instead of the default search list. */
  authFiles?: string[];
}

export type BlobKind = 'layer' | 'config';
export type BlobAction = 'uploaded' | 'mounted' | 'skipped';

/** Progress of one blob during a push: one `start`, any number of `progress`, one `done`. */
export type BlobPushEvent =
  | { type: 'start'; kind: BlobKind; index: number }
  | { type: 'progress'; kind: BlobKind; index: number; digest: Digest; bytesSent: number; size: number }
  | { type: 'done'; kind: BlobKind; index: number; digest: Digest; size: number; action: BlobAction };

/**
 * A layer source that can also hand out an already-compressed blob (e.g. read from an OCI
 * layout), so push uploads those exact bytes instead of compressing again.
 */
export interface CompressedLayerSource extends LayerSource {
  openCompressed(codec: Codec): Readable | undefined;
}

export function hasCompressedBytes(source: LayerSource): source is CompressedLayerSource {
  return typeof (source as Partial<CompressedLayerSource>).openCompressed === 'function';
}
