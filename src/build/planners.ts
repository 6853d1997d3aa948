/**
 * The layer planners of a store-closure image: a list, each adding layer sources and using up part
 * of the layer budget (`maxLayers`). To add a kind of layer, add a planner here.
 *
 * Planning runs in two passes over the list. First every planner counts the layers it will add
 * (the base image is read for that, nothing is staged), so a budget too small fails before
 * extraCommands or runAsRoot run. Then each adds its sources in list order, seeing what the earlier
 * ones added: runAsRoot runs over the base and customisation layers, and the store closure grows
 * by what those two wrote that refers to the store. The one planner that takes the rest of the
 * budget (the store closure) gets what the fixed counts leave. The list order is the order of
 * work; where the layers go in the image is each planner's slot (base, store, top).
 */
import { dirname, join } from 'node:path';
import { NixdockError } from '../errors.js';
import { readBaseImage } from '../base/read.js';
import type { ImageSpec } from '../config/types.js';
import { customisationLayerSource, type CustomisationLayerSource } from '../layer/customisation-layer.js';
import { runAsRootLayer } from '../layer/run-as-root.js';
import { storeLayerSource } from '../layer/store-layer.js';
import { planLayers } from '../plan/plan.js';
import { registryPull } from '../registry/source.js';
import { specField, type ResolvedImage } from '../resolve.js';
import type { Closure, ImageSource, LayerSource, Store, TarSettings } from '../types.js';
import type { PlanContext } from './plan.js';
import { withReferences } from './plan-parts.js';

/** Where a planner's layers go in the image, bottom to top. */
export type LayerSlot = 'base' | 'store' | 'top';

/** What the planners of one image share: its inputs, and the layers planned so far. */
export interface LayerDraft {
  readonly spec: ImageSpec;
  readonly ctx: PlanContext;
  readonly store: Store;
  readonly settings: TarSettings;
  readonly resolved: ResolvedImage;
  /** The closure the store layers cover (grown by `references` when the store closure is planned). */
  closure: Closure;
  /** Store paths the layers staged so far refer to (what extraCommands or runAsRoot wrote): their closure joins the image. */
  readonly references: string[];
  base?: ImageSource;
  readonly layers: Record<LayerSlot, LayerSource[]>;
  /** Layers holding temporary files; the plan's dispose() (or a failed planner) removes them. */
  readonly staged: CustomisationLayerSource[];
}

/** A fixed number of layers (`what` says which, for the budget error), or whatever the others leave. */
export type LayerCount = { layers: number; what: string } | { rest: true; atLeast: number };

export interface LayerPlanner {
  count(draft: LayerDraft): Promise<LayerCount>;
  /** `budget`: for the planner that takes the rest, the layers left to it; else its own count. */
  add(draft: LayerDraft, budget: number): Promise<void>;
}

/** fromImage's layers, at the bottom, as they are. */
const baseImagePlanner: LayerPlanner = {
  async count(draft) {
    const { spec, ctx } = draft;
    if (!spec.fromImage) return { layers: 0, what: '0 base layers' };
    const platform = { architecture: spec.architecture, ...(spec.variant !== undefined && { variant: spec.variant }) };
    draft.base = await readBaseImage(spec.fromImage, { cacheDir: ctx.config.cacheDir, signal: ctx.signal, platform, pull: registryPull });
    return { layers: draft.base.layers.length, what: `${draft.base.layers.length} base layer(s)` };
  },
  async add(draft) {
    draft.layers.base.push(...(draft.base?.layers ?? []));
  },
};

/** contents' trees merged into /, local dirs, system files, extraCommands: one layer on top. */
const customisationPlanner: LayerPlanner = {
  count: async () => ({ layers: 1, what: '1 customisation layer' }),
  async add(draft) {
    const { spec, resolved, store, ctx } = draft;
    const layer = await customisationLayerSource({
      storeRoots: resolved.contentsPaths,
      localDirs: resolved.localDirs,
      nixDb: spec.includeNixDB ? { paths: [...resolved.closure.paths.values()], gcRoots: resolved.contentsPaths } : undefined,
      extraCommands: spec.extraCommands,
      fakeRootCommands: spec.fakeRootCommands,
      enableFakechroot: spec.enableFakechroot,
      perms: spec.perms,
      system: { users: spec.users, groups: spec.groups, binSh: spec.binSh, usrBinEnv: spec.usrBinEnv, caCertificates: spec.caCertificates, tmp: spec.tmp },
      settings: { ...draft.settings, uid: 0, gid: 0, uname: 'root', gname: 'root' },
      storeDir: store.storeDir,
      physicalPath: (p) => store.physicalPath(p),
      narHashOf: (path) => resolved.closure.paths.get(path)?.narHash,
      tmpDir: join(ctx.config.cacheDir, 'tmp'),
    });
    draft.staged.push(layer);
    draft.layers.top.push(layer);
    draft.references.push(...layer.references);
  },
};

/** The closure's store paths grouped into the layers the budget leaves (layering: stable or popularity). */
const storeClosurePlanner: LayerPlanner = {
  count: async (draft) => ({ rest: true, atLeast: draft.resolved.closure.paths.size > 0 ? 1 : 0 }),
  async add(draft, budget) {
    const { spec, store, settings, ctx } = draft;
    // What extraCommands or runAsRoot wrote may name store paths outside the closure: Nix would add their closure.
    draft.closure = await withReferences(draft.closure, draft.references, spec, store, ctx);
    const physicalPath = (p: string) => store.physicalPath(p);
    const groups = planLayers(draft.closure, { strategy: spec.layering, budget: Math.max(budget, 1) });
    draft.layers.store.push(...groups.map((group) => storeLayerSource({ paths: group.paths, settings, storeDir: store.storeDir, physicalPath })));
  },
};

/** runAsRoot's changes to the base and customisation layers: one layer on top of them. */
const runAsRootPlanner: LayerPlanner = {
  count: async ({ spec }) => (spec.runAsRoot === undefined ? { layers: 0, what: 'no runAsRoot layer' } : { layers: 1, what: '1 runAsRoot layer' }),
  async add(draft) {
    const { spec, store, ctx } = draft;
    if (spec.runAsRoot === undefined) return;
    const layer = await runAsRootLayer({
      script: spec.runAsRoot,
      lower: [...draft.layers.base, ...draft.layers.top],
      storeDir: store.storeDir,
      physicalStoreDir: dirname(store.physicalPath(`${store.storeDir}/${'0'.repeat(32)}-x`)),
      mtime: draft.settings.mtime,
      tmpDir: join(ctx.config.cacheDir, 'tmp'),
    });
    draft.staged.push(layer);
    draft.layers.top.push(layer);
    draft.references.push(...layer.references);
  },
};

/** The planners of a store-closure image, in the order they do their work. */
export const LAYER_PLANNERS: readonly LayerPlanner[] = [baseImagePlanner, customisationPlanner, runAsRootPlanner, storeClosurePlanner];

/** Runs the planners over `draft`: its layers, bottom to top. On failure nothing stays staged. */
export async function planLayerSources(draft: LayerDraft, planners: readonly LayerPlanner[]): Promise<LayerSource[]> {
  const counts: LayerCount[] = [];
  for (const planner of planners) counts.push(await planner.count(draft));
  const rest = draft.spec.maxLayers - fixedLayers(counts);
  checkBudget(draft.spec, counts, rest);
  try {
    for (const [i, planner] of planners.entries()) {
      const count = counts[i]!;
      await planner.add(draft, 'rest' in count ? rest : count.layers);
    }
  } catch (err) {
    await disposeStaged(draft);
    throw err;
  }
  return [...draft.layers.base, ...draft.layers.store, ...draft.layers.top];
}

export async function disposeStaged(draft: LayerDraft): Promise<void> {
  await Promise.all(draft.staged.map((layer) => layer.dispose()));
}

function fixedLayers(counts: readonly LayerCount[]): number {
  return counts.reduce((n, count) => n + ('rest' in count ? 0 : count.layers), 0);
}

function checkBudget(spec: ImageSpec, counts: readonly LayerCount[], rest: number): void {
  const needed = Math.max(0, ...counts.map((count) => ('rest' in count ? count.atLeast : 0)));
  // An empty closure needs no store layer (and, as before, no room is checked for it).
  if (needed === 0 || rest >= needed) return;
  const fixed = counts.flatMap((count) => ('rest' in count || count.layers === 0 ? [] : [count.what]));
  throw new NixdockError('INPUT_INVALID', `maxLayers ${spec.maxLayers} leaves no room for store layers`, {
    location: { file: spec.source.file, field: specField(spec, 'maxLayers') },
    found: fixed.join(' + '),
    expected: `maxLayers ≥ ${fixedLayers(counts) + needed}`,
    hint: 'Raise maxLayers (up to 127) or use a base image with fewer layers.',
  });
}
