/**
 * `nixdock stream IMAGE`: a docker-archive on stdout, like running a streamLayeredImage script —
 * `nixdock stream app | podman load`. No temporary file: cold layers are hashed while they stream.
 */
import { Command } from 'commander';
import { dirname, resolve } from 'node:path';
import { streamImage } from '../build/build.js';
import { DEFAULT_STORE_DIR, normalizeImage, normalizeTopLevel } from '../config/normalize.js';
import type { ImageSpec, ResolvedConfig } from '../config/types.js';
import { NixdockError } from '../errors.js';
import { readNixpkgsConf } from '../nixpkgs.js';
import { EventBus } from '../events.js';
import { attachConsoleReporter } from '../reporters/console.js';
import { interruptSignal, loadProject, openIndex, selectImages } from './shared.js';

interface StreamOptions {
  config?: string;
  nixpkgsConf?: string;
  quiet?: boolean;
}

export function register(program: Command): void {
  program
    .command('stream')
    .description('Write an image as a docker-archive to stdout (pipe it into `podman load` / `docker load`)')
    .argument('[image]', 'image to stream (optional with --nixpkgs-conf)')
    .option('-c, --config <file>', 'config file (default: search from the current directory)')
    .option('--nixpkgs-conf <file>', 'the conf.json of a nixpkgs streamLayeredImage: same layers, same digests')
    .option('-q, --quiet', 'no progress on stderr')
    .action(async (image: string | undefined, opts: StreamOptions) => {
      await runStream(image, opts);
    });
}

async function runStream(name: string | undefined, opts: StreamOptions): Promise<void> {
  if (process.stdout.isTTY) {
    throw new NixdockError('INPUT_INVALID', 'Refusing to write an image archive to a terminal', {
      hint: 'Pipe it: nixdock stream IMAGE | podman load   (or redirect: > image.tar)',
    });
  }
  const { config, spec } = await streamTarget(name, opts);
  const index = openIndex(config);
  const bus = new EventBus();
  const detach = opts.quiet ? () => {} : attachConsoleReporter(bus);
  const { signal, dispose } = interruptSignal();
  try {
    await streamImage(spec, { config, bus, index, signal, reason: 'nixdock stream' }, process.stdout);
  } finally {
    detach();
    dispose();
    index.close();
  }
}

async function streamTarget(name: string | undefined, opts: StreamOptions): Promise<{ config: ResolvedConfig; spec: ImageSpec }> {
  if (!opts.nixpkgsConf) {
    if (!name) throw new NixdockError('INPUT_INVALID', 'Name the image to stream', { hint: 'nixdock stream IMAGE, or nixdock stream --nixpkgs-conf conf.json' });
    const config = await loadProject(opts);
    return { config, spec: selectImages(config, [name])[0]! };
  }
  // A nixpkgs conf.json needs no nixdock project: the migration path is one command.
  const config = await loadProject(opts).catch((err) => {
    if (err instanceof NixdockError && err.code === 'CONFIG_NOT_FOUND') return standaloneConfig(process.cwd());
    throw err;
  });
  const file = resolve(opts.nixpkgsConf);
  // Without an IMAGE argument the image is named as nixpkgs named it: its repo_tag.
  return { config, spec: nixpkgsSpec(file, name ?? (await readNixpkgsConf(file)).name) };
}

/** Running without a config file: an empty config's defaults (the Nix store, a cache in ./.nixdock), no gc after builds. */
export function standaloneConfig(cwd: string): ResolvedConfig {
  return { configFile: resolve(cwd, 'nixdock.config.ts'), ...normalizeTopLevel({ gc: { afterBuild: false } }, cwd), images: [], dependencies: [] };
}

/** An image that is the conf.json: the conf names its layers, config and architecture; the rest are the usual defaults. */
function nixpkgsSpec(file: string, name: string): ImageSpec {
  const ctx = { code: 'CONFIG_INVALID', file, field: '', root: dirname(file), storeDir: DEFAULT_STORE_DIR } as const;
  return normalizeImage({ name, maxLayers: 127, layering: 'popularity', nixpkgsConf: file }, ctx);
}
