/**
 * Garbage collection of blobs and index rows: drop old images from nixdock's own OCI layouts,
 * plan in the index, protect what the layouts still reference, remove the rows, then the files.
 *
 * A layout entry is nixdock's when its `io.containerd.image.name` names an image with builds in
 * the index. Such an entry goes unless a kept build wrote its manifest or it carries the image's
 * current tag (that of its latest successful build); an image that is building keeps all its
 * entries. Entries of other images (copied in with skopeo, say) are never touched. Without this,
 * every build with a content-derived tag adds an entry, and the layout keeps every build alive.
 *
 * Rows go first: if gc is killed between the two steps, the leftover is an unreferenced file
 * (wasted space a later gc cannot see) rather than a row naming a file that is gone.
 */
import { readFileSync, statSync, unlinkSync } from 'node:fs';
import { OciLayout, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME } from '../formats/oci-layout/write.js';
import type { Descriptor, Digest } from '../types.js';
import type { GcBlob, KeptImage } from './gc-plan.js';
import type { BuildCache } from './cache.js';
import { blobPath, liveDigests } from '../formats/oci-layout/blobs.js';
import { dirname } from 'node:path';
import { collectCacheFiles, type CacheGcReport } from './gc-files.js';

/** Default of gc.cacheDays. */
export const DEFAULT_CACHE_DAYS = 7;

export interface GcOptions {
  /** Builds kept per image (newest first). */
  keepBuilds: number;
  /** Report what would go, change nothing. */
  dryRun: boolean;
  /** collectAllGarbage: cached base-image files unused this many days go, unless a kept build uses them. */
  cacheDays?: number;
}

export interface RemovedBlob {
  digest: Digest;
  dirs: string[];
  /** Bytes freed (or that would be) across those directories. */
  bytes: number;
}

/** An image entry removed from an OCI layout's index.json. */
export interface RemovedEntry {
  layout: string;
  /** NAME:TAG as the entry named it. */
  image: string;
  manifestDigest: Digest;
}

export interface GcReport {
  dryRun: boolean;
  keepBuilds: number;
  /** Old images dropped from nixdock's layouts (their blobs are among `blobs`). */
  entries: RemovedEntry[];
  builds: number[];
  layers: number;
  /** Store-path rows removed; not computed by a dry run. */
  storePaths?: number;
  blobs: RemovedBlob[];
  /** Bytes of `blobs`. */
  bytes: number;
  /** The file caches under cacheDir (base/, pulled/, tmp/), when collectAllGarbage ran. */
  caches?: CacheGcReport;
}

/** collectGarbage, then the file caches of the index's cache directory (see ./gc-files.ts). */
export async function collectAllGarbage(index: BuildCache, opts: GcOptions): Promise<GcReport> {
  const report = collectGarbage(index, opts);
  const kept = index.keptDiffIds(opts.keepBuilds);
  const caches = await collectCacheFiles(dirname(index.file), kept, { cacheDays: opts.cacheDays ?? DEFAULT_CACHE_DAYS, dryRun: opts.dryRun });
  return { ...report, caches };
}

export function collectGarbage(index: BuildCache, opts: GcOptions): GcReport {
  const dirs = index.blobDirs();
  const layouts = dirs.map((dir) => new OciLayout(dir, { lock: (update) => index.exclusive(update) }));
  const kept = index.keptImages(opts.keepBuilds);
  const planned = new Map(layouts.map((layout) => [layout.dir, layout.entries().filter((entry) => droppable(entry, kept))]));
  if (opts.dryRun) {
    const live = liveDigests(dirs, new Map([...planned].map(([dir, drop]) => [dir, new Set(drop)])));
    const plan = index.gcPlan(opts.keepBuilds, live);
    const blobs = [...plan.blobs, ...unreachable(planned, live, kept, plan.blobs)].map((blob) => ({ ...blob, bytes: sumSizes(blob.digest, blob.dirs) }));
    return report(opts, entriesOf(planned), plan.buildIds, plan.layerKeys.length, undefined, blobs);
  }
  // The layout's own lock re-reads index.json: an entry written since it was planned is judged afresh.
  const dropped = new Map(layouts.map((layout) => [layout.dir, layout.removeEntries((entry) => droppable(entry, kept))]));
  const live = liveDigests(dirs);
  const applied = index.applyGc(index.gcPlan(opts.keepBuilds, live));
  const blobs = [...applied.blobs, ...unreachable(dropped, live, kept, applied.blobs)].map((blob) => ({ ...blob, bytes: removeBlob(blob.digest, blob.dirs) }));
  return report(opts, entriesOf(dropped), applied.buildIds, applied.layers, applied.storePaths, blobs);
}

/** An entry of an image nixdock builds that no kept build and no current tag holds on to. */
function droppable(entry: Descriptor, kept: ReadonlyMap<string, KeptImage>): boolean {
  const image = imageOf(entry);
  const keep = image && kept.get(image.name);
  if (!keep || keep.running) return false;
  return !keep.digests.has(entry.digest) && image.tag !== keep.currentTag;
}

function imageOf(entry: Descriptor): { name: string; tag: string } | undefined {
  const full = entry.annotations?.[ANNOTATION_IMAGE_NAME];
  const tag = entry.annotations?.[ANNOTATION_REF_NAME];
  if (full === undefined || tag === undefined || !full.endsWith(`:${tag}`)) return undefined;
  return { name: full.slice(0, -tag.length - 1), tag };
}

/**
 * The manifests and configs of dropped entries that nothing on disk reaches any more. The index
 * records no blob location for them (only layers), so the plan cannot name them; a kept build's
 * own manifest or config stays even when no entry points at it.
 */
function unreachable(dropped: ReadonlyMap<string, Descriptor[]>, live: ReadonlySet<Digest>, kept: ReadonlyMap<string, KeptImage>, planned: GcBlob[]): GcBlob[] {
  const keptDigests = new Set([...kept.values()].flatMap((image) => [...image.digests]));
  const seen = new Set(planned.flatMap((blob) => blob.dirs.map((dir) => `${dir}\0${blob.digest}`)));
  const blobs: GcBlob[] = [];
  for (const [dir, entries] of dropped) {
    for (const entry of entries) {
      for (const digest of [entry.digest, configOf(dir, entry.digest)]) {
        if (!digest || live.has(digest) || keptDigests.has(digest) || seen.has(`${dir}\0${digest}`)) continue;
        seen.add(`${dir}\0${digest}`);
        blobs.push({ digest, dirs: [dir] });
      }
    }
  }
  return blobs;
}

function configOf(dir: string, manifest: Digest): Digest | undefined {
  try {
    const digest: unknown = JSON.parse(readFileSync(blobPath(dir, manifest), 'utf8'))?.config?.digest;
    return typeof digest === 'string' && /^sha256:[0-9a-f]{64}$/.test(digest) ? (digest as Digest) : undefined;
  } catch {
    return undefined;
  }
}

function entriesOf(dropped: ReadonlyMap<string, Descriptor[]>): RemovedEntry[] {
  return [...dropped].flatMap(([layout, entries]) =>
    entries.map((entry) => ({ layout, image: entry.annotations?.[ANNOTATION_IMAGE_NAME] ?? entry.digest, manifestDigest: entry.digest })));
}

function report(opts: GcOptions, entries: RemovedEntry[], builds: number[], layers: number, storePaths: number | undefined, blobs: RemovedBlob[]): GcReport {
  return {
    dryRun: opts.dryRun,
    keepBuilds: opts.keepBuilds,
    entries,
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
