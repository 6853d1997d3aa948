/**
 * Reading an image, whatever holds it: one reader per kind of image location (image/location.ts),
 * each giving the same ImageSource (types.ts). Used by fromImage (base/read.ts), `nixdock export`
 * and `nixdock inspect`. Adding a format to read from is adding its reader here.
 */
import { NixdockError } from '../errors.js';
import type { FromImage } from '../config/types.js';
import type { Digest, ImageSource, Platform } from '../types.js';
import { ociPlatform, type OciPlatform } from '../image/platform.js';
import { readDockerArchive } from './docker-archive/read.js';
import { readOciLayout } from './oci-layout/read.js';

/** Where an image is: `oci:DIR[:TAG]`, `docker-archive:PATH` or a registry reference. */
export type ImageLocation = FromImage;

/**
 * A registry as a source of images: pulls `ref` into the pull cache, an OCI layout. Injected by
 * the caller (registry/source.ts) because the registry client sits above formats/: a hidden
 * import of it here was invisible to the CLI bundler, which then loaded a second errors.js.
 */
export type RegistryPull = (
  ref: string,
  opts: { cacheDir: string; allowTag: boolean; signal?: AbortSignal; platform?: Platform },
) => Promise<{ layoutDir: string; manifestDigest: Digest }>;

export interface ReadImageOptions {
  /** Where decompressed archives, layer sizes and pulled images are kept. */
  cacheDir: string;
  signal?: AbortSignal;
  /** Needed for registry references only. */
  pull?: RegistryPull;
  /** The image's own platform: the entry of a multi-platform registry index to pull (default the host's). */
  platform?: OciPlatform;
}

type Readers = { [K in ImageLocation['kind']]: (location: Extract<ImageLocation, { kind: K }>, opts: ReadImageOptions) => Promise<ImageSource> };

const READERS: Readers = {
  'docker-archive': (location, opts) => readDockerArchive(location.path, opts.cacheDir, { ...(location.name !== undefined && { name: location.name }), ...(location.tag !== undefined && { tag: location.tag }) }),
  oci: (location, opts) => readOciLayout(location.path, location.tag === undefined ? {} : { tag: location.tag }, opts.cacheDir),
  registry: readPulledImage,
};

/** The image at `location`; its layers are read only when a caller opens them. */
export function readImage(location: ImageLocation, opts: ReadImageOptions): Promise<ImageSource> {
  opts.signal?.throwIfAborted();
  const read = READERS[location.kind] as (location: ImageLocation, opts: ReadImageOptions) => Promise<ImageSource>;
  return read(location, opts);
}

/** A registry image is pulled into the pull cache (or found there) and read as the OCI layout it is kept in. */
async function readPulledImage(location: Extract<ImageLocation, { kind: 'registry' }>, opts: ReadImageOptions): Promise<ImageSource> {
  if (!opts.pull) {
    throw new NixdockError('REGISTRY', `Cannot pull ${location.ref}: this command reads no registry images`, {
      expected: 'a docker-archive or OCI layout image',
      hint: 'Pull it first (nixdock pull REF, or skopeo copy docker://REF oci:DIR:TAG) and use oci:DIR:TAG.',
    });
  }
  const pulled = await opts.pull(location.ref, {
    cacheDir: opts.cacheDir,
    allowTag: location.allowTag,
    ...(opts.signal && { signal: opts.signal }),
    ...(opts.platform && { platform: { os: 'linux' as const, ...ociPlatform(opts.platform.architecture, opts.platform.variant) } }),
  });
  return readOciLayout(pulled.layoutDir, { digest: pulled.manifestDigest }, opts.cacheDir, `registry:${location.ref}`);
}
