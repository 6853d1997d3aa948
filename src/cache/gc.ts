/**
 * Garbage collection of blobs and index rows: plan in the index, protect what existing OCI
 * layouts still reference, remove the rows, then the blob files.
 *
 * Rows go first: if gc is killed between the two steps, the leftover is an unreferenced file
 * (wasted space a later gc cannot see) rather than a row naming a file that is gone.
 */
import { statSync, unlinkSync } from 'node:fs';
import type { Digest } from '../types.js';
import type { BuildCache } from './cache.js';
import { blobPath, liveDigests } from '../formats/oci-layout/blobs.js';

export interface GcOptions {
  /** Builds kept per image (newest first). */
  keepBuilds: number;
  /** Report what would go, change nothing. */
  dryRun: boolean;
}

export interface RemovedBlob {
  digest: Digest;
  dirs: string[];
  /** Bytes freed (or that would be) across those directories. */
  bytes: number;
}

export interface GcReport {
  dryRun: boolean;
  keepBuilds: number;
  builds: number[];
  layers: number;
  /** Store-path rows removed; not computed by a dry run. */
  storePaths?: number;
  blobs: RemovedBlob[];
  bytes: number;
}

export function collectGarbage(index: BuildCache, opts: GcOptions): GcReport {
  const live = liveDigests(index.blobDirs());
  const plan = index.gcPlan(opts.keepBuilds, live);
  if (opts.dryRun) {
    const blobs = plan.blobs.map((blob) => ({ ...blob, bytes: sumSizes(blob.digest, blob.dirs) }));
    return report(opts, plan.buildIds, plan.layerKeys.length, undefined, blobs);
  }
  const applied = index.applyGc(plan);
  const blobs = applied.blobs.map((blob) => ({ ...blob, bytes: removeBlob(blob.digest, blob.dirs) }));
  return report(opts, applied.buildIds, applied.layers, applied.storePaths, blobs);
}

function report(opts: GcOptions, builds: number[], layers: number, storePaths: number | undefined, blobs: RemovedBlob[]): GcReport {
  return {
    dryRun: opts.dryRun,
    keepBuilds: opts.keepBuilds,
    builds,
    layers,
    ...(storePaths !== undefined && { storePaths }),
    blobs,
    bytes: blobs.reduce((sum, blob) => sum + blob.bytes, 0),
  };
}

function sumSizes(digest: Digest, dirs: string[]): number {
  return dirs.reduce((sum, dir) => sum + (sizeOf(blobPath(dir, digest)) ?? 0), 0);
}

/** Deletes the blob from each directory; a file already gone is fine (the row was only a hint). */
function removeBlob(digest: Digest, dirs: string[]): number {
  let freed = 0;
  for (const dir of dirs) {
    const file = blobPath(dir, digest);
    const size = sizeOf(file);
    if (size === undefined) continue;
    unlinkSync(file);
    freed += size;
  }
  return freed;
}

function sizeOf(file: string): number | undefined {
  try {
    return statSync(file).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
