/**
 * `nixdock inspect IMAGE|PATH`: the layers of an image with their store paths and sizes.
 * For a project image it shows its last build from the index — which layers were reused and,
 * for built ones, which store paths were new. For an OCI layout or docker-archive path it reads
 * the image itself.
 */
import { Command } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { extract } from 'tar-stream';
import type { FromImage, ImageSpec } from '../config/types.js';
import { NixdockError } from '../errors.js';
import { readImage } from '../formats/source.js';
import { notATar } from '../tar/safety.js';
import { hasFormatPrefix, parseImageLocation } from '../image/location.js';
import type { BuildRecord } from '../cache/history.js';
import { comparePlans, type PlanComparison } from '../plan/plan.js';
import { formatBytes } from '../reporters/console.js';
import type { Closure, LayerSource } from '../types.js';
import type { JsonOk } from './json.js';
import { loadProject, openIndex, projectCacheDir, selectImages } from './shared.js';

interface InspectOptions {
  config?: string;
  json?: boolean;
}

export type InspectJson = JsonOk<{ target: string; layers: InspectedLayer[]; planCost?: InspectedPlanCost }>;

export interface InspectedLayer {
  diffId: string;
  size: number;
  storePaths: string[];
  built?: boolean;
  newPaths?: string[];
  description?: string;
}

export function register(program: Command): void {
  program
    .command('inspect')
    .description('List the layers of a project image (its last build) or of an image at a path')
    .argument('<image-or-path>', 'a project image name, an OCI layout dir (oci:DIR[:TAG]) or a docker-archive file')
    .option('-c, --config <file>', 'config file (for project images)')
    .option('--json', 'print JSON')
    .action(async (target: string, opts: InspectOptions) => {
      const { layers, planCost } = looksLikePath(target) ? { layers: await inspectPath(target, opts), planCost: undefined } : await inspectProjectImage(target, opts);
      if (opts.json) process.stdout.write(JSON.stringify({ ok: true, target, layers, ...(planCost && { planCost }) } satisfies InspectJson, null, 2) + '\n');
      else process.stdout.write(renderLayers(layers) + (planCost ? renderPlanCost(planCost) : ''));
    });
}

function looksLikePath(target: string): boolean {
  return hasFormatPrefix(target) || target.includes('/') || existsSync(target);
}

/** What a one-path change rebuilds under the image's plan and under popularity (bytes are NAR sizes). */
interface InspectedPlanCost extends PlanComparison {
  /** The image's layering, or `copyToRoot` for buildImage's one layer (not planned, so no strategy). */
  layering: ImageSpec['layering'] | 'copyToRoot';
}

async function inspectProjectImage(name: string, opts: InspectOptions): Promise<{ layers: InspectedLayer[]; planCost?: InspectedPlanCost }> {
  const config = await loadProject(opts);
  const [spec] = selectImages(config, [name]);
  const index = openIndex(config);
  let build: BuildRecord | undefined;
  let latest: BuildRecord | undefined;
  let closure: Closure | undefined;
  try {
    latest = index.lastBuild(name);
    build = index.lastBuild(name, 'succeeded');
    if (build) closure = recordedClosure(build, index.lookupStorePaths(build.layers.flatMap((l) => l.storePaths)));
  } finally {
    index.close();
  }
  // A failed build newer than the image shown: its error (for Nix, the whole log, lines kept) comes first.
  if (latest?.status === 'failed' && latest.id > (build?.id ?? 0)) {
    process.stderr.write(`${name}: the latest build (#${latest.id}, ${new Date(latest.startedAt).toISOString()}) failed:\n${latest.error ?? '(no error recorded)'}\n\n`);
  }
  if (!build) {
    throw new NixdockError('IMAGE_NOT_FOUND', `${name} has not been built successfully yet`, { hint: `Run: nixdock build ${name}` });
  }
  process.stderr.write(`${name}:${build.tag} built ${new Date(build.finishedAt ?? build.startedAt).toISOString()} (${build.layersBuilt} built, ${build.layersReused} reused)\n`);
  const layers = build.layers.map((l) => ({ diffId: l.diffId, size: l.size, storePaths: l.storePaths, built: l.built, newPaths: l.built ? l.newPaths : [] }));
  if (!closure) return { layers };
  const storeLayers = build.layers.filter((l) => l.storePaths.length > 0).map((l) => l.storePaths);
  // The store-layer budget the build had: base and customisation layers are the layers without store paths.
  const budget = spec!.maxLayers - (build.layers.length - storeLayers.length);
  return { layers, planCost: { layering: spec!.singleLayer ? 'copyToRoot' : spec!.layering, ...comparePlans(closure, storeLayers, budget) } };
}

/** The closure the build recorded (sizes and references), or undefined when the cache no longer has every path. */
function recordedClosure(build: BuildRecord, infos: Closure['paths']): Closure | undefined {
  const paths = build.layers.flatMap((l) => l.storePaths);
  if (paths.length === 0 || paths.some((path) => !infos.has(path))) return undefined;
  return { storeDir: '/nix/store', roots: [], paths: infos };
}

async function inspectPath(target: string, opts: InspectOptions): Promise<InspectedLayer[]> {
  const from = parsePathTarget(target);
  const image = await readImage(from, { cacheDir: await projectCacheDir(opts.config) });
  const history = image.config.history.filter((h) => !h.empty_layer);
  const layers: InspectedLayer[] = [];
  for (const [i, layer] of image.layers.entries()) {
    layers.push({
      diffId: layer.diffId,
      size: await layer.size(),
      storePaths: await storePathsIn(layer),
      description: history[i]?.comment ?? history[i]?.created_by,
    });
  }
  return layers;
}

function parsePathTarget(target: string): FromImage {
  if (hasFormatPrefix(target)) return parseImageLocation(target);
  return statSync(target).isDirectory() ? { kind: 'oci', path: resolve(target) } : { kind: 'docker-archive', path: resolve(target) };
}

/**
 * The store paths a layer holds: the distinct `/nix/store/<name>` prefixes of its entries.
 * The layer's own stream errors (digest mismatch, unsafe entry) end the read and are what the
 * user sees; `.pipe()` alone would drop them and leave the promise unsettled.
 */
async function storePathsIn(layer: LayerSource): Promise<string[]> {
  const found = new Set<string>();
  const reader = extract();
  const source = layer.open();
  source.on('error', (err) => reader.destroy(err));
  source.pipe(reader);
  try {
    for await (const entry of reader) {
      const match = /^\/?(nix\/store\/[^/]+)/.exec(entry.header.name);
      if (match) found.add(`/${match[1]}`);
      entry.resume();
    }
  } catch (err) {
    source.destroy();
    throw err instanceof NixdockError ? err : notATar(layer.description, err);
  }
  return [...found].sort();
}

function renderLayers(layers: InspectedLayer[]): string {
  const lines: string[] = [];
  for (const [i, layer] of layers.entries()) {
    const state = layer.built === undefined ? '' : layer.built ? 'built ' : 'reused';
    lines.push(`${String(i + 1).padStart(3)}  ${layer.diffId.slice(7, 19)}  ${formatBytes(layer.size).padStart(9)}  ${state}  ${summarizePaths(layer.storePaths)}`);
    if (layer.built && layer.newPaths?.length) lines.push(`       rebuilt because new: ${layer.newPaths.join(', ')}`);
    else if (layer.description && !layer.storePaths.length) lines.push(`       ${layer.description}`);
  }
  return lines.join('\n') + '\n';
}

function renderPlanCost(cost: InspectedPlanCost): string {
  const row = (label: string, c: PlanComparison['plan']) =>
    `  ${label.padEnd(22)} mean ${formatBytes(c.meanBytes).padStart(9)}  (${(c.meanBytes / c.floorMeanBytes).toFixed(2)}× floor)   worst ${formatBytes(c.worstBytes).padStart(9)}`;
  return [
    `rebuilt by a one-path change (NAR bytes; floor: the path and its dependents, mean ${formatBytes(cost.plan.floorMeanBytes)}):`,
    row(`this plan (${cost.layering})`, cost.plan),
    row('popularity', cost.popularity),
  ].join('\n') + '\n';
}

function summarizePaths(paths: string[]): string {
  if (paths.length === 0) return '(no store paths)';
  const names = paths.map((p) => p.replace(/^\/nix\/store\/[0-9a-z]{32}-/, ''));
  return names.length <= 4 ? names.join(', ') : `${names.slice(0, 4).join(', ')} … (+${names.length - 4})`;
}
