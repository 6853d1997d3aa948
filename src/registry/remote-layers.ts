/**
 * What registries already hold for an image: the manifests at the push target and at every
 * cache-from reference, each layer paired with its diff_id (manifest `layers[i]` ↔ config
 * `rootfs.diff_ids[i]`) and, where nixdock pushed it, with its recipe key (RECIPE_ANNOTATION);
 * a cache-from reference may also name a cache artifact (cache-artifact.ts) of such rows.
 *
 * A pair is only the registry's claim. A registry (or a proxy, or a tool that rewrote a manifest)
 * can pair a diff_id with the wrong blob; building on such a pair would give an image whose
 * layers do not match its config, which pulls then refuse. So verify() checks a pair against what
 * this machine knows without tarring: the layer's uncompressed size, computed from the store
 * (a metadata walk) or taken from the local cache, never from the registry:
 *   - none: the blob is the tar, so its digest must be the diff_id and its size the local size;
 *   - gzip: the blob's gzip trailer (ISIZE, 8 bytes by a ranged GET) must give the local size;
 *   - zstd: no size in the frame, so the blob is downloaded and decompressed, and must hash to
 *     the diff_id (network bytes, still no tarring or compressing).
 * Not caught by the size checks: a pairing with another layer of exactly the same tar size
 * (mod 4 GiB); the image config's diff_id then names the other layer and pulls refuse it.
 */
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NixdockError } from '../errors.js';
import { autoDecompress } from '../formats/decompress.js';
import { DigestStream, isDigest, sha256 } from '../digest.js';
import { MediaType, RECIPE_ANNOTATION } from '../image/manifest.js';
import type { Codec, CompressedBlob, Descriptor, Digest, Platform } from '../types.js';
import { RegistryClient } from './client.js';
import { isCacheArtifact, readCacheRows, type CacheRow } from './cache-artifact.js';

/** One claim of a registry: this diff_id is stored as this blob, in this repository. */
export interface RemotePair {
  diffId: Digest;
  blob: CompressedBlob;
  recipe?: string;
  /** Where the manifest that made the claim lives (the blob is in that repository). */
  client: RegistryClient;
}

/** Config blobs are small JSON; a bigger one is not an image config nixdock pairs layers from. */
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;
const GZIP_TRAILER = 8;

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

  /** Pairs of `codec` from the image or cache artifact at each reference; a reference with neither adds none. */
  static async read(sources: RemoteSource[], codec: Codec, platform: Platform): Promise<RemoteLayers> {
    const remote = new RemoteLayers();
    for (const source of sources) {
      for (const pair of await remote.readPairs(source, platform)) {
        if (pair.blob.codec === codec) remote.add(pair);
      }
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

  private async readPairs(source: RemoteSource, platform: Platform): Promise<RemotePair[]> {
    const { client, reference } = source;
    let doc = await readManifest(client, reference);
    if (doc && isCacheArtifact(doc)) {
      const rows = await readCacheRows(client, doc);
      this.cacheRows.set(client, rows);
      return rows.map((row) => ({ diffId: row.diffId, blob: row.blob, recipe: row.recipe, client: source.clientFor(row.repository) }));
    }
    if (doc?.manifests) {
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
    return [{ diffId: diffIds[i] as Digest, blob: { codec, digest: layer.digest, size: layer.size }, client, ...(typeof recipe === 'string' && { recipe }) }];
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

/**
 * Whether the pair's blob is present and holds a tar of `localSize` bytes (see the module comment);
 * `localSize` comes from this machine, never from the registry.
 */
export async function verifyPair(pair: RemotePair, localSize: number): Promise<boolean> {
  const { blob, client } = pair;
  if ((await client.blobSize(blob.digest)) !== blob.size) return false;
  if (blob.codec === 'none') return blob.digest === pair.diffId && blob.size === localSize;
  if (blob.codec === 'gzip') {
    const trailer = await client.blobTail(blob.digest, blob.size, GZIP_TRAILER);
    return trailer !== undefined && trailer.readUInt32LE(4) === localSize % 2 ** 32;
  }
  return decompressesTo(pair, localSize);
}

/** Downloads the blob, and checks both its digest and its decompressed diff_id and size. */
async function decompressesTo(pair: RemotePair, localSize: number): Promise<boolean> {
  const compressed = new DigestStream();
  const tar = createHash('sha256');
  let size = 0;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      tar.update(chunk);
      size += chunk.length;
      done(size > localSize ? new Error('more bytes than the layer has') : null);
    },
  });
  try {
    await pipeline(await pair.client.openBlob(pair.blob.digest, pair.blob.size), compressed, autoDecompress(), sink);
  } catch {
    return false;
  }
  return compressed.digest() === pair.blob.digest && `sha256:${tar.digest('hex')}` === pair.diffId && size === localSize;
}
