/**
 * `nixdock pull REF` (dockerTools' pullImage): fetch an image pinned by digest into the cache
 * (<cacheDir>/pulled, an OCI layout), verifying every blob; later builds use it offline.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { parsePlatform } from '../image/platform.js';
import { pullImage, type PulledImage } from '../registry/pull.js';
import type { JsonOk } from './json.js';
import { interruptSignal, projectCacheDir } from './shared.js';

export type PullJson = JsonOk<PulledImage>;

interface PullCommandOptions {
  config?: string;
  cacheDir?: string;
  allowTag?: boolean;
  platform?: string;
  insecure?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('pull')
    .description('Pull an image pinned by digest into the cache, verifying every blob (dockerTools pullImage)')
    .argument('<ref>', 'e.g. docker.io/library/busybox@sha256:<64 hex>')
    .option('--allow-tag', 'accept a reference without a digest (the digest it resolved to is reported)')
    .option('--platform <os/arch[/variant]>', 'image to take from a multi-platform index (default: this machine), e.g. linux/arm64/v8')
    .option('--insecure', 'allow plain HTTP to a registry that is not on localhost')
    .option('--cache-dir <dir>', 'cache directory (default: the project\'s, else ~/.cache/nixdock)')
    .option('-c, --config <file>', 'config file whose cacheDir is used')
    .option('--json', 'print the result as JSON')
    .action(async (ref: string, opts: PullCommandOptions) => {
      const result = await pullCommand(ref, opts);
      process.stdout.write(opts.json ? `${JSON.stringify({ ok: true, ...result } satisfies PullJson)}\n` : summary(ref, result));
    });
}

export async function pullCommand(ref: string, opts: PullCommandOptions): Promise<PulledImage> {
  const platform = opts.platform === undefined ? undefined : parsePlatform(opts.platform);
  const cacheDir = opts.cacheDir ? resolve(opts.cacheDir) : await projectCacheDir(opts.config);
  const { signal, dispose } = interruptSignal();
  try {
    return await pullImage(ref, { cacheDir, platform, allowTag: opts.allowTag, insecure: opts.insecure, signal });
  } finally {
    dispose();
  }
}

function summary(ref: string, result: PulledImage): string {
  const resolved = result.resolvedDigest ? `${ref} resolved to ${result.resolvedDigest}\n` : '';
  return `${resolved}pulled ${result.manifestDigest} (${result.layers.length} layers) into ${result.layoutDir}\n`;
}
