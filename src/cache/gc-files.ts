/**
 * gc of the files nixdock caches under <cacheDir> beside the index:
 *   base/archives/<sha256>.tar  decompressed copies of compressed docker-archive bases
 *   base/sizes/<diff_id hex>    uncompressed sizes of base layers
 *   pulled/                     the pull cache, an OCI layout (index entries, blobs, .staging-*)
 *   tmp/                        work trees of the customisation layer and runAsRoot
 *   index.sqlite.corrupt-*      damaged indexes moved aside
 *
 * The rule: an item goes when no kept build uses it (its diff_ids are not the layers of a build
 * gc keeps) and nothing used it for `cacheDays` days. "Used" is the file's mtime, which nixdock
 * sets each time it reads the item (a build, export, inspect or pull), so a base a kept build
 * needs stays, and one you pulled or exported recently stays too. Temp files and work trees
 * older than a day belong to no running command (none runs that long) and go.
 */
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync, renameSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { isDigest } from '../digest.js';
import { readMember, readTarMembers, resolveMember } from '../tar/members.js';
import { TEMP_PREFIX } from '../util/atomic.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/** Temp files and work trees of commands that ended (killed, or crashed) this long ago go. */
const TEMP_AGE_MS = DAY_MS;
/** Pulled documents (manifests, indexes, configs) are read to follow references; no larger ones. */
const MAX_DOCUMENT_BYTES = 4 << 20;

export interface CacheGcOptions {
  /** Items not used for this many days go (unless a kept build uses them). */
  cacheDays: number;
  dryRun: boolean;
  now?: number;
}

export type CacheFileKind = 'archive' | 'size' | 'pulled-image' | 'pulled-blob' | 'temp' | 'corrupt-index';

export interface RemovedCacheFile {
  path: string;
  kind: CacheFileKind;
  /** Bytes freed (or that would be). */
  bytes: number;
}

export interface CacheGcReport {
  files: RemovedCacheFile[];
  bytes: number;
}

interface Sweep {
  kept: ReadonlySet<string>;
  /** Items last used before this (ms) may go. */
  unusedBefore: number;
  tempBefore: number;
  dryRun: boolean;
  removed: RemovedCacheFile[];
}

/** `kept`: diff_ids of the layers of the builds gc keeps (BuildCache.keptDiffIds). */
export async function collectCacheFiles(cacheDir: string, kept: ReadonlySet<string>, opts: CacheGcOptions): Promise<CacheGcReport> {
  const now = opts.now ?? Date.now();
  const sweep: Sweep = { kept, unusedBefore: now - opts.cacheDays * DAY_MS, tempBefore: now - TEMP_AGE_MS, dryRun: opts.dryRun, removed: [] };
  sweepSizes(join(cacheDir, 'base', 'sizes'), sweep);
  await sweepArchives(join(cacheDir, 'base', 'archives'), sweep);
  sweepPulled(join(cacheDir, 'pulled'), sweep);
  sweepTemps(join(cacheDir, 'tmp'), sweep, () => true);
  sweepCorruptIndexes(cacheDir, sweep);
  return { files: sweep.removed, bytes: sweep.removed.reduce((sum, file) => sum + file.bytes, 0) };
}

function sweepSizes(dir: string, sweep: Sweep): void {
  for (const [name, stats] of entries(dir)) {
    if (sweep.kept.has(`sha256:${name}`) || stats.mtimeMs >= sweep.unusedBefore) continue;
    remove(join(dir, name), 'size', stats, sweep);
  }
}

async function sweepArchives(dir: string, sweep: Sweep): Promise<void> {
  sweepTemps(dir, sweep, (name) => name.startsWith(TEMP_PREFIX));
  for (const [name, stats] of entries(dir)) {
    if (!name.endsWith('.tar') || stats.mtimeMs >= sweep.unusedBefore) continue;
    const images = await archiveDiffIds(join(dir, name));
    if (images.some((diffIds) => usedByKeptBuild(diffIds, sweep.kept))) continue;
    remove(join(dir, name), 'archive', stats, sweep);
  }
}

/**
 * The pull cache: entries of index.json not used lately and not under a kept build leave the
 * index, then blobs nothing left reaches (and that were not used lately) go. An index blob that
 * lists a remaining entry counts as reached: a digest-pinned multi-platform ref resolves through it.
 */
function sweepPulled(dir: string, sweep: Sweep): void {
  sweepTemps(dir, sweep, (name) => name.startsWith('.staging-') || name.endsWith('.tmp'));
  const index = readJson(join(dir, 'index.json')) as { manifests?: Array<{ digest?: unknown }> } | undefined;
  const manifests = Array.isArray(index?.manifests) ? index.manifests : [];
  const stays = manifests.filter((entry) => !isDigest(entry.digest) || entryInUse(dir, entry.digest, sweep));
  const gone = manifests.length - stays.length;
  if (gone > 0 && !sweep.dryRun) writeJsonAtomic(join(dir, 'index.json'), { ...index, manifests: stays });
  const reached = new Set<string>();
  for (const entry of stays) if (isDigest(entry.digest)) for (const digest of imageBlobs(dir, entry.digest)) reached.add(digest);
  const blobs = join(dir, 'blobs', 'sha256');
  for (const [name, stats] of entries(blobs)) {
    const digest = `sha256:${name}`;
    if (reached.has(digest) || stats.mtimeMs >= sweep.unusedBefore || listsAny(join(blobs, name), stats, reached)) continue;
    const isEntry = manifests.some((entry) => entry.digest === digest);
    remove(join(blobs, name), isEntry ? 'pulled-image' : 'pulled-blob', stats, sweep);
  }
}

function entryInUse(dir: string, digest: string, sweep: Sweep): boolean {
  const stats = statIfExists(blobFile(dir, digest));
  if (stats === undefined) return false;
  if (stats.mtimeMs >= sweep.unusedBefore) return true;
  const diffIds = configOf(dir, digest)?.rootfs?.diff_ids;
  return Array.isArray(diffIds) && usedByKeptBuild(diffIds, sweep.kept);
}

/** The manifest, its config and its layers. */
function imageBlobs(dir: string, manifestDigest: string): string[] {
  const manifest = readJson(blobFile(dir, manifestDigest)) as { config?: { digest?: unknown }; layers?: Array<{ digest?: unknown }> } | undefined;
  const digests = [manifestDigest, manifest?.config?.digest, ...(Array.isArray(manifest?.layers) ? manifest.layers.map((l) => l?.digest) : [])];
  return digests.filter(isDigest);
}

function configOf(dir: string, manifestDigest: string): { rootfs?: { diff_ids?: unknown[] } } | undefined {
  const manifest = readJson(blobFile(dir, manifestDigest)) as { config?: { digest?: unknown } } | undefined;
  const config = manifest?.config?.digest;
  return isDigest(config) ? (readJson(blobFile(dir, config)) as { rootfs?: { diff_ids?: unknown[] } } | undefined) : undefined;
}

function listsAny(file: string, stats: Stats, reached: ReadonlySet<string>): boolean {
  if (stats.size > MAX_DOCUMENT_BYTES) return false;
  const doc = readJson(file) as { manifests?: Array<{ digest?: unknown }> } | undefined;
  return Array.isArray(doc?.manifests) && doc.manifests.some((m) => typeof m?.digest === 'string' && reached.has(m.digest));
}

/** Every image of a docker-archive: its config's diff_ids (an archive nixdock cannot read: none). */
async function archiveDiffIds(path: string): Promise<unknown[][]> {
  try {
    const members = await readTarMembers(path);
    const manifestMember = members.get('manifest.json');
    const manifest = manifestMember ? (JSON.parse((await readMember(path, manifestMember)).toString('utf8')) as Array<{ Config?: unknown }>) : [];
    const images: unknown[][] = [];
    for (const entry of Array.isArray(manifest) ? manifest : []) {
      const member = typeof entry?.Config === 'string' ? resolveMember(members, entry.Config) : undefined;
      if (!member || member.size > MAX_DOCUMENT_BYTES) continue;
      const diffIds = (JSON.parse((await readMember(path, member)).toString('utf8')) as { rootfs?: { diff_ids?: unknown } })?.rootfs?.diff_ids;
      if (Array.isArray(diffIds)) images.push(diffIds);
    }
    return images;
  } catch {
    return [];
  }
}

function usedByKeptBuild(diffIds: unknown[], kept: ReadonlySet<string>): boolean {
  return diffIds.length > 0 && diffIds.every((d) => typeof d === 'string' && kept.has(d));
}

/**
 * A damaged index is moved aside for a human to look at (src/cache/db.ts); after cacheDays it goes.
 * One set aside because a newer nixdock wrote it (`.newer-N`) stays: that nixdock may come back.
 */
function sweepCorruptIndexes(cacheDir: string, sweep: Sweep): void {
  for (const [name, stats] of entries(cacheDir)) {
    if (/^index\.sqlite\.corrupt-[^/]*$/.test(name) && stats.mtimeMs < sweep.unusedBefore) remove(join(cacheDir, name), 'corrupt-index', stats, sweep);
  }
}

/** Temp files and work trees (`matches` picks them among the names) older than a day. */
function sweepTemps(dir: string, sweep: Sweep, matches: (name: string) => boolean): void {
  for (const [name, stats] of entries(dir)) {
    if (matches(name) && stats.mtimeMs < sweep.tempBefore) remove(join(dir, name), 'temp', stats, sweep);
  }
}

function remove(path: string, kind: CacheFileKind, stats: Stats, sweep: Sweep): void {
  const bytes = stats.isDirectory() ? treeBytes(path) : stats.size;
  if (!sweep.dryRun) rmSync(path, { recursive: true, force: true });
  sweep.removed.push({ path, kind, bytes });
}

function treeBytes(dir: string): number {
  let sum = 0;
  for (const [name, stats] of entries(dir)) sum += stats.isDirectory() ? treeBytes(join(dir, name)) : stats.size;
  return sum;
}

/** Names and lstat results of a directory's entries; none when it does not exist. */
function entries(dir: string): Array<[string, Stats]> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.flatMap((name): Array<[string, Stats]> => {
    const stats = statIfExists(join(dir, name));
    return stats ? [[name, stats]] : [];
  });
}

function statIfExists(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function blobFile(dir: string, digest: string): string {
  return join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.gc.tmp`;
  writeFileSync(tmp, JSON.stringify(value));
  renameSync(tmp, file);
}
