/**
 * Push a planned image (layer sources, not yet tarred) so that it costs what changed: each layer
 * is placed by the cheapest way that is sure, and tarred and compressed only when none is.
 *
 *   1. the local cache knows the recipe and its compressed blob → HEAD (or mount) it;
 *   2. a registry claims a blob for the recipe (RECIPE_ANNOTATION) or for the diff_id the cache
 *      knows — at the target reference or a cache-from reference → the claim is verified
 *      (remote-layers.ts: HEAD + the blob's uncompressed size against this machine's), then
 *      HEADed or mounted in the target;
 *   3. otherwise the layer is tarred and compressed once, streamed to the registry as it is
 *      compressed (diff_id and blob digest computed on the way; the digest is given to the
 *      registry at the end, client.uploadStream), so nothing waits for a temp file.
 * Whatever 2 and 3 learn goes into the local cache (recipe → diff_id, diff_id → blob), so the
 * next push from this machine needs no claim. Steps 1 and 2 cost a round trip or two per layer
 * and no CPU, so all layers go through them first, many at once (CLAIM_CONCURRENCY); then the
 * layers left are built a few at a time, each upload overlapping its own and the others'
 * compression, memory bounded by stream back-pressure.
 */
import { randomBytes } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestStream } from '../digest.js';
import { NixdockError } from '../errors.js';
import { compressor } from '../layer/compress.js';
import type { Codec, CompressedBlob, Digest, Image, Layer, LayerSource, Platform } from '../types.js';
import { fileBody, RegistryClient } from './client.js';
import { registryRequests } from './http.js';
import { mapLimit, PushSession, type PushedBlob, type PushOptions, type PushResult } from './push.js';
import { RemoteLayers, verifyPair, type RemotePair } from './remote-layers.js';
import { spool } from '../util/spool.js';
import { writeNewFile } from '../util/atomic.js';
import { formatTarget, registryTarget, type RegistryTarget } from './target.js';
import { cacheRefInvalid, writeCacheRows, type CacheRow } from './cache-artifact.js';
import type { BlobAction, CompressedDigestCache } from './types.js';

/** Layers whose claims are checked at once: each waits on a round trip or two, not on CPU. */
const CLAIM_CONCURRENCY = 16;

/** The tag of a cache reference given without one. */
export const CACHE_TAG = 'nixdock-cache';

/** An image as planned: its layer sources, and how to assemble it once their diff_ids are known. */
export interface PlannedImage {
  sources: LayerSource[];
  assemble(layers: Layer[]): Image;
  /** Picks the right image when a reference names a multi-platform index. */
  platform: Platform;
}

/** What the push reads from and teaches the build cache. */
export interface LayerCache extends CompressedDigestCache {
  lookupLayer(key: string): { diffId: Digest; size: number } | undefined;
  recordLayer(rec: { key: string; diffId: Digest; size: number; storePaths: string[] }): void;
}

export interface PlannedPushOptions extends PushOptions {
  cache: LayerCache;
  /** More references whose layers the image may share (`--cache-from`); the target's own manifest is always read. */
  cacheFrom?: string[];
  /** A cache artifact to write the pushed layers' rows into (`--cache-to`, config cache.registry); it is read first too. */
  cacheTo?: string;
  /** A local file known to hold the blob (an OCI layout output's, still as written), if any. */
  localBlob?: (blob: CompressedBlob) => Promise<string | undefined>;
  /** Told of each registry claim that failed verification (the layer is then built). */
  onRejected?: (source: LayerSource, pair: RemotePair) => void;
}

export interface PlannedPushResult extends PushResult {
  /** Layers whose tar was produced (and compressed): the cost of what changed. */
  layersTarred: number;
  /** Layers placed on a verified registry claim, without tarring. */
  layersFromRegistry: number;
  /** Registry claims refused by verification. */
  claimsRejected: number;
  /** Rows the cache artifact holds after the push, when one was written. */
  cacheRows?: number;
  /** HTTP requests to registries (and token services) during the push: its round trips. */
  requests: number;
}

interface Placed {
  layer: Layer;
  blob: PushedBlob;
}

/** `plan` may still be in the making: the registry's manifests are read meanwhile. */
export async function pushPlanned(plan: PlannedImage | Promise<PlannedImage>, codec: Codec, ref: string, opts: PlannedPushOptions): Promise<PlannedPushResult> {
  return (await pushPlan(plan, codec, ref, opts)).result;
}

/** pushPlanned, also giving the image as pushed (its layers carry their diff_ids and blobs). */
export async function pushPlan(planning: PlannedImage | Promise<PlannedImage>, codec: Codec, ref: string, opts: PlannedPushOptions): Promise<{ result: PlannedPushResult; image: Image }> {
  const requestsBefore = registryRequests();
  const target = registryTarget(ref, opts.insecure);
  const clients = new Clients(opts);
  const cacheTo = opts.cacheTo === undefined ? undefined : cacheTarget(opts.cacheTo, opts.insecure);
  const refs = [ref, ...(opts.cacheFrom ?? []), ...(cacheTo ? [formatTarget(cacheTo)] : [])];
  const sources = refs.map((r) => {
    const at = registryTarget(r, opts.insecure);
    return { client: clients.get(at), reference: at.digest ?? at.tag ?? 'latest', clientFor: (repo: string) => clients.get(registryTarget(repo, opts.insecure)) };
  });
  const planned = Promise.resolve(planning);
  const platform = planned.then((p) => p.platform);
  const reading = RemoteLayers.read(sources, codec, platform);
  // Both awaited below, after the plan, whose own failure is the one to report.
  platform.catch(() => undefined);
  reading.catch(() => undefined);
  const plan = await planned;
  const remote = await reading;
  // Claimed blobs in other repositories of the target's registry are mounted, not uploaded.
  const siblings = remote.repositories(target.registry).filter((repo) => repo !== target.repository);
  const session = new PushSession(ref, { ...opts, mountFrom: [...(opts.mountFrom ?? []), ...siblings] });
  const placer = new LayerPlacer(session, remote, codec, opts);
  const reused = await mapLimit(plan.sources, CLAIM_CONCURRENCY, (source, index) => placer.reuse(source, index));
  const placed = await mapLimit(plan.sources, opts.concurrency ?? 3, async (source, index): Promise<Placed> => reused[index] ?? placer.build(source, index));
  const image = plan.assemble(placed.map((p) => p.layer));
  const result = await session.finish(image, codec, placed.map((p) => p.blob));
  const cacheRows = cacheTo ? await writeCache(clients.get(cacheTo, 'push'), cacheTo, placed, session.target, remote) : undefined;
  const counts = { layersTarred: placer.tarred, layersFromRegistry: placer.fromRegistry, claimsRejected: placer.rejected };
  return { result: { ...result, ...counts, ...(cacheRows !== undefined && { cacheRows }), requests: registryRequests() - requestsBefore }, image };
}

/** `host/repo` gets the tag nixdock-cache; a digest is refused (a cache is rewritten). */
function cacheTarget(ref: string, insecure?: boolean): RegistryTarget {
  const target = registryTarget(ref, insecure);
  if (target.digest) throw cacheRefInvalid(ref);
  return { ...target, tag: target.tag ?? CACHE_TAG };
}

/** The placed layers' rows, merged into the cache artifact's (those read from it before the push). */
async function writeCache(client: RegistryClient, at: RegistryTarget, placed: Placed[], pushedTo: RegistryTarget, remote: RemoteLayers): Promise<number> {
  const repository = `${pushedTo.registry}/${pushedTo.repository}`;
  const rows = placed.flatMap(({ layer }): CacheRow[] => {
    const blob = Object.values(layer.compressed)[0] ?? { codec: 'none' as const, digest: layer.diffId, size: layer.size };
    return [{ recipe: layer.source.key, diffId: layer.diffId, size: layer.size, blob, repository }];
  });
  const existing = [...remote.cacheRows.entries()].find(([c]) => c.target.registry === at.registry && c.target.repository === at.repository)?.[1] ?? [];
  return writeCacheRows(client, at.tag!, rows, existing);
}

/** One registry client per repository and access (pull, or pull+push), so each authenticates once. */
class Clients {
  private readonly byKey = new Map<string, RegistryClient>();

  constructor(private readonly opts: PushOptions) {}

  get(target: RegistryTarget, access: 'pull' | 'push' = 'pull'): RegistryClient {
    const key = `${access} ${target.registry}/${target.repository}`;
    let client = this.byKey.get(key);
    if (!client) {
      const { auth, signal, tries, backoffMs, limits, chunkSize } = this.opts;
      client = new RegistryClient(target, { auth, signal, tries, backoffMs, limits, chunkSize, actions: access === 'push' ? ['pull', 'push'] : ['pull'] });
      this.byKey.set(key, client);
    }
    return client;
  }
}

class LayerPlacer {
  tarred = 0;
  fromRegistry = 0;
  rejected = 0;

  constructor(
    private readonly session: PushSession,
    private readonly remote: RemoteLayers,
    private readonly codec: Codec,
    private readonly opts: PlannedPushOptions,
  ) {}

  /** The layer placed without tarring it (the local cache's blob, or a verified registry claim), or undefined. */
  async reuse(source: LayerSource, index: number): Promise<Placed | undefined> {
    this.opts.onBlob?.({ type: 'start', kind: 'layer', index });
    const record = this.opts.cache.lookupLayer(source.key);
    const known = record && this.knownBlob(record.diffId, record.size);
    if (record && known) {
      const action = await this.session.pusher.skipOrMount(known.digest);
      if (action) return this.placed(source, index, record, known, action, false);
      // Built here before (`nixdock build`): upload the layout's blob, no tarring or compressing.
      const path = await this.opts.localBlob?.(known);
      if (path) {
        await this.session.pusher.upload(fileBody(path, known.digest, known.size), 'layer', index);
        return this.placed(source, index, record, known, 'uploaded', false);
      }
    }
    const local = { firstStorePath: source.kind === 'store' ? source.storePaths[0] : undefined, size: record?.size, walk: () => source.size() };
    for (const pair of this.remote.candidates(source.key, record?.diffId)) {
      if (pair.blob.digest === known?.digest) continue;
      const size = await verifyPair(pair, local);
      if (size === undefined) {
        this.rejected++;
        this.opts.onRejected?.(source, pair);
        continue;
      }
      // Verifying read the blob in the target repository itself: it is there, no HEAD needed.
      const action = this.inTarget(pair.client) ? 'skipped' : await this.session.pusher.skipOrMount(pair.blob.digest);
      if (!action) continue;
      this.fromRegistry++;
      this.learn(source, pair.diffId, size, pair.blob);
      return this.placed(source, index, { diffId: pair.diffId, size }, pair.blob, action, false);
    }
    return undefined;
  }

  private emptyTarget: Promise<boolean> | undefined;

  /** Whether the target repository has no tag at all (asked once, when the first layer must be built). */
  private targetEmpty(): Promise<boolean> {
    this.emptyTarget ??= this.session.client.hasTags().then((has) => !has);
    return this.emptyTarget;
  }

  private inTarget(client: RegistryClient): boolean {
    const { registry, repository } = this.session.target;
    return client.target.registry === registry && client.target.repository === repository;
  }

  /**
   * Tars and compresses the layer once, streaming it to the registry as it is compressed; the
   * diff_id and the blob digest are computed on the way. Streamed only into an empty repository:
   * one with tags may hold the blob already, which a HEAD finds once the digest is known, so
   * there the layer goes to a temp file first (buildSpooled). A registry that refuses a streamed
   * upload gets the temp file too.
   */
  async build(source: LayerSource, index: number): Promise<Placed> {
    this.tarred++;
    if (!(await this.targetEmpty())) {
      return this.codec === 'none' && source.writeToFd ? this.buildUncompressed(source, source.writeToFd, index) : this.buildSpooled(source, index);
    }
    let produced: { diffId: Digest; size: number; blob: CompressedBlob } | undefined;
    const open = () => {
      const tar = new DigestStream();
      const compress = compressor(this.codec);
      // Uncompressed, the blob is the tar: hashed once.
      const blob = compress ? new DigestStream() : tar;
      const body = new PassThrough();
      const stages = compress ? [tar, compress, blob, body] : [tar, body];
      const ended = pipeline([source.open(), ...stages] as [Readable, ...NodeJS.ReadWriteStream[]], { signal: this.opts.signal }).then(() => {
        produced = { diffId: tar.digest(), size: tar.bytes, blob: { codec: this.codec, digest: blob.digest(), size: blob.bytes } };
        return produced.blob.digest;
      });
      // No progress events: a streamed blob's digest and size are known only at its end.
      return { body, ended };
    };
    try {
      await this.session.client.uploadStream(open);
    } catch (err) {
      if (!streamRefused(err)) throw err;
      return this.buildSpooled(source, index);
    }
    const { diffId, size, blob } = produced!;
    this.learn(source, diffId, size, blob);
    return this.placed(source, index, { diffId, size }, blob, 'uploaded', true);
  }

  /**
   * An uncompressed layer for a repository that may have it: a tar worker writes it into a temp
   * file and hashes it on its own thread (the main thread only uploads), and a HEAD of its digest
   * (the blob is the tar) skips it when the registry has it.
   */
  private async buildUncompressed(source: LayerSource, writeToFd: NonNullable<LayerSource['writeToFd']>, index: number): Promise<Placed> {
    const path = join(tmpdir(), `.nixdock-layer-${randomBytes(8).toString('hex')}.tar`);
    try {
      const diffId = await writeNewFile(path, (fd) => writeToFd(fd, { signal: this.opts.signal }));
      const { size } = await stat(path);
      const blob: CompressedBlob = { codec: 'none', digest: diffId, size };
      this.learn(source, diffId, size, blob);
      const { pusher } = this.session;
      let action = await pusher.skipOrMount(diffId);
      if (!action) {
        await pusher.upload(fileBody(path, diffId, size), 'layer', index);
        action = 'uploaded';
      }
      return this.placed(source, index, { diffId, size }, blob, action, true);
    } finally {
      await rm(path, { force: true });
    }
  }

  /** The layer tarred and compressed into a temp file, then pushed unless present. */
  private async buildSpooled(source: LayerSource, index: number): Promise<Placed> {
    const tar = new DigestStream();
    const spooled = await spool(source.open(), { signal: this.opts.signal, through: [tar, compressor(this.codec)] });
    try {
      const diffId = tar.digest();
      const blob: CompressedBlob = { codec: this.codec, digest: spooled.digest, size: spooled.size };
      this.learn(source, diffId, tar.bytes, blob);
      const { pusher } = this.session;
      let action = await pusher.skipOrMount(blob.digest);
      if (!action) {
        await pusher.upload(fileBody(spooled.path, blob.digest, blob.size), 'layer', index);
        action = 'uploaded';
      }
      return this.placed(source, index, { diffId, size: tar.bytes }, blob, action, true);
    } finally {
      await spooled.remove();
    }
  }

  private knownBlob(diffId: Digest, size: number): CompressedBlob | undefined {
    if (this.codec === 'none') return { codec: 'none', digest: diffId, size };
    return this.opts.cache.getCompressed(diffId, this.codec);
  }

  private learn(source: LayerSource, diffId: Digest, size: number, blob: CompressedBlob): void {
    this.opts.cache.recordLayer({ key: source.key, diffId, size, storePaths: [...source.storePaths] });
    if (blob.codec !== 'none') this.opts.cache.putCompressed(diffId, blob);
  }

  private placed(source: LayerSource, index: number, tar: { diffId: Digest; size: number }, blob: CompressedBlob, action: BlobAction, built: boolean): Placed {
    const pushed = this.session.pusher.done('layer', index, blob, action);
    const compressed = blob.codec === 'none' ? {} : { [blob.codec]: blob };
    return { layer: { source, diffId: tar.diffId, size: tar.size, built, compressed }, blob: pushed };
  }
}

/** A registry that does not take a streamed PATCH (it wants Content-Range or a length): 400, 411, 416. */
function streamRefused(err: unknown): boolean {
  return err instanceof NixdockError && err.code === 'REGISTRY' && ['HTTP 400', 'HTTP 411', 'HTTP 416'].includes(String(err.found));
}
