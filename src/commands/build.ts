/** `nixdock build [IMAGE…]`: one-shot, reproducible images into the configured outputs. */
import { Command, Option } from 'commander';
import { resolve } from 'node:path';
import { buildImage, type BuildSummary } from '../build/build.js';
import { OUTPUT_FORMATS } from '../build/sinks.js';
import { EventBus } from '../events.js';
import { attachConsoleReporter } from '../reporters/console.js';
import { loadedName } from '../reference.js';
import type { BuildResult, LayerResult, OutputFormat } from '../types.js';
import type { JsonOk } from './json.js';
import { interruptSignal, loadProject, openIndex, selectImages } from './shared.js';

export interface BuildCommandOptions {
  config?: string;
  out?: string;
  format?: OutputFormat[];
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('build')
    .description('Build images into the output directory (OCI layout and/or docker-archive)')
    .argument('[image...]', 'images to build (default: all)')
    .option('-c, --config <file>', 'config file (default: search from the current directory)')
    .option('-o, --out <dir>', 'output directory (default: outDir of the config)')
    .addOption(
      new Option('-f, --format <format...>', 'output formats').choices(OUTPUT_FORMATS),
    )
    .option('--json', 'print a JSON result on stdout')
    .action(async (images: string[], opts: BuildCommandOptions) => {
      await runBuild(images, opts);
    });
}

export async function runBuild(names: string[], opts: BuildCommandOptions): Promise<BuildSummary[]> {
  const config = await loadProject(opts);
  const specs = selectImages(config, names);
  const index = openIndex(config);
  const bus = new EventBus();
  const detach = opts.json ? () => {} : attachConsoleReporter(bus);
  const { signal, dispose } = interruptSignal();
  const summaries: BuildSummary[] = [];
  try {
    for (const spec of specs) {
      summaries.push(
        await buildImage(spec, { config, bus, index, signal, reason: 'nixdock build', formats: opts.format, outDir: opts.out && resolve(opts.out) }),
      );
    }
  } finally {
    detach();
    dispose();
    index.close();
  }
  if (opts.json) process.stdout.write(JSON.stringify({ ok: true, images: summaries.map(jsonSummary) } satisfies BuildJson, null, 2) + '\n');
  else process.stderr.write(summaries.map(howToUse).join('\n') + '\n');
  return summaries;
}

/** An image in `nixdock build --json`: its BuildResult, `image` named `name`, layers without their cache keys. */
export type BuildJsonImage = { name: BuildResult['image'] } & Pick<BuildResult, 'tag' | 'manifestDigest' | 'configDigest' | 'layersBuilt' | 'layersReused' | 'ms' | 'outputs'> & {
  layers: Array<Pick<LayerResult, 'diffId' | 'digest' | 'size' | 'built' | 'kind' | 'storePaths'>>;
};

/** `nixdock build --json`: one entry per image built. */
export type BuildJson = JsonOk<{ images: BuildJsonImage[] }>;

function jsonSummary(s: BuildResult): BuildJsonImage {
  return {
    name: s.image,
    tag: s.tag,
    manifestDigest: s.manifestDigest,
    configDigest: s.configDigest,
    layersBuilt: s.layersBuilt,
    layersReused: s.layersReused,
    ms: s.ms,
    layers: s.layers.map((l) => ({ diffId: l.diffId, digest: l.digest, size: l.size, built: l.built, kind: l.kind, storePaths: l.storePaths })),
    outputs: s.outputs,
  };
}

/** Tell the user where the image is and the command that loads it. */
function howToUse(s: BuildSummary): string {
  const lines = [`\n${s.image}:${s.tag}  (${s.layers.length} layers: ${s.layersBuilt} built, ${s.layersReused} reused, ${s.ms} ms)`];
  const podman = loadedName('podman', s.image, s.tag);
  const docker = loadedName('docker', s.image, s.tag);
  for (const output of s.outputs) {
    if (output.format === 'oci') {
      lines.push(`  OCI layout      ${output.path}`);
      lines.push(`    load:  skopeo copy oci:${output.path}:${s.tag} containers-storage:${podman}`);
      lines.push(`    or:    skopeo copy oci:${output.path}:${s.tag} docker-daemon:${docker}`);
    } else if (output.format === 'docker-archive') {
      lines.push(`  docker-archive  ${output.path}`);
      lines.push(`    load:  podman load -i ${output.path}   (or docker load -i …)`);
    }
  }
  if (s.outputs.some((o) => o.format === 'oci' || o.format === 'docker-archive' || o.format === 'podman')) lines.push(`  then:  podman run --rm ${podman}   (docker run --rm ${docker})`);
  return lines.join('\n');
}
