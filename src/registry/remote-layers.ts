/**
 * What registries already hold for an image: the manifests at the push target and at every
 * cache-from reference, each layer paired with its diff_id (manifest `layers[i]` ↔ config
 * `rootfs.diff_ids[i]`) and, where nixdock pushed it, with its recipe key (RECIPE_ANNOTATION);
 * a cache-from reference may also name a cache artifact (cache-artifact.ts) of such rows.
 *
 * A pair is only the registry's claim. A registry (or a proxy, or a tool that rewrote a manifest)
 * can pair a diff_id with the wrong blob; building on such a pair would give an image whose
 * layers do not match its config, which pulls then refuse. So verifyPair() checks a pair against
 * what this machine knows without tarring, and without walking the store paths either (a walk of
 * a 1 GB closure is ~80 000 lstat calls, most of a fresh-machine push that changes nothing):
 *   - the blob's first bytes (a ranged GET, whose Content-Range also gives the blob's size in
 *     place of a HEAD) must be the tar this layer starts with: the store dir's entries, then the
 *     layer's first store path (store layers are tarred in path order);
 *   - its tar size: the local cache's, else the claim's (SIZE_ANNOTATION, a cache row) for a
 *     store layer whose head matched, else a metadata walk; for gzip it must equal the blob's
 *     trailer (ISIZE, 8 bytes by a second ranged GET), for none the blob's size;
 *   - zstd: no size in the frame, so the blob is downloaded and decompressed, and must hash to
 *     the diff_id (network bytes, still no tarring or compressing), and start as above.
 * Not caught: a blob of another layer that starts with the same store path and has the same
 * size (mod 4 GiB); the image config's diff_id then names the other layer and pulls refuse it.
 */
import { constants as zlib, gunzipSync } from 'node:zlib';
import { dirname } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NixdockError } from '../errors.js';
import { autoDecompress } from '../formats/decompress.js';
import { DigestStream, isDigest, sha256 } from '../digest.js';
import { MediaType, RECIPE_ANNOTATION, SIZE_ANNOTATION } from '../image/manifest.js';
import type { Codec, CompressedBlob, Descriptor, Digest, Platform } from '../types.js';
import { RegistryClient } from './client.js';
import { isCacheArtifact, readCacheRows, type CacheRow } from './cache-artifact.js';

/** One claim of a registry: this diff_id is stored as this blob, in this repository. */
export interface RemotePair {
  diffId: Digest;
  blob: CompressedBlob;
  recipe?: string;
  /** The uncompressed tar size the claim states (SIZE_ANNOTATION, a cache row), if it does. */
  size?: number;
  /** Where the manifest that made the claim lives (the blob is in that repository). */
  client: RegistryClient;
}

/** Config blobs are small JSON; a bigger one is not an image config nixdock pairs layers from. */
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;
const GZIP_TRAILER = 8;
/**
 * Compressed bytes read from the start of a claimed blob: the tar's first entries (two store dir
 * entries, a pax header, the first path) take a few 512-byte blocks, and even incompressible
 * data fits them in 8 KiB. Inflated at most to HEAD_MAX_TAR (a deflate bomb stops there).
 */
const HEAD_BYTES = 8 * 1024;
const HEAD_MAX_TAR = 8 * 1024 * 1024;

const CODEC_OF: Record<string, Codec> = {
  [MediaType.layerTar]: 'none',
  [MediaType.layerGzip]: 'gzip',
  [MediaType.dockerLayerGzip]: 'gzip',
  [MediaType.layerZstd]: 'zstd',
};

const ACCEPT = [MediaType.ociManifest, MediaType.dockerManifest, MediaType.ociIndex, MediaType.dockerManifestList];

interface ManifestDoc {
  artifactType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

/** Where to read: a client for the reference's repository, and a client for any `registry/repository` a cache row names. */
export interface RemoteSource {
  client: RegistryClient;
  reference: string;
  clientFor(repository: string): RegistryClient;
}

export class RemoteLayers {
  private readonly byRecipe = new Map<string, RemotePair[]>();
  private readonly byDiffId = new Map<Digest, RemotePair[]>();
  /** The rows of cache artifacts read, kept so a cache written back to the same reference keeps them. */
  readonly cacheRows = new Map<RegistryClient, CacheRow[]>();

  /**
   * Pairs of `codec` from the image or cache artifact at each reference (a reference with neither
   * adds none), read at the same time; `platform` is awaited only when a reference names an index,
   * so the reads can start while the image is still being planned.
   */
  static async read(sources: RemoteSource[], codec: Codec, platform: Promise<Platform>): Promise<RemoteLayers> {
    const remote = new RemoteLayers();
    const read = await Promise.all(sources.map((source) => remote.readPairs(source, platform)));
    for (const pair of read.flat()) {
      if (pair.blob.codec === codec) remote.add(pair);
    }
    return remote;
  }

  private add(pair: RemotePair): void {
    if (pair.recipe) push(this.byRecipe, pair.recipe, pair);
    push(this.byDiffId, pair.diffId, pair);
  }

  /** Repositories of `registry` that hold claimed blobs (what a push there can mount from). */
  repositories(registry: string): string[] {
    const found = new Set<string>();
    for (const pairs of this.byDiffId.values()) {
      for (const { client } of pairs) if (client.target.registry === registry) found.add(client.target.repository);
    }
    return [...found];
  }

  private async readPairs(source: RemoteSource, platforms: Promise<Platform>): Promise<RemotePair[]> {
    const { client, reference } = source;
    let doc = await readManifest(client, reference);
    if (doc && isCacheArtifact(doc)) {
      const rows = await readCacheRows(client, doc);
      this.cacheRows.set(client, rows);
      return rows.map((row) => ({ diffId: row.diffId, blob: row.blob, recipe: row.recipe, size: row.size, client: source.clientFor(row.repository) }));
    }
    if (doc?.manifests) {
      const platform = await platforms;
      const entry = doc.manifests.find((m) => m.platform?.architecture === platform.architecture && m.platform.os === platform.os);
      doc = entry ? await readManifest(client, entry.digest) : undefined;
    }
    return doc ? imagePairs(client, doc) : [];
  }

  /** Claims for a layer: by its recipe, then by its diff_id when this machine knows it. */
  candidates(recipe: string, diffId?: Digest): RemotePair[] {
    return [...new Set([...(this.byRecipe.get(recipe) ?? []), ...(diffId ? (this.byDiffId.get(diffId) ?? []) : [])])];
  }

  get size(): number {
    return this.byDiffId.size;
  }
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** An image's pairs: manifest `layers[i]` with config `rootfs.diff_ids[i]`, and the recipe annotation. */
async function imagePairs(client: RegistryClient, doc: ManifestDoc): Promise<RemotePair[]> {
  const layers = doc.layers;
  if (!doc.config?.digest || !Array.isArray(layers)) return [];
  const diffIds = (await readConfig(client, doc.config))?.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.length !== layers.length) return [];
  return layers.flatMap((layer, i): RemotePair[] => {
    const codec = CODEC_OF[layer.mediaType];
    if (!codec || !isDigest(layer.digest) || !isDigest(diffIds[i]) || !Number.isSafeInteger(layer.size)) return [];
    const recipe = layer.annotations?.[RECIPE_ANNOTATION];
    const size = Number(layer.annotations?.[SIZE_ANNOTATION] ?? NaN);
    const blob = { codec, digest: layer.digest, size: layer.size };
    return [{ diffId: diffIds[i] as Digest, blob, client, ...(typeof recipe === 'string' && { recipe }), ...(Number.isSafeInteger(size) && size >= 0 && { size }) }];
  });
}

/** The manifest, or undefined when the reference names none (a first push, a new cache). */
async function readManifest(client: RegistryClient, reference: string): Promise<ManifestDoc | undefined> {
  try {
    const { bytes } = await client.getManifest(reference, ACCEPT);
    return JSON.parse(bytes.toString('utf8')) as ManifestDoc;
  } catch (err) {
    if (err instanceof NixdockError && err.found === 'HTTP 404') return undefined;
    if (err instanceof SyntaxError) return undefined;
    throw err;
  }
}

async function readConfig(client: RegistryClient, desc: Descriptor): Promise<{ rootfs?: { diff_ids?: unknown[] } } | undefined> {
  if (desc.size > MAX_CONFIG_BYTES) return undefined;
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of await client.openBlob(desc.digest, desc.size)) {
    length += (chunk as Buffer).length;
    if (length > MAX_CONFIG_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  const bytes = Buffer.concat(chunks);
  if (sha256(bytes) !== desc.digest) return undefined;
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** What this machine knows of a layer without tarring it, to check a claim against. */
export interface LocalLayer {
  /** The first store path of a store layer: its tar must start with the store dir's entries and this path. */
  firstStorePath?: string;
  /** The exact tar size when the local cache knows it. */
  size?: number;
  /** The exact tar size by a metadata walk of the layer's files (only when nothing else says it). */
  walk(): Promise<number>;
}

/**
 * The layer's tar size when the pair's blob is present and holds this layer (see the module
 * comment), else undefined. Sizes come from this machine or from a claim whose head matched.
 */
export async function verifyPair(pair: RemotePair, local: LocalLayer): Promise<number | undefined> {
  const { blob } = pair;
  const claimedSize = async () => local.size ?? (local.firstStorePath !== undefined ? pair.size : undefined) ?? (await local.walk());
  if (blob.codec === 'zstd') {
    const size = await claimedSize();
    return (await decompressesTo(pair, size, local.firstStorePath)) ? size : undefined;
  }
  const head = await pair.client.blobRange(blob.digest, 0, Math.min(HEAD_BYTES, blob.size));
  if (!head || head.total !== blob.size) return undefined;
  const tar = blob.codec === 'none' ? head.bytes : inflateHead(head.bytes);
  if (!tar || (local.firstStorePath !== undefined && !startsWithStorePath(tar, local.firstStorePath))) return undefined;
  if (blob.codec === 'none') return blob.digest === pair.diffId && (local.size ?? blob.size) === blob.size ? blob.size : undefined;
  const trailer = await gzipTrailer(pair, head.bytes);
  if (trailer === undefined) return undefined;
  const size = await claimedSize();
  return trailer.readUInt32LE(4) === size % 2 ** 32 ? size : undefined;
}

/** The gzip trailer: from the head already read when it covers the whole blob, else a ranged GET. */
async function gzipTrailer(pair: RemotePair, head: Buffer): Promise<Buffer | undefined> {
  const { digest, size } = pair.blob;
  if (size < GZIP_TRAILER) return undefined;
  if (head.length === size) return head.subarray(size - GZIP_TRAILER);
  return (await pair.client.blobRange(digest, size - GZIP_TRAILER, size))?.bytes;
}

/** As much tar as the first compressed bytes give (a truncated gzip stream inflates up to where it stops). */
function inflateHead(bytes: Buffer): Buffer | undefined {
  try {
    return gunzipSync(bytes, { finishFlush: zlib.Z_SYNC_FLUSH, maxOutputLength: HEAD_MAX_TAR });
  } catch {
    return undefined;
  }
}

/** Whether the tar's first entries are the store dir's own (`/nix/`, `/nix/store/`), then `path`. */
export function startsWithStorePath(tar: Buffer, path: string): boolean {
  const parts = dirname(path).split('/').filter(Boolean);
  const expected = [...parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}/`), path];
  const names = tarNames(tar, expected.length);
  return names.length === expected.length && names.every((name, i) => name === expected[i] || (i === expected.length - 1 && name === `${path}/`));
}

/** The names of the first `count` entries of a tar (ustar names, or a pax `path` record), as far as `tar` reaches. */
function tarNames(tar: Buffer, count: number): string[] {
  const names: string[] = [];
  let offset = 0;
  let paxPath: string | undefined;
  while (names.length < count && offset + 512 <= tar.length) {
    const header = tar.subarray(offset, offset + 512);
    const size = parseInt(cString(header.subarray(124, 136)) || '0', 8);
    const type = String.fromCharCode(header[156]!);
    if (!Number.isSafeInteger(size) || size < 0) break;
    offset += 512;
    const data = tar.subarray(offset, offset + size);
    offset += Math.ceil(size / 512) * 512;
    if (type === 'x') {
      paxPath = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(data.toString('utf8'))?.[1];
      continue;
    }
    names.push(paxPath ?? cString(header.subarray(0, 100)));
    paxPath = undefined;
  }
  return names;
}

function cString(field: Buffer): string {
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString('utf8').trim();
}

/** Downloads the blob, and checks its digest, its decompressed diff_id and size, and how its tar starts. */
async function decompressesTo(pair: RemotePair, localSize: number, firstStorePath: string | undefined): Promise<boolean> {
  const compressed = new DigestStream();
  const tar = new DigestStream();
  const head: Buffer[] = [];
  let headSize = 0;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (headSize < HEAD_BYTES) {
        head.push(chunk);
        headSize += chunk.length;
      }
      done(tar.bytes > localSize ? new Error('more bytes than the layer has') : null);
    },
  });
  try {
    await pipeline(await pair.client.openBlob(pair.blob.digest, pair.blob.size), compressed, autoDecompress(), tar, sink);
  } catch {
    return false;
  }
  if (firstStorePath !== undefined && !startsWithStorePath(Buffer.concat(head), firstStorePath)) return false;
  return compressed.digest() === pair.blob.digest && tar.digest() === pair.diffId && tar.bytes === localSize;
}
