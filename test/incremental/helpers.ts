/**
 * Temp projects built from real Nix derivations, and the real `nixdock` CLI run in them (the
 * spawning itself comes from test/daemon/helpers.ts).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { exited, runCli, type Project } from '../daemon/helpers.js';
import { drv } from '../helpers/nix.js';

export interface ImageInput {
  name: string;
  /** A Nix file of the project (relative), built by nixdock. */
  nix: string;
  layering?: 'stable' | 'popularity';
  maxLayers?: number;
}

/** A project whose config lists these images; `files` (relative path → content) are written too. */
export function makeProject(t: TestContext, images: ImageInput[], files: Record<string, string>, formats = ['oci', 'docker-archive']): Project {
  const dir = mkdtempSync(join(tmpdir(), 'nixdock-incr-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const project: Project = {
    dir,
    write: (file, content) => writeFileSync(join(dir, file), content),
    read: (file) => readFileSync(join(dir, file), 'utf8'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
  project.write('package.json', JSON.stringify({ name: 'fixture', private: true }));
  project.write('nixdock.config.json', JSON.stringify({
    formats,
    images: images.map(({ name, nix, ...rest }) => ({ name, contents: [{ nix }], config: { Cmd: ['/bin/hello'] }, ...rest })),
  }, null, 2));
  for (const [file, content] of Object.entries(files)) project.write(file, content);
  return project;
}

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `nixdock ARGS` in the project to completion. */
export async function nixdock(project: Project, args: string[]): Promise<CliResult> {
  const proc = runCli(project, args);
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d) => (stdout += d));
  proc.stderr!.on('data', (d) => (stderr += d));
  const status = await exited(proc);
  return { status, stdout, stderr };
}

/** What `nixdock build --json` says of one image. */
export interface BuiltImage {
  name: string;
  tag: string;
  manifestDigest: string;
  configDigest: string;
  layersBuilt: number;
  layersReused: number;
  layers: Array<{ diffId: string; digest: string; built: boolean; storePaths: string[] }>;
  outputs: Array<{ format: string; path?: string }>;
}

/** `nixdock build --json ARGS`, which must succeed; the images it reports. */
export async function build(project: Project, args: string[] = []): Promise<BuiltImage[]> {
  const result = await nixdock(project, ['build', '--json', ...args]);
  assert.equal(result.status, 0, `nixdock build failed:\n${result.stderr}`);
  return (JSON.parse(result.stdout) as { images: BuiltImage[] }).images;
}

/** Blob file names under blobs/sha256 whose bytes do not hash to the name (temp files are not blobs). */
export function misnamedBlobs(layoutDir: string): string[] {
  const dir = join(layoutDir, 'blobs', 'sha256');
  return readdirSync(dir)
    .filter((name) => /^[0-9a-f]{64}$/.test(name))
    .filter((name) => createHash('sha256').update(readFileSync(join(dir, name))).digest('hex') !== name);
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
