/**
 * The customisation layer: the merged `contents` tree (store roots symlink-joined, local
 * directories copied) after extraCommands, as a reproducible tar of relative names.
 *
 * With local directories, extraCommands or a Nix database, its input is only known once the tree
 * is staged, so it is packed eagerly: the tar is written once to a private temp dir (hashing on
 * the way), the staged tree is removed, and open() streams that file until dispose(). A tree of
 * store roots alone is keyed by the roots and tarred in memory, without staging, only if its
 * bytes are needed.
 */
import { createHash } from 'node:crypto';
import { createReadStream, lstatSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { NixdockError } from '../errors.js';
import type { Digest, LayerSource, TarSettings } from '../types.js';
import { withTempFile, writeNewFile } from '../util/atomic.js';
import { stageNixDb, type NixDbContents } from './nix-db.js';
import { assertStorePath } from './store-layer.js';
import { applyFakerootState, applyPerms, readFakerootState, type PathPerm } from './ownership.js';
import { scanStoreReferences } from './references.js';
import { stageSystemFiles, wantsSystemFiles, type SystemFiles } from './system-files.js';
import { chrootOwner, prepareMountPoints, removeMountPoints, runChrooted } from './chroot.js';
import { findExecutable, missingTool, runSandboxed } from './sandbox.js';
import { copyLocalDir, DIR_MODE, locateStoreRoots, materialiseTree, mergeStoreRoots, removeTree, type MergedTree, type StoreRoot } from './stage-tree.js';
import { tarBuffer, tarSize, writeTar } from '../tar/layer-tar.js';
import type { EntryOwner } from '../tar/header.js';
import { compareCodePoints, lstatIfExists, physicalPathOf, walkTree, type TarEntry, type TreeRoot } from '../tar/walk.js';

/** Versions the byte format; part of every customisation layer key. */
export const CUSTOMISATION_LAYER_FORMAT = 'nixdock-customisation-layer/1';

export interface CustomisationLayerOptions {
  /** Store paths from `contents` whose trees are merged into / (symlinkJoin). */
  storeRoots: string[];
  /** Absolute local directories copied into / (copyToRoot), after the store roots. */
  localDirs: string[];
  /** dockerTools' includeNixDB: a Nix database registering these paths, staged before extraCommands runs. */
  nixDb?: NixDbContents;
  /** Run as a Nix builder would (./sandbox.ts) in the merged tree before packing. */
  extraCommands?: string;
  /** Run after extraCommands, under fakeroot: its chown/chmod/mknod effects land in the headers. */
  fakeRootCommands?: string;
  /** fakeRootCommands see the tree as `/` (./chroot.ts) instead of running in it under fakeroot. */
  enableFakechroot?: boolean;
  /** Declarative owners and modes (./ownership.ts), applied last. */
  perms?: PathPerm[];
  /** users/groups, binSh, usrBinEnv, caCertificates, tmp (./system-files.ts), staged before extraCommands. */
  system?: SystemFiles;
  /**
   * Only mtime is used (also as the Nix database's registration time): entries are owned by root
   * (0/0), as dockerTools' fakeroot tar writes them, unless fakeRootCommands or perms say otherwise.
   */
  settings: TarSettings;
  storeDir: string;
  physicalPath: (storePath: string) => string;
  /**
   * The NAR hash of a store root, when known (Nix's path info). A store-only layer is keyed by its
   * roots' hashes, so a root deleted and rebuilt with other contents gets a new key.
   */
  narHashOf?: (storePath: string) => string | undefined;
  /** Where to stage the tree and keep the packed tar until dispose(). */
  tmpDir: string;
}

/**
 * The customisation layer; dispose() deletes its temp files. Packed at once (diffId known) when its
 * input is only known once staged, else tarred when its bytes are first needed (see lazySource).
 */
export interface CustomisationLayerSource extends LayerSource {
  readonly kind: 'customisation';
  /** Store paths the packed tree refers to (its symlinks and file contents), sorted: their closure belongs in the image. */
  readonly references: readonly string[];
  dispose(): Promise<void>;
}

export const ROOT_OWNER = { uid: 0, gid: 0, uname: 'root', gname: 'root' } as const;

export async function customisationLayerSource(opts: CustomisationLayerOptions): Promise<CustomisationLayerSource> {
  // Checked now, from lstat alone: a bad contents root must fail the build before any layer is written.
  for (const storePath of opts.storeRoots) assertStorePath(storePath, opts.storeDir);
  const roots = locateStoreRoots(opts.storeRoots, opts.storeDir, opts.physicalPath);
  if (isStoreOnly(opts)) return lazySource(opts, roots);
  const packed = await packInTemp(opts, roots);
  return packedSource(opts, packed);
}

/**
 * Store roots alone (no local directories, extraCommands or Nix database): the tree is a pure
 * function of immutable store paths, so the recipe is known without staging it.
 */
function isStoreOnly(opts: CustomisationLayerOptions): boolean {
  const hashed = opts.storeRoots.every((root) => opts.narHashOf?.(root) !== undefined);
  const customised = opts.extraCommands !== undefined || opts.fakeRootCommands !== undefined || (opts.perms ?? []).length > 0 || wantsSystemFiles(opts.system);
  return hashed && opts.localDirs.length === 0 && !customised && opts.nixDb === undefined;
}

/**
 * A store-only layer keyed by its recipe and tarred only when its bytes are needed: a rebuild
 * that finds the recipe in the index (every rebuild of an unchanged image) never reads the roots.
 * Nothing is staged on disk: the merged tree is symlinks and directories only, tarred in memory.
 */
function lazySource(opts: CustomisationLayerOptions, roots: StoreRoot[]): CustomisationLayerSource {
  let bytes: Buffer | undefined;
  const pack = (): Buffer => (bytes ??= tarStoreRoots(roots, opts.settings.mtime));
  return {
    kind: 'customisation',
    key: storeOnlyKey(opts),
    references: opts.storeRoots,
    storePaths: [],
    description: describe(opts),
    size: async () => pack().length,
    open: () => Readable.from(lazyBytes(pack)),
    dispose: async () => {
      bytes = undefined;
    },
  };
}

/** The bytes as a one-chunk stream; tarring (and its errors) wait for the first read. */
function* lazyBytes(pack: () => Buffer): Generator<Buffer> {
  yield pack();
}

/** The tar of the merged store roots, as staging and walking the tree would write it. */
function tarStoreRoots(roots: StoreRoot[], mtime: number): Buffer {
  const entries = mergedEntries(mergeStoreRoots(roots));
  const settings = { ...ROOT_OWNER, mtime };
  return tarBuffer({ entries, settings, size: tarSize(entries, settings) });
}

/** No file of a merged tree has contents to read: directories and symlinks only. */
const NO_FILES: TreeRoot = { nameRoot: '', physicalRoot: '' };

/** The entries walkTree would list for the tree materialised: depth-first, names in code-point order, staged modes. */
function mergedEntries(tree: MergedTree, prefix = '', out: TarEntry[] = []): TarEntry[] {
  for (const name of [...tree.keys()].sort(compareCodePoints)) {
    const node = tree.get(name)!;
    if (typeof node === 'string') {
      out.push({ tree: NO_FILES, name: prefix + name, type: 'symlink', mode: 0o777, size: 0, linkName: node });
    } else {
      out.push({ tree: NO_FILES, name: `${prefix}${name}/`, type: 'dir', mode: DIR_MODE, size: 0, linkName: '' });
      mergedEntries(node, `${prefix}${name}/`, out);
    }
  }
  return out;
}

/** Hex sha256 of everything that decides a store-only layer's bytes. */
function storeOnlyKey(opts: CustomisationLayerOptions): string {
  const storeRoots = opts.storeRoots.map((root) => [root, opts.narHashOf!(root)]);
  const recipe = { format: CUSTOMISATION_LAYER_FORMAT, storeDir: opts.storeDir, storeRoots, mtime: opts.settings.mtime };
  return createHash('sha256').update(JSON.stringify(recipe)).digest('hex');
}

/** A packed tar in its private temp dir. */
interface Packed extends PackedTar {
  workDir: string;
  tarPath: string;
}

interface PackedTar {
  diffId: Digest;
  size: number;
  references: string[];
}

async function packInTemp(opts: CustomisationLayerOptions, roots: StoreRoot[]): Promise<Packed> {
  await mkdir(opts.tmpDir, { recursive: true });
  const workDir = await mkdtemp(join(opts.tmpDir, 'nixdock-customisation-'));
  try {
    const tarPath = join(workDir, 'layer.tar');
    return { workDir, tarPath, ...(await stageAndPack(opts, roots, workDir, tarPath)) };
  } catch (err) {
    await removeTree(workDir);
    throw err;
  }
}

async function stageAndPack(opts: CustomisationLayerOptions, roots: StoreRoot[], workDir: string, tarPath: string): Promise<PackedTar> {
  const populate = async (tree: string) => {
    await materialiseTree(mergeStoreRoots(roots), tree);
    for (const dir of opts.localDirs) await copyLocalDir(dir, tree);
  };
  const staged = await stageTree(opts, workDir, { populate });
  try {
    return { ...(await packEntries(staged.entries, tarPath, opts.settings.mtime)), references: staged.references };
  } finally {
    await removeTree(staged.tree);
  }
}

/** A staged image root: its directory, its entries with their owners and modes, the store paths it refers to. */
export interface StagedTree {
  tree: string;
  entries: TarEntry[];
  references: string[];
}

/** How a caller shapes the staged root: what puts the contents there, and the entries' defaults. */
export interface StageHooks {
  /** Puts the contents into the empty tree (linked or copied). */
  populate: (tree: string) => Promise<void>;
  /** Owner of every entry the scripts did not give one (default root). */
  owner?: EntryOwner;
  /** Adjusts the walked entries' modes before fakeroot's and the perms' say. */
  modes?: (entries: TarEntry[]) => TarEntry[];
}

/**
 * Stages the root in `workDir/root`: `populate` puts the contents there, then the Nix database,
 * system files, extraCommands and fakeRootCommands; the entries get `owner` and `modes`, then what
 * fakeroot recorded and the perms. The caller removes the tree.
 */
export async function stageTree(opts: CustomisationLayerOptions, workDir: string, { populate, owner, modes }: StageHooks): Promise<StagedTree> {
  const tree = join(workDir, 'root');
  const nixState = join(workDir, 'nix-state');
  const fakerootDir = join(workDir, 'fakeroot');
  try {
    await mkdir(tree, { mode: 0o755 });
    await populate(tree);
    if (opts.nixDb) {
      await mkdir(nixState);
      await stageNixDb(tree, { ...opts.nixDb, storeDir: opts.storeDir, registrationTime: opts.settings.mtime, scratchDir: nixState });
    }
    const homes = opts.system ? stageSystemFiles(tree, opts.system, opts.physicalPath) : [];
    if (opts.extraCommands) await runSandboxed({ ...sandboxPlaces(opts, tree), field: 'extraCommands', script: opts.extraCommands });
    const fakerootState = join(fakerootDir, 'state');
    if (opts.fakeRootCommands && opts.enableFakechroot) {
      await runFakechroot(tree, opts.fakeRootCommands, opts);
    } else if (opts.fakeRootCommands) {
      await mkdir(fakerootDir);
      await runSandboxed({ ...sandboxPlaces(opts, tree), field: 'fakeRootCommands', script: opts.fakeRootCommands, fakerootState });
    }
    const references = scanStoreReferences(tree, opts.storeDir, (path) => lstatIfExists(opts.physicalPath(path)) !== undefined);
    const walked: TarEntry[] = [];
    walkTree({ nameRoot: '', physicalRoot: tree }, walked, () => new NixdockError('INTERNAL', `Staged tree ${tree} vanished`));
    // Chrooted, the commands' chown is real (as root): the owners on disk are the image's.
    const onDisk = opts.fakeRootCommands && opts.enableFakechroot ? walked.map((entry) => ({ ...entry, owner: ownerOnDisk(entry) })) : walked;
    const owned = owner ? onDisk.map((entry) => (entry.owner && !isRoot(entry.owner) ? entry : { ...entry, owner })) : onDisk;
    const moded = modes ? modes(owned) : owned;
    const entries = applyPerms(applyFakerootState(moded, readFakerootState(fakerootState)), [...homes, ...(opts.perms ?? [])]);
    return { tree, entries, references };
  } catch (err) {
    await removeTree(tree);
    throw err;
  } finally {
    await Promise.all([removeTree(nixState), removeTree(fakerootDir)]);
  }
}

/** dockerTools' enableFakechroot: fakeRootCommands run as root chrooted into the tree (./chroot.ts), which keeps no mount points. */
async function runFakechroot(tree: string, script: string, opts: CustomisationLayerOptions): Promise<void> {
  const bwrap = findExecutable('bwrap', process.env.PATH ?? '/usr/bin:/bin');
  if (!bwrap) throw missingTool('fakeRootCommands', 'bwrap');
  const created = prepareMountPoints(tree, opts.storeDir);
  try {
    await runChrooted(bwrap, tree, { field: 'fakeRootCommands', script, storeDir: opts.storeDir, physicalStoreDir: physicalStoreDir(opts), mtime: opts.settings.mtime });
  } finally {
    removeMountPoints(created);
  }
}

function ownerOnDisk(entry: TarEntry): EntryOwner {
  const stats = lstatSync(physicalPathOf(entry));
  return chrootOwner(stats.uid, stats.gid);
}

function isRoot(owner: EntryOwner): boolean {
  return owner.uid === 0 && owner.gid === 0;
}

/** Where a sandboxed script runs: the tree writable, the store (wherever its files are) read-only. */
function sandboxPlaces(opts: CustomisationLayerOptions, tree: string) {
  return { tree, storeDir: opts.storeDir, physicalStoreDir: physicalStoreDir(opts), sourceDateEpoch: opts.settings.mtime };
}

/** The host directory of the store: the physical path of a (made-up) store path, minus its name. */
function physicalStoreDir(opts: CustomisationLayerOptions): string {
  return dirname(opts.physicalPath(`${opts.storeDir}/${'0'.repeat(32)}-x`));
}

/** Writes the entries' tar (relative names, no entry for the root itself, root's unless they say otherwise) and returns its digest. */
async function packEntries(entries: TarEntry[], tarPath: string, mtime: number): Promise<{ diffId: Digest; size: number }> {
  const settings = { ...ROOT_OWNER, mtime };
  const plan = { entries, settings, size: tarSize(entries, settings) };
  const diffId = await withTempFile(tarPath, (tmp) => writeNewFile(tmp, (fd) => writeTar(plan, fd)));
  return { diffId, size: plan.size };
}

function packedSource(opts: CustomisationLayerOptions, { workDir, tarPath, diffId, size, references }: Packed): CustomisationLayerSource {
  return {
    kind: 'customisation',
    // The tar is a pure function of the staged tree's content and the mtime, so its digest keys the recipe.
    key: createHash('sha256').update(`${CUSTOMISATION_LAYER_FORMAT}\n${diffId}`).digest('hex'),
    storePaths: [],
    references,
    description: describe(opts),
    diffId,
    size: async () => size,
    open: () => createReadStream(tarPath),
    dispose: () => rm(workDir, { recursive: true, force: true }),
  };
}

function describe(opts: CustomisationLayerOptions): string {
  const parts = [...opts.storeRoots, ...opts.localDirs];
  if (opts.nixDb) parts.push('Nix database');
  if (opts.extraCommands) parts.push('extraCommands');
  if (opts.fakeRootCommands) parts.push('fakeRootCommands');
  if ((opts.perms ?? []).length > 0) parts.push('perms');
  if (wantsSystemFiles(opts.system)) parts.push('system files');
  return `customisation layer: ${parts.length > 0 ? parts.join(', ') : 'empty'}`;
}
