/**
 * dockerTools' mergeImages: several images in one docker-archive, every tag loadable by
 * `podman load` / `docker load` (manifest.json has one entry per image, the OCI index one
 * manifest per image, blobs shared). Each image is built as `nixdock build` would build it (into
 * the OCI layout, cache and all), then read back from the layout, so the merged archive holds
 * exactly the images that build wrote: the same config and layer digests, the same image ids.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { buildImage, type BuildContext } from './build/build.js';
import type { ImageSpec } from './config/types.js';
import { NixdockError } from './errors.js';
import { writeDockerArchive, writeDockerArchiveFile } from './formats/docker-archive/write.js';
import { blobPath } from './formats/oci-layout/blobs.js';
import { readOciLayout } from './formats/oci-layout/read.js';
import { sha256 } from './digest.js';
import type { BuildResult, Image, Layer } from './types.js';

export interface MergeResult {
  /** The archive written, or undefined when it went to a stream. */
  path?: string;
  images: BuildResult[];
}

/** Builds `specs` (in order; a name may appear once) and writes them as one archive to `out`. */
export async function mergeImages(specs: ImageSpec[], ctx: BuildContext, out: { path: string } | { stream: Writable }): Promise<MergeResult> {
  if (specs.length === 0) throw new NixdockError('INPUT_INVALID', 'mergeImages needs at least one image', { hint: 'nixdock merge IMAGE IMAGE… -o merged.tar' });
  const outDir = ctx.outDir ?? ctx.config.outDir;
  const results: BuildResult[] = [];
  const images: Image[] = [];
  for (const spec of specs) {
    const result = await buildImage(spec, { ...ctx, formats: ['oci'], outDir });
    results.push(result);
    images.push(await builtImage(join(outDir, 'oci'), result, ctx.config.cacheDir));
  }
  if ('path' in out) {
    await writeDockerArchiveFile(images, out.path, ctx.signal);
    return { path: out.path, images: results };
  }
  await writeDockerArchive(images, out.stream, ctx.signal);
  return { images: results };
}

/** The image a build just wrote into the layout, by its manifest digest: config bytes as written, layers read from their blobs. */
async function builtImage(layoutDir: string, result: BuildResult, cacheDir: string): Promise<Image> {
  const base = await readOciLayout(layoutDir, { digest: result.manifestDigest! }, cacheDir, `${result.image}:${result.tag}`);
  const configBytes = await readFile(blobPath(layoutDir, result.configDigest));
  // The layout is ours and just written, but a blob swapped since would give an image under a false id.
  if (sha256(configBytes) !== result.configDigest) {
    throw new NixdockError('DIGEST_MISMATCH', `The config blob of ${result.image}:${result.tag} in ${layoutDir} does not match its digest`, {
      found: sha256(configBytes),
      expected: result.configDigest,
      hint: 'Something changed the output layout during the merge; run it again.',
    });
  }
  const layers: Layer[] = await Promise.all(base.layers.map(async (source) => ({ source, diffId: source.diffId!, size: await source.size(), built: false, compressed: {} })));
  return { name: result.image, tag: result.tag, layers, config: base.config, configBytes, configDigest: result.configDigest };
}
