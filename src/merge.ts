/**
 * dockerTools' mergeImages: several images in one docker-archive, every tag loadable by
 * `podman load` / `docker load` (manifest.json has one entry per image, the OCI index one
 * manifest per image, blobs shared). A project image is built as `nixdock build` would build it
 * (into the OCI layout, cache and all), then read back from the layout, so the merged archive
 * holds exactly the images that build wrote: the same config and layer digests, the same image
 * ids. A docker-archive (dockerTools' own images, `docker save`, an earlier merge) gives every
 * tagged image it holds, config bytes and layers as they are.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { buildImage, type BuildContext } from './build/build.js';
import type { ImageSpec } from './config/types.js';
import { NixdockError } from './errors.js';
import { readDockerArchiveImages } from './formats/docker-archive/read.js';
import { writeDockerArchive, writeDockerArchiveFile } from './formats/docker-archive/write.js';
import { blobPath } from './formats/oci-layout/blobs.js';
import { readOciLayout } from './formats/oci-layout/read.js';
import { sha256 } from './digest.js';
import type { BuildResult, Image, Layer, LayerSource } from './types.js';

/** What goes into the archive: a project image (built first), or every tagged image of a docker-archive. */
export type MergeSource = { kind: 'project'; spec: ImageSpec } | { kind: 'archive'; path: string };

export interface MergeContext {
  /** Where decompressed archives are cached. */
  cacheDir: string;
  signal?: AbortSignal;
  /** How project images are built; needed only when there are some. */
  build?: BuildContext;
}

export interface MergeResult {
  /** The archive written, or undefined when it went to a stream. */
  path?: string;
  /** `NAME:TAG` of every image in the archive, in order. */
  tags: string[];
  /** The project images' builds. */
  builds: BuildResult[];
}

/** Gathers the images of `sources` (in order) and writes them as one archive to `out`. */
export async function mergeImages(sources: MergeSource[], ctx: MergeContext, out: { path: string } | { stream: Writable }): Promise<MergeResult> {
  if (sources.length === 0) throw new NixdockError('INPUT_INVALID', 'mergeImages needs at least one image', { hint: 'nixdock merge IMAGE IMAGE… -o merged.tar' });
  const builds: BuildResult[] = [];
  const images: Image[] = [];
  for (const source of sources) {
    if (source.kind === 'archive') {
      images.push(...(await archiveImages(source.path, ctx.cacheDir)));
      continue;
    }
    if (!ctx.build) throw new NixdockError('INTERNAL', 'mergeImages got a project image without a build context');
    const outDir = ctx.build.outDir ?? ctx.build.config.outDir;
    const result = await buildImage(source.spec, { ...ctx.build, formats: ['oci'], outDir });
    builds.push(result);
    images.push(await builtImage(join(outDir, 'oci'), result, ctx.cacheDir));
  }
  const tags = images.map((image) => `${image.name}:${image.tag}`);
  if ('path' in out) {
    await writeDockerArchiveFile(images, out.path, ctx.signal);
    return { path: out.path, tags, builds };
  }
  await writeDockerArchive(images, out.stream, ctx.signal);
  return { tags, builds };
}

/** An archive's images, one per tag it carries (an image with two tags is listed twice, its blobs stored once). */
async function archiveImages(path: string, cacheDir: string): Promise<Image[]> {
  const entries = await readDockerArchiveImages(path, cacheDir);
  const images: Image[] = [];
  for (const [i, entry] of entries.entries()) {
    if (entry.repoTags.length === 0) throw untagged(path, i);
    const layers = await layersOf(entry.image.layers);
    for (const repoTag of entry.repoTags) {
      const { name, tag } = splitRepoTag(repoTag);
      images.push({ name, tag, layers, config: entry.image.config, configBytes: entry.configBytes, configDigest: sha256(entry.configBytes) });
    }
  }
  return images;
}

function layersOf(sources: readonly LayerSource[]): Promise<Layer[]> {
  return Promise.all(sources.map(async (source) => ({ source, diffId: source.diffId!, size: await source.size(), built: false, compressed: {} })));
}

/** `registry/name:tag` → name and tag; without a tag, `latest` (as docker load reads it). */
function splitRepoTag(repoTag: string): { name: string; tag: string } {
  const colon = repoTag.lastIndexOf(':');
  return colon > repoTag.lastIndexOf('/') ? { name: repoTag.slice(0, colon), tag: repoTag.slice(colon + 1) } : { name: repoTag, tag: 'latest' };
}

function untagged(path: string, index: number): NixdockError {
  return new NixdockError('INPUT_INVALID', `Image ${index + 1} of docker-archive:${path} has no tag, so a merged archive could not name it`, {
    location: { file: path },
    found: 'a manifest.json entry without RepoTags',
    expected: 'images saved with their names (docker save NAME:TAG, podman save, dockerTools)',
    hint: 'Save the image by name, or load it and save it again with a tag.',
  });
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
  return { name: result.image, tag: result.tag, layers: await layersOf(base.layers), config: base.config, configBytes, configDigest: result.configDigest };
}
