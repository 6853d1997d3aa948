/**
 * The customisation layer: the merged `contents` tree (store roots symlink-joined, local
 * directories copied) after extraCommands, as a reproducible tar of relative names.
 *
 * Unlike store layers its input is only known once the tree is staged and extraCommands has run,
 * so it is packed eagerly: the tar is written once to a private temp dir (hashing on the way),
 * the staged tree is removed, and open() streams that file until dispose().
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { NixdockError } from '../errors.js';
import type { Digest, LayerSource, TarSettings } from '../types.js';
import { withTempFile } from '../util/atomic.js';
import { DigestStream } from './hash.js';
import { stageNixDb, type NixDbContents } from './nix-db.js';
import { assertStorePath } from './store-layer.js';
import { copyLocalDir, linkStoreRoot, removeTree, runExtraCommands } from './stage-tree.js';
import { TarStream, tarSize } from './tar-writer.js';
import { walkTree, type TarEntry } from './walk.js';

/** Versions the byte format; part of every customisation layer key. */
export const CUSTOMISATION_LAYER_FORMAT = 'nixdock-customisation-layer/1';

export interface CustomisationLayerOptions {
  /** Store paths from `contents` whose trees are merged into / (symlinkJoin). */
  storeRoots: string[];
  /** Absolute local directories copied into / (copyToRoot), after the store roots. */
  localDirs: string[];
  /** dockerTools' includeNixDB: a Nix database registering these paths, staged before extraCommands runs. */
  nixDb?: NixDbContents;
  /** Run with /bin/sh -c in the merged tree (cwd = tree root) before packing. */
  extraCommands?: string;
  /**
   * Only mtime is used (also as the Nix database's registration time): entries are owned by root
   * (0/0), as dockerTools' fakeroot tar writes them.
   */
  settings: TarSettings;
  storeDir: string;
  physicalPath: (storePath: string) => string;
  /** Where to stage the tree and keep the packed tar until dispose(). */
  tmpDir: string;
}

/** A customisation layer already packed: diff_id and size are known; dispose() deletes its temp files. */
export interface CustomisationLayerSource extends LayerSource {
  readonly kind: 'customisation';
  readonly diffId: Digest;
  dispose(): Promise<void>;
}

const ROOT_OWNER = { uid: 0, gid: 0, uname: 'root', gname: 'root' } as const;

export async function customisationLayerSource(opts: CustomisationLayerOptions): Promise<CustomisationLayerSource> {
  await mkdir(opts.tmpDir, { recursive: true });
  const workDir = await mkdtemp(join(opts.tmpDir, 'nixdock-customisation-'));
  try {
    const tarPath = join(workDir, 'layer.tar');
    const { diffId, size } = await stageAndPack(opts, workDir, tarPath);
    return packedSource(opts, workDir, tarPath, diffId, size);
  } catch (err) {
    await removeTree(workDir);
    throw err;
  }
}

async function stageAndPack(opts: CustomisationLayerOptions, workDir: string, tarPath: string): Promise<{ diffId: Digest; size: number }> {
  const tree = join(workDir, 'root');
  const nixState = join(workDir, 'nix-state');
  try {
    await mkdir(tree, { mode: 0o755 });
    for (const storePath of opts.storeRoots) assertStorePath(storePath, opts.storeDir);
    for (const storePath of opts.storeRoots) await linkStoreRoot({ storePath, physical: opts.physicalPath(storePath) }, tree);
    for (const dir of opts.localDirs) await copyLocalDir(dir, tree);
    if (opts.nixDb) {
      await mkdir(nixState);
      await stageNixDb(tree, { ...opts.nixDb, storeDir: opts.storeDir, registrationTime: opts.settings.mtime, scratchDir: nixState });
    }
    if (opts.extraCommands) await runExtraCommands(opts.extraCommands, tree);
    return await packTree(tree, tarPath, opts.settings.mtime);
  } finally {
    await Promise.all([removeTree(tree), removeTree(nixState)]);
  }
}

/** Writes the tree's tar (relative names, no entry for the root itself) and returns its digest. */
async function packTree(tree: string, tarPath: string, mtime: number): Promise<{ diffId: Digest; size: number }> {
  const settings = { ...ROOT_OWNER, mtime };
  const entries: TarEntry[] = [];
  walkTree({ nameRoot: '', physicalRoot: tree }, entries, () => new NixdockError('INTERNAL', `Staged tree ${tree} vanished`));
  const plan = { entries, settings, size: tarSize(entries, settings) };
  const digest = new DigestStream();
  await withTempFile(tarPath, (tmp) => pipeline(new TarStream(async () => plan), digest, createWriteStream(tmp)));
  return { diffId: digest.digest(), size: digest.bytes };
}

function packedSource(opts: CustomisationLayerOptions, workDir: string, tarPath: string, diffId: Digest, size: number): CustomisationLayerSource {
  return {
    kind: 'customisation',
    // The tar is a pure function of the staged tree's content and the mtime, so its digest keys the recipe.
    key: createHash('sha256').update(`${CUSTOMISATION_LAYER_FORMAT}\n${diffId}`).digest('hex'),
    storePaths: [],
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
  return `customisation layer: ${parts.length > 0 ? parts.join(', ') : 'empty'}`;
}
