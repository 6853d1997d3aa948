/**
 * `nixdock push IMAGE REF`: push an image of the project to a registry, uploading only the blobs
 * it lacks. An image the config defines is planned and pushed layer by layer (push-plan.ts): on a
 * fresh checkout (no cache, no out/) only layers no registry verifiably holds are tarred. NAME:TAG
 * of an older build still in the OCI layout output (`<outDir>/oci`) is pushed as built.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import type { ResolvedConfig } from '../config/types.js';
import { NixdockError } from '../errors.js';
import type { BuildCache } from '../cache/cache.js';
import { OciLayout } from '../formats/oci-layout/write.js';
import { imageFromLayout } from '../formats/oci-layout/image.js';
import { pushImage, type PushResult } from '../registry/push.js';
import { plannedImage } from '../publish.js';
import type { BlobPushEvent } from '../registry/types.js';
import type { Codec, CompressedBlob, Image, LayerSource } from '../types.js';
import type { ImageSpec } from '../config/types.js';
import type { BuildContext } from '../build/build.js';
import { planImage } from '../build/plan.js';
import { EventBus } from '../events.js';
import { pushPlanned, type PlannedPushOptions, type PlannedPushResult } from '../registry/push-plan.js';
import type { RemotePair } from '../registry/remote-layers.js';
import type { JsonOk } from './json.js';
import { interruptSignal, loadProject, openIndex } from './shared.js';
import { formatBytes } from '../reporters/console.js';

export type PushJson = JsonOk<PushResult | PlannedPushResult>;

interface PushCommandOptions {
  config?: string;
  insecure?: boolean;
  json?: boolean;
  compression?: string;
  mountFrom: string[];
  cacheFrom: string[];
  cacheTo?: string;
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
    .option('--cache-from <ref>', 'an image or cache artifact whose layers this push may reuse without tarring them (repeatable; config cache.from too)', collect, [])
    .option('--cache-to <ref>', 'write the pushed layers\' recipe → blob rows to this cache artifact (host/repo[:tag]; default config cache.registry)')
    .option('--json', 'print the result (one entry per blob: digest, size, action) as JSON')
    .action(async (image: string, ref: string, opts: PushCommandOptions) => {
      const result = await pushCommand(image, ref, opts);
      process.stdout.write(opts.json ? `${JSON.stringify({ ok: true, ...result } satisfies PushJson)}\n` : summary(result));
    });
}

export async function pushCommand(imageName: string, ref: string, opts: PushCommandOptions): Promise<PushResult | PlannedPushResult> {
  const config = await loadProject(opts);
  const cache = openIndex(config);
  const { signal, dispose } = interruptSignal();
  try {
    const spec = await plannedSpec(config, imageName);
    const codec = opts.compression === undefined ? (spec?.compression ?? 'gzip') : parseCodec(opts.compression);
    const common = { insecure: opts.insecure, signal, mountFrom: opts.mountFrom, onBlob: opts.json ? undefined : printBlob };
    if (spec) {
      const cacheFrom = [...config.cache.from, ...opts.cacheFrom];
      const cacheTo = opts.cacheTo ?? config.cache.registry;
      const localBlob = (blob: CompressedBlob) => layoutBlob(cache, blob);
      return await pushSpec(spec, codec, ref, { ...common, cache, cacheFrom, cacheTo, localBlob, onRejected: opts.json ? undefined : printRejected }, { config, index: cache, bus: new EventBus(), signal });
    }
    const image = await projectImage(config, cache, imageName);
    return await pushImage({ image, codec }, ref, { ...common, cache });
  } finally {
    dispose();
    cache.close();
  }
}

/** Plans the image and pushes it layer by layer; temporary files of the plan are removed after. */
async function pushSpec(spec: ImageSpec, codec: Codec, ref: string, opts: PlannedPushOptions, ctx: BuildContext): Promise<PlannedPushResult> {
  // The registry's manifests are read while the image is planned (nix calls, layering).
  const planning = planImage(spec, ctx);
  try {
    return await pushPlanned(planning.then(({ plan }) => plannedImage(plan)), codec, ref, opts);
  } finally {
    await planning.then(({ plan }) => plan.dispose(), () => undefined);
  }
}

/**
 * A blob of an OCI layout output the cache trusts: its file still has the stat fingerprint it had
 * when its bytes were known good (the check a rebuild makes before reusing it).
 */
async function layoutBlob(cache: BuildCache, blob: CompressedBlob): Promise<string | undefined> {
  for (const dir of cache.blobLocations(blob.digest)) {
    const layout = new OciLayout(dir);
    const fingerprint = await layout.blobFingerprint(blob.digest, blob.size);
    if (fingerprint !== undefined && fingerprint === cache.blobFingerprint(blob.digest, dir)) return layout.blobPath(blob.digest);
  }
  return undefined;
}

/**
 * The spec to plan for IMAGE: the config's image of that name, unless NAME:TAG names another
 * build that the OCI layout output still holds (that one is pushed as it was built).
 */
async function plannedSpec(config: ResolvedConfig, imageName: string): Promise<ImageSpec | undefined> {
  const colon = imageName.lastIndexOf(':');
  const tagged = colon > imageName.lastIndexOf('/');
  const name = tagged ? imageName.slice(0, colon) : imageName;
  const spec = config.images.find((s) => s.name === name);
  if (!spec || !tagged || imageName.slice(colon + 1) === spec.tag) return spec;
  const refs = await new OciLayout(join(config.outDir, 'oci')).refs().catch(() => []);
  return refs.some((r) => r.name === imageName) ? undefined : spec;
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

function printRejected(source: LayerSource, pair: RemotePair): void {
  process.stderr.write(`warning: ${pair.client.target.registry}/${pair.client.target.repository} pairs ${source.description} with blob ${pair.blob.digest.slice(0, 19)}, which does not hold it; building the layer\n`);
}

function summary(result: PushResult | PlannedPushResult): string {
  const count = (action: string) => result.blobs.filter((b) => b.action === action).length;
  const tarred = 'layersTarred' in result ? `; ${result.layersTarred} layer(s) tarred` : '';
  return `pushed ${result.ref}@${result.manifestDigest}: ${count('uploaded')} uploaded (${formatBytes(result.bytesUploaded)}), ${count('mounted')} mounted, ${count('skipped')} skipped${tarred}\n`;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
