/**
 * Which index rows and blobs garbage collection may remove.
 *
 * Kept: the last N builds of every image, each image's latest successful build (so a run of
 * failures never strands the image that works), and builds still running. Everything those
 * builds name (diff_ids, their compressed variants, config and manifest digests) is kept, and so
 * is every digest in `live` — the blobs existing outputs point at.
 *
 * A build in progress records layers and blob locations before it finishes, so it has no
 * build_layers rows yet to protect them. Instead, nothing recorded since the earliest running
 * build started (the plan's `cutoff`) is touched. A build that was killed stays 'running'
 * forever; after ABANDONED_AFTER_MS it no longer protects anything.
 */
import type { Digest } from '../types.js';
import type { Db } from './db.js';

const ABANDONED_AFTER_MS = 24 * 60 * 60 * 1000;

export interface GcBlob {
  digest: Digest;
  /** Directories (OCI layouts, blob cache) whose `blobs/sha256/<hex>` file goes. */
  dirs: string[];
}

export interface GcPlan {
  /** Rows recorded at or after this time (ms) are left alone, by the plan and when it is applied. */
  cutoff: number;
  buildIds: number[];
  layerKeys: string[];
  blobs: GcBlob[];
}

/** What applyGc removed from the index; its blobs are the files the caller now deletes. */
export interface GcApplied {
  buildIds: number[];
  layers: number;
  storePaths: number;
  blobs: GcBlob[];
}

interface BuildRow {
  id: number;
  image: string;
  status: string;
  started_at: number;
  config_digest: string | null;
  manifest_digest: string | null;
}

export function planGc(db: Db, keepBuilds: number, live: ReadonlySet<Digest>, now: number): GcPlan {
  const builds = db.prepare(
    `SELECT id, image, status, started_at, config_digest, manifest_digest FROM builds ORDER BY image, id DESC`,
  ).all() as BuildRow[];
  const running = builds.filter((b) => b.status === 'running' && b.started_at > now - ABANDONED_AFTER_MS);
  const cutoff = Math.min(now, ...running.map((b) => b.started_at));
  const kept = keptBuilds(builds, keepBuilds, new Set(running));
  const keptDiffIds = diffIdsToKeep(db, kept, live);
  const keptDigests = digestsToKeep(db, kept, keptDiffIds, live);

  const layerKeys = (db.prepare(`SELECT key, diff_id FROM layers WHERE recorded_at < ?`).all(cutoff) as Array<{ key: string; diff_id: string }>)
    .filter((row) => !keptDiffIds.has(row.diff_id))
    .map((row) => row.key);
  const locations = db.prepare(`SELECT digest, dir FROM blob_locations WHERE recorded_at < ? ORDER BY digest, dir`).all(cutoff) as Array<{ digest: Digest; dir: string }>;
  return {
    cutoff,
    buildIds: builds.filter((b) => !kept.has(b)).map((b) => b.id).sort((a, b) => a - b),
    layerKeys,
    blobs: groupByDigest(locations.filter((row) => !keptDigests.has(row.digest))),
  };
}

/** Builds arrive grouped by image, newest first. */
function keptBuilds(builds: BuildRow[], keepBuilds: number, running: Set<BuildRow>): Set<BuildRow> {
  const kept = new Set<BuildRow>(running);
  const seen = new Map<string, number>();
  const hasSucceeded = new Set<string>();
  for (const build of builds) {
    const rank = seen.get(build.image) ?? 0;
    seen.set(build.image, rank + 1);
    const latestSuccess = build.status === 'succeeded' && !hasSucceeded.has(build.image);
    if (build.status === 'succeeded') hasSucceeded.add(build.image);
    if (rank < keepBuilds || latestSuccess) kept.add(build);
  }
  return kept;
}

/** diff_ids of kept builds' layers, plus layers whose blob (plain or compressed) is live. */
function diffIdsToKeep(db: Db, kept: Set<BuildRow>, live: ReadonlySet<Digest>): Set<string> {
  const keep = new Set<string>(live);
  const layersOf = db.prepare(`SELECT diff_id FROM build_layers WHERE build_id = ?`).pluck();
  for (const build of kept) for (const diffId of layersOf.all(build.id) as string[]) keep.add(diffId);
  const compressed = db.prepare(`SELECT diff_id, digest FROM compressed`).all() as Array<{ diff_id: string; digest: Digest }>;
  for (const row of compressed) if (live.has(row.digest)) keep.add(row.diff_id);
  return keep;
}

function digestsToKeep(db: Db, kept: Set<BuildRow>, keptDiffIds: Set<string>, live: ReadonlySet<Digest>): Set<string> {
  const keep = new Set<string>([...keptDiffIds, ...live]);
  const compressed = db.prepare(`SELECT diff_id, digest FROM compressed`).all() as Array<{ diff_id: string; digest: string }>;
  for (const row of compressed) if (keptDiffIds.has(row.diff_id)) keep.add(row.digest);
  const outputDigests = db.prepare(`SELECT manifest_digest FROM build_outputs WHERE build_id = ? AND manifest_digest IS NOT NULL`).pluck();
  for (const build of kept) {
    if (build.config_digest) keep.add(build.config_digest);
    if (build.manifest_digest) keep.add(build.manifest_digest);
    for (const digest of outputDigests.all(build.id) as string[]) keep.add(digest);
  }
  return keep;
}

/** diff_ids of every layer of the builds gc keeps (base-image layers included): the file caches keep what these use. */
export function keptDiffIds(db: Db, keepBuilds: number, now: number): Set<string> {
  const builds = db.prepare(`SELECT id, image, status, started_at, config_digest, manifest_digest FROM builds ORDER BY image, id DESC`).all() as BuildRow[];
  const running = new Set(builds.filter((b) => b.status === 'running' && b.started_at > now - ABANDONED_AFTER_MS));
  const layersOf = db.prepare(`SELECT diff_id FROM build_layers WHERE build_id = ?`).pluck();
  const keep = new Set<string>();
  for (const build of keptBuilds(builds, keepBuilds, running)) for (const diffId of layersOf.all(build.id) as string[]) keep.add(diffId);
  return keep;
}

/** What gc keeps of one image's entries in nixdock's own OCI layouts (see pruneLayouts in ./gc.ts). */
export interface KeptImage {
  /** Manifest and config digests of the kept builds (each output's manifest, and the build's own). */
  digests: Set<string>;
  /** The tag of the image's latest successful build: its layout entry always stays. */
  currentTag?: string;
  /** A build of the image is running: its entry may be written before its row names it. */
  running: boolean;
}

/** Per image name that has builds in the index: what its layout entries must keep. */
export function keptImages(db: Db, keepBuilds: number, now: number): Map<string, KeptImage> {
  const builds = db.prepare(
    `SELECT id, image, status, started_at, config_digest, manifest_digest, tag FROM builds ORDER BY image, id DESC`,
  ).all() as Array<BuildRow & { tag: string | null }>;
  const running = new Set(builds.filter((b) => b.status === 'running' && b.started_at > now - ABANDONED_AFTER_MS));
  const kept = keptBuilds(builds, keepBuilds, running);
  const outputDigests = db.prepare(`SELECT manifest_digest FROM build_outputs WHERE build_id = ? AND manifest_digest IS NOT NULL`).pluck();
  const images = new Map<string, KeptImage>();
  for (const build of builds) {
    let image = images.get(build.image);
    if (!image) images.set(build.image, (image = { digests: new Set(), running: false }));
    if (running.has(build)) image.running = true;
    if (build.status === 'succeeded' && image.currentTag === undefined && build.tag !== null) image.currentTag = build.tag;
    if (!kept.has(build)) continue;
    for (const digest of [build.manifest_digest, build.config_digest, ...(outputDigests.all(build.id) as string[])]) {
      if (digest) image.digests.add(digest);
    }
  }
  return images;
}

function groupByDigest(rows: Array<{ digest: Digest; dir: string }>): GcBlob[] {
  const byDigest = new Map<Digest, string[]>();
  for (const row of rows) {
    const dirs = byDigest.get(row.digest) ?? [];
    dirs.push(row.dir);
    byDigest.set(row.digest, dirs);
  }
  return [...byDigest].map(([digest, dirs]) => ({ digest, dirs }));
}

/**
 * Removes the planned rows (call inside an immediate transaction). A row recorded again since
 * the plan was made (recorded_at ≥ cutoff) survives, and its blob is not returned for deletion.
 */
export function applyGcPlan(db: Db, plan: GcPlan): GcApplied {
  const deleteBuild = db.prepare(`DELETE FROM builds WHERE id = ?`);
  const buildIds = plan.buildIds.filter((id) => deleteBuild.run(id).changes > 0);

  const diffIdOf = db.prepare(`SELECT diff_id FROM layers WHERE key = ? AND recorded_at < ?`).pluck();
  const deleteLayer = db.prepare(`DELETE FROM layers WHERE key = ? AND recorded_at < ?`);
  const deleteOrphanCompressed = db.prepare(`
    DELETE FROM compressed WHERE diff_id = ?
      AND NOT EXISTS (SELECT 1 FROM layers WHERE diff_id = ?)
      AND NOT EXISTS (SELECT 1 FROM build_layers WHERE diff_id = ?)`);
  let layers = 0;
  for (const key of plan.layerKeys) {
    const diffId = diffIdOf.get(key, plan.cutoff) as string | undefined;
    if (diffId === undefined) continue;
    layers += deleteLayer.run(key, plan.cutoff).changes;
    deleteOrphanCompressed.run(diffId, diffId, diffId);
  }

  const deleteLocation = db.prepare(`DELETE FROM blob_locations WHERE digest = ? AND dir = ? AND recorded_at < ?`);
  const blobs = plan.blobs
    .map((blob) => ({ digest: blob.digest, dirs: blob.dirs.filter((dir) => deleteLocation.run(blob.digest, dir, plan.cutoff).changes > 0) }))
    .filter((blob) => blob.dirs.length > 0);

  // Store-path metadata is only worth keeping for paths some remaining layer contains.
  const storePaths = db.prepare(`
    DELETE FROM store_paths WHERE seen_at < ? AND path NOT IN (
      SELECT value FROM layers, json_each(layers.store_paths)
      UNION SELECT value FROM build_layers, json_each(build_layers.store_paths))`).run(plan.cutoff).changes;
  return { buildIds, layers, storePaths, blobs };
}
