/**
 * Blob directories as gc sees them. Every directory the index records blobs in (an OCI image
 * layout, or the blob cache) keeps a blob at `blobs/sha256/<hex>`. For an OCI layout, the blobs
 * its index.json reaches (manifests, nested indexes, configs, layers) are live: gc never deletes
 * them, whatever the index's history says, because an image on disk still needs them.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Digest } from '../../types.js';
import { NixdockError } from '../../errors.js';

/** The directory of sha256 blobs, relative to a layout's root (and inside a Docker 25+ archive). */
export const BLOBS_DIR = 'blobs/sha256';

/** A blob's name relative to a layout's root: `blobs/sha256/<hex>`. */
export function blobName(digest: Digest): string {
  const [algorithm, hex] = digest.split(':') as [string, string];
  return `blobs/${algorithm}/${hex}`;
}

/** Where a blob lives inside a blob directory (the OCI image layout convention). */
export function blobPath(dir: string, digest: Digest): string {
  return join(dir, blobName(digest));
}

export interface DescriptorLike {
  mediaType?: string;
  digest?: string;
  annotations?: Record<string, string>;
}

interface ManifestOrIndexLike {
  manifests?: DescriptorLike[];
  config?: DescriptorLike;
  layers?: DescriptorLike[];
}

/**
 * Digests reachable from `<dir>/index.json`. A directory without index.json (the blob cache, a
 * deleted output) adds nothing. A nested manifest that is missing or not JSON is still live (it
 * is named) but adds no children: a damaged layout is not gc's to repair. An index.json that
 * cannot be read, though, stops gc: guessing would delete blobs an image needs.
 */
export function liveDigestsOfLayout(dir: string, into: Set<Digest> = new Set(), dropped?: ReadonlySet<DescriptorLike>): Set<Digest> {
  const file = join(dir, 'index.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return into;
    throw unreadableLayout(file, String(err));
  }
  const index = parseJson(text);
  if (index === undefined) throw unreadableLayout(file, 'not a JSON object');
  // A dry run of gc asks what would stay live once the entries it would remove are gone.
  const kept = dropped ? (index.manifests ?? []).filter((d) => ![...dropped].some((x) => sameEntry(x, d))) : index.manifests;
  walk(dir, { ...index, manifests: kept }, into);
  return into;
}

function sameEntry(a: DescriptorLike, b: DescriptorLike): boolean {
  return a.digest === b.digest && JSON.stringify(a.annotations ?? {}) === JSON.stringify(b.annotations ?? {});
}

function unreadableLayout(file: string, found: string): NixdockError {
  return new NixdockError('INPUT_INVALID', `Cannot tell which blobs the OCI layout ${file} uses`, {
    location: { file },
    found,
    expected: 'an OCI image index (JSON object with "manifests")',
    hint: 'Repair or delete that output directory, then run `nixdock gc` again; nothing was removed.',
  });
}

/** The union of liveDigestsOfLayout over several directories, without the `dropped` entries of each. */
export function liveDigests(dirs: Iterable<string>, dropped?: ReadonlyMap<string, ReadonlySet<DescriptorLike>>): Set<Digest> {
  const live = new Set<Digest>();
  for (const dir of dirs) liveDigestsOfLayout(dir, live, dropped?.get(dir));
  return live;
}

function walk(dir: string, doc: ManifestOrIndexLike, live: Set<Digest>): void {
  for (const layer of doc.layers ?? []) markDigest(layer, live);
  if (doc.config) markDigest(doc.config, live);
  for (const child of doc.manifests ?? []) {
    const digest = markDigest(child, live);
    if (digest === undefined) continue;
    const nested = readJsonFile(blobPath(dir, digest));
    if (nested) walk(dir, nested, live);
  }
}

function markDigest(descriptor: DescriptorLike, live: Set<Digest>): Digest | undefined {
  const digest = descriptor.digest;
  if (typeof digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(digest)) return undefined;
  // A digest seen twice (a layer shared by two manifests) needs no second walk.
  if (live.has(digest as Digest)) return undefined;
  live.add(digest as Digest);
  return digest as Digest;
}

function readJsonFile(file: string): ManifestOrIndexLike | undefined {
  try {
    return parseJson(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

function parseJson(text: string): ManifestOrIndexLike | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as ManifestOrIndexLike) : undefined;
  } catch {
    return undefined;
  }
}
