/**
 * Watches what a project's images are made of and says, after a quiet period, which images a
 * burst of file changes affects.
 *
 * chokidar 4 has no globs, so the project root is watched recursively (minus .git, node_modules,
 * the store, outDir and cacheDir) and every path is classified here with picomatch.
 * `followSymlinks: false` because nix-build re-points `result` links by rename: following them
 * would watch the old store path and lose track.
 */
import { watch, type FSWatcher } from 'chokidar';
import picomatch from 'picomatch';
import { basename, dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import type { ResolvedConfig } from '../config/types.js';

export interface ChangeSet {
  /** Absolute paths, sorted. */
  files: string[];
  /** The config or a spec file changed (or a new spec file appeared): reload the config. */
  config: boolean;
  /** Images affected by non-config files (a reload decides for itself which specs changed). */
  images: string[];
}

export interface WatcherOptions {
  onChange: (change: ChangeSet) => void;
  onError: (err: Error) => void;
}

/** What each kind of path means for the images of one config. */
interface Targets {
  configFiles: Set<string>;
  isSpecFile: (rel: string) => boolean;
  /** .nix file (absolute) → images whose contents name it. */
  nixFiles: Map<string, Set<string>>;
  /** Directory of a .nix file → images; its `result*` symlinks are nix-build outputs. */
  resultDirs: Map<string, Set<string>>;
  imageGlobs: Array<{ image: string; match: (rel: string) => boolean }>;
  daemonGlobs: (rel: string) => boolean;
  allImages: string[];
}

function addTo(map: Map<string, Set<string>>, key: string, image: string): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(image);
}

function matcher(globs: string[]): (rel: string) => boolean {
  return globs.length === 0 ? () => false : picomatch(globs, { dot: true });
}

export function watchTargets(config: ResolvedConfig): Targets {
  const nixFiles = new Map<string, Set<string>>();
  const resultDirs = new Map<string, Set<string>>();
  for (const image of config.images) {
    for (const entry of image.contents) {
      if (entry.kind !== 'installable' || entry.installable.kind !== 'file') continue;
      const file = resolve(config.root, entry.installable.file);
      addTo(nixFiles, file, image.name);
      addTo(resultDirs, dirname(file), image.name);
    }
  }
  return {
    configFiles: new Set([config.configFile, ...config.dependencies].map((f) => resolve(config.root, f))),
    isSpecFile: matcher(config.specGlobs),
    nixFiles,
    resultDirs,
    imageGlobs: config.images.map((image) => ({ image: image.name, match: matcher(image.watch) })),
    daemonGlobs: matcher(config.daemon.watch),
    allImages: config.images.map((i) => i.name),
  };
}

/** Classifies one changed path; returns undefined when it concerns no image. */
export function classify(targets: Targets, root: string, file: string): { config: boolean; images: string[] } | undefined {
  const rel = relative(root, file).split(sep).join('/');
  if (targets.configFiles.has(file) || targets.isSpecFile(rel)) return { config: true, images: [] };
  if (targets.daemonGlobs(rel)) return { config: false, images: targets.allImages };
  const images = new Set(targets.nixFiles.get(file));
  if (basename(file).startsWith('result')) for (const i of targets.resultDirs.get(dirname(file)) ?? []) images.add(i);
  for (const { image, match } of targets.imageGlobs) if (match(rel)) images.add(image);
  return images.size > 0 ? { config: false, images: [...images] } : undefined;
}

function ignoredPaths(config: ResolvedConfig): (path: string) => boolean {
  const storeDir = config.store.type === 'dir' ? config.store.path : config.store.storeDir;
  const prefixes = [config.outDir, config.cacheDir, storeDir].map((d) => resolve(config.root, d));
  return (path) => {
    const abs = resolve(path);
    if (abs.split(sep).some((part) => part === '.git' || part === 'node_modules')) return true;
    return prefixes.some((p) => abs === p || abs.startsWith(p + sep));
  };
}

/** Files that live outside the root, which the recursive root watch does not see. */
function outsideRoot(config: ResolvedConfig, targets: Targets): string[] {
  const inside = (f: string) => {
    const rel = relative(config.root, f);
    return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
  };
  return [...targets.configFiles, ...targets.nixFiles.keys()].filter((f) => !inside(f));
}

export class ProjectWatcher {
  private readonly fsWatcher: FSWatcher;
  private targets: Targets;
  private pending = new Set<string>();
  private timer?: NodeJS.Timeout;
  /** The ignore predicate is captured by chokidar once; this swaps what it consults. */
  private readonly updateIgnored: (config: ResolvedConfig) => void;

  private constructor(private config: ResolvedConfig, private readonly options: WatcherOptions) {
    this.targets = watchTargets(config);
    let ignored = ignoredPaths(config);
    this.fsWatcher = watch([config.root, ...outsideRoot(config, this.targets)], {
      ignoreInitial: true,
      followSymlinks: false,
      atomic: true,
      ignored: (path: string) => ignored(path),
    });
    this.updateIgnored = (next) => { ignored = ignoredPaths(next); };
    for (const event of ['add', 'change', 'unlink'] as const) {
      this.fsWatcher.on(event, (path: string) => this.record(resolve(path)));
    }
    this.fsWatcher.on('error', (err: unknown) => options.onError(err instanceof Error ? err : new Error(String(err))));
  }

  /** Starts watching; resolves once the initial scan is done, so later edits are seen. */
  static async start(config: ResolvedConfig, options: WatcherOptions): Promise<ProjectWatcher> {
    const watcher = new ProjectWatcher(config, options);
    await new Promise<void>((done) => watcher.fsWatcher.once('ready', () => done()));
    return watcher;
  }

  /** Re-targets after a config reload: new .nix files, globs, dirs to ignore. */
  update(config: ResolvedConfig): void {
    this.config = config;
    this.targets = watchTargets(config);
    this.updateIgnored(config);
    const extra = outsideRoot(config, this.targets);
    if (extra.length > 0) this.fsWatcher.add(extra);
  }

  /** A file that concerns an image changed and the quiet period has not ended yet. */
  hasPendingChanges(): boolean {
    return [...this.pending].some((file) => classify(this.targets, this.config.root, file) !== undefined);
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.pending.clear();
    await this.fsWatcher.close();
  }

  private record(file: string): void {
    this.pending.add(file);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), this.config.daemon.debounceMs);
  }

  private flush(): void {
    const files = [...this.pending].sort();
    this.pending = new Set();
    let config = false;
    const images = new Set<string>();
    const relevant: string[] = [];
    for (const file of files) {
      const hit = classify(this.targets, this.config.root, file);
      if (!hit) continue;
      relevant.push(file);
      config ||= hit.config;
      for (const image of hit.images) images.add(image);
    }
    if (relevant.length > 0) this.options.onChange({ files: relevant, config, images: [...images].sort() });
  }
}
