/**
 * Base images made the way real tools make them: layer tars written by GNU tar, an OCI layout
 * (optionally with `gzip -n` layers), and docker-archives written by skopeo or laid out like
 * Docker 25+ `docker save`.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ContainerConfig, Digest } from '../../src/types.js';
import { sha256 } from './bytes.js';

const REPRODUCIBLE_TAR = ['--sort=name', '--mtime=@1', '--owner=0', '--group=0', '--numeric-owner', '--format=posix', '--pax-option=delete=atime,delete=ctime'];

/** A layer tar of a directory's contents (names `./etc/…`, as `docker save` layers often have). */
export function tarDirectory(dir: string): Buffer {
  return execFileSync('tar', [...REPRODUCIBLE_TAR, '-C', dir, '-cf', '-', '.'], { maxBuffer: 1 << 28 });
}

/** A layer tar of store paths with absolute names (`/nix/store/…`), as dockerTools writes them. */
export function tarStorePaths(paths: string[]): Buffer {
  return execFileSync('tar', [...REPRODUCIBLE_TAR, '-P', '-cf', '-', ...paths], { maxBuffer: 1 << 28 });
}

export function gzipN(bytes: Buffer): Buffer {
  return execFileSync('gzip', ['-n', '-c'], { input: bytes, maxBuffer: 1 << 28 });
}

export function imageConfig(layers: Buffer[], config: ContainerConfig, diffIds = layers.map((l) => sha256(l))): Buffer {
  return Buffer.from(
    JSON.stringify({
      created: '1970-01-01T00:00:01Z',
      architecture: 'amd64',
      os: 'linux',
      config,
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: layers.map((_, i) => ({ created: '1970-01-01T00:00:01Z', created_by: `fixture layer ${i + 1}` })),
    }),
  );
}

function writeBlob(dir: string, bytes: Buffer): { digest: Digest; size: number } {
  const digest = sha256(bytes);
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(dir, 'blobs', 'sha256', digest.slice(7)), bytes);
  return { digest, size: bytes.length };
}

export interface LayoutImage {
  tag: string;
  layers: Buffer[];
  config: ContainerConfig;
  gzip?: boolean;
  /** Override the config's diff_ids (to make a corrupt image). */
  diffIds?: Digest[];
}

/** An OCI image layout holding the given images, each tagged with ref.name. Returns the config files' bytes by tag. */
export function writeOciLayout(dir: string, images: LayoutImage[]): Map<string, { configDigest: Digest; layerDigests: Digest[] }> {
  const written = new Map<string, { configDigest: Digest; layerDigests: Digest[] }>();
  const manifests = images.map((image) => {
    const layerDescriptors = image.layers.map((layer) => ({
      mediaType: image.gzip ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar',
      ...writeBlob(dir, image.gzip ? gzipN(layer) : layer),
    }));
    const config = { mediaType: 'application/vnd.oci.image.config.v1+json', ...writeBlob(dir, imageConfig(image.layers, image.config, image.diffIds)) };
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: layerDescriptors }));
    written.set(image.tag, { configDigest: config.digest, layerDigests: layerDescriptors.map((d) => d.digest) });
    return { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...writeBlob(dir, manifest), annotations: { 'org.opencontainers.image.ref.name': image.tag } };
  });
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
  return written;
}

/** `skopeo copy oci:DIR:TAG docker-archive:OUT` — the docker save format as skopeo writes it. */
export function skopeoToDockerArchive(layoutDir: string, tag: string, out: string): void {
  execFileSync('skopeo', ['--insecure-policy', 'copy', '-q', `oci:${layoutDir}:${tag}`, `docker-archive:${out}:example/base:${tag}`], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * A Docker 25+ style `docker save` archive: an OCI layout plus manifest.json naming blobs/sha256/….
 * Built from an uncompressed single-image layout.
 */
export function hybridDockerArchive(layoutDir: string, layers: Buffer[], config: ContainerConfig, out: string, diffIds?: Digest[]): void {
  const written = writeOciLayout(layoutDir, [{ tag: 'v1', layers, config, ...(diffIds && { diffIds }) }]).get('v1')!;
  const manifest = [{ Config: `blobs/sha256/${written.configDigest.slice(7)}`, RepoTags: ['example/base:v1'], Layers: written.layerDigests.map((d) => `blobs/sha256/${d.slice(7)}`) }];
  writeFileSync(join(layoutDir, 'manifest.json'), JSON.stringify(manifest));
  execFileSync('tar', [...REPRODUCIBLE_TAR, '-C', layoutDir, '-cf', out, '.']);
}
