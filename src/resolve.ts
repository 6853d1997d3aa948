/**
 * Resolve stage: from an image spec to the closure that goes into the image.
 * Realises installables with the store, adds store paths named in `config` (as
 * buildLayeredImage does: a Cmd pointing into the store pulls that path in), and asks the
 * store for the whole closure in one go.
 */
import type { ImageSpec } from './config/types.js';
import { NixdockError } from './errors.js';
import type { Closure, ClosureCache, ContainerConfig, Store } from './types.js';

export interface ResolvedImage {
  closure: Closure;
  /** Store paths listed in `contents` (realised installables included), sorted: merged into the image root. */
  contentsPaths: string[];
  /** The same in the order written (duplicates dropped): copyToRoot copies them in this order, a later file replacing an earlier. */
  contentsInOrder: string[];
  /** Local directories copied into the image root. */
  localDirs: string[];
}

/** `cache` (the build cache) lets the nix store answer an unchanged closure without asking Nix. */
export async function resolveImage(spec: ImageSpec, store: Store, root: string, signal?: AbortSignal, cache?: ClosureCache, onLog?: (line: string) => void): Promise<ResolvedImage> {
  const contentsPaths: string[] = [];
  const localDirs: string[] = [];
  for (const entry of spec.contents) {
    signal?.throwIfAborted();
    if (entry.kind === 'storePath') contentsPaths.push(entry.path);
    else if (entry.kind === 'localDir') localDirs.push(entry.path);
    else contentsPaths.push(...(await store.realise(entry.installable, root, signal, onLog)));
  }
  const roots = [...new Set([...contentsPaths, ...storePathsInConfig(spec.config, store.storeDir)])].sort();
  // includeStorePaths: false keeps only the customisation layer (its symlinks may dangle), as in dockerTools.
  const closure = spec.includeStorePaths && roots.length > 0 ? await store.closure(roots, signal, cache).catch((err) => { throw locateMissingPath(err, spec); }) : emptyClosure(store);
  const contentsInOrder = [...new Set(contentsPaths)];
  return { closure, contentsPaths: [...contentsInOrder].sort(), contentsInOrder, localDirs };
}

/** Store paths mentioned anywhere in the runtime config's strings (Cmd, Entrypoint, Env, …). */
export function storePathsInConfig(config: ContainerConfig, storeDir: string): string[] {
  const escaped = storeDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // A store path is the store dir, a 32-char nix-base32 hash, a dash and a name.
  const pattern = new RegExp(`${escaped}/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\\-._?=]+`, 'g');
  const found = new Set<string>();
  for (const match of JSON.stringify(config).matchAll(pattern)) found.add(match[0]);
  return [...found];
}

/** The field path of a spec field for error locations: `images[0].maxLayers`, or `maxLayers` in a one-image spec file. */
export function specField(spec: ImageSpec, field: string): string {
  return spec.source.field ? `${spec.source.field}.${field}` : field;
}

/** A missing store path points at the `contents` entry (or the config) that named it. */
function locateMissingPath(err: unknown, spec: ImageSpec): unknown {
  if (!(err instanceof NixdockError) || err.code !== 'STORE_PATH_MISSING' || err.location || !err.found) return err;
  const missing = err.found;
  const index = spec.contents.findIndex((entry) => entry.kind === 'storePath' && (entry.path === missing || entry.path.startsWith(`${missing}/`)));
  return new NixdockError(err.code, err.message, {
    location: { file: spec.source.file, field: specField(spec, index === -1 ? 'config' : `contents[${index}]`) },
    found: err.found,
    expected: err.expected,
    hint: err.hint,
    cause: err,
  });
}

function emptyClosure(store: Store): Closure {
  return { storeDir: store.storeDir, roots: [], paths: new Map() };
}
