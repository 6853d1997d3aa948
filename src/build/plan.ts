/**
 * Stage 1, plan: an image spec → its layer sources (nothing written yet) and its runtime config.
 * Image planners are a list; the first that takes the spec plans it: a nixpkgs conf.json,
 * buildImage's single layer, or the store closure, whose layers come from the layer planners of
 * planners.ts (base image, customisation layer, runAsRoot, store closure) sharing the layer
 * budget. Each reports what it planned (store paths, their size, layers), so every kind of build
 * emits the same resolve/plan events and gets a progress total.
 */
import type { ImageSpec } from '../config/types.js';
import type { BuildCache } from '../cache/cache.js';
import { readBaseImage } from '../base/read.js';
import { mergeBaseConfig } from '../base/merge.js';
import { storeLayerSource } from '../layer/store-layer.js';
import { readNixpkgsConf } from '../nixpkgs.js';
import { resolveImage } from '../resolve.js';
import { openStore } from '../store/open.js';
import type { Codec, ContainerConfig, HistoryEntry, LayerSource } from '../types.js';
import { narSizeOf, resolveTime, tarSettings } from './plan-parts.js';
import { planSingleLayerImage } from './plan-single-layer.js';
import { disposeStaged, LAYER_PLANNERS, planLayerSources, type LayerDraft } from './planners.js';
import type { ResolvedConfig } from '../config/types.js';

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

/** What a plan covers, for the resolve/plan events and the progress total. */
export interface PlanStats {
  /** Store paths in the image. */
  paths: number;
  /** Their NAR size (0 when the planner cannot know it: a nixpkgs conf.json names paths only). */
  narSize: number;
  layers: number;
}

export interface PlanResult {
  plan: ImagePlan;
  stats: PlanStats;
}

export interface PlanContext {
  config: ResolvedConfig;
  index: BuildCache;
  signal?: AbortSignal;
  /** Each line of Nix's log while it realises installables (becomes a `log` event). */
  onLog?: (line: string) => void;
}

interface ImagePlanner {
  takes(spec: ImageSpec): boolean;
  plan(spec: ImageSpec, ctx: PlanContext): Promise<PlanResult>;
}

/** A nixpkgs streamLayeredImage conf.json: its layers as nixpkgs grouped them. */
const nixpkgsConfPlanner: ImagePlanner = {
  takes: (spec) => spec.nixpkgsConf !== undefined,
  plan: planNixpkgsImage,
};

/** The store closure of the spec's contents, on an optional base image, with the customisation layer on top. */
const storeImagePlanner: ImagePlanner = {
  takes: () => true,
  plan: planStoreImage,
};

/** dockerTools buildImage (`copyToRoot`): the root and its closure in one layer on the base. */
const singleLayerPlanner: ImagePlanner = {
  takes: (spec) => spec.singleLayer !== undefined,
  plan: planSingleLayerImage,
};

const PLANNERS: readonly ImagePlanner[] = [nixpkgsConfPlanner, singleLayerPlanner, storeImagePlanner];

/** Resolve + plan: the layer sources of an image and its runtime config. */
export function planImage(spec: ImageSpec, ctx: PlanContext): Promise<PlanResult> {
  return PLANNERS.find((planner) => planner.takes(spec))!.plan(spec, ctx);
}

async function planStoreImage(spec: ImageSpec, ctx: PlanContext): Promise<PlanResult> {
  const store = openStore(ctx.config.store);
  const resolved = await resolveImage(spec, store, ctx.config.root, ctx.signal, ctx.index, ctx.onLog);
  ctx.index.recordStorePaths([...resolved.closure.paths.values()], resolved.closure.fingerprints);
  const draft: LayerDraft = { spec, ctx, store, settings: tarSettings(spec), resolved, closure: resolved.closure, references: [], layers: { base: [], store: [], top: [] }, staged: [] };
  const sources = await planLayerSources(draft, LAYER_PLANNERS);
  const base = draft.base;
  return {
    plan: {
      name: spec.name,
      tag: spec.tag,
      sources,
      created: resolveTime(spec.created),
      architecture: spec.architecture,
      variant: spec.variant,
      config: base ? mergeBaseConfig(base.config, spec.config) : spec.config,
      baseHistory: base?.config.history ?? [],
      codec: spec.compression,
      dispose: () => disposeStaged(draft),
    },
    stats: { paths: draft.closure.paths.size, narSize: narSizeOf(draft.closure), layers: sources.length },
  };
}

async function planNixpkgsImage(spec: ImageSpec, ctx: PlanContext): Promise<PlanResult> {
  const conf = await readNixpkgsConf(spec.nixpkgsConf!);
  // A conf.json names paths of its store_dir on this machine, whatever store the project uses.
  const physicalPath = (p: string) => p;
  const base = conf.fromImage
    ? await readBaseImage({ kind: 'docker-archive', path: conf.fromImage }, { cacheDir: ctx.config.cacheDir, signal: ctx.signal })
    : undefined;
  const storeSources = conf.storeLayers.map((paths) => storeLayerSource({ paths, settings: conf.settings, storeDir: conf.storeDir, physicalPath }));
  const sources = [...(base?.layers ?? []), ...storeSources, conf.customisationLayer];
  return {
    plan: {
      name: spec.name,
      tag: spec.tag ?? conf.tag,
      sources,
      created: resolveTime(conf.created),
      architecture: conf.architecture,
      config: base ? mergeBaseConfig(base.config, conf.config) : conf.config,
      baseHistory: base?.config.history ?? [],
      codec: spec.compression,
      dispose: async () => {},
    },
    stats: { paths: conf.storeLayers.reduce((n, group) => n + group.length, 0), narSize: 0, layers: sources.length },
  };
}
