/**
 * Real images for output tests: store paths built with the real nix CLI (test/helpers/nix.ts),
 * one layer per store path tarred by GNU tar (deterministic flags), wrapped as LayerSources.
 * Until src/layer lands, this stands in for the store layer writer: outputs only see the interface.
 */
import { execFileSync } from 'node:child_process';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import type { TestContext } from 'node:test';
import { assembleImage, buildImageConfig } from '../../src/image/config.js';
import type { ContainerConfig, Image, Layer, LayerSource } from '../../src/types.js';
import { helloClosure, type HelloClosure } from '../helpers/nix.js';
import { tempDir } from '../helpers/tmp.js';
import { sha256, sha256Hex } from '../helpers/bytes.js';

/** A LayerSource serving a tar file made by GNU tar from one store path. */
export function tarLayerSource(storePath: string, dir: string): LayerSource {
  const file = join(dir, `${basename(storePath)}.tar`);
  execFileSync('tar', ['-cf', file, '--format=gnu', '--sort=name', '--mtime=@1', '--owner=0', '--group=0', '--numeric-owner', '-C', '/', storePath.slice(1)]);
  return fileLayerSource(file, storePath);
}

export function fileLayerSource(file: string, description: string): LayerSource {
  return {
    kind: 'store',
    key: sha256Hex(file),
    storePaths: [description],
    description,
    size: async () => statSync(file).size,
    open: () => createReadStream(file),
  };
}

/** The Layer of a tar-file source (its digest computed here, as the layer builder would). */
export function knownLayer(source: LayerSource, file: string): Layer {
  const bytes = readFileSync(file);
  const diffId = sha256(bytes);
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
