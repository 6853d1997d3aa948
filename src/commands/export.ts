/**
 * `nixdock export SOURCE out.tar` (dockerTools' exportImage): flatten an image into one root
 * filesystem tarball. SOURCE is a project image (NAME or NAME:TAG, read from `<outDir>/oci`),
 * `oci:DIR[:TAG]` or `docker-archive:PATH`.
 */
import { createWriteStream } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { FromImage } from '../config/types.js';
import { NixdockError } from '../errors.js';
import { exportImage, type ExportLayer } from '../export.js';
import { readImage } from '../formats/source.js';
import { hasFormatPrefix, parseImageLocation } from '../image/location.js';
import { parseReference } from '../reference.js';
import { withTempFile } from '../util/atomic.js';
import { projectImage } from './push.js';
import type { JsonOk } from './json.js';
import { loadProject, openIndex, projectCacheDir } from './shared.js';

export interface ExportOptions {
  /** Where decompressed base archives are kept (oci:/docker-archive: sources). Default: the project's, or ~/.cache/nixdock outside a project. */
  cacheDir?: string;
  /** Config file of the project a project image belongs to (default: found from the current directory). */
  config?: string;
  signal?: AbortSignal;
}

export interface ExportResult {
  path: string;
  source: string;
  layers: number;
}

export type ExportJson = JsonOk<ExportResult>;

/** What SOURCE names: an image file/directory, or an image of the current project. */
export type ExportSource = FromImage | { kind: 'project'; name: string };

export function register(program: Command): void {
  program
    .command('export')
    .description('Flatten an image into one root filesystem tarball, whiteouts applied (dockerTools exportImage)')
    .argument('<source>', 'the image: a project image NAME[:TAG] (newest build by default), oci:DIR[:TAG] or docker-archive:PATH')
    .argument('<out>', 'the tar file to write (replaced atomically)')
    .option('-c, --config <file>', 'config file for project images (default: found from the current directory)')
    .option('--cache-dir <dir>', `where decompressed base archives are kept (default: the project's cacheDir, or ~/.cache/nixdock outside a project)`)
    .option('--json', 'print the result as JSON')
    .action(async (source: string, out: string, opts: { cacheDir?: string; config?: string; json?: boolean }) => {
      const result = await exportCommand(source, out, { config: opts.config, cacheDir: opts.cacheDir && resolve(opts.cacheDir) });
      process.stdout.write(opts.json ? `${JSON.stringify({ ok: true, ...result } satisfies ExportJson)}\n` : `exported ${result.source} (${result.layers} layers) to ${result.path}\n`);
    });
}

export async function exportCommand(source: string, out: string, opts: ExportOptions): Promise<ExportResult> {
  const image = await readExportSource(await parseExportSource(source), opts);
  const path = resolve(out);
  await withTempFile(path, (tmp) => exportImage(image.layers, createWriteStream(tmp), opts.signal));
  return { path, source: image.description, layers: image.layers.length };
}

async function readExportSource(from: ExportSource, opts: ExportOptions): Promise<{ description: string; layers: readonly ExportLayer[] }> {
  if (from.kind !== 'project') return readImage(from, { cacheDir: opts.cacheDir ?? (await projectCacheDir(opts.config)), signal: opts.signal });
  const config = await loadProject(opts);
  const index = openIndex(config);
  try {
    const image = await projectImage(config, index, from.name);
    return { description: `${image.name}:${image.tag}`, layers: image.layers.map((layer) => layer.source) };
  } finally {
    index.close();
  }
}

/**
 * `oci:DIR[:TAG]` or `docker-archive:PATH` (src/image/location.ts), or else an image reference
 * NAME[:TAG] of the project.
 */
export async function parseExportSource(source: string): Promise<ExportSource> {
  if (hasFormatPrefix(source)) return parseImageLocation(source);
  if (isImageName(source)) return { kind: 'project', name: source };
  throw new NixdockError('INPUT_INVALID', `Unknown image source ${source}`, {
    location: { field: 'SOURCE' },
    found: source,
    expected: 'a project image NAME[:TAG], oci:DIR[:TAG] or docker-archive:PATH',
    hint: 'Name a built image (`nixdock export hello rootfs.tar`) or prefix a path with its format, e.g. `nixdock export oci:./out/oci:latest rootfs.tar`.',
  });
}

/** NAME or NAME:TAG as `nixdock build` names images (no digest). */
function isImageName(source: string): boolean {
  try {
    return parseReference(source).digest === undefined;
  } catch {
    return false;
  }
}
