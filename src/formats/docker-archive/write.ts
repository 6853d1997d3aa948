/**
 * docker-archive outputs (what `docker load` / `podman load` read).
 *
 * Warm (every layer digest known): the hybrid Docker 25+ `docker save` writes — an OCI layout
 * (`oci-layout`, `index.json`, `blobs/sha256/…`) plus `manifest.json` pointing into `blobs/`, so
 * old and new loaders both accept it. Cold (some digest unknown): a single pass that names layers
 * `layers/000.tar`, hashes them while streaming, and writes config and manifest.json last.
 */
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Writable } from 'node:stream';
import { NixdockError } from '../../errors.js';
import { INDEX_SHAPE, canonicalJson } from '../../image/canonical.js';
import { MediaType, ociManifest } from '../../image/manifest.js';
import type { Digest, Image, Layer, LayerSource, OutputResult } from '../../types.js';
import { removeAbandonedTemps, withTempFile } from '../../util/atomic.js';
import { digestHex } from '../../digest.js';
import { assertExpected, expectingStream } from '../../digest.js';
import { BLOBS_DIR, blobName } from '../oci-layout/blobs.js';
import { ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME } from '../oci-layout/write.js';
import { TarWriter } from '../../tar/archive-writer.js';

/** One entry of manifest.json (Docker's legacy loader format). */
interface ArchiveManifestEntry {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

const MANIFEST_JSON_SHAPE = { items: { keys: ['Config', 'RepoTags', 'Layers'] } };
const LAYOUT_FILE = Buffer.from('{"imageLayoutVersion":"1.0.0"}');

/**
 * Writes the hybrid archive. Layer bytes come from layer.source.open() and are verified against
 * the diffId while written; on a mismatch the stream fails before the entry completes.
 */
export async function writeDockerArchive(images: Image[], out: Writable, signal?: AbortSignal): Promise<void> {
  await writeHybrid(images.map(knownImage), TarWriter.into(out, signal), signal);
}

/** An image for the hybrid form: known layers (Layer) and, into a file only, cold ones (LayerSource). */
export interface HybridImage {
  layers: Array<Layer | LayerSource>;
  /** Builds the image once every diff_id is known. */
  assemble: (layers: Layer[]) => Image;
  /** Called as each layer is written (or found already written). */
  onLayer?: (layer: Layer, index: number) => void;
}

const knownImage = (image: Image): HybridImage => ({ layers: image.layers, assemble: () => image });

/** Placeholder name of a cold layer's blob until its digest is known: as long as every blob name. */
const UNNAMED_BLOB = blobName(`sha256:${'0'.repeat(64)}`);

async function writeHybrid(images: HybridImage[], writer: TarWriter, signal?: AbortSignal): Promise<Image[]> {
  if (images.length === 0) throw new NixdockError('INTERNAL', 'writeDockerArchive needs at least one image');
  return writer.run(async (tar) => {
    await tar.directory('blobs/');
    await tar.directory(`${BLOBS_DIR}/`);
    await tar.file('oci-layout', LAYOUT_FILE);
    const written = new Set<Digest>();
    const writeOnce = async (digest: Digest, write: () => Promise<void>): Promise<void> => {
      if (written.has(digest)) return;
      written.add(digest);
      await write();
    };
    const manifests = [];
    const done: Image[] = [];
    // Cold layers' walks run ahead while earlier layers are written (see planAhead).
    const planning = new AbortController();
    void planAhead(images.flatMap((image) => image.layers), planning.signal);
    try {
      for (const planned of images) {
        const layers: Layer[] = [];
        for (const [index, item] of planned.layers.entries()) {
          let layer: Layer;
          if (isLayer(item)) {
            layer = item;
            await writeOnce(layer.diffId, () => streamKnownLayer(tar, blobName(layer.diffId), layer, index, signal));
          } else {
            layer = await writeColdBlob(tar, item, signal);
            written.add(layer.diffId);
          }
          layers.push(layer);
          planned.onLayer?.(layer, index);
        }
        const image = planned.assemble(layers);
        await writeOnce(image.configDigest, () => tar.file(blobName(image.configDigest), image.configBytes));
        const manifest = ociManifest(image, 'none');
        await writeOnce(manifest.digest, () => tar.file(blobName(manifest.digest), manifest.bytes));
        manifests.push({ ...manifest.descriptor, annotations: refAnnotations(image) });
        done.push(image);
      }
    } finally {
      planning.abort();
    }
    await tar.file('index.json', Buffer.from(canonicalJson({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }, INDEX_SHAPE)));
    const entries = done.map((image) => archiveEntry(image, blobName(image.configDigest), image.layers.map((l) => blobName(l.diffId))));
    await tar.file('manifest.json', manifestJson(entries));
    return done;
  });
}

/**
 * A cold layer in the hybrid form, in one pass: written under a placeholder name, hashed on the
 * way, then its header rewritten in place under its digest (the archive is a file, so it can be;
 * `nixdock stream` cannot, which is why it names cold layers layers/NNN.tar). The bytes are those
 * of a second pass that knew the digest first. A cold layer whose bytes equal an earlier layer's
 * would be in the archive twice under one name; store and customisation layers never are.
 */
async function writeColdBlob(tar: TarWriter, source: LayerSource, signal?: AbortSignal): Promise<Layer> {
  const at = tar.position;
  const layer = await streamColdLayer(tar, UNNAMED_BLOB, source, signal);
  tar.renameEntry(at, blobName(layer.diffId), layer.size);
  return layer;
}

/** The hybrid archive as a file, replaced atomically (a failed write keeps the previous file). */
export async function writeDockerArchiveFile(images: Image[], path: string, signal?: AbortSignal): Promise<OutputResult> {
  await writeArchiveFile(images.map(knownImage), path, signal);
  return { format: 'docker-archive', path, manifestDigest: ociManifest(images[0]!, 'none').digest };
}

/**
 * One image as a hybrid archive file whose cold layers are tarred and hashed once, while they are
 * written (a build with no OCI layout to take the blobs from); resolves with the assembled image.
 */
export async function writeDockerArchiveFileOnce(image: HybridImage, path: string, signal?: AbortSignal): Promise<{ image: Image; result: OutputResult }> {
  const [written] = await writeArchiveFile([image], path, signal);
  return { image: written!, result: { format: 'docker-archive', path, manifestDigest: ociManifest(written!, 'none').digest } };
}

async function writeArchiveFile(images: HybridImage[], path: string, signal?: AbortSignal): Promise<Image[]> {
  await removeAbandonedTemps(dirname(path));
  return withTempFile(path, async (tmp) => {
    const file = await open(tmp, 'wx', 0o644);
    try {
      return await writeHybrid(images, TarWriter.intoFile(file.fd, signal), signal);
    } finally {
      await file.close();
    }
  });
}

export interface StreamArchiveOptions extends HybridImage {
  out: Writable;
  signal?: AbortSignal;
}

/**
 * A docker-archive in one pass, for `nixdock stream`. Cold layers go out as `layers/NNN.tar` with
 * their exact size() in the header, hashed on the way; the config (built by `assemble` from the
 * now-known diff_ids) and manifest.json come last. All layers known → the hybrid form instead.
 */
export async function streamDockerArchive(opts: StreamArchiveOptions): Promise<Image> {
  if (opts.layers.every(isLayer)) return (await writeHybrid([opts], TarWriter.into(opts.out, opts.signal), opts.signal))[0]!;
  return TarWriter.into(opts.out, opts.signal).run(async (tar) => {
    await tar.directory('layers/');
    const layers: Layer[] = [];
    const planning = new AbortController();
    void planAhead(opts.layers, planning.signal);
    try {
      for (const [index, item] of opts.layers.entries()) {
        const name = `layers/${String(index).padStart(3, '0')}.tar`;
        const layer = isLayer(item) ? (await streamKnownLayer(tar, name, item, index, opts.signal), item) : await streamColdLayer(tar, name, item, opts.signal);
        layers.push(layer);
        opts.onLayer?.(layer, index);
      }
    } finally {
      planning.abort();
    }
    const image = opts.assemble(layers);
    const configName = `${digestHex(image.configDigest)}.json`;
    await tar.file(configName, image.configBytes);
    await tar.file('manifest.json', manifestJson([archiveEntry(image, configName, layers.map((_, i) => `layers/${String(i).padStart(3, '0')}.tar`))]));
    return image;
  });
}

function isLayer(item: Layer | LayerSource): item is Layer {
  return 'source' in item;
}

async function streamKnownLayer(tar: TarWriter, name: string, layer: Layer, index: number, signal?: AbortSignal): Promise<void> {
  const what = `Layer ${index} (${layer.source.description})`;
  // A file of known-good bytes needs no hashing, so it can skip the stream machinery too.
  if (layer.verifiedBytes && layer.source.tarFile !== undefined) return tar.copyFile(name, layer.size, layer.source.tarFile, what);
  const expected = { digest: layer.diffId, size: layer.size, what, trusted: layer.verifiedBytes };
  const writeToFd = layer.source.writeToFd;
  if (layer.verifiedBytes && writeToFd) {
    // Known bytes regenerated by the source's workers straight into the output, only counted: the
    // fresh walk must plan exactly the recorded size before the header promises it.
    assertExpected(expected, await layer.source.size(), layer.diffId);
    const written = await tar.bodyFromFd(name, layer.size, (fd) => writeToFd(fd, { signal, knownDigest: layer.diffId }));
    if (written !== undefined) return;
  }
  await tar.stream(name, layer.size, layer.source.open(), expectingStream(expected));
}

/**
 * Plans the layers to be tarred in order (their lstat walks, behind size()) while earlier ones are
 * being written by their worker, so the output rarely waits for a walk; stops when the archive
 * ends. That is the cold layers and the known ones without a blob to copy (tarred again, only
 * counted): walked in turn, the warm stream without blobs of the 1 GB benchmark spent ~0.8 s of its
 * main thread walking while the worker waited. A failure is left for the layer's own size() call
 * to report (a failed walk is retried there).
 */
async function planAhead(layers: Array<Layer | LayerSource>, stop: AbortSignal): Promise<void> {
  for (const layer of layers) {
    if (stop.aborted) return;
    if (!isLayer(layer)) await layer.size().catch(() => undefined);
    else if (retarred(layer)) await layer.source.size().catch(() => undefined);
  }
}

/** A known layer whose bytes are tarred again from the store (no blob file to copy): see streamKnownLayer. */
function retarred(layer: Layer): boolean {
  return layer.verifiedBytes === true && layer.source.tarFile === undefined && layer.source.writeToFd !== undefined;
}

async function streamColdLayer(tar: TarWriter, name: string, source: LayerSource, signal?: AbortSignal): Promise<Layer> {
  const size = await source.size();
  const expected = { digest: source.diffId, size, what: `Layer ${source.description}` };
  const writeToFd = source.writeToFd;
  // The fast path: the source's worker writes and hashes the body straight into the output. A
  // wrong digest fails the archive before its config and manifest.json, so no consumer gets a
  // complete-looking image.
  const written = writeToFd && (await tar.bodyFromFd(name, size, (fd) => writeToFd(fd, { signal })));
  if (written !== undefined) {
    assertExpected(expected, size, written);
    return { source, diffId: written, size, built: true, compressed: {} };
  }
  const hash = expectingStream(expected);
  await tar.stream(name, size, source.open(), hash);
  return { source, diffId: hash.digest(), size, built: true, compressed: {} };
}

function refAnnotations(image: Image): Record<string, string> {
  return { [ANNOTATION_IMAGE_NAME]: `${image.name}:${image.tag}`, [ANNOTATION_REF_NAME]: image.tag };
}

function archiveEntry(image: Image, config: string, layers: string[]): ArchiveManifestEntry {
  return { Config: config, RepoTags: [`${image.name}:${image.tag}`], Layers: layers };
}

function manifestJson(entries: ArchiveManifestEntry[]): Buffer {
  return Buffer.from(canonicalJson(entries, MANIFEST_JSON_SHAPE));
}
