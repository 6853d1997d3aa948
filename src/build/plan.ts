/**
 * Stage 1, plan: an image spec → its layer sources (nothing written yet) and its runtime config.
 * Planners are a list; the first that takes the spec plans it. Each reports what it planned
 * (store paths, their size, layers), so every kind of build emits the same resolve/plan events
 * and gets a progress total.
 */
import { dirname, join } from 'node:path';
import type { ImageSpec } from '../config/types.js';
import { NixdockError } from '../errors.js';
import type { BuildCache } from '../cache/cache.js';
import { readBaseImage } from '../base/read.js';
import { mergeBaseConfig } from '../base/merge.js';
import { customisationLayerSource } from '../layer/customisation-layer.js';
import { runAsRootLayer } from '../layer/run-as-root.js';
import { storeLayerSource } from '../layer/store-layer.js';
import { readNixpkgsConf } from '../nixpkgs.js';
import { planLayers } from '../plan/plan.js';
import { registryPull } from '../registry/source.js';
import { resolveImage, specField } from '../resolve.js';
import { openStore } from '../store/open.js';
import type { Codec, ContainerConfig, HistoryEntry, LayerSource } from '../types.js';
import { narSizeOf, resolveTime, tarSettings, withReferences } from './plan-parts.js';
import { planSingleLayerImage } from './plan-single-layer.js';
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

interface Planner {
  takes(spec: ImageSpec): boolean;
  plan(spec: ImageSpec, ctx: PlanContext): Promise<PlanResult>;
}

/** A nixpkgs streamLayeredImage conf.json: its layers as nixpkgs grouped them. */
const nixpkgsConfPlanner: Planner = {
  takes: (spec) => spec.nixpkgsConf !== undefined,
  plan: planNixpkgsImage,
};

/** The store closure of the spec's contents, on an optional base image, with the customisation layer on top. */
const storeClosurePlanner: Planner = {
  takes: () => true,
  plan: planStoreImage,
};

/** dockerTools buildImage (`copyToRoot`): the root and its closure in one layer on the base. */
const singleLayerPlanner: Planner = {
  takes: (spec) => spec.singleLayer !== undefined,
  plan: planSingleLayerImage,
};

const PLANNERS: readonly Planner[] = [nixpkgsConfPlanner, singleLayerPlanner, storeClosurePlanner];

/** Resolve + plan: the layer sources of an image and its runtime config. */
export function planImage(spec: ImageSpec, ctx: PlanContext): Promise<PlanResult> {
  return PLANNERS.find((planner) => planner.takes(spec))!.plan(spec, ctx);
}

async function planStoreImage(spec: ImageSpec, ctx: PlanContext): Promise<PlanResult> {
  const store = openStore(ctx.config.store);
  const resolved = await resolveImage(spec, store, ctx.config.root, ctx.signal, ctx.index, ctx.onLog);
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
    enableFakechroot: spec.enableFakechroot,
    perms: spec.perms,
    system: { users: spec.users, groups: spec.groups, binSh: spec.binSh, usrBinEnv: spec.usrBinEnv, caCertificates: spec.caCertificates, tmp: spec.tmp },
    settings: { ...settings, uid: 0, gid: 0, uname: 'root', gname: 'root' },
    storeDir: store.storeDir,
    physicalPath,
    narHashOf: (path) => resolved.closure.paths.get(path)?.narHash,
    tmpDir: join(ctx.config.cacheDir, 'tmp'),
  });
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
  // What extraCommands or runAsRoot wrote may name store paths outside the closure: Nix would add their closure.
  const references = [...customisation.references, ...(runAsRoot?.references ?? [])];
  const closure = await withReferences(resolved.closure, references, spec, store, ctx).catch(async (err) => {
    await Promise.all(own.map((layer) => layer.dispose()));
    throw err;
  });
  const groups = planLayers(closure, { strategy: spec.layering, budget: Math.max(storeBudget, 1) });
  const storeSources = groups.map((group) => storeLayerSource({ paths: group.paths, settings, storeDir: store.storeDir, physicalPath }));
  const sources = [...baseLayers, ...storeSources, ...own];
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
      dispose: async () => {
        await Promise.all(own.map((layer) => layer.dispose()));
      },
    },
    stats: { paths: closure.paths.size, narSize: narSizeOf(closure), layers: sources.length },
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
