/**
 * Push an image to a registry: every blob is HEADed first and skipped when present, mounted
 * from a sibling repository when possible, else uploaded; then the config, then the manifest
 * (the registry only shows the image once the manifest is in, so an interrupted push leaves
 * nothing half-visible and the next push finishes it), then extra tags.
 */
import { NixdockError } from '../errors.js';
import type { Codec, CompressedBlob, Digest, Image, Layer } from '../types.js';
import { bufferBody, fileBody, RegistryClient, type BlobBody } from './client.js';
import type { RegistryLimits } from './http.js';
import { MediaType, ociManifest } from '../image/manifest.js';
import { compressor } from '../layer/compress.js';
import { spool, type SpooledBlob } from '../util/spool.js';
import { formatTarget, registryTarget, type RegistryTarget } from './target.js';
import { hasCompressedBytes, type AuthOptions, type BlobAction, type BlobKind, type BlobPushEvent, type CompressedDigestCache } from './types.js';

/** What to push: an image whose layer bytes can be opened. */
export interface PushSource {
  image: Image;
  /** Layer compression in the registry (deterministic gzip or zstd, or none); the manifest's media types follow. */
  codec: Codec;
}

export interface PushOptions {
  cache?: CompressedDigestCache;
  insecure?: boolean;
  auth?: AuthOptions;
  signal?: AbortSignal;
  onBlob?: (e: BlobPushEvent) => void;
  /** Repositories on the same registry that may already hold the layers (cross-repository mount). */
  mountFrom?: string[];
  /** Tags set after the reference's own tag. */
  tags?: string[];
  /** Layers uploaded at the same time (default 3). */
  concurrency?: number;
  /** Transport tuning, mostly for tests. */
  tries?: number;
  backoffMs?: number;
  chunkSize?: number;
  /** Timeouts and size caps of the registry client (see RegistryLimits). */
  limits?: Partial<RegistryLimits>;
}

export interface PushedBlob {
  kind: BlobKind;
  digest: Digest;
  size: number;
  action: BlobAction;
}

export interface PushResult {
  /** The reference pushed, normalised (registry/repository:tag). */
  ref: string;
  manifestDigest: Digest;
  /** Layers in image order, then the config. */
  blobs: PushedBlob[];
  bytesUploaded: number;
}

export async function pushImage(src: PushSource, ref: string, opts: PushOptions = {}): Promise<PushResult> {
  const session = new PushSession(ref, opts);
  const { image, codec } = src;
  const layers = await mapLimit(image.layers, opts.concurrency ?? 3, (layer, index) => session.pusher.pushLayer(layer, index, codec));
  return session.finish({ ...image, layers: image.layers.map((l, i) => withBlob(l, codec, layers[i]!)) }, codec, layers);
}

/** One push to one reference: the client, its blob pusher, and the config and manifest put last. */
export class PushSession {
  readonly target: RegistryTarget;
  readonly client: RegistryClient;
  readonly pusher: BlobPusher;

  constructor(
    private readonly ref: string,
    private readonly opts: PushOptions,
  ) {
    this.target = registryTarget(ref, opts.insecure);
    this.client = new RegistryClient(this.target, {
      auth: opts.auth,
      signal: opts.signal,
      actions: ['pull', 'push'],
      mountFrom: opts.mountFrom,
      tries: opts.tries,
      backoffMs: opts.backoffMs,
      chunkSize: opts.chunkSize,
      limits: opts.limits,
    });
    this.pusher = new BlobPusher(this.client, opts);
  }

  /** Pushes the config, then the manifest under every tag; `image.layers` carry the blobs pushed for `codec`. */
  async finish(image: Image, codec: Codec, layers: PushedBlob[]): Promise<PushResult> {
    const config = await this.pusher.pushConfig(image, image.layers.length);
    // The same serialisation as the OCI layout writer, so a pushed image has the layout's digest.
    const { bytes: manifest, digest: manifestDigest } = ociManifest(image, codec);
    const { target } = this;
    if (target.digest && target.digest !== manifestDigest) {
      throw new NixdockError('REFERENCE_INVALID', `Cannot push to ${this.ref}: the image's manifest has a different digest`, {
        found: manifestDigest,
        expected: target.digest,
        hint: 'Push to a tag instead, or pin the digest the image really has.',
      });
    }
    const tags = [target.tag ?? (target.digest ? undefined : 'latest'), ...(this.opts.tags ?? [])].filter((t): t is string => Boolean(t));
    for (const reference of tags.length > 0 ? tags : [manifestDigest]) {
      await this.client.putManifest(reference, manifest, MediaType.ociManifest);
    }
    const blobs = [...layers, config];
    return {
      ref: formatTarget(target),
      manifestDigest,
      blobs,
      bytesUploaded: blobs.filter((b) => b.action === 'uploaded').reduce((sum, b) => sum + b.size, 0),
    };
  }
}

/** Pushes one blob at a time through skip → mount → upload, recording compressed digests in the cache. */
export class BlobPusher {
  constructor(
    private readonly client: RegistryClient,
    private readonly opts: PushOptions,
  ) {}

  async pushLayer(layer: Layer, index: number, codec: Codec): Promise<PushedBlob> {
    this.opts.onBlob?.({ type: 'start', kind: 'layer', index });
    const known = this.knownBlob(layer, codec);
    if (known) {
      const action = await this.skipOrMount(known.digest);
      if (action) return this.done('layer', index, known, action);
    }
    // Unknown or missing remotely: produce the bytes (this also yields the true digest).
    const spooled = await this.spoolLayer(layer, codec);
    try {
      if (codec === 'none' && spooled.digest !== layer.diffId) throw layerChanged(layer, spooled.digest);
      if (spooled.digest !== known?.digest) {
        if (codec !== 'none') this.opts.cache?.putCompressed(layer.diffId, { codec, digest: spooled.digest, size: spooled.size });
        const action = await this.skipOrMount(spooled.digest);
        if (action) return this.done('layer', index, spooled, action);
      }
      await this.upload(fileBody(spooled.path, spooled.digest, spooled.size), 'layer', index);
      return this.done('layer', index, spooled, 'uploaded');
    } finally {
      await spooled.remove();
    }
  }

  async pushConfig(image: Image, index: number): Promise<PushedBlob> {
    this.opts.onBlob?.({ type: 'start', kind: 'config', index });
    const body = bufferBody(image.configBytes, image.configDigest);
    const action = (await this.skipOrMount(body.digest)) ?? (await this.upload(body, 'config', index), 'uploaded' as const);
    return this.done('config', index, body, action);
  }

  /** The blob's digest without reading the layer: diff_id when uncompressed, else the layer's or the index's record. */
  private knownBlob(layer: Layer, codec: Codec): CompressedBlob | undefined {
    if (codec === 'none') return { codec, digest: layer.diffId, size: layer.size };
    return layer.compressed[codec] ?? this.opts.cache?.getCompressed(layer.diffId, codec);
  }

  /** 'skipped' when the repository has the blob, 'mounted' when a sibling lent it, else undefined. */
  async skipOrMount(digest: Digest): Promise<BlobAction | undefined> {
    if ((await this.client.blobSize(digest)) !== undefined) return 'skipped';
    for (const from of this.opts.mountFrom ?? []) {
      if (await this.client.mountBlob(digest, from)) return 'mounted';
    }
    return undefined;
  }

  private spoolLayer(layer: Layer, codec: Codec): Promise<SpooledBlob> {
    const { source } = layer;
    const ready = hasCompressedBytes(source) && layer.compressed[codec] ? source.openCompressed(codec) : undefined;
    if (ready) return spool(ready, { signal: this.opts.signal });
    return spool(source.open(), { signal: this.opts.signal, through: [compressor(codec)] });
  }

  async upload(body: BlobBody, kind: BlobKind, index: number): Promise<void> {
    const report = (bytesSent: number) => this.opts.onBlob?.({ type: 'progress', kind, index, digest: body.digest, bytesSent, size: body.size });
    await this.client.uploadBlob(body, this.opts.onBlob && report);
  }

  done(kind: BlobKind, index: number, blob: { digest: Digest; size: number }, action: BlobAction): PushedBlob {
    this.opts.onBlob?.({ type: 'done', kind, index, digest: blob.digest, size: blob.size, action });
    return { kind, digest: blob.digest, size: blob.size, action };
  }
}

/** The layer with the blob as pushed recorded for its codec (what the manifest lists). */
function withBlob(layer: Layer, codec: Codec, blob: PushedBlob): Layer {
  if (codec === 'none') return layer;
  return { ...layer, compressed: { ...layer.compressed, [codec]: { codec, digest: blob.digest, size: blob.size } } };
}

function layerChanged(layer: Layer, found: Digest): NixdockError {
  return new NixdockError('DIGEST_MISMATCH', `Layer ${layer.source.description} no longer has the diff_id the image was built with`, {
    found,
    expected: layer.diffId,
    hint: 'Its files changed after the build; build the image again, then push.',
  });
}

/** Like Promise.all over items.map(fn), with at most `limit` running at once; results keep input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
