/**
 * The registry as a fleet's shared layer cache: `--cache-to REF` (or config `cache.registry`)
 * stores the recipe → blob rows of pushed layers as an OCI artifact at REF — an image manifest
 * with `artifactType` CACHE_ARTIFACT_TYPE, the empty config, and one small JSON blob of rows —
 * and any machine reading REF (`--cache-from REF`, `cache.registry`) can place those layers
 * without tarring them. Each row names the repository its blob lives in; the reader verifies a
 * row like any other registry claim (remote-layers.ts) before using it. No server of our own.
 *
 * Writing merges: the new rows first, then the rows already at REF that differ, up to MAX_ROWS,
 * so one cache reference serves several images and branches. Two machines writing at the same
 * moment may drop each other's new rows; the next push puts them back. It is a cache.
 */
import { isDigest, sha256 } from '../digest.js';
import { NixdockError } from '../errors.js';
import { MediaType } from '../image/manifest.js';
import type { Codec, CompressedBlob, Descriptor, Digest } from '../types.js';
import { bufferBody, type RegistryClient } from './client.js';

export const CACHE_ARTIFACT_TYPE = 'application/vnd.nixdock.layer-cache.v1+json';
/** The OCI empty descriptor's media type and bytes (`{}`), the config of artifacts with none. */
const EMPTY_TYPE = 'application/vnd.oci.empty.v1+json';
const EMPTY = Buffer.from('{}');
/** ~250 bytes a row: the blob stays well under 4 MiB, and a reader's memory with it. */
const MAX_ROWS = 10_000;
const MAX_BLOB_BYTES = 4 * 1024 * 1024;

export interface CacheRow {
  /** The layer's recipe key (RECIPE_ANNOTATION). */
  recipe: string;
  diffId: Digest;
  /** Uncompressed tar size. */
  size: number;
  blob: CompressedBlob;
  /** `registry/repository` holding the blob. */
  repository: string;
}

interface ArtifactManifest {
  artifactType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
}

/** Whether a manifest read at a cache-from reference is a cache artifact rather than an image. */
export function isCacheArtifact(doc: ArtifactManifest): boolean {
  return doc.artifactType === CACHE_ARTIFACT_TYPE || doc.layers?.[0]?.mediaType === CACHE_ARTIFACT_TYPE;
}

/** The artifact's rows; rows that are not well-formed are dropped (the artifact is untrusted input). */
export async function readCacheRows(client: RegistryClient, doc: ArtifactManifest): Promise<CacheRow[]> {
  const desc = doc.layers?.find((l) => l.mediaType === CACHE_ARTIFACT_TYPE);
  if (!desc || !Number.isSafeInteger(desc.size) || desc.size > MAX_BLOB_BYTES) return [];
  const chunks: Buffer[] = [];
  for await (const chunk of await client.openBlob(desc.digest, desc.size)) chunks.push(chunk as Buffer);
  const bytes = Buffer.concat(chunks);
  if (sha256(bytes) !== desc.digest) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return [];
  }
  const rows = (parsed as { rows?: unknown }).rows;
  return Array.isArray(rows) ? rows.filter(isRow).slice(0, MAX_ROWS) : [];
}

const CODECS: readonly Codec[] = ['none', 'gzip', 'zstd'];

function isRow(value: unknown): value is CacheRow {
  const row = value as Partial<CacheRow> | null;
  const blob = row?.blob as Partial<CompressedBlob> | undefined;
  return (
    typeof row?.recipe === 'string' && row.recipe.length <= 256 &&
    isDigest(row.diffId) &&
    Number.isSafeInteger(row.size) && row.size! >= 0 &&
    typeof row.repository === 'string' && row.repository.length <= 512 &&
    isDigest(blob?.digest) &&
    CODECS.includes(blob.codec as Codec) && Number.isSafeInteger(blob.size) && blob.size! >= 0
  );
}

/** Writes `rows` merged with those already at the client's reference; returns how many it holds. */
export async function writeCacheRows(client: RegistryClient, reference: string, rows: CacheRow[], existing: CacheRow[]): Promise<number> {
  const seen = new Set<string>();
  const merged = [...rows, ...existing].filter((row) => {
    const id = `${row.recipe} ${row.blob.codec} ${row.repository}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  }).slice(0, MAX_ROWS);
  const body = Buffer.from(JSON.stringify({ version: 1, rows: merged }));
  const blob = { digest: sha256(body), size: body.length };
  for (const bytes of [EMPTY, body]) {
    const digest = sha256(bytes);
    if ((await client.blobSize(digest)) === undefined) await client.uploadBlob(bufferBody(bytes, digest));
  }
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: CACHE_ARTIFACT_TYPE,
    config: { mediaType: EMPTY_TYPE, digest: sha256(EMPTY), size: EMPTY.length },
    layers: [{ mediaType: CACHE_ARTIFACT_TYPE, ...blob }],
  };
  await client.putManifest(reference, Buffer.from(JSON.stringify(manifest)), MediaType.ociManifest);
  return merged.length;
}

export function cacheRefInvalid(ref: string): NixdockError {
  return new NixdockError('REFERENCE_INVALID', `The cache reference ${ref} is pinned to a digest`, {
    found: ref,
    expected: 'host/repository or host/repository:tag',
    hint: 'A cache is rewritten by every push: name it by a tag (the default tag is nixdock-cache).',
  });
}
