/**
 * Stage 4, write: where a built image goes. Every destination is an ImageSink in one list — the
 * files `--format` (and the config's `formats`) choose from, then the registry pushes and engine
 * loads an image spec asks for. `nixdock stream` is the single-pass sink of build.ts's
 * streamImage. Adding an output is adding an entry here (and its writer in src/formats/).
 *
 * The writers are imported when a sink runs, so the config schema, which takes the format names
 * from this list, does not load them into every command.
 */
import { join } from 'node:path';
import type { ImageSpec } from '../config/types.js';
import type { BuildCache } from '../cache/cache.js';
import type { EventBus } from '../events.js';
import type { OciLayout } from '../formats/oci-layout/write.js';
import type { Codec, Image, OutputResult } from '../types.js';

export interface SinkContext {
  spec: ImageSpec;
  image: Image;
  codec: Codec;
  outDir: string;
  /** The OCI layout the layers were materialised into, when `oci` is among the formats. */
  layout?: OciLayout;
  /** Outputs written while the layers were materialised (a docker-archive written in one pass). */
  done: { 'docker-archive'?: OutputResult; registry?: OutputResult };
  index: BuildCache;
  bus: EventBus;
  buildId: string;
  signal?: AbortSignal;
  /** Reports an output as soon as it is written (output:written). */
  written(output: OutputResult): OutputResult;
}

export interface ImageSink {
  /** What its results say they are (OutputResult['format']). */
  readonly outputs: readonly string[];
  /** Whether this sink has anything to do for the build (its format chosen, the spec naming pushes or engines). */
  wanted(formats: readonly string[], spec: ImageSpec): boolean;
  write(ctx: SinkContext): Promise<OutputResult[]>;
}

/** Files in the output directory, chosen by `--format` / `formats`, in the order they are written. */
const FILE_SINKS = {
  oci: {
    outputs: ['oci'] as const,
    wanted: (formats) => formats.includes('oci'),
    write: async ({ layout, image, codec, written }) => [written(await layout!.addImage(image, codec))],
  },
  'docker-archive': {
    outputs: ['docker-archive'] as const,
    wanted: (formats) => formats.includes('docker-archive'),
    write: async ({ image, outDir, signal, written, done }) => {
      if (done['docker-archive']) return [written(done['docker-archive'])];
      const { writeDockerArchiveFile } = await import('../formats/docker-archive/write.js');
      return [written(await writeDockerArchiveFile([image], join(outDir, archiveFileName(image.name)), signal))];
    },
  },
} satisfies Record<string, ImageSink>;

/** The `--format` choices and the config's `formats` enum. */
export const OUTPUT_FORMATS = Object.keys(FILE_SINKS) as Array<keyof typeof FILE_SINKS>;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** After the files: pushes to every `push` reference, then loads into every `load` engine. They read the layers' sources, so they run before the plan is disposed. */
const PUBLISH_SINK = {
  outputs: ['registry', 'podman', 'docker'] as const,
  wanted: (_formats, spec) => spec.push.length > 0 || spec.load.length > 0,
  // publish reports each push and load on the bus itself, as it finishes.
  write: async ({ spec, image, index, bus, buildId, signal, done }) => {
    const { publish } = await import('../publish.js');
    return publish(spec, image, { index, bus, buildId, signal }, done.registry);
  },
} satisfies ImageSink;

export const SINKS: readonly ImageSink[] = [...Object.values(FILE_SINKS), PUBLISH_SINK];

/** Every kind of output a build reports (OutputResult['format']): the sinks', and build.ts's single-pass stream. */
export type OutputKind = (typeof FILE_SINKS)[OutputFormat]['outputs'][number] | (typeof PUBLISH_SINK)['outputs'][number] | 'stream';

/** `ghcr.io/me/app` → `ghcr.io_me_app.tar`: one archive per image name, replaced atomically on each build. */
export function archiveFileName(name: string): string {
  return `${name.replace(/[/:]/g, '_')}.tar`;
}
