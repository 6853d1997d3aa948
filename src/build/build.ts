/**
 * The build orchestrator: one image, as four stage functions with typed results, observed by
 * reporters on the event bus.
 *
 *   plan (plan.ts)          spec → ImagePlan: layer sources + runtime config; image planners are a
 *                           list (nixpkgs conf.json, buildImage's single layer, store closure), each
 *                           reporting paths/size/layers; a store closure's layers come from the layer
 *                           planners (planners.ts: base image, customisation, runAsRoot, store
 *                           layers) sharing maxLayers
 *   materialise (materialise.ts)
 *                           sources → Layers: from the build cache when it knows the recipe and
 *                           the blob is intact (trust: formats/oci-layout/trust.ts), built otherwise
 *   assemble                Layers → Image: config and manifest (image/config.ts)
 *   write (sinks.ts)        Image → OutputResults: the ImageSink list (OCI layout, docker-archive,
 *                           registry pushes, engine loads); `stream` is the single-pass sink below
 *
 * One result type, BuildResult (types.ts), leaves here; its event, history record, protocol
 * message and --json forms are derived from it. The stages never print and never write history:
 * BuildProgress turns their results into events, and the reporters (terminal, --json, daemon
 * WebSocket, reporters/history.ts for the build history) observe the bus.
 *
 * Cancellation (a newer change in the daemon, Ctrl-C in the CLI) is honoured between layers:
 * finished layers are already in the cache and their blobs in place, so the next build reuses them.
 */
import { access, constants, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { ImageSpec, ResolvedConfig } from '../config/types.js';
import { NixdockError, toNixdockError } from '../errors.js';
import type { EventBus } from '../events.js';
import type { BuildCache } from '../cache/cache.js';
import { streamDockerArchive, writeDockerArchiveFileOnce } from '../formats/docker-archive/write.js';
import { OciLayout } from '../formats/oci-layout/write.js';
import { attachHistoryReporter } from '../reporters/history.js';
import type { BuildResult, Codec, Digest, Image, Layer, LayerResult, OutputResult } from '../types.js';
import { assemblePlanned } from './assemble.js';
import { archivePlan, hashedLayers, layerDone, materialiseInto, type MaterialiseContext } from './materialise.js';
import { planImage, type ImagePlan } from './plan.js';
import { BuildProgress } from './progress.js';
import { archiveFileName, SINKS, type OutputFormat, type SinkContext } from './sinks.js';

export interface BuildContext {
  config: ResolvedConfig;
  bus: EventBus;
  index: BuildCache;
  signal?: AbortSignal;
  buildId?: string;
  reason?: string;
  /** Output formats; default config.formats. */
  formats?: OutputFormat[];
  /** Output directory; default config.outDir. */
  outDir?: string;
}

/** What buildImage returns (the one result type; the name the CLI and daemon know it by). */
export type BuildSummary = BuildResult;
export type LayerSummary = LayerResult;

/** Builds one image into the configured outputs. Throws NixdockError; the bus gets build:failed. */
export function buildImage(spec: ImageSpec, ctx: BuildContext): Promise<BuildResult> {
  return observed(spec, ctx, 'build', async (progress) => {
    const outDir = ctx.outDir ?? ctx.config.outDir;
    // Checked before any work: an unusable output directory should not cost a Nix build first.
    await ensureWritableDir(outDir);
    const plan = await planned(spec, ctx, progress);
    try {
      return await writeToSinks(plan, spec, ctx, progress, outDir);
    } finally {
      await plan.dispose();
    }
  });
}

/**
 * Streams one image as a docker-archive (what `docker load` reads) without a temporary file.
 * Layers the cache knows are written in the hybrid form by digest; any cold layer makes it a
 * single-pass stream whose config and manifest come last.
 */
export async function streamImage(spec: ImageSpec, ctx: BuildContext, out: Writable): Promise<Image> {
  let streamed: Image | undefined;
  await observed(spec, ctx, 'stream', async (progress) => {
    const plan = await planned(spec, ctx, progress);
    const materialise: MaterialiseContext = { index: ctx.index, progress, signal: ctx.signal };
    streamed = await streamDockerArchive({ ...(await archivePlan(plan, materialise)), out, signal: ctx.signal }).finally(() => plan.dispose());
    return buildResult(streamed, [{ format: 'stream' }], progress, 'none');
  });
  return streamed!;
}

/**
 * Runs a build's stages between its started and succeeded/failed events, with its history
 * written by the history reporter. A stopped build (ABORTED) emits no build:failed: the daemon
 * reports it as superseded, and the history records it so.
 */
async function observed(spec: ImageSpec, ctx: BuildContext, defaultReason: string, stages: (progress: BuildProgress) => Promise<BuildResult>): Promise<BuildResult> {
  const progress = new BuildProgress(spec.name, ctx.bus, ctx.buildId);
  const endHistory = attachHistoryReporter(ctx.bus, ctx.index, progress.buildId);
  progress.started(ctx.reason ?? defaultReason);
  try {
    const result = await stages(progress);
    progress.succeeded(result);
    endHistory();
    return result;
  } catch (err) {
    const error = toNixdockError(err);
    if (error.code !== 'ABORTED') progress.failed(error);
    endHistory({ error: error.message, bytesWritten: progress.bytesWritten });
    throw error;
  }
}

async function planned(spec: ImageSpec, ctx: BuildContext, progress: BuildProgress): Promise<ImagePlan> {
  const onLog = (line: string) => ctx.bus.emit({ type: 'log', image: spec.name, buildId: progress.buildId, source: 'nix', line });
  const { plan, stats } = await planImage(spec, { ...ctx, onLog });
  progress.planned(stats);
  return plan;
}

/** Materialise (into the OCI layout when it is an output), assemble, and write every wanted sink. */
async function writeToSinks(plan: ImagePlan, spec: ImageSpec, ctx: BuildContext, progress: BuildProgress, outDir: string): Promise<BuildResult> {
  const formats = ctx.formats ?? ctx.config.formats;
  const materialise: MaterialiseContext = { index: ctx.index, progress, signal: ctx.signal };
  const layout = formats.includes('oci') ? new OciLayout(join(outDir, 'oci'), { lock: (update) => ctx.index.exclusive(update) }) : undefined;
  let layers: Layer[];
  const done: SinkContext['done'] = {};
  if (layout) {
    layers = await materialiseInto(layout, plan, materialise);
  } else if (formats.includes('docker-archive')) {
    // No layout to take blobs from: cold layers are tarred once, hashed while written into the archive.
    const written = await writeDockerArchiveFileOnce(await archivePlan(plan, materialise), join(outDir, archiveFileName(plan.name)), ctx.signal);
    layers = written.image.layers;
    done['docker-archive'] = written.result;
  } else if (spec.push.length > 0) {
    // No file to tar the layers into: the first push places them as `nixdock push` does, tarring
    // only layers no registry verifiably holds; its layers carry the diff_ids for the rest.
    const { pushPlannedFirst } = await import('../publish.js');
    const pushed = await pushPlannedFirst(plan, spec, ctx.config, ctx.index, ctx.signal);
    pushed.layers.forEach((layer, index) => layerDone(materialise, layer, index));
    layers = pushed.layers;
    done.registry = pushed.output;
  } else {
    layers = await hashedLayers(plan, materialise);
  }
  const image = assemblePlanned(plan, layers);
  const written = (output: OutputResult): OutputResult => {
    ctx.bus.emit({ type: 'output:written', image: spec.name, buildId: progress.buildId, output });
    return output;
  };
  const outputs: OutputResult[] = [];
  for (const sink of SINKS) {
    if (!sink.wanted(formats, spec)) continue;
    outputs.push(...(await sink.write({ spec, image, codec: plan.codec, outDir, layout, done, index: ctx.index, bus: ctx.bus, buildId: progress.buildId, signal: ctx.signal, written })));
  }
  const manifestDigest = outputs.find((output) => output.format === 'oci')?.manifestDigest;
  return buildResult(image, outputs, progress, plan.codec, manifestDigest);
}

function buildResult(image: Image, outputs: OutputResult[], progress: BuildProgress, codec: Codec, manifestDigest?: Digest): BuildResult {
  return {
    image: image.name,
    tag: image.tag,
    configDigest: image.configDigest,
    manifestDigest,
    layers: image.layers.map((l) => ({ diffId: l.diffId, digest: l.compressed[codec]?.digest ?? l.diffId, size: l.size, built: l.built, storePaths: [...l.source.storePaths], kind: l.source.kind, key: l.source.key })),
    outputs,
    layersBuilt: progress.layersBuilt,
    layersReused: progress.layersReused,
    bytesWritten: progress.bytesWritten,
    ms: Date.now() - progress.startedAt,
  };
}

async function ensureWritableDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
  } catch (err) {
    throw new NixdockError('OUTPUT_NOT_WRITABLE', `The output directory ${dir} is not writable`, {
      found: (err as Error).message,
      hint: 'Choose another directory with --out (or outDir in the config), or fix its permissions.',
      cause: err,
    });
  }
}
