/**
 * Store layers: a list of store paths as the tar nixpkgs' stream_layered_image.py writes
 * (`archive_paths_to`), byte for byte, so diff_ids match dockerTools'.
 */
import { createHash } from 'node:crypto';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { NixdockError } from '../errors.js';
import type { LayerSource, TarSettings } from '../types.js';
import { TarStream, tarSize, writeTar, type TarPlan } from '../tar/layer-tar.js';
import { walkTree, type TarEntry, type TreeRoot } from '../tar/walk.js';

/** Versions the byte format; part of every store layer key, so a format change invalidates cached layers. */
export const STORE_LAYER_FORMAT = 'nixdock-store-layer/1';

export interface StoreLayerOptions {
  /** Logical store paths, in the order written (the planner has already sorted them). */
  paths: string[];
  settings: TarSettings;
  /** Logical store dir, e.g. /nix/store (entry names use it). */
  storeDir: string;
  /** Where a store path's files really are (Store.physicalPath). */
  physicalPath: (storePath: string) => string;
}

/** The script writes the store directory's ancestors first, mode 0755 (its `nix_root`), so runtimes create them sanely. */
const STORE_DIR_MODE = 0o755;

export function storeLayerSource(opts: StoreLayerOptions): LayerSource {
  let plan: Promise<TarPlan> | undefined;
  // The walk is shared by size() and every open(); a failed walk is retried on the next call.
  const loadPlan = (): Promise<TarPlan> => {
    plan ??= planStoreLayer(opts).catch((err: unknown) => {
      plan = undefined;
      throw err;
    });
    return plan;
  };
  return {
    kind: 'store',
    key: storeLayerKey(opts),
    storePaths: [...opts.paths],
    description: `store paths: [${opts.paths.map((p) => `'${p}'`).join(', ')}]`,
    size: async () => (await loadPlan()).size,
    open: () => new TarStream(loadPlan),
    writeToFd: async (fd, opts) => writeTar(await loadPlan(), fd, opts),
  };
}

/** Hex sha256 of everything that decides the bytes: format version, store dir, paths in order, owner/mtime settings. */
export function storeLayerKey(opts: Pick<StoreLayerOptions, 'paths' | 'settings' | 'storeDir'>): string {
  const { mtime, uid, gid, uname, gname } = opts.settings;
  const recipe = { format: STORE_LAYER_FORMAT, storeDir: opts.storeDir, paths: opts.paths, settings: { mtime, uid, gid, uname, gname } };
  return createHash('sha256').update(JSON.stringify(recipe)).digest('hex');
}

async function planStoreLayer(opts: StoreLayerOptions): Promise<TarPlan> {
  const entries = storeDirEntries(opts.storeDir);
  for (const path of opts.paths) {
    assertStorePath(path, opts.storeDir);
    walkTree({ nameRoot: path, physicalRoot: opts.physicalPath(path), canonicalModes: true }, entries, () => missingStorePath(path));
    // One store path is walked synchronously; let other work (the daemon's sockets) run between paths.
    await yieldToEventLoop();
  }
  return { entries, settings: opts.settings, size: tarSize(entries, opts.settings) };
}

/** `/nix/` and `/nix/store/` for the usual store dir: each ancestor of the store dir, outermost first. */
function storeDirEntries(storeDir: string): TarEntry[] {
  const noTree: TreeRoot = { nameRoot: '', physicalRoot: '' };
  const parts = storeDir.split('/').filter(Boolean);
  return parts.map((_, i) => ({
    tree: noTree,
    name: `/${parts.slice(0, i + 1).join('/')}/`,
    type: 'dir',
    mode: STORE_DIR_MODE,
    size: 0,
    linkName: '',
  }));
}

/** Throws STORE_PATH_OUTSIDE unless `path` is a top-level entry of the store dir. */
export function assertStorePath(path: string, storeDir: string): void {
  const name = path.startsWith(`${storeDir}/`) ? path.slice(storeDir.length + 1) : '';
  if (name !== '' && !name.includes('/')) return;
  throw new NixdockError('STORE_PATH_OUTSIDE', `${path} is not a store path in ${storeDir}`, {
    location: { file: path },
    found: path,
    expected: `${storeDir}/<hash>-<name>`,
    hint: 'Layers hold whole store paths; name the store path itself, not a file inside it or outside the store.',
  });
}

function missingStorePath(path: string): NixdockError {
  return new NixdockError('STORE_PATH_MISSING', `Store path ${path} does not exist on this machine`, {
    location: { file: path },
    found: 'no such file',
    expected: 'a realised store path',
    hint: `Realise it first (\`nix-store --realise ${path}\`), or rebuild the image so its closure is fetched again.`,
  });
}
