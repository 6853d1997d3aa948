/**
 * `nixdock push IMAGE REF`: push a built image (read from the project's OCI layout output,
 * `<outDir>/oci`) to a registry, uploading only the blobs it lacks.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import type { ResolvedConfig } from '../config/types.js';
import { NixdockError } from '../errors.js';
import type { BuildCache } from '../cache/cache.js';
import { OciLayout } from '../formats/oci-layout/write.js';
import { imageFromLayout } from '../formats/oci-layout/image.js';
import { pushImage, type PushResult } from '../registry/push.js';
import type { BlobPushEvent } from '../registry/types.js';
import type { Codec, Image } from '../types.js';
import { interruptSignal, loadProject, openIndex } from './shared.js';
import { formatBytes } from '../reporters/console.js';

interface PushCommandOptions {
  config?: string;
  insecure?: boolean;
  json?: boolean;
  compression?: string;
  mountFrom: string[];
}

export function register(program: Command): void {
  program
    .command('push')
    .description('Push a built image to an OCI registry; blobs the registry already has are skipped')
    .argument('<image>', 'the image as built: NAME or NAME:TAG (from <outDir>/oci)')
    .argument('<ref>', 'where to push, e.g. ghcr.io/me/hello:1.0 or 127.0.0.1:5000/hello:dev')
    .option('-c, --config <file>', 'config file (default: found from the current directory)')
    .option('--insecure', 'allow plain HTTP to a registry that is not on localhost')
    .option('--compression <codec>', "layer compression in the registry: gzip, zstd or none (default: the image spec's compression)")
    .option('--mount-from <repo>', 'a repository on the same registry to mount layers from (repeatable)', collect, [])
    .option('--json', 'print the result (one entry per blob: digest, size, action) as JSON')
    .action(async (image: string, ref: string, opts: PushCommandOptions) => {
      const result = await pushCommand(image, ref, opts);
      process.stdout.write(opts.json ? `${JSON.stringify({ ok: true, ...result })}\n` : summary(result));
    });
}

export async function pushCommand(imageName: string, ref: string, opts: PushCommandOptions): Promise<PushResult> {
  const config = await loadProject(opts);
  const codec = opts.compression === undefined ? specCodec(config, imageName) : parseCodec(opts.compression);
  const index = openIndex(config);
  const { signal, dispose } = interruptSignal();
  try {
    const image = await projectImage(config, index, imageName);
    return await pushImage({ image, codec }, ref, {
      cache: index,
      insecure: opts.insecure,
      signal,
      mountFrom: opts.mountFrom,
      onBlob: opts.json ? undefined : printBlob,
    });
  } finally {
    dispose();
    index.close();
  }
}

/** A project image as built, read from its OCI layout output (`<outDir>/oci`). */
export async function projectImage(config: ResolvedConfig, index: BuildCache, imageName: string): Promise<Image> {
  const layoutDir = join(config.outDir, 'oci');
  return imageFromLayout(layoutDir, await layoutName(layoutDir, index, imageName), config.cacheDir);
}

/**
 * NAME:TAG as given. A bare NAME means its newest build: the tag of its last successful build in
 * the index, or (the index deleted) the most recently listed NAME:* in the layout.
 */
async function layoutName(layoutDir: string, index: BuildCache, imageName: string): Promise<string> {
  if (imageName.lastIndexOf(':') > imageName.lastIndexOf('/')) return imageName;
  const tag = index.lastBuild(imageName, 'succeeded')?.tag;
  if (tag) return `${imageName}:${tag}`;
  const refs = await new OciLayout(layoutDir).refs().catch(() => []);
  const matches = refs.filter((r) => r.name?.startsWith(`${imageName}:`));
  return matches.at(-1)?.name ?? imageName;
}

/** The `compression` of the image spec named NAME[:TAG]; gzip for an image the config no longer has. */
function specCodec(config: ResolvedConfig, imageName: string): Codec {
  const name = imageName.lastIndexOf(':') > imageName.lastIndexOf('/') ? imageName.slice(0, imageName.lastIndexOf(':')) : imageName;
  return config.images.find((spec) => spec.name === name)?.compression ?? 'gzip';
}

function parseCodec(value: string): Codec {
  if (value === 'gzip' || value === 'zstd' || value === 'none') return value;
  throw new NixdockError('INPUT_INVALID', `Unknown layer compression ${JSON.stringify(value)}`, {
    location: { field: '--compression' },
    found: value,
    expected: 'gzip, zstd or none',
  });
}

function printBlob(e: BlobPushEvent): void {
  if (e.type !== 'done') return;
  const what = e.kind === 'layer' ? `layer ${e.index + 1}` : 'config';
  process.stderr.write(`${what} ${e.digest.slice(0, 19)} ${formatBytes(e.size)} ${e.action}\n`);
}

function summary(result: PushResult): string {
  const count = (action: string) => result.blobs.filter((b) => b.action === action).length;
  return `pushed ${result.ref}@${result.manifestDigest}: ${count('uploaded')} uploaded (${formatBytes(result.bytesUploaded)}), ${count('mounted')} mounted, ${count('skipped')} skipped\n`;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
