/**
 * `nixdock export SOURCE out.tar` (dockerTools' exportImage): flatten an image into one root
 * filesystem tarball. SOURCE is `oci:DIR[:TAG]` or `docker-archive:PATH`.
 */
import { createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { FromImage } from '../config/types.js';
import { readBaseImage } from '../base/read.js';
import { NixdockError } from '../errors.js';
import { exportImage } from '../export.js';
import { withTempFile } from '../util/atomic.js';

export interface ExportOptions {
  cacheDir: string;
  signal?: AbortSignal;
}

export interface ExportResult {
  path: string;
  source: string;
  layers: number;
}

export function register(program: Command): void {
  program
    .command('export')
    .description('Flatten an image into one root filesystem tarball, whiteouts applied (dockerTools exportImage)')
    .argument('<source>', 'the image: oci:DIR[:TAG] or docker-archive:PATH')
    .argument('<out>', 'the tar file to write (replaced atomically)')
    .option('--cache-dir <dir>', 'where decompressed base archives are kept', defaultCacheDir())
    .option('--json', 'print the result as JSON')
    .action(async (source: string, out: string, opts: { cacheDir: string; json?: boolean }) => {
      const result = await exportCommand(source, out, { cacheDir: resolve(opts.cacheDir) });
      process.stdout.write(opts.json ? `${JSON.stringify({ ok: true, ...result })}\n` : `exported ${result.source} (${result.layers} layers) to ${result.path}\n`);
    });
}

export async function exportCommand(source: string, out: string, opts: ExportOptions): Promise<ExportResult> {
  const from = await parseExportSource(source);
  const image = await readBaseImage(from, opts);
  const path = resolve(out);
  await withTempFile(path, (tmp) => exportImage(image.layers, createWriteStream(tmp), opts.signal));
  return { path, source: image.description, layers: image.layers.length };
}

/** `oci:DIR[:TAG]` (a trailing `:TAG` only when DIR itself is not a directory) or `docker-archive:PATH`. */
export async function parseExportSource(source: string): Promise<FromImage> {
  if (source.startsWith('docker-archive:')) return { kind: 'docker-archive', path: resolve(source.slice('docker-archive:'.length)) };
  if (source.startsWith('oci:')) {
    const rest = source.slice('oci:'.length);
    const colon = rest.lastIndexOf(':');
    if (colon > 0 && !(await isDirectory(rest)) && !rest.slice(colon + 1).includes('/')) {
      return { kind: 'oci', path: resolve(rest.slice(0, colon)), tag: rest.slice(colon + 1) };
    }
    return { kind: 'oci', path: resolve(rest) };
  }
  throw new NixdockError('INPUT_INVALID', `Unknown image source ${source}`, {
    location: { field: 'SOURCE' },
    found: source,
    expected: 'oci:DIR[:TAG] or docker-archive:PATH',
    hint: 'Prefix the path with its format, e.g. `nixdock export oci:./out/hello:latest rootfs.tar`.',
  });
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isDirectory(), () => false);
}

function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'nixdock');
}
