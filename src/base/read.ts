/**
 * `fromImage`: a base image's config and layers, whatever it came from. Every source ends up as
 * the same BaseImage; a registry pull is cached as an OCI layout, so it is read like one.
 */
import { NixdockError } from '../errors.js';
import type { FromImage } from '../config/types.js';
import type { Digest, ImageConfigFile, LayerSource } from '../types.js';
import { readDockerArchive } from '../formats/docker-archive/read.js';
import { readOciLayout } from '../formats/oci-layout/read.js';

export interface BaseImage {
  config: ImageConfigFile;
  /** kind 'base', diffId known, key `base:<diff_id>`; open() gives the uncompressed tar, verified on first read. */
  layers: LayerSource[];
  /** Where it came from, for history and messages, e.g. `docker-archive:/path/x.tar`. */
  description: string;
}

export interface ReadBaseOptions {
  cacheDir: string;
  signal?: AbortSignal;
}

export async function readBaseImage(from: FromImage, opts: ReadBaseOptions): Promise<BaseImage> {
  opts.signal?.throwIfAborted();
  switch (from.kind) {
    case 'docker-archive':
      return readDockerArchive(from.path, opts.cacheDir);
    case 'oci':
      return readOciLayout(from.path, from.tag === undefined ? {} : { tag: from.tag }, opts.cacheDir);
    case 'registry':
      return readPulledImage(from, opts);
  }
}

/** What src/registry/pull.ts provides (only the fields used here). */
interface PullModule {
  pullImage(ref: string, opts: { cacheDir: string; allowTag: boolean; signal?: AbortSignal }): Promise<{ layoutDir: string; manifestDigest: Digest }>;
}

async function readPulledImage(from: Extract<FromImage, { kind: 'registry' }>, opts: ReadBaseOptions): Promise<BaseImage> {
  const pulled = await (await loadPullModule()).pullImage(from.ref, { cacheDir: opts.cacheDir, allowTag: from.allowTag, ...(opts.signal && { signal: opts.signal }) });
  return readOciLayout(pulled.layoutDir, { digest: pulled.manifestDigest }, opts.cacheDir, `registry:${from.ref}`);
}

/** Loaded lazily: a build without a registry base never loads the HTTP client. */
async function loadPullModule(): Promise<PullModule> {
  const specifier = '../registry/pull.js';
  try {
    return (await import(specifier)) as PullModule;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e.message).includes('registry/pull')) throw err;
    throw new NixdockError('REGISTRY', 'Pulling base images from a registry is not available in this nixdock build', {
      expected: 'a docker-archive or OCI layout base image',
      hint: 'Pull it first (skopeo copy docker://REF oci:DIR:TAG) and use fromImage: { oci: DIR, tag: TAG }.',
      cause: err,
    });
  }
}
