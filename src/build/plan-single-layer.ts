/**
 * The planner of dockerTools buildImage's shape (`copyToRoot`): on the base image's layers, ONE
 * layer with the contents copied into the root and their closure (store paths the base already has
 * left out), then runAsRoot's layer when there is one (../layer/single-layer.ts).
 */
import { dirname, join } from 'node:path';
import type { ImageSpec } from '../config/types.js';
import { NixdockError } from '../errors.js';
import { readBaseImage } from '../base/read.js';
import { mergeBaseConfig } from '../base/merge.js';
import { baseStorePaths } from '../base/store-paths.js';
import { runAsRootLayer } from '../layer/run-as-root.js';
import { stageSingleLayerRoot } from '../layer/single-layer.js';
import type { CustomisationLayerSource } from '../layer/customisation-layer.js';
import { registryPull } from '../registry/source.js';
import { resolveImage, specField } from '../resolve.js';
import { openStore } from '../store/open.js';
import type { PlanContext, PlanResult } from './plan.js';
import { narSizeOf, resolveTime, tarSettings, withReferences } from './plan-parts.js';

export async function planSingleLayerImage(spec: ImageSpec, ctx: PlanContext): Promise<PlanResult> {
  const store = openStore(ctx.config.store);
  const resolved = await resolveImage(spec, store, ctx.config.root, ctx.signal, ctx.index);
  ctx.index.recordStorePaths([...resolved.closure.paths.values()], resolved.closure.fingerprints);
  const platform = { architecture: spec.architecture, ...(spec.variant !== undefined && { variant: spec.variant }) };
  const base = spec.fromImage ? await readBaseImage(spec.fromImage, { cacheDir: ctx.config.cacheDir, signal: ctx.signal, platform, pull: registryPull }) : undefined;
  const baseLayers = base?.layers ?? [];
  const ownLayers = spec.runAsRoot !== undefined ? 2 : 1;
  if (baseLayers.length + ownLayers > spec.maxLayers) throw overBudget(spec, baseLayers.length, ownLayers);

  const settings = tarSettings(spec);
  const physicalPath = (p: string) => store.physicalPath(p);
  const tmpDir = join(ctx.config.cacheDir, 'tmp');
  const root = await stageSingleLayerRoot({
    storeRoots: resolved.contentsInOrder,
    localDirs: resolved.localDirs,
    keepContentsDirlinks: spec.singleLayer!.keepContentsDirlinks,
    uid: spec.uid,
    gid: spec.gid,
    nixDb: spec.includeNixDB ? { paths: [...resolved.closure.paths.values()], gcRoots: resolved.contentsPaths } : undefined,
    extraCommands: spec.extraCommands,
    fakeRootCommands: spec.fakeRootCommands,
    enableFakechroot: spec.enableFakechroot,
    perms: spec.perms,
    system: { users: spec.users, groups: spec.groups, binSh: spec.binSh, usrBinEnv: spec.usrBinEnv, caCertificates: spec.caCertificates, tmp: spec.tmp },
    settings,
    storeDir: store.storeDir,
    physicalPath,
    tmpDir,
  });
  let runAsRoot: CustomisationLayerSource | undefined;
  try {
    runAsRoot = spec.runAsRoot === undefined ? undefined : await runAsRootLayer({
      script: spec.runAsRoot,
      lower: [...baseLayers, root.lower],
      storeDir: store.storeDir,
      physicalStoreDir: dirname(physicalPath(`${store.storeDir}/${'0'.repeat(32)}-x`)),
      mtime: settings.mtime,
      tmpDir,
    });
    const references = [...root.references, ...(runAsRoot?.references ?? [])];
    const closure = await withReferences(resolved.closure, references, spec, store, ctx);
    const inBase = baseLayers.length > 0 && closure.paths.size > 0 ? await baseStorePaths(baseLayers, store.storeDir, ctx.signal) : new Set<string>();
    const paths = [...closure.paths.keys()].filter((path) => !inBase.has(path)).sort();
    const layer = await root.layer(paths, (path) => closure.paths.get(path)?.narHash);
    const own = runAsRoot ? [layer, runAsRoot] : [layer];
    const sources = [...baseLayers, ...own];
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
          await Promise.all(own.map((source) => source.dispose()));
        },
      },
      stats: { paths: closure.paths.size, narSize: narSizeOf(closure), layers: sources.length },
    };
  } catch (err) {
    await Promise.all([root.dispose(), runAsRoot?.dispose()]);
    throw err;
  }
}

function overBudget(spec: ImageSpec, baseLayers: number, ownLayers: number): NixdockError {
  return new NixdockError('INPUT_INVALID', `maxLayers ${spec.maxLayers} is fewer than the base image's layers and this image's own`, {
    location: { file: spec.source.file, field: specField(spec, 'maxLayers') },
    found: `${baseLayers} base layer(s) + ${ownLayers === 2 ? 'the copyToRoot and runAsRoot layers' : 'the copyToRoot layer'}`,
    expected: `maxLayers ≥ ${baseLayers + ownLayers}`,
    hint: 'Raise maxLayers (up to 127) or use a base image with fewer layers.',
  });
}
