/**
 * Images from an OCI image layout directory (ours, skopeo's, umoci's, or the cache of a
 * registry pull). The image is chosen by tag (`org.opencontainers.image.ref.name`), by manifest
 * digest, or — when the layout holds one image — that one. Image indexes are resolved to the
 * host's platform.
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256 } from '../../digest.js';
import { hostPlatform, selectPlatform } from '../../image/platform.js';
import { blobPath } from './blobs.js';
import { NixdockError } from '../../errors.js';
import type { Codec, Descriptor, Digest, ImageSource } from '../../types.js';
import { descriptorProblem } from '../../image/descriptor.js';
import { invalidBase, parseImageConfig, parseJson } from '../image-json.js';
import { BaseLayer } from '../stored-layer.js';

export interface OciSelector {
  tag?: string;
  digest?: Digest;
}

interface IndexDocument {
  mediaType?: string;
  manifests: Descriptor[];
}

interface ManifestDocument {
  config: Descriptor;
  layers: Descriptor[];
}

const REF_NAME = 'org.opencontainers.image.ref.name';
const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

export async function readOciLayout(dir: string, select: OciSelector, cacheDir: string, description = `oci:${dir}${select.tag ? `:${select.tag}` : ''}`): Promise<ImageSource> {
  await readLayoutMarker(dir, description);
  const index = parseIndex(await readFile(join(dir, 'index.json')), `${description} (index.json)`);
  const { descriptor, bytes } = await resolveIndexes(dir, chooseManifest(index.manifests, select, description), description);
  const manifest = parseManifest(bytes, `${description} (${descriptor.digest})`);
  const config = parseImageConfig(await readBlob(dir, manifest.config, description), `${description} (config ${manifest.config.digest})`, manifest.layers.length);
  const layers = manifest.layers.map((layer, i) => {
    const codec = layerCodec(layer.mediaType);
    const path = blobPath(dir, layer.digest);
    return new BaseLayer({
      diffId: config.rootfs.diff_ids[i]!,
      description: `layer ${i + 1}/${manifest.layers.length} (${layer.digest}) of ${description}`,
      openBlob: () => createReadStream(path),
      blobDigest: layer.digest,
      ...(codec === 'none' ? { uncompressedSize: layer.size } : { compressed: { codec, size: layer.size } }),
      sizeCacheDir: join(cacheDir, 'base', 'sizes'),
    });
  });
  return { config, layers, description };
}

/** Indexes inside indexes (multi-platform lists of lists) are followed this deep, as far as anyone nests them. */
const MAX_INDEX_DEPTH = 4;

/**
 * Follows index → index → … → manifest, picking the host's platform at each index (a one-entry
 * index is that entry, whatever platform it names). A document is an index when its descriptor or
 * its own mediaType says so, or it has `manifests` and no `config`.
 */
async function resolveIndexes(dir: string, first: Descriptor, description: string): Promise<{ descriptor: Descriptor; bytes: Buffer }> {
  let descriptor = first;
  for (let depth = 0; ; depth++) {
    const bytes = await readBlob(dir, descriptor, description);
    if (!isIndex(descriptor, bytes)) return { descriptor, bytes };
    if (depth === MAX_INDEX_DEPTH) {
      throw new NixdockError('INPUT_INVALID', `${description}: image indexes nested more than ${MAX_INDEX_DEPTH} deep`, {
        location: { file: blobPath(dir, descriptor.digest) },
        found: `an index at depth ${depth + 1} (${descriptor.digest})`,
        expected: `an image manifest within ${MAX_INDEX_DEPTH} levels of index`,
        hint: 'Copy the image you want out of it (skopeo copy oci:DIR@DIGEST oci:NEW:TAG).',
      });
    }
    const nested = parseIndex(bytes, `${description} (${descriptor.digest})`);
    descriptor = nested.manifests.length === 1 ? nested.manifests[0]! : selectPlatform(nested.manifests, hostPlatform(), description);
  }
}

function isIndex(descriptor: Descriptor, bytes: Buffer): boolean {
  if (INDEX_TYPES.has(descriptor.mediaType)) return true;
  let doc: { mediaType?: unknown; manifests?: unknown; config?: unknown } | undefined;
  try {
    doc = JSON.parse(bytes.toString('utf8')) as typeof doc;
  } catch {
    return false;
  }
  if (typeof doc?.mediaType === 'string') return INDEX_TYPES.has(doc.mediaType);
  return Array.isArray(doc?.manifests) && doc?.config === undefined;
}

async function readLayoutMarker(dir: string, description: string): Promise<void> {
  const marker = await readFile(join(dir, 'oci-layout')).catch((err: NodeJS.ErrnoException) => {
    throw new NixdockError('INPUT_INVALID', `${dir} is not an OCI image layout`, {
      location: { file: join(dir, 'oci-layout') },
      found: err.code,
      expected: 'a directory with oci-layout, index.json and blobs/',
      hint: 'Write one with `skopeo copy … oci:DIR:TAG` or nixdock build, or use docker-archive: for a tarball.',
      cause: err,
    });
  });
  const layout = parseJson(marker, `${description} (oci-layout)`) as { imageLayoutVersion?: unknown };
  if (typeof layout?.imageLayoutVersion !== 'string') throw invalidBase(description, 'oci-layout', marker.toString('utf8').slice(0, 100), '{"imageLayoutVersion": "1.0.0"}');
}

function chooseManifest(manifests: Descriptor[], select: OciSelector, description: string): Descriptor {
  const matches = select.digest
    ? manifests.filter((m) => m.digest === select.digest)
    : select.tag !== undefined
      ? manifests.filter((m) => m.annotations?.[REF_NAME] === select.tag)
      : manifests;
  if (matches.length === 1) return matches[0]!;
  const tags = manifests.map((m) => m.annotations?.[REF_NAME]).filter(Boolean);
  const wanted = select.digest ?? (select.tag !== undefined ? `tag ${select.tag}` : 'one image');
  throw new NixdockError('IMAGE_NOT_FOUND', `${description}: ${matches.length === 0 ? 'no image matches' : 'several images match'} ${wanted}`, {
    location: { file: description },
    found: manifests.length === 0 ? 'an empty index.json' : `tags: ${tags.join(', ') || '(none)'}; ${manifests.length} manifest(s)`,
    expected: select.tag !== undefined || select.digest ? `exactly one manifest for ${wanted}` : 'a layout with one image, or a tag',
    hint: tags.length > 0 ? `Name one of the tags: oci:DIR:${tags[0]}` : 'Name the image by tag (oci:DIR:TAG).',
  });
}

function layerCodec(mediaType: string): Codec {
  if (mediaType.endsWith('+gzip') || mediaType.endsWith('.gzip')) return 'gzip';
  if (mediaType.endsWith('+zstd')) return 'zstd';
  return 'none';
}

/** Small documents (manifests, configs) are read whole and checked against their digest. */
async function readBlob(dir: string, descriptor: Descriptor, description: string): Promise<Buffer> {
  const path = blobPath(dir, descriptor.digest);
  const bytes = await readFile(path).catch((err: unknown) => {
    throw invalidBase(description, `blob ${descriptor.digest}`, 'missing from blobs/sha256', 'every blob the manifest names', err);
  });
  const actual = sha256(bytes);
  if (actual !== descriptor.digest) {
    throw new NixdockError('DIGEST_MISMATCH', `Blob ${descriptor.digest} of ${description} does not match its digest`, {
      location: { file: path },
      found: actual,
      expected: descriptor.digest,
      hint: 'The layout is corrupt or was changed after it was written; re-create or re-pull it.',
    });
  }
  return bytes;
}

function parseIndex(bytes: Buffer, where: string): IndexDocument {
  const index = parseJson(bytes, where) as Partial<IndexDocument>;
  if (!Array.isArray(index?.manifests) || !index.manifests.every(isDescriptor)) {
    throw invalidBase(where, 'manifests', JSON.stringify(index?.manifests)?.slice(0, 200), 'an array of descriptors {mediaType, digest, size}');
  }
  return index as IndexDocument;
}

function parseManifest(bytes: Buffer, where: string): ManifestDocument {
  const manifest = parseJson(bytes, where) as Partial<ManifestDocument>;
  if (!isDescriptor(manifest?.config)) throw invalidBase(where, 'config', JSON.stringify(manifest?.config), 'a descriptor {mediaType, digest, size}');
  if (!Array.isArray(manifest.layers) || !manifest.layers.every(isDescriptor)) {
    throw invalidBase(where, 'layers', JSON.stringify(manifest.layers)?.slice(0, 200), 'an array of descriptors');
  }
  return manifest as ManifestDocument;
}

function isDescriptor(value: unknown): value is Descriptor {
  return descriptorProblem(value) === undefined;
}
