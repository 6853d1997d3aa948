/**
 * dockerTools buildImage's one layer (`copyToRoot`): the contents' files copied into the image root
 * (`rsync -a`, -k or -K), extraCommands and the rest of the customisation run over that copy, and
 * the closure's store paths appended, except those the base image already has.
 *
 * Two steps, because the closure is known only after the root is staged (extraCommands and
 * runAsRoot may name more store paths): stageSingleLayerRoot() copies and customises the root and
 * keeps it on disk; layer() then adds the store paths and gives the LayerSource. Its key is a recipe
 * (the root part's digest + the store paths with their NAR hashes), so an unchanged image finds it
 * in the cache without tarring the closure again.
 *
 * Owners, as buildImage's `tar --owner=UID --group=GID` then `tar -r --owner=0 --group=0`: the root
 * files are uid:gid (unless fakeRootCommands or perms say otherwise), the store paths root's.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { NixdockError } from '../errors.js';
import type { ExportLayer } from '../export.js';
import type { EntryOwner } from '../tar/header.js';
import { TarStream, tarSize, writeTar, type TarPlan } from '../tar/layer-tar.js';
import { physicalPathOf, walkTree, type TarEntry, type TreeRoot } from '../tar/walk.js';
import { ROOT_OWNER, stageTree, type CustomisationLayerOptions, type CustomisationLayerSource, type StagedTree } from './customisation-layer.js';
import { copyLocalDir, copyStoreRoot, DIR_MODE, locateStoreRoots, removeTree, type StoreCopy } from './stage-tree.js';
import { assertStorePath } from './store-layer.js';

/** Versions the byte format; part of every single layer's key. */
export const SINGLE_LAYER_FORMAT = 'nixdock-single-layer/1';

/** The store directory's ancestors (`nix/`, `nix/store/`): 0755, as in every nixdock store layer. */
const STORE_DIR_MODE = 0o755;

export interface SingleLayerOptions extends Omit<CustomisationLayerOptions, 'narHashOf'> {
  /** `rsync -K` instead of `-k`: symlinks to directories stay symlinks. */
  keepContentsDirlinks: boolean;
  /** buildImage's uid/gid: owner of the root files. */
  uid: number;
  gid: number;
}

export interface SingleLayerRoot {
  /** Store paths the staged root refers to (copied files, extraCommands' output): their closure belongs in the layer. */
  readonly references: readonly string[];
  /** The root part alone, for runAsRoot to run over. */
  readonly lower: ExportLayer;
  /** The layer: the root, then these store paths (sorted, whole), with the NAR hash that keys each. */
  layer(storePaths: readonly string[], narHashOf: (storePath: string) => string | undefined): Promise<CustomisationLayerSource>;
  /** Removes the staged root. */
  dispose(): Promise<void>;
}

export async function stageSingleLayerRoot(opts: SingleLayerOptions): Promise<SingleLayerRoot> {
  for (const storePath of opts.storeRoots) assertStorePath(storePath, opts.storeDir);
  const roots = locateStoreRoots(opts.storeRoots, opts.storeDir, opts.physicalPath);
  await mkdir(opts.tmpDir, { recursive: true });
  const workDir = await mkdtemp(join(opts.tmpDir, 'nixdock-single-layer-'));
  const copy: StoreCopy = { keepDirlinks: opts.keepContentsDirlinks, storeDir: opts.storeDir, physicalPath: opts.physicalPath, dirModes: new Map() };
  const populate = async (tree: string) => {
    for (const root of roots) await copyStoreRoot(root, tree, copy);
    for (const dir of opts.localDirs) await copyLocalDir(dir, tree);
  };
  const owner = ownerOf(opts.uid, opts.gid);
  let staged: StagedTree;
  try {
    staged = await stageTree(opts, workDir, { populate, modes: (entries) => storeDirModes(entries, copy.dirModes), ...(owner.uid !== 0 || owner.gid !== 0 ? { owner } : {}) });
  } catch (err) {
    await removeTree(workDir);
    throw err;
  }
  const settings = { ...ROOT_OWNER, mtime: opts.settings.mtime };
  const rootPlan: TarPlan = { entries: staged.entries, settings, size: tarSize(staged.entries, settings) };
  return {
    references: staged.references,
    lower: { open: () => new TarStream(async () => rootPlan) },
    layer: async (storePaths, narHashOf) => {
      const plan = withStorePaths(rootPlan, storePaths, opts);
      const recipe = {
        format: SINGLE_LAYER_FORMAT,
        root: await writeTar(rootPlan, undefined),
        storeDir: opts.storeDir,
        storePaths: storePaths.map((path) => [path, narHashOf(path) ?? missingNarHash(path)]),
        mtime: opts.settings.mtime,
      };
      return {
        kind: 'customisation',
        key: createHash('sha256').update(JSON.stringify(recipe)).digest('hex'),
        storePaths: [...storePaths],
        references: staged.references,
        description: describe(opts, storePaths.length),
        size: async () => plan.size,
        open: () => new TarStream(async () => plan),
        writeToFd: (fd, writeOpts) => writeTar(plan, fd, writeOpts),
        dispose: () => rm(workDir, { recursive: true, force: true }),
      };
    },
    dispose: () => removeTree(workDir),
  };
}

/** The root's entries, then the store directory (unless the root has it) and each store path's tree, root-owned. */
function withStorePaths(rootPlan: TarPlan, storePaths: readonly string[], opts: SingleLayerOptions): TarPlan {
  const entries: TarEntry[] = [...rootPlan.entries];
  if (storePaths.length > 0) {
    const names = new Set(entries.map((entry) => entry.name));
    const noTree: TreeRoot = { nameRoot: '', physicalRoot: '' };
    const parts = opts.storeDir.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const name = `${parts.slice(0, i).join('/')}/`;
      if (!names.has(name)) entries.push({ tree: noTree, name, type: 'dir', mode: STORE_DIR_MODE, size: 0, linkName: '', owner: ROOT_OWNER });
    }
  }
  const storeRel = opts.storeDir.replace(/^\/+/, '');
  for (const path of storePaths) {
    const tree = { nameRoot: `${storeRel}/${path.slice(opts.storeDir.length + 1)}`, physicalRoot: opts.physicalPath(path), canonicalModes: true };
    walkTree(tree, entries, () => missingStorePath(path));
  }
  return { entries, settings: rootPlan.settings, size: tarSize(entries, rootPlan.settings) };
}

/**
 * Copied store directories are 0555 in the layer, as rsync -a copies them. On disk they stay
 * writable while the tree is staged (system files, the Nix DB and the scripts write into them,
 * unprivileged too); one a script chmodded keeps its mode.
 */
function storeDirModes(entries: TarEntry[], dirModes: Map<string, number>): TarEntry[] {
  return entries.map((entry) => {
    const mode = entry.type === 'dir' && entry.mode === DIR_MODE ? dirModes.get(physicalPathOf(entry).replace(/\/$/, '')) : undefined;
    return mode === undefined ? entry : { ...entry, mode };
  });
}

function ownerOf(uid: number, gid: number): EntryOwner {
  return { uid, gid, uname: uid === 0 ? 'root' : '', gname: gid === 0 ? 'root' : '' };
}

function describe(opts: SingleLayerOptions, storePaths: number): string {
  const parts = [...opts.storeRoots, ...opts.localDirs];
  if (opts.extraCommands) parts.push('extraCommands');
  if (opts.fakeRootCommands) parts.push('fakeRootCommands');
  return `copyToRoot: ${parts.length > 0 ? parts.join(', ') : 'nothing'}; ${storePaths} store path(s)`;
}

function missingNarHash(path: string): never {
  throw new NixdockError('INTERNAL', `No NAR hash known for ${path}, which the single layer holds`, {
    hint: 'This is a nixdock bug: the closure should describe every path it lists.',
  });
}

function missingStorePath(path: string): NixdockError {
  return new NixdockError('STORE_PATH_MISSING', `Store path ${path} does not exist on this machine`, {
    location: { file: path },
    found: 'no such file',
    expected: 'a realised store path',
    hint: `Realise it first (\`nix-store --realise ${path}\`).`,
  });
}

