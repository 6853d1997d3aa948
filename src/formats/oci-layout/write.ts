/**
 * An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/…`): the blob store
 * every image in it shares. Each blob is written once, under a temp name then renamed to its
 * digest; index.json is replaced atomically, so readers see the old or the new image, never half.
 */
import { createReadStream, createWriteStream, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NixdockError, withWritePath } from '../../errors.js';
import { INDEX_SHAPE, canonicalJson } from '../../image/canonical.js';
import { MediaType, ociManifest } from '../../image/manifest.js';
import type { Codec, Descriptor, Digest, Image, ImageConfigFile, Layer, LayerSource, OutputResult } from '../../types.js';
import { removeAbandonedTemps, tempPathFor, writeFileAtomic, writeNewFile } from '../../util/atomic.js';
import { compressor } from '../../layer/compress.js';
import { assertExpected, DigestStream, expectingStream, sha256, sha256Of, type Expected } from '../../digest.js';
import { BLOBS_DIR, blobPath } from './blobs.js';

export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
export const ANNOTATION_IMAGE_NAME = 'io.containerd.image.name';

const LAYOUT_FILE = Buffer.from('{"imageLayoutVersion":"1.0.0"}');

interface IndexFile {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
}

/** One image listed in index.json. */
export interface LayoutRef {
  /** The tag (org.opencontainers.image.ref.name). */
  ref: string;
  /** Full reference NAME:TAG (io.containerd.image.name), when annotated. */
  name?: string;
  manifestDigest: Digest;
}

/**
 * Runs `update` while holding a lock that every other writer of the same layout also takes (the
 * build passes the build cache's write transaction: the OS drops it when a process dies, so a
 * killed build never leaves a stale lock). `update` is synchronous for that reason.
 */
export type LayoutLock = (update: () => void) => void;

export interface OciLayoutOptions {
  /** Serialises index.json read-modify-write between processes; without it, concurrent writers can lose entries. */
  lock?: LayoutLock;
}

export class OciLayout {
  private swept = false;

  constructor(readonly dir: string, private readonly options: OciLayoutOptions = {}) {}

  blobPath(digest: Digest): string {
    return blobPath(this.dir, digest);
  }

  async hasBlob(digest: Digest, size?: number): Promise<boolean> {
    try {
      const info = await stat(this.blobPath(digest));
      return info.isFile() && (size === undefined || info.size === size);
    } catch {
      return false;
    }
  }

  openBlob(digest: Digest): Readable {
    return createReadStream(this.blobPath(digest), { highWaterMark: 1 << 20 });
  }

  /**
   * The identity of a blob file as stat sees it: device, inode, size, mtime and ctime in ns;
   * undefined when the file is missing or has another size. Any write to the file changes mtime
   * and ctime, a `touch` too, and ctime cannot be set back from user space (utimes sets it to
   * now), so an unchanged fingerprint means unchanged bytes without reading them.
   */
  async blobFingerprint(digest: Digest, size: number): Promise<string | undefined> {
    try {
      const info = await stat(this.blobPath(digest), { bigint: true });
      if (!info.isFile() || info.size !== BigInt(size)) return undefined;
      return [info.dev, info.ino, info.size, info.mtimeNs, info.ctimeNs].join(':');
    } catch {
      return undefined;
    }
  }

  /** Re-reads a blob and checks that its bytes hash to its name. */
  async blobHashesTo(digest: Digest): Promise<boolean> {
    try {
      return (await sha256Of(createReadStream(this.blobPath(digest)))) === digest;
    } catch {
      return false;
    }
  }

  /** Removes a blob whose bytes are wrong, so the next write puts the right ones under its name. */
  async discardBlob(digest: Digest): Promise<void> {
    await unlink(this.blobPath(digest)).catch(() => undefined);
  }

  /**
   * Streams a layer into blobs/sha256 (temp file + rename), hashing the uncompressed bytes and,
   * for gzip/zstd, the compressed ones, in one pass. Checks the byte count against source.size()
   * and, when the source claims a diffId, the digest too — unless `trustDiffId` says the claim is
   * the build cache's record of hashing these very bytes: then they are only counted.
   */
  async writeLayer(source: LayerSource, codec: Codec, signal?: AbortSignal, trustDiffId = false): Promise<Layer> {
    await this.ensureLayout();
    const size = await source.size();
    // A blob already under the layer's diffId (another image, or an index that was lost) is only
    // kept if its bytes still hash to that name; the caller then records its fingerprint.
    if (codec === 'none' && source.diffId && (await this.hasBlob(source.diffId, size))) {
      if (await this.blobHashesTo(source.diffId)) return { source, diffId: source.diffId, size, built: false, compressed: {} };
      await this.discardBlob(source.diffId);
    }
    const expected = { digest: source.diffId, size, what: `Layer ${source.description}`, trusted: trustDiffId && source.diffId !== undefined };
    if (codec === 'none' && source.writeToFd) return this.writeFromFd(source, source.writeToFd, expected, signal);
    const tar = expectingStream(expected);
    const compress = compressor(codec);
    const blob = compress ? new DigestStream() : tar;
    const tmp = tempPathFor(join(this.blobsDir(), 'layer'));
    try {
      await pipeline([source.open(), tar, ...(compress ? [compress, blob] : []), createWriteStream(tmp, { mode: 0o644 })], { signal });
      await rename(tmp, this.blobPath(blob.digest()));
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw withWritePath(err, tmp);
    }
    const diffId = tar.digest();
    const compressed = compress ? { [codec]: { codec, digest: blob.digest(), size: blob.bytes } } : {};
    return { source, diffId, size, built: true, compressed };
  }

  /** The uncompressed blob written into its temp file by the source itself (no stream in between). */
  private async writeFromFd(source: LayerSource, writeToFd: NonNullable<LayerSource['writeToFd']>, expected: Expected, signal?: AbortSignal): Promise<Layer> {
    const tmp = tempPathFor(join(this.blobsDir(), 'layer'));
    try {
      const diffId = await writeNewFile(tmp, (fd) => writeToFd(fd, { signal, ...(expected.trusted && { knownDigest: expected.digest }) }));
      assertExpected(expected, (await stat(tmp)).size, diffId);
      await rename(tmp, this.blobPath(diffId));
      return { source, diffId, size: expected.size, built: true, compressed: {} };
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw withWritePath(err, tmp);
    }
  }

  /** Writes a small blob (config, manifest) unless present. */
  async writeBlob(bytes: Buffer, mediaType = 'application/octet-stream'): Promise<Descriptor> {
    const digest = sha256(bytes);
    await this.ensureLayout();
    // Configs and manifests are a few KiB: comparing the bytes is cheap and catches a damaged copy.
    const present = await readFile(this.blobPath(digest)).catch(() => undefined);
    if (!present?.equals(bytes)) await writeFileAtomic(this.blobPath(digest), bytes);
    return { mediaType, digest, size: bytes.length };
  }

  /**
   * Writes config + manifest blobs and points index.json at them: the entry with the same tag is
   * replaced (in place, so rewriting an image gives the same index bytes), others are kept.
   * Layer blobs missing from this layout are written from their sources first.
   */
  async addImage(image: Image, codec: Codec, signal?: AbortSignal): Promise<OutputResult> {
    const layers = await this.ensureLayers(image, codec, signal);
    const complete = { ...image, layers };
    await this.writeBlob(image.configBytes, MediaType.ociConfig);
    const manifest = ociManifest(complete, codec);
    await this.writeBlob(manifest.bytes, MediaType.ociManifest);
    const annotations = { [ANNOTATION_IMAGE_NAME]: `${image.name}:${image.tag}`, [ANNOTATION_REF_NAME]: image.tag };
    await this.updateIndex(`${image.name}:${image.tag}`, { ...manifest.descriptor, annotations });
    return { format: 'oci', path: this.dir, manifestDigest: manifest.digest };
  }

  /** The images listed in index.json, in index order. */
  async refs(): Promise<LayoutRef[]> {
    const index = this.readIndex();
    return index.manifests.flatMap((d) => {
      const ref = d.annotations?.[ANNOTATION_REF_NAME];
      if (ref === undefined) return [];
      const name = d.annotations?.[ANNOTATION_IMAGE_NAME];
      return [{ ref, ...(name !== undefined && { name }), manifestDigest: d.digest }];
    });
  }

  /** Reads an image back by tag, NAME:TAG or manifest digest. */
  async readImage(ref: string): Promise<{ manifest: any; config: ImageConfigFile; manifestDigest: Digest }> {
    const found = (await this.refs()).find((r) => r.ref === ref || r.name === ref || r.manifestDigest === ref);
    if (!found) {
      const known = (await this.refs()).map((r) => r.name ?? r.ref);
      throw new NixdockError('IMAGE_NOT_FOUND', `No image "${ref}" in the OCI layout ${this.dir}`, {
        location: { file: join(this.dir, 'index.json') },
        found: ref,
        expected: known.length ? known.join(', ') : 'no images are listed in this layout',
        hint: 'Name an image by its tag or NAME:TAG as `nixdock inspect` lists them.',
      });
    }
    const manifest = JSON.parse(await this.readBlob(found.manifestDigest));
    const config = JSON.parse(await this.readBlob(manifest.config.digest)) as ImageConfigFile;
    return { manifest, config, manifestDigest: found.manifestDigest };
  }

  private async ensureLayers(image: Image, codec: Codec, signal?: AbortSignal): Promise<Layer[]> {
    const layers: Layer[] = [];
    for (const layer of image.layers) {
      const blob = codec === 'none' ? { digest: layer.diffId, size: layer.size } : layer.compressed[codec];
      if (blob && (await this.hasBlob(blob.digest, blob.size))) {
        layers.push(layer);
        continue;
      }
      const written = await this.writeLayer(withKnownDiffId(layer), codec, signal);
      layers.push({ ...layer, compressed: { ...layer.compressed, ...written.compressed } });
    }
    return layers;
  }

  /** The descriptors of index.json as they are now (none when it does not exist yet). */
  entries(): Descriptor[] {
    return this.readIndex().manifests;
  }

  /**
   * Removes the index.json entries `drop` picks, under the layout lock, reading the index afresh
   * (entries another writer added meanwhile stay). Blobs are not touched: gc removes those.
   */
  removeEntries(drop: (entry: Descriptor) => boolean): Descriptor[] {
    let removed: Descriptor[] = [];
    this.locked(() => {
      const index = this.readIndex();
      removed = index.manifests.filter(drop);
      if (removed.length > 0) this.writeIndex(index.manifests.filter((d) => !drop(d)));
    });
    return removed;
  }

  /** Entries are keyed by NAME:TAG, so images that share a tag (say `latest`) keep their own entries. */
  private async updateIndex(fullName: string, entry: Descriptor): Promise<void> {
    this.locked(() => {
      const index = this.readIndex();
      const at = index.manifests.findIndex((d) => d.annotations?.[ANNOTATION_IMAGE_NAME] === fullName);
      if (at === -1) index.manifests.push(entry);
      else index.manifests[at] = entry;
      this.writeIndex(index.manifests);
    });
  }

  private writeIndex(manifests: Descriptor[]): void {
    const bytes = canonicalJson({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }, INDEX_SHAPE);
    writeFileAtomicSync(join(this.dir, 'index.json'), bytes);
  }

  private locked(update: () => void): void {
    // The lock's owner (the index) would rename our errors; carry them out of it unchanged.
    let failure: unknown;
    (this.options.lock ?? ((fn) => fn()))(() => {
      try {
        update();
      } catch (err) {
        failure = err;
      }
    });
    if (failure !== undefined) throw failure;
  }

  /** Synchronous, so it can run inside the layout lock (see LayoutLock). index.json is small. */
  private readIndex(): IndexFile {
    const path = join(this.dir, 'index.json');
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { schemaVersion: 2, manifests: [] };
      throw err;
    }
    try {
      const index = JSON.parse(text) as IndexFile;
      if (!Array.isArray(index.manifests)) throw new Error('no "manifests" array');
      return index;
    } catch (err) {
      throw new NixdockError('INPUT_INVALID', `${path} is not an OCI image index`, {
        location: { file: path },
        found: (err as Error).message,
        expected: 'JSON with a "manifests" array (OCI image layout index.json)',
        hint: 'Point the output at an empty directory or an OCI layout nixdock or skopeo wrote.',
        cause: err,
      });
    }
  }

  private async readBlob(digest: Digest): Promise<string> {
    try {
      return await readFile(this.blobPath(digest), 'utf8');
    } catch (err) {
      throw new NixdockError('INPUT_INVALID', `The OCI layout ${this.dir} lacks blob ${digest}`, {
        location: { file: this.blobPath(digest) },
        hint: 'The layout is incomplete: build the image again.',
        cause: err,
      });
    }
  }

  private blobsDir(): string {
    return join(this.dir, BLOBS_DIR);
  }

  private async ensureLayout(): Promise<void> {
    await mkdir(this.blobsDir(), { recursive: true });
    if (!(await fileExists(join(this.dir, 'oci-layout')))) await writeFileAtomic(join(this.dir, 'oci-layout'), LAYOUT_FILE);
    if (!this.swept) {
      this.swept = true;
      await removeAbandonedTemps(this.blobsDir());
      await removeAbandonedTemps(this.dir);
    }
  }
}

/** writeFileAtomic for code that must not yield (inside the layout lock): temp file, then rename. */
function writeFileAtomicSync(path: string, bytes: Buffer | string): void {
  const tmp = tempPathFor(path);
  try {
    writeFileSync(tmp, bytes, { mode: 0o644 });
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw withWritePath(err, path);
  }
}

async function fileExists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

/** The layer's source, claiming its known diffId so the bytes written are verified against it. */
function withKnownDiffId(layer: Layer): LayerSource {
  const s = layer.source;
  return { kind: s.kind, key: s.key, storePaths: s.storePaths, description: s.description, size: () => s.size(), open: () => s.open(), diffId: layer.diffId };
}
