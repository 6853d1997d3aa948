/**
 * The build orchestrator: runs the pipeline stages for one image and reports every step on
 * the event bus.
 *
 *   spec → resolve (closure) → plan (layer groups) → layer sources → cache lookup / layer build
 *        → image assembly → outputs
 *
 * Cancellation (a newer change in the daemon, Ctrl-C in the CLI) is honoured between layers:
 * finished layers are already in the index and their blobs in place, so the next build reuses them.
 */
import { randomUUID } from 'node:crypto';
import { access, constants, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform, pipeline, type Readable, type Writable } from 'node:stream';
import type { ImageSpec, ResolvedConfig } from './config/types.js';
import { NixdockError, toNixdockError } from './errors.js';
import type { EventBus } from './events.js';
import { buildImageConfig, assembleImage } from './image/config.js';
import type { BuildCache } from './cache/cache.js';
import { hashLayer } from './layer/hash.js';
import { customisationLayerSource } from './layer/customisation-layer.js';
import { runAsRootLayer } from './layer/run-as-root.js';
import { storeLayerSource } from './layer/store-layer.js';
import { readNixpkgsConf, toEpochSeconds } from './nixpkgs.js';
import { writeDockerArchiveFile, writeDockerArchiveFileOnce, streamDockerArchive, type HybridImage } from './formats/docker-archive/write.js';
import { OciLayout } from './formats/oci-layout/write.js';
import { planLayers } from './plan/plan.js';
import { publish } from './publish.js';
import { resolveImage, specField } from './resolve.js';
import { readBaseImage } from './base/read.js';
import { registryPull } from './registry/source.js';
import { mergeBaseConfig } from './base/merge.js';
import { openStore } from './store/open.js';
import type {
  Closure, Codec, ContainerConfig, Digest, HistoryEntry, Image, ImageConfigFile, Layer, LayerSource, OutputFormat, OutputResult, Store, TarSettings, WriteToFdOptions,
} from './types.js';

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

export interface LayerSummary {
  diffId: Digest;
  /** Digest of the blob as stored (the compressed one for gzip/zstd layouts). */
  digest: Digest;
  size: number;
  built: boolean;
  storePaths: string[];
  kind: LayerSource['kind'];
  /** The recipe key the index caches this layer under. */
  key: string;
}

export interface BuildSummary {
  image: string;
  tag: string;
  configDigest: Digest;
  manifestDigest?: Digest;
  layers: LayerSummary[];
  outputs: OutputResult[];
  layersBuilt: number;
  layersReused: number;
  bytesWritten: number;
  ms: number;
}

/** Everything an image is made of, before any layer bytes are written. */
export interface ImagePlan {
  name: string;
  tag?: string;
  sources: LayerSource[];
  created: string;
  architecture: string;
  variant?: string;
  config: ContainerConfig;
  baseHistory: HistoryEntry[];
  codec: Codec;
  /** Removes temporary files the plan staged (the customisation layer's tar). */
  dispose(): Promise<void>;
}

/** Builds one image into the configured outputs. Throws NixdockError; the bus gets build:failed. */
export async function buildImage(spec: ImageSpec, ctx: BuildContext): Promise<BuildSummary> {
  const run = new BuildRun(spec.name, ctx);
  const buildRow = ctx.index.startBuild(spec.name, ctx.reason ?? 'build');
  run.emitStarted();
  try {
    // Checked before any work: an unusable output directory should not cost a Nix build first.
    await ensureWritableDir(ctx.outDir ?? ctx.config.outDir);
    const plan = await planImage(spec, ctx, run);
    const summary = await run.writeOutputs(plan, spec).finally(() => plan.dispose());
    ctx.index.finishBuild(buildRow, {
      status: 'succeeded',
      tag: summary.tag,
      configDigest: summary.configDigest,
      manifestDigest: summary.manifestDigest,
      layersBuilt: summary.layersBuilt,
      layersReused: summary.layersReused,
      bytesWritten: summary.bytesWritten,
      layers: summary.layers.map((l, index) => ({ index, key: l.key, diffId: l.diffId, size: l.size, built: l.built, storePaths: l.storePaths })),
    });
    for (const output of summary.outputs) ctx.index.recordImageOutput(buildRow, output);
    run.emitSucceeded(summary);
    return summary;
  } catch (err) {
    const error = toNixdockError(err);
    ctx.index.finishBuild(buildRow, {
      status: error.code === 'ABORTED' ? 'superseded' : 'failed',
      error: error.message,
      layersBuilt: run.layersBuilt,
      layersReused: run.layersReused,
      bytesWritten: run.bytesWritten,
      layers: [],
    });
    if (error.code !== 'ABORTED') run.emitFailed(error);
    throw error;
  }
}

/**
 * Streams one image as a docker-archive (what `docker load` reads) without a temporary file.
 * Layers the index knows are written in the hybrid form by digest; any cold layer makes it a
 * single-pass stream whose config and manifest come last.
 */
export async function streamImage(spec: ImageSpec, ctx: BuildContext, out: Writable): Promise<Image> {
  const run = new BuildRun(spec.name, ctx);
  run.emitStarted();
  const plan = await planImage(spec, ctx, run);
  const image = await streamDockerArchive({ ...(await run.archivePlan(plan)), out, signal: ctx.signal }).finally(() => plan.dispose());
  run.emitSucceeded(summarize(image, [{ format: 'stream' }], run, 'none'));
  return image;
}

/** Resolve + plan: the layer sources of an image and its runtime config. */
export async function planImage(spec: ImageSpec, ctx: BuildContext, run?: BuildRun): Promise<ImagePlan> {
  if (spec.nixpkgsConf) return planNixpkgsImage(spec, ctx);
  const store = openStore(ctx.config.store);
  const resolved = await resolveImage(spec, store, ctx.config.root, ctx.signal, ctx.index);
  ctx.index.recordStorePaths([...resolved.closure.paths.values()], resolved.closure.fingerprints);
  const platform = { architecture: spec.architecture, ...(spec.variant !== undefined && { variant: spec.variant }) };
  const base = spec.fromImage ? await readBaseImage(spec.fromImage, { cacheDir: ctx.config.cacheDir, signal: ctx.signal, platform, pull: registryPull }) : undefined;
  const baseLayers = base?.layers ?? [];

  const ownLayers = spec.runAsRoot !== undefined ? 2 : 1; // the customisation layer, and runAsRoot's
  const storeBudget = spec.maxLayers - baseLayers.length - ownLayers;
  if (storeBudget < 1 && resolved.closure.paths.size > 0) {
    throw new NixdockError('INPUT_INVALID', `maxLayers ${spec.maxLayers} leaves no room for store layers`, {
      location: { file: spec.source.file, field: specField(spec, 'maxLayers') },
      found: `${baseLayers.length} base layer(s) + ${ownLayers === 2 ? 'the customisation and runAsRoot layers' : '1 customisation layer'}`,
      expected: `maxLayers ≥ ${baseLayers.length + ownLayers + 1}`,
      hint: 'Raise maxLayers (up to 127) or use a base image with fewer layers.',
    });
  }
  const settings = tarSettings(spec);
  const physicalPath = (p: string) => store.physicalPath(p);
  const customisation = await customisationLayerSource({
    storeRoots: resolved.contentsPaths,
    localDirs: resolved.localDirs,
    nixDb: spec.includeNixDB ? { paths: [...resolved.closure.paths.values()], gcRoots: resolved.contentsPaths } : undefined,
    extraCommands: spec.extraCommands,
    fakeRootCommands: spec.fakeRootCommands,
    perms: spec.perms,
    system: { users: spec.users, groups: spec.groups, binSh: spec.binSh, usrBinEnv: spec.usrBinEnv, caCertificates: spec.caCertificates, tmp: spec.tmp },
    settings: { ...settings, uid: 0, gid: 0, uname: 'root', gname: 'root' },
    storeDir: store.storeDir,
    physicalPath,
    narHashOf: (path) => resolved.closure.paths.get(path)?.narHash,
    tmpDir: join(ctx.config.cacheDir, 'tmp'),
  });
  // What extraCommands wrote may name store paths outside the closure: Nix would add their closure.
  const closure = await withReferences(resolved.closure, customisation.references, spec, store, ctx).catch(async (err) => {
    await customisation.dispose();
    throw err;
  });
  const groups = planLayers(closure, { strategy: spec.layering, budget: Math.max(storeBudget, 1) });
  const storeSources = groups.map((group) =>
    storeLayerSource({ paths: group.paths, settings, storeDir: store.storeDir, physicalPath }),
  );
  const runAsRoot = spec.runAsRoot === undefined ? undefined : await runAsRootLayer({
    script: spec.runAsRoot,
    lower: [...baseLayers, customisation],
    storeDir: store.storeDir,
    physicalStoreDir: dirname(physicalPath(`${store.storeDir}/${'0'.repeat(32)}-x`)),
    mtime: settings.mtime,
    tmpDir: join(ctx.config.cacheDir, 'tmp'),
  }).catch(async (err) => {
    await customisation.dispose();
    throw err;
  });
  const own = runAsRoot ? [customisation, runAsRoot] : [customisation];
  run?.emitPlanned(closure, storeSources.length + baseLayers.length + own.length);
  return {
    name: spec.name,
    tag: spec.tag,
    sources: [...baseLayers, ...storeSources, ...own],
    created: resolveTime(spec.created),
    architecture: spec.architecture,
    variant: spec.variant,
    config: base ? mergeBaseConfig(base.config, spec.config) : spec.config,
    baseHistory: base?.config.history ?? [],
    codec: spec.compression,
    dispose: async () => {
      await Promise.all(own.map((layer) => layer.dispose()));
    },
  };
}

/** The closure grown by the customisation layer's references (their own closures included), when it lacks any. */
async function withReferences(closure: Closure, references: readonly string[], spec: ImageSpec, store: Store, ctx: BuildContext): Promise<Closure> {
  if (!spec.includeStorePaths || references.every((path) => closure.paths.has(path))) return closure;
  const grown = await store.closure([...new Set([...closure.roots, ...references])].sort(), ctx.signal, ctx.index);
  ctx.index.recordStorePaths([...grown.paths.values()], grown.fingerprints);
  return grown;
}

async function planNixpkgsImage(spec: ImageSpec, ctx: BuildContext): Promise<ImagePlan> {
  const conf = await readNixpkgsConf(spec.nixpkgsConf!);
  // A conf.json names paths of its store_dir on this machine, whatever store the project uses.
  const physicalPath = (p: string) => p;
  const base = conf.fromImage
    ? await readBaseImage({ kind: 'docker-archive', path: conf.fromImage }, { cacheDir: ctx.config.cacheDir, signal: ctx.signal })
    : undefined;
  const storeSources = conf.storeLayers.map((paths) =>
    storeLayerSource({ paths, settings: conf.settings, storeDir: conf.storeDir, physicalPath }),
  );
  return {
    name: spec.name,
    tag: spec.tag ?? conf.tag,
    sources: [...(base?.layers ?? []), ...storeSources, conf.customisationLayer],
    created: resolveTime(conf.created),
    architecture: conf.architecture,
    config: base ? mergeBaseConfig(base.config, conf.config) : conf.config,
    baseHistory: base?.config.history ?? [],
    codec: spec.compression,
    dispose: async () => {},
  };
}

function tarSettings(spec: ImageSpec): TarSettings {
  return { mtime: toEpochSeconds(spec.mtime), uid: spec.uid, gid: spec.gid, uname: spec.uname, gname: spec.gname };
}

function resolveTime(value: string): string {
  return value === 'now' ? new Date().toISOString().replace(/\.\d{3}Z$/, 'Z') : value;
}

export function assemblePlanned(plan: ImagePlan, layers: Layer[]): Image {
  const config: ImageConfigFile = buildImageConfig({
    created: plan.created,
    architecture: plan.architecture,
    variant: plan.variant,
    config: plan.config,
    layers: layers.map((l) => ({ diffId: l.diffId, description: l.source.description })),
    baseHistory: plan.baseHistory,
  });
  return assembleImage({ name: plan.name, tag: plan.tag, layers, config });
}

function summarize(image: Image, outputs: OutputResult[], run: BuildRun, codec: Codec, manifestDigest?: Digest): BuildSummary {
  return {
    image: image.name,
    tag: image.tag,
    configDigest: image.configDigest,
    manifestDigest,
    layers: image.layers.map((l) => ({ diffId: l.diffId, digest: l.compressed[codec]?.digest ?? l.diffId, size: l.size, built: l.built, storePaths: [...l.source.storePaths], kind: l.source.kind, key: l.source.key })),
    outputs,
    layersBuilt: run.layersBuilt,
    layersReused: run.layersReused,
    bytesWritten: run.bytesWritten,
    ms: Date.now() - run.startedAt,
  };
}

/** State and event emission of one build of one image. */
export class BuildRun {
  readonly buildId: string;
  readonly startedAt = Date.now();
  layersBuilt = 0;
  layersReused = 0;
  bytesWritten = 0;
  private bytesTotal = 0;
  private layersTotal = 0;
  private progressAt = 0;

  constructor(
    readonly image: string,
    private readonly ctx: BuildContext,
  ) {
    this.buildId = ctx.buildId ?? randomUUID();
  }

  emitStarted(): void {
    this.ctx.bus.emit({ type: 'build:started', image: this.image, buildId: this.buildId, time: this.startedAt });
  }

  emitPlanned(closure: { paths: Map<string, { narSize: number }> }, layers: number): void {
    let narSize = 0;
    for (const info of closure.paths.values()) narSize += info.narSize;
    this.bytesTotal = narSize;
    this.layersTotal = layers;
    this.ctx.bus.emit({ type: 'resolve:done', image: this.image, buildId: this.buildId, paths: closure.paths.size, narSize });
    this.ctx.bus.emit({ type: 'plan:done', image: this.image, buildId: this.buildId, layers, bytes: narSize });
  }

  emitSucceeded(summary: BuildSummary): void {
    this.ctx.bus.emit({
      type: 'build:succeeded', image: this.image, buildId: this.buildId, tag: summary.tag, configDigest: summary.configDigest,
      manifestDigest: summary.manifestDigest, layersBuilt: summary.layersBuilt, layersReused: summary.layersReused,
      bytesWritten: summary.bytesWritten, ms: summary.ms, outputs: summary.outputs,
    });
  }

  emitFailed(error: NixdockError): void {
    this.ctx.bus.emit({ type: 'build:failed', image: this.image, buildId: this.buildId, error: error.toJSON(), ms: Date.now() - this.startedAt });
  }

  /**
   * A layer whose recipe the index knows: its digest is known without reading its bytes, and
   * when an OCI layout holds its uncompressed blob intact, its bytes come from that one file
   * instead of a walk over the store (what makes a warm stream cost about a file copy). Without
   * such a blob the bytes are tarred again but not hashed again (verifiedBytes): the index
   * recorded their digest when it hashed them, and only their count is checked.
   */
  async knownLayer(source: LayerSource): Promise<Layer | undefined> {
    const record = this.ctx.index.lookupLayer(source.key);
    if (!record) return undefined;
    let layer: Layer = { source, diffId: record.diffId, size: record.size, built: false, compressed: {}, verifiedBytes: true };
    for (const dir of this.ctx.index.blobLocations(record.diffId)) {
      const layout = new OciLayout(dir);
      if (await this.intactBlob(layout, { digest: record.diffId, size: record.size })) {
        layer = blobBacked(layer, layout, 'none');
        break;
      }
    }
    return { ...layer, source: this.counted(layer.source) };
  }

  /** An image for an archive written in one pass: known layers by digest, cold ones to hash on the way; each reported as written. */
  async archivePlan(plan: ImagePlan): Promise<HybridImage> {
    const layers = await Promise.all(plan.sources.map(async (source) => (await this.knownLayer(source)) ?? this.counted(source)));
    let layerStarted = Date.now();
    return {
      layers,
      assemble: (done) => assemblePlanned(plan, done),
      onLayer: (layer, index) => {
        this.layerDone(layer, index, Date.now() - layerStarted);
        layerStarted = Date.now();
      },
    };
  }

  /** Wraps a source so reading it reports progress on the bus. */
  counted(source: LayerSource): LayerSource {
    const run = this;
    const writeToFd = source.writeToFd;
    return {
      ...source,
      size: () => source.size(),
      ...(writeToFd && {
        writeToFd: (fd: number | undefined, opts?: WriteToFdOptions) => writeToFd(fd, { ...opts, onProgress: (bytes) => run.addBytes(bytes) }),
      }),
      open(): Readable {
        const counter = new Transform({
          transform(chunk: Buffer, _enc, done) {
            run.addBytes(chunk.length);
            done(null, chunk);
          },
        });
        // pipeline, not pipe: when the consumer fails, the layer stream (and its worker) is destroyed too.
        pipeline(source.open(), counter, () => {});
        return counter;
      },
    };
  }

  private addBytes(n: number): void {
    this.bytesWritten += n;
    const now = Date.now();
    if (now - this.progressAt < 100) return;
    this.progressAt = now;
    this.ctx.bus.emit({
      type: 'progress', image: this.image, buildId: this.buildId, bytesDone: this.bytesWritten,
      bytesTotal: Math.max(this.bytesTotal, this.bytesWritten), layersDone: this.layersBuilt + this.layersReused, layersTotal: this.layersTotal,
    });
  }

  layerDone(layer: Layer, index: number, ms = 0): void {
    const common = { image: this.image, buildId: this.buildId, index, diffId: layer.diffId, size: layer.size, storePaths: [...layer.source.storePaths] };
    if (layer.built) {
      this.layersBuilt++;
      this.ctx.bus.emit({ type: 'layer:built', ...common, ms });
    } else {
      this.layersReused++;
      this.ctx.bus.emit({ type: 'layer:reused', ...common });
    }
    this.ctx.index.recordLayer({ key: layer.source.key, diffId: layer.diffId, size: layer.size, storePaths: [...layer.source.storePaths] });
  }

  checkAborted(): void {
    if (this.ctx.signal?.aborted) throw new NixdockError('ABORTED', `The build of ${this.image} was stopped`, { cause: this.ctx.signal.reason });
  }

  /** Writes the planned image into every configured output. */
  async writeOutputs(plan: ImagePlan, spec: ImageSpec): Promise<BuildSummary> {
    const formats = this.ctx.formats ?? this.ctx.config.formats;
    const outDir = this.ctx.outDir ?? this.ctx.config.outDir;
    const outputs: OutputResult[] = [];
    let layers: Layer[];
    let manifestDigest: Digest | undefined;
    let archive: OutputResult | undefined;
    if (formats.includes('oci')) {
      const layout = new OciLayout(join(outDir, 'oci'), { lock: (update) => this.ctx.index.exclusive(update) });
      layers = await this.layersInto(layout, plan);
      const image = assemblePlanned(plan, layers);
      const result = await layout.addImage(image, plan.codec);
      manifestDigest = result.manifestDigest;
      outputs.push(result);
      this.ctx.bus.emit({ type: 'output:written', image: this.image, buildId: this.buildId, output: result });
    } else if (formats.includes('docker-archive')) {
      // No layout to take blobs from: cold layers are tarred once, hashed while written into the archive.
      const written = await writeDockerArchiveFileOnce(await this.archivePlan(plan), join(outDir, archiveFileName(plan.name)), this.ctx.signal);
      layers = written.image.layers;
      archive = written.result;
    } else {
      layers = await this.hashedLayers(plan);
    }
    const image = assemblePlanned(plan, layers);
    if (formats.includes('docker-archive')) {
      archive ??= await writeDockerArchiveFile([image], join(outDir, archiveFileName(image.name)), this.ctx.signal);
      outputs.push(archive);
      this.ctx.bus.emit({ type: 'output:written', image: this.image, buildId: this.buildId, output: archive });
    }
    // Pushes and engine loads read the layers' sources, so they run before the plan is disposed.
    outputs.push(...(await publish(spec, image, { index: this.ctx.index, bus: this.ctx.bus, buildId: this.buildId, signal: this.ctx.signal })));
    return summarize(image, outputs, this, plan.codec, manifestDigest);
  }

  /** Cache lookup + layer build into an OCI layout: a known layer whose blob is present is not re-tarred. */
  private async layersInto(layout: OciLayout, plan: ImagePlan): Promise<Layer[]> {
    const layers: Layer[] = [];
    for (const [index, source] of plan.sources.entries()) {
      this.checkAborted();
      const started = Date.now();
      const record = this.ctx.index.lookupLayer(source.key);
      const reused = record && (await this.reusableBlob(layout, source, plan.codec, record));
      // A recipe the index knows (its blob gone: after gc, or a new output dir) is tarred again
      // under its recorded diffId without hashing it again; only the byte count is checked.
      const layer = reused ?? (await layout.writeLayer(this.counted(record ? { ...source, diffId: record.diffId } : source), plan.codec, this.ctx.signal, record !== undefined));
      if (!reused) await this.trustBlob(layout, storedBlob(layer, plan.codec));
      for (const blob of Object.values(layer.compressed)) {
        if (blob.codec !== 'none') this.ctx.index.putCompressed(layer.diffId, blob);
        this.ctx.index.recordBlobLocation(blob.digest, layout.dir);
      }
      this.ctx.index.recordBlobLocation(layer.diffId, layout.dir);
      this.layerDone(layer, index, Date.now() - started);
      layers.push(blobBacked(layer, layout, plan.codec));
    }
    return layers;
  }

  private async reusableBlob(layout: OciLayout, source: LayerSource, codec: Codec, record: { diffId: Digest; size: number }): Promise<Layer | undefined> {
    const blob = codec === 'none' ? { codec, digest: record.diffId, size: record.size } : this.ctx.index.getCompressed(record.diffId, codec);
    if (!blob || !(await this.intactBlob(layout, blob))) return undefined;
    return { source, diffId: record.diffId, size: record.size, built: false, compressed: { [codec]: blob } };
  }

  /**
   * Whether a blob in the layout still holds the bytes its name says, checked before it is reused.
   * Re-hashing every reused blob would make a no-change rebuild read the whole image, so the index
   * keeps each blob's stat fingerprint (see OciLayout.blobFingerprint) from when its bytes were
   * known good; only a blob whose fingerprint changed (a write, a truncation, a `touch`, a copy) is
   * re-hashed. A damaged blob is removed, so the layer is written again under its name.
   * Not caught: changes that leave size, mtime and ctime as they were — writing the block device
   * underneath, bit rot, or a clock set back to the same nanosecond (skopeo and umoci still check
   * digests when they read the layout).
   */
  private async intactBlob(layout: OciLayout, blob: { digest: Digest; size: number }): Promise<boolean> {
    // Taken before hashing: a change during the hash changes ctime, so the next check re-hashes.
    const fingerprint = await layout.blobFingerprint(blob.digest, blob.size);
    if (fingerprint === undefined) return false;
    if (this.ctx.index.blobFingerprint(blob.digest, layout.dir) === fingerprint) return true;
    if (!(await layout.blobHashesTo(blob.digest))) {
      await layout.discardBlob(blob.digest);
      return false;
    }
    this.ctx.index.recordBlobFingerprint(blob.digest, layout.dir, fingerprint);
    return true;
  }

  /** Records the fingerprint of a blob this build just wrote (or verified by hashing), so the next build trusts it by stat. */
  private async trustBlob(layout: OciLayout, blob: { digest: Digest; size: number }): Promise<void> {
    const fingerprint = await layout.blobFingerprint(blob.digest, blob.size);
    if (fingerprint !== undefined) this.ctx.index.recordBlobFingerprint(blob.digest, layout.dir, fingerprint);
  }

  /** Without an OCI layout to write into, layer digests come from the index or one hashing pass. */
  private async hashedLayers(plan: ImagePlan): Promise<Layer[]> {
    const layers: Layer[] = [];
    for (const [index, source] of plan.sources.entries()) {
      this.checkAborted();
      const started = Date.now();
      let layer = await this.knownLayer(source);
      if (!layer) {
        const { diffId, size } = source.diffId ? { diffId: source.diffId, size: await source.size() } : await hashLayer(this.counted(source), this.ctx.signal);
        layer = { source, diffId, size, built: true, compressed: {} };
      }
      this.layerDone(layer, index, Date.now() - started);
      layers.push(layer);
    }
    return layers;
  }
}

/** The blob a layout holds for a layer: the tar itself, or its compressed form. */
function storedBlob(layer: Layer, codec: Codec): { digest: Digest; size: number } {
  return codec === 'none' ? { digest: layer.diffId, size: layer.size } : layer.compressed[codec]!;
}

/**
 * Once a layer's blob is in the layout uncompressed, later sinks (docker-archive, push) read the
 * blob instead of walking the store again: one sequential file instead of thousands of small ones.
 * Only blobs just written or trusted by intactBlob get here, so sinks need not hash them again.
 */
function blobBacked(layer: Layer, layout: OciLayout, codec: Codec): Layer {
  if (codec !== 'none') return layer;
  const source = layer.source;
  const tarFile = layout.blobPath(layer.diffId);
  return { ...layer, verifiedBytes: true, source: { ...source, tarFile, size: async () => layer.size, open: () => layout.openBlob(layer.diffId) } };
}

/** `ghcr.io/me/app` → `ghcr.io_me_app.tar`: one archive per image name, replaced atomically on each build. */
export function archiveFileName(name: string): string {
  return `${name.replace(/[/:]/g, '_')}.tar`;
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
