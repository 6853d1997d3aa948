/**
 * Real images for output tests: store paths built with the real nix CLI (test/helpers/nix.ts),
 * one layer per store path tarred by GNU tar (deterministic flags), wrapped as LayerSources.
 * Until src/layer lands, this stands in for the store layer writer: outputs only see the interface.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import type { TestContext } from 'node:test';
import { assembleImage, buildImageConfig } from '../../src/image/config.js';
import type { ContainerConfig, Digest, Image, Layer, LayerSource } from '../../src/types.js';
import { NIX_ENV, helloApp, nixBuild } from '../helpers/nix.js';

/** A temp dir removed when the test ends. */
export function tempDir(t: TestContext, prefix = 'nixdock-out-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface HelloClosure {
  app: string;
  /** The closure, dependencies first (busybox, data, app). */
  paths: string[];
  message: string;
}

export function helloClosure(message = 'hello from nixdock'): HelloClosure {
  const [app] = nixBuild(helloApp(message));
  const closure = execFileSync('nix-store', ['--query', '--requisites', app!], { env: NIX_ENV, encoding: 'utf8' }).trim().split('\n');
  return { app: app!, paths: closure, message };
}

/** A LayerSource serving a tar file made by GNU tar from one store path. */
export function tarLayerSource(storePath: string, dir: string): LayerSource {
  const file = join(dir, `${basename(storePath)}.tar`);
  execFileSync('tar', ['-cf', file, '--format=gnu', '--sort=name', '--mtime=@1', '--owner=0', '--group=0', '--numeric-owner', '-C', '/', storePath.slice(1)]);
  return fileLayerSource(file, storePath);
}

export function fileLayerSource(file: string, description: string): LayerSource {
  return {
    kind: 'store',
    key: createHash('sha256').update(file).digest('hex'),
    storePaths: [description],
    description,
    size: async () => statSync(file).size,
    open: () => createReadStream(file),
  };
}

/** The Layer of a tar-file source (its digest computed here, as the layer builder would). */
export function knownLayer(source: LayerSource, file: string): Layer {
  const bytes = readFileSync(file);
  const diffId: Digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  return { source, diffId, size: bytes.length, built: true, compressed: {} };
}

export function assemble(name: string, layers: Layer[], config: ContainerConfig, tag?: string): Image {
  const imageConfig = buildImageConfig({ created: '1970-01-01T00:00:01Z', architecture: 'amd64', config, layers: layers.map((l) => ({ diffId: l.diffId, description: l.source.description })) });
  return assembleImage({ name, tag, layers, config: imageConfig });
}

export interface HelloImage {
  image: Image;
  closure: HelloClosure;
  sources: LayerSource[];
}

/** hello-app as an image: one layer per store path, Cmd = the app's bin/hello. */
export function helloImage(t: TestContext, opts: { name?: string; tag?: string; message?: string } = {}): HelloImage {
  const closure = helloClosure(opts.message);
  const dir = tempDir(t, 'nixdock-layers-');
  const sources = closure.paths.map((p) => tarLayerSource(p, dir));
  const layers = sources.map((s, i) => knownLayer(s, join(dir, `${basename(closure.paths[i]!)}.tar`)));
  const image = assemble(opts.name ?? 'hello', layers, { Cmd: [`${closure.app}/bin/hello`] }, opts.tag);
  return { image, closure, sources };
}

/** A source that promises `size` bytes but fails after sending some. */
export function failingSource(size = 1 << 20): LayerSource {
  return {
    kind: 'store',
    key: 'failing',
    storePaths: [],
    description: 'a layer whose store path vanished',
    size: async () => size,
    open: () =>
      Readable.from(
        (async function* () {
          yield Buffer.alloc(64 * 1024, 1);
          throw new Error('store path vanished while reading');
        })(),
      ),
  };
}

/** The global podman flags for a private store under `dir` (for callers that spawn podman themselves, e.g. to pipe into it). */
export function podmanStoreFlags(dir: string): string[] {
  return ['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--tmpdir', join(dir, 'tmp'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file'];
}

/** Private podman store under `dir` with this machine's working runtime flags. */
export function podman(dir: string, args: string[]): string {
  return execFileSync('podman', [...podmanStoreFlags(dir), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export const RUN_FLAGS = ['--runtime', '/usr/sbin/runc', 'run', '--rm', '--pull', 'never', '--network=none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

export function skopeoInspect(ref: string, tmp: string): { Layers: string[]; Digest: string } {
  return JSON.parse(execFileSync('skopeo', ['--tmpdir', tmp, 'inspect', ref], { encoding: 'utf8' }));
}

/** The manifest as skopeo reads it (skopeo 1.9 has no LayersData, so media types come from here). */
export function skopeoManifest(ref: string, tmp: string): { mediaType: string; layers: Array<{ mediaType: string; digest: string; size: number }> } {
  return JSON.parse(execFileSync('skopeo', ['--tmpdir', tmp, 'inspect', '--raw', ref], { encoding: 'utf8' }));
}

export function skopeoConfig(ref: string, tmp: string): { rootfs: { diff_ids: string[] }; config: ContainerConfig } {
  return JSON.parse(execFileSync('skopeo', ['--tmpdir', tmp, 'inspect', '--config', ref], { encoding: 'utf8' }));
}
