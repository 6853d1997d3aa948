/**
 * The `dir` store backend: a plain directory laid out like a store (entries `<hash>-<name>`), for
 * tests and for machines without Nix. Its logical store dir (what paths are called inside images,
 * default /nix/store) differs from where the files are: physicalPath('/nix/store/abc-x') = '<dir>/abc-x'.
 *
 * There is no database, so path infos are derived the way Nix derives them when it registers a
 * path: the NAR of each path is serialised (not kept) to get the exact narSize and narHash, and the
 * NAR bytes are scanned for the hash parts of the other entries in the directory (and its own —
 * Nix records self-references too). Results are cached per instance, and dropped when the set of
 * entries in the directory changes.
 */
import { readdir } from 'node:fs/promises';
import { NixdockError } from '../errors.js';
import type { Closure, Installable, Store, StorePathInfo } from '../types.js';
import { summariseNar } from './nar.js';
import { compareStrings, hashPart, isStoreEntryName, normaliseRoots, storePathMissing, toStorePath } from './paths.js';

/** Paths serialised at once: enough to overlap file I/O, few enough to bound open files and buffers. */
const SCAN_CONCURRENCY = 8;

export class DirStore implements Store {
  readonly kind = 'dir' as const;
  private listingKey = '';
  /** hash part → entry name, for the current listing. */
  private entriesByHash = new Map<string, string>();
  /** The hash parts a path's NAR is scanned for: every entry of the directory. */
  private candidateHashes = new Set<string>();
  private infos = new Map<string, Promise<StorePathInfo>>();

  constructor(
    readonly directory: string,
    readonly storeDir = '/nix/store',
  ) {}

  async closure(roots: string[], signal?: AbortSignal): Promise<Closure> {
    const storePaths = normaliseRoots(roots, this.storeDir);
    await this.refreshListing();
    for (const path of storePaths) {
      if (!this.entriesByHash.has(hashPart(path))) {
        throw storePathMissing(path, `Copy the path into ${this.directory} (cp -a, keeping its name), or fix the path.`);
      }
    }
    const paths = new Map<string, StorePathInfo>();
    let frontier = storePaths;
    while (frontier.length > 0) {
      signal?.throwIfAborted();
      const infos = await mapLimit(frontier, SCAN_CONCURRENCY, (path) => this.info(path));
      for (const info of infos) paths.set(info.path, info);
      const next = new Set(infos.flatMap((info) => info.references).filter((ref) => !paths.has(ref)));
      frontier = [...next].sort(compareStrings);
    }
    const sorted = new Map([...paths.entries()].sort(([a], [b]) => compareStrings(a, b)));
    return { storeDir: this.storeDir, roots: storePaths, paths: sorted };
  }

  physicalPath(storePath: string): string {
    toStorePath(storePath, this.storeDir);
    return this.directory + storePath.slice(this.storeDir.length);
  }

  async realise(installable: Installable): Promise<string[]> {
    const what = installable.kind === 'file' ? `${installable.file}${installable.attr ? ` -A ${installable.attr}` : ''}` : installable.ref;
    throw new NixdockError('NIX_MISSING', `The dir store (${this.directory}) cannot realise the Nix installable ${what}`, {
      found: `store type "dir" and an installable in contents`,
      expected: 'store paths that already exist in the directory, or store type "nix"',
      hint: 'Use `store: { type: "nix" }` (install the Debian package nix-bin), or build it elsewhere and copy the store paths into the directory.',
    });
  }

  /** Re-lists the directory (one readdir) and drops cached infos if its entries changed. */
  private async refreshListing(): Promise<void> {
    const names = (await readdir(this.directory)).filter(isStoreEntryName).sort(compareStrings);
    const key = names.join('\n');
    if (key === this.listingKey) return;
    this.listingKey = key;
    this.entriesByHash = new Map(names.map((name) => [hashPart(name), name]));
    this.candidateHashes = new Set(this.entriesByHash.keys());
    this.infos = new Map();
  }

  private info(path: string): Promise<StorePathInfo> {
    let info = this.infos.get(path);
    if (!info) {
      info = this.scan(path);
      this.infos.set(path, info);
      // A failed scan (e.g. a file vanished) must not stay cached.
      info.catch(() => this.infos.delete(path));
    }
    return info;
  }

  private async scan(path: string): Promise<StorePathInfo> {
    const summary = await summariseNar(this.physicalPath(path), this.candidateHashes);
    const references = [...summary.hashesFound]
      .map((hash) => `${this.storeDir}/${this.entriesByHash.get(hash)!}`)
      .sort(compareStrings);
    return { path, narSize: summary.narSize, narHash: summary.narHash, references };
  }
}

/** Maps with at most `limit` calls in flight, keeping the input order in the result. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
