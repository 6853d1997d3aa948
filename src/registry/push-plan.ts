/**
 * Push a planned image (layer sources, not yet tarred) so that it costs what changed: each layer
 * is placed by the cheapest way that is sure, and tarred and compressed only when none is.
 *
 *   1. the local cache knows the recipe and its compressed blob → HEAD (or mount) it;
 *   2. a registry claims a blob for the recipe (RECIPE_ANNOTATION) or for the diff_id the cache
 *      knows — at the target reference or a cache-from reference → the claim is verified
 *      (remote-layers.ts: HEAD + the blob's uncompressed size against this machine's), then
 *      HEADed or mounted in the target;
 *   3. otherwise the layer is tarred and compressed once into a temp file (diff_id and blob
 *      digest in the same pass) and uploaded unless the registry turns out to have it.
 * Whatever 2 and 3 learn goes into the local cache (recipe → diff_id, diff_id → blob), so the
 * next push from this machine needs no claim. Layers are placed concurrently, and each one's
 * upload starts as soon as it is compressed: uploads overlap the compression of later layers.
 */
import { DigestStream } from '../digest.js';
import { compressor } from '../layer/compress.js';
import type { Codec, CompressedBlob, Digest, Image, Layer, LayerSource, Platform } from '../types.js';
import { fileBody, RegistryClient } from './client.js';
import { mapLimit, PushSession, type PushedBlob, type PushOptions, type PushResult } from './push.js';
import { RemoteLayers, verifyPair, type RemotePair } from './remote-layers.js';
import { spool } from '../util/spool.js';
import { formatTarget, registryTarget, type RegistryTarget } from './target.js';
import { cacheRefInvalid, writeCacheRows, type CacheRow } from './cache-artifact.js';
import type { BlobAction, CompressedDigestCache } from './types.js';

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
}

interface Placed {
  layer: Layer;
  blob: PushedBlob;
}

export async function pushPlanned(plan: PlannedImage, codec: Codec, ref: string, opts: PlannedPushOptions): Promise<PlannedPushResult> {
  const target = registryTarget(ref, opts.insecure);
  const clients = new Clients(opts);
  const cacheTo = opts.cacheTo === undefined ? undefined : cacheTarget(opts.cacheTo, opts.insecure);
  const refs = [ref, ...(opts.cacheFrom ?? []), ...(cacheTo ? [formatTarget(cacheTo)] : [])];
  const sources = refs.map((r) => {
    const at = registryTarget(r, opts.insecure);
    return { client: clients.get(at), reference: at.digest ?? at.tag ?? 'latest', clientFor: (repo: string) => clients.get(registryTarget(repo, opts.insecure)) };
  });
  const remote = await RemoteLayers.read(sources, codec, plan.platform);
  // Claimed blobs in other repositories of the target's registry are mounted, not uploaded.
  const siblings = remote.repositories(target.registry).filter((repo) => repo !== target.repository);
  const session = new PushSession(ref, { ...opts, mountFrom: [...(opts.mountFrom ?? []), ...siblings] });
  const placer = new LayerPlacer(session, remote, codec, opts);
  const placed = await mapLimit(plan.sources, opts.concurrency ?? 3, (source, index) => placer.place(source, index));
  const image = plan.assemble(placed.map((p) => p.layer));
  const result = await session.finish(image, codec, placed.map((p) => p.blob));
  const cacheRows = cacheTo ? await writeCache(clients.get(cacheTo, 'push'), cacheTo, placed, session.target, remote) : undefined;
  return { ...result, layersTarred: placer.tarred, layersFromRegistry: placer.fromRegistry, claimsRejected: placer.rejected, ...(cacheRows !== undefined && { cacheRows }) };
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

  async place(source: LayerSource, index: number): Promise<Placed> {
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
    for (const pair of this.remote.candidates(source.key, record?.diffId)) {
      if (pair.blob.digest === known?.digest) continue;
      const size = record?.size ?? (await source.size());
      if (!(await verifyPair(pair, size))) {
        this.rejected++;
        this.opts.onRejected?.(source, pair);
        continue;
      }
      const action = await this.session.pusher.skipOrMount(pair.blob.digest);
      if (!action) continue;
      this.fromRegistry++;
      this.learn(source, pair.diffId, size, pair.blob);
      return this.placed(source, index, { diffId: pair.diffId, size }, pair.blob, action, false);
    }
    return this.build(source, index);
  }

  /** Tars and compresses the layer once (diff_id and blob digest in one pass), then pushes it unless present. */
  private async build(source: LayerSource, index: number): Promise<Placed> {
    this.tarred++;
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
