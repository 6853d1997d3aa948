/** Temp projects built from real Nix derivations, and what the real `nixdock` CLI leaves in them. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BuildJsonImage } from '../../src/commands/build.js';
import { nixdockJsonAsync } from '../helpers/cli.js';
import { drv } from '../helpers/nix.js';
import { tempProject, type Project } from '../helpers/project.js';
import type { Cleanup } from '../helpers/tmp.js';
import { sha256Hex } from '../helpers/bytes.js';

export interface ImageInput {
  name: string;
  /** A Nix file of the project (relative), built by nixdock. */
  nix: string;
  layering?: 'stable' | 'popularity';
  maxLayers?: number;
}

/** A project whose config lists these images; `files` (relative path → content) are written too. */
export function imagesProject(t: Cleanup, images: ImageInput[], files: Record<string, string>, formats = ['oci', 'docker-archive']): Project {
  return tempProject(t, {
    'nixdock.config.json': {
      formats,
      images: images.map(({ name, nix, ...rest }) => ({ name, contents: [{ nix }], config: { Cmd: ['/bin/hello'] }, ...rest })),
    },
    ...files,
  });
}

/** What `nixdock build --json` says of one image. */
export type BuiltImage = BuildJsonImage;

/** `nixdock build --json ARGS`, which must succeed; the images it reports. */
export async function build(project: Project, args: string[] = []): Promise<BuiltImage[]> {
  return (await nixdockJsonAsync(project.dir, ['build', ...args])).images;
}

/** Blob file names under blobs/sha256 whose bytes do not hash to the name (temp files are not blobs). */
export function misnamedBlobs(layoutDir: string): string[] {
  const dir = join(layoutDir, 'blobs', 'sha256');
  return readdirSync(dir)
    .filter((name) => /^[0-9a-f]{64}$/.test(name))
    .filter((name) => sha256Hex(readFileSync(join(dir, name))) !== name);
}

/** Files nixdock's atomic writes leave only while writing (or when killed). */
export function tempFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((p) => p.split('/').pop()!.startsWith('.nixdock-tmp-'));
}

/**
 * An app whose closure has `count` big store paths (`megabytes` each of pseudo-random bytes,
 * which neither compress nor deduplicate), so writing its layers takes a noticeable while.
 * `seed` changes every path.
 */
export function bigApp(seed: string, count: number, megabytes: number): string {
  const parts = Array.from({ length: count }, (_, i) => [`part${i}`, drv(`big-${seed}-${i}`,
    `export PATH=/usr/bin:/bin; mkdir -p $out; head -c ${megabytes * 1024 * 1024} /dev/urandom > $out/blob`)] as const);
  const refs = parts.map(([name]) => `\${${name}}`).join(' ');
  return drv(`big-app-${seed}`, `export PATH=/usr/bin:/bin; mkdir -p $out/bin; echo ${refs} > $out/bin/hello`, Object.fromEntries(parts));
}
