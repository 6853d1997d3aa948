/**
 * `fromImage`: a base image's config and layers, whatever it came from. Every source ends up as
 * the same BaseImage; a registry pull is cached as an OCI layout, so it is read like one.
 */
import { NixdockError } from '../errors.js';
import type { FromImage } from '../config/types.js';
import type { Digest, ImageConfigFile, LayerSource, Platform } from '../types.js';
import { ociPlatform, type OciPlatform } from '../image/platform.js';
import { readDockerArchive } from '../formats/docker-archive/read.js';
import { readOciLayout } from '../formats/oci-layout/read.js';

export interface BaseImage {
  config: ImageConfigFile;
  /** kind 'base', diffId known, key `base:<diff_id>`; open() gives the uncompressed tar, verified on first read. */
  layers: LayerSource[];
  /** Where it came from, for history and messages, e.g. `docker-archive:/path/x.tar`. */
  description: string;
}

/**
 * A registry as a source of base images: pulls `ref` into the pull cache, an OCI layout. Injected
 * by the caller (registry/source.ts) because the registry client sits above base/: a hidden
 * import of it here was invisible to the CLI bundler, which then loaded a second errors.js.
 */
export type RegistryPull = (
  ref: string,
  opts: { cacheDir: string; allowTag: boolean; signal?: AbortSignal; platform?: Platform },
) => Promise<{ layoutDir: string; manifestDigest: Digest }>;

export interface ReadBaseOptions {
  cacheDir: string;
  signal?: AbortSignal;
  /** Needed for registry references only. */
  pull?: RegistryPull;
  /** The image's own platform: picked from a multi-platform index, and required of every base. */
  platform?: OciPlatform;
}

export async function readBaseImage(from: FromImage, opts: ReadBaseOptions): Promise<BaseImage> {
  opts.signal?.throwIfAborted();
  const base = await readBase(from, opts);
  if (opts.platform) checkPlatform(base, opts.platform);
  return base;
}

function readBase(from: FromImage, opts: ReadBaseOptions): Promise<BaseImage> {
  switch (from.kind) {
    case 'docker-archive':
      return readDockerArchive(from.path, opts.cacheDir, { ...(from.name !== undefined && { name: from.name }), ...(from.tag !== undefined && { tag: from.tag }) });
    case 'oci':
      return readOciLayout(from.path, from.tag === undefined ? {} : { tag: from.tag }, opts.cacheDir);
    case 'registry':
      return readPulledImage(from, opts);
  }
}

/**
 * A base of another platform would give an image whose binaries cannot run together (an arm64
 * libc under amd64 programs): refused, naming both. The variant counts only when both say one.
 */
function checkPlatform(base: BaseImage, wanted: OciPlatform): void {
  const { architecture, variant } = base.config;
  if (!architecture) return;
  const found = normalised({ architecture, variant });
  const want = normalised(wanted);
  if (found.architecture === want.architecture && (found.variant === undefined || want.variant === undefined || found.variant === want.variant)) return;
  const show = (p: OciPlatform) => ['linux', p.architecture, p.variant].filter(Boolean).join('/');
  throw new NixdockError('INPUT_INVALID', `The base image ${base.description} is for ${show(found)}, but the image is for ${show(want)}`, {
    location: { field: 'fromImage' },
    found: show(found),
    expected: show(want),
    hint: 'Use a base image of the same platform (a multi-platform registry image is picked for the image\'s architecture/variant), or set the image\'s architecture to match.',
  });
}

async function readPulledImage(from: Extract<FromImage, { kind: 'registry' }>, opts: ReadBaseOptions): Promise<BaseImage> {
  if (!opts.pull) {
    throw new NixdockError('REGISTRY', `Cannot pull ${from.ref}: this command reads no registry images`, {
      expected: 'a docker-archive or OCI layout image',
      hint: 'Pull it first (nixdock pull REF, or skopeo copy docker://REF oci:DIR:TAG) and use oci:DIR:TAG.',
    });
  }
  const pulled = await opts.pull(from.ref, {
    cacheDir: opts.cacheDir,
    allowTag: from.allowTag,
    ...(opts.signal && { signal: opts.signal }),
    ...(opts.platform && { platform: { os: 'linux' as const, ...ociPlatform(opts.platform.architecture, opts.platform.variant) } }),
  });
  return readOciLayout(pulled.layoutDir, { digest: pulled.manifestDigest }, opts.cacheDir, `registry:${from.ref}`);
}

/** OCI spelling where nixdock knows the architecture; an unknown one is compared as written. */
function normalised(p: OciPlatform): OciPlatform {
  try {
    return ociPlatform(p.architecture, p.variant);
  } catch {
    return p;
  }
}
