/**
 * Stage 2, materialise: each planned layer source becomes a Layer (its digest known), from the
 * build cache when it knows the recipe and the blob is intact, built otherwise. Cancellation is
 * honoured between layers: finished layers are already in the cache and their blobs in place,
 * so the next build reuses them.
 */
import type { BuildCache } from '../cache/cache.js';
import { NixdockError } from '../errors.js';
import { blobBacked, intactBlob, storedBlob, trustBlob } from '../formats/oci-layout/trust.js';
import { OciLayout } from '../formats/oci-layout/write.js';
import { hashLayer } from '../layer/hash.js';
import { layerSourceWith } from '../layer/source-view.js';
import type { HybridImage } from '../formats/docker-archive/write.js';
import type { Codec, Digest, Layer, LayerSource } from '../types.js';
import { assemblePlanned } from './assemble.js';
import type { ImagePlan } from './plan.js';
import type { BuildProgress } from './progress.js';

export interface MaterialiseContext {
  index: BuildCache;
  progress: BuildProgress;
  signal?: AbortSignal;
}

/** Cache lookup + layer build into an OCI layout: a known layer whose blob is present is not re-tarred. */
export async function materialiseInto(layout: OciLayout, plan: ImagePlan, ctx: MaterialiseContext): Promise<Layer[]> {
  const layers: Layer[] = [];
  for (const [index, source] of plan.sources.entries()) {
    checkAborted(ctx, plan.name);
    const started = Date.now();
    const record = ctx.index.lookupLayer(source.key);
    const reused = record && (await reusableBlob(layout, source, plan.codec, record, ctx.index));
    // A recipe the cache knows (its blob gone: after gc, or a new output dir) is tarred again
    // under its recorded diffId without hashing it again; only the byte count is checked.
    const layer = reused ?? (await layout.writeLayer(ctx.progress.counted(record ? layerSourceWith(source, { diffId: record.diffId }) : source), plan.codec, ctx.signal, record !== undefined));
    if (!reused) await trustBlob(layout, storedBlob(layer, plan.codec), ctx.index);
    layerDone(ctx, layer, index, Date.now() - started, () => {
      for (const blob of Object.values(layer.compressed)) {
        if (blob.codec !== 'none') ctx.index.putCompressed(layer.diffId, blob);
        ctx.index.recordBlobLocation(blob.digest, layout.dir);
      }
      ctx.index.recordBlobLocation(layer.diffId, layout.dir);
    });
    layers.push(blobBacked(layer, layout, plan.codec));
  }
  return layers;
}

/** Without an OCI layout to write into, layer digests come from the cache or one hashing pass. */
export async function hashedLayers(plan: ImagePlan, ctx: MaterialiseContext): Promise<Layer[]> {
  const layers: Layer[] = [];
  for (const [index, source] of plan.sources.entries()) {
    checkAborted(ctx, plan.name);
    const started = Date.now();
    let layer = await knownLayer(source, ctx);
    if (!layer) {
      const { diffId, size } = source.diffId ? { diffId: source.diffId, size: await source.size() } : await hashLayer(ctx.progress.counted(source), ctx.signal);
      layer = { source, diffId, size, built: true, compressed: {} };
    }
    layerDone(ctx, layer, index, Date.now() - started);
    layers.push(layer);
  }
  return layers;
}

/**
 * A layer whose recipe the cache knows: its digest is known without reading its bytes, and
 * when an OCI layout holds its uncompressed blob intact, its bytes come from that one file
 * instead of a walk over the store (what makes a warm stream cost about a file copy). Without
 * such a blob the bytes are tarred again but not hashed again (verifiedBytes): the cache
 * recorded their digest when it hashed them, and only their count is checked.
 */
export async function knownLayer(source: LayerSource, ctx: MaterialiseContext): Promise<Layer | undefined> {
  const record = ctx.index.lookupLayer(source.key);
  if (!record) return undefined;
  let layer: Layer = { source, diffId: record.diffId, size: record.size, built: false, compressed: {}, verifiedBytes: true };
  for (const dir of ctx.index.blobLocations(record.diffId)) {
    const layout = new OciLayout(dir);
    if (await intactBlob(layout, { digest: record.diffId, size: record.size }, ctx.index)) {
      layer = blobBacked(layer, layout, 'none');
      break;
    }
  }
  return { ...layer, source: ctx.progress.counted(layer.source) };
}

/** An image for an archive written in one pass: known layers by digest, cold ones to hash on the way; each reported as written. */
export async function archivePlan(plan: ImagePlan, ctx: MaterialiseContext): Promise<HybridImage> {
  const layers = await Promise.all(plan.sources.map(async (source) => (await knownLayer(source, ctx)) ?? ctx.progress.counted(source)));
  let layerStarted = Date.now();
  return {
    layers,
    assemble: (done) => assemblePlanned(plan, done),
    onLayer: (layer, index) => {
      layerDone(ctx, layer, index, Date.now() - layerStarted);
      layerStarted = Date.now();
    },
  };
}

/**
 * A layer is done: its recipe remembered so the next build can reuse it (with `alsoRecord`'s rows,
 * in the same commit), then reported — in that order, so a layer anyone saw reported survives the
 * build being killed right after.
 */
export function layerDone(ctx: MaterialiseContext, layer: Layer, index: number, ms = 0, alsoRecord?: () => void): void {
  ctx.index.together(() => {
    alsoRecord?.();
    ctx.index.recordLayer({ key: layer.source.key, diffId: layer.diffId, size: layer.size, storePaths: [...layer.source.storePaths] });
  });
  ctx.progress.layerDone(layer, index, ms);
}

async function reusableBlob(layout: OciLayout, source: LayerSource, codec: Codec, record: { diffId: Digest; size: number }, index: BuildCache): Promise<Layer | undefined> {
  const blob = codec === 'none' ? { codec, digest: record.diffId, size: record.size } : index.getCompressed(record.diffId, codec);
  if (!blob || !(await intactBlob(layout, blob, index))) return undefined;
  return { source, diffId: record.diffId, size: record.size, built: false, compressed: { [codec]: blob } };
}

function checkAborted(ctx: MaterialiseContext, image: string): void {
  if (ctx.signal?.aborted) throw new NixdockError('ABORTED', `The build of ${image} was stopped`, { cause: ctx.signal.reason });
}
