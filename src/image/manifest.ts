/**
 * OCI manifests: which blobs make an image, for one choice of layer compression.
 * The same image has one manifest (and digest) per codec; the config is shared.
 */
import { sha256 } from '../digest.js';
import { NixdockError } from '../errors.js';
import type { Codec, Descriptor, Digest, Image, Layer } from '../types.js';
import { MANIFEST_SHAPE, canonicalJson } from './canonical.js';

export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  layerTar: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

const LAYER_MEDIA_TYPE: Record<Codec, string> = {
  none: MediaType.layerTar,
  gzip: MediaType.layerGzip,
  zstd: MediaType.layerZstd,
};

export function layerMediaType(codec: Codec): string {
  return LAYER_MEDIA_TYPE[codec];
}

/**
 * The annotation naming a layer's recipe key (the build cache's key: store paths + NAR hashes +
 * owner/mtime settings + tar format), so a machine that has not tarred the layer can still find
 * its blob in a registry by what it would be built from.
 */
export const RECIPE_ANNOTATION = 'dev.nixdock.layer.recipe';
/**
 * The layer's uncompressed tar size, so a machine matching the layer by recipe learns it without
 * walking the store paths (a claim like the recipe: checked against the gzip trailer's ISIZE).
 */
export const SIZE_ANNOTATION = 'dev.nixdock.layer.size';
/**
 * nix-snapshotter's per-layer store path list. Written without its `nix-layer: "true"` marker:
 * nixdock layers carry their files, so snapshotters must unpack them as ordinary layers.
 */
const STORE_PATH_ANNOTATION = 'containerd.io/snapshot/nix-store-path.';

/** A layer's descriptor annotations: as read from a layout, or its recipe for layers nixdock plans. */
export function layerAnnotations(layer: Layer): Record<string, string> | undefined {
  if (layer.annotations) return layer.annotations;
  const { source } = layer;
  if (source.kind === 'base') return undefined;
  const paths = Object.fromEntries(source.storePaths.map((path, i) => [`${STORE_PATH_ANNOTATION}${i}`, path]));
  return { [RECIPE_ANNOTATION]: source.key, [SIZE_ANNOTATION]: String(layer.size), ...paths };
}

/** The blob descriptor of a layer in the given codec (its compressed digest must be known). */
export function layerDescriptor(layer: Layer, codec: Codec): Descriptor {
  const annotations = layerAnnotations(layer);
  return { ...blobDescriptor(layer, codec), ...(annotations && { annotations }) };
}

function blobDescriptor(layer: Layer, codec: Codec): Descriptor {
  if (codec === 'none') return { mediaType: MediaType.layerTar, digest: layer.diffId, size: layer.size };
  const blob = layer.compressed[codec];
  if (!blob) {
    throw new NixdockError('INTERNAL', `Layer ${layer.diffId} has no known ${codec} blob`, {
      hint: `Write the layer with codec "${codec}" (OciLayout.writeLayer) before building its manifest.`,
    });
  }
  return { mediaType: LAYER_MEDIA_TYPE[codec], digest: blob.digest, size: blob.size };
}

export interface ManifestResult {
  bytes: Buffer;
  digest: Digest;
  /** Descriptor of the manifest itself, with the image's platform (what an index lists). */
  descriptor: Descriptor;
}

export function ociManifest(image: Image, codec: Codec): ManifestResult {
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: image.configDigest, size: image.configBytes.length },
    layers: image.layers.map((layer) => layerDescriptor(layer, codec)),
  };
  const bytes = Buffer.from(canonicalJson(manifest, MANIFEST_SHAPE));
  const digest = sha256(bytes);
  const { architecture, variant } = image.config;
  const platform = { os: 'linux' as const, architecture, ...(variant !== undefined && { variant }) };
  return { bytes, digest, descriptor: { mediaType: MediaType.ociManifest, digest, size: bytes.length, platform } };
}
