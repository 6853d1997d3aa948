/**
 * What the build-like commands share: loading the project, picking images by name, opening the
 * index with a visible warning when it had to be rebuilt, and stopping cleanly on Ctrl-C.
 */
import type { ImageSpec, ResolvedConfig } from '../config/types.js';
import { closest } from '../config/errors.js';
import { loadConfig } from '../config/load.js';
import { NixdockError } from '../errors.js';
import { BuildCache } from '../cache/cache.js';
import { userCacheDir } from '../util/cache-dir.js';

export interface ProjectOptions {
  config?: string;
}

export async function loadProject(opts: ProjectOptions): Promise<ResolvedConfig> {
  return loadConfig({ cwd: process.cwd(), configFile: opts.config });
}

/**
 * Where pulled and decompressed base images are cached: the project's cacheDir inside a project,
 * the user cache ($XDG_CACHE_HOME/nixdock) outside one.
 */
export async function projectCacheDir(configFile: string | undefined): Promise<string> {
  try {
    return (await loadProject({ config: configFile })).cacheDir;
  } catch (err) {
    if (configFile === undefined && err instanceof NixdockError && err.code === 'CONFIG_NOT_FOUND') {
      return userCacheDir();
    }
    throw err;
  }
}

export function openIndex(config: ResolvedConfig): BuildCache {
  return BuildCache.open(config.cacheDir, { onRecovered: (message) => process.stderr.write(`warning: ${message}\n`) });
}

/** The named images, in the order given; no names → every image of the project. */
export function selectImages(config: ResolvedConfig, names: string[]): ImageSpec[] {
  if (names.length === 0) {
    if (config.images.length === 0) {
      throw new NixdockError('CONFIG_INVALID', `${config.configFile} defines no images`, {
        location: { file: config.configFile, field: 'images' },
        hint: 'Add an image to `images`, or spec files matched by `specs`.',
      });
    }
    return config.images;
  }
  return names.map((name) => {
    const spec = config.images.find((image) => image.name === name);
    if (spec) return spec;
    const known = config.images.map((image) => image.name);
    throw new NixdockError('IMAGE_NOT_FOUND', `No image named "${name}" in ${config.configFile}`, {
      found: name,
      expected: known.length ? known.join(', ') : 'no images are defined',
      hint: closest(name, known) ? `Did you mean "${closest(name, known)}"?` : undefined,
    });
  });
}

/** Aborts the signal on the first SIGINT/SIGTERM; a second one exits at once. */
export function interruptSignal(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSignal = (name: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write(`\n${name}: stopping after the current layer (again to force)\n`);
    controller.abort(new NixdockError('ABORTED', `Interrupted by ${name}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
