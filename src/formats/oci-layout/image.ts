/**
 * The image `nixdock push IMAGE` pushes, read back from the project's OCI layout output
 * (`<outDir>/oci`): layers keep their stored compressed blobs, so a gzip layout is pushed
 * byte for byte and its manifest digest is the one the layout lists.
 */
import { open } from 'node:fs/promises';
import { readOciLayout } from './read.js';
import { OciLayout } from './write.js';
import type { Codec, CompressedBlob, Descriptor, Digest, Image, Layer } from '../../types.js';
import { MediaType } from '../../image/manifest.js';

const CODEC_OF: Record<string, Codec> = {
  [MediaType.layerTar]: 'none',
  [MediaType.layerGzip]: 'gzip',
  [MediaType.dockerLayerGzip]: 'gzip',
  [MediaType.layerZstd]: 'zstd',
};

/** The image named `name` (NAME:TAG, a tag, or a manifest digest) in the layout at `dir`. */
export async function imageFromLayout(dir: string, name: string, cacheDir: string): Promise<Image> {
  const layout = new OciLayout(dir);
  const { manifest, config, manifestDigest } = await layout.readImage(name);
  const base = await readOciLayout(dir, { digest: manifestDigest }, cacheDir);
  const descriptors = (manifest as { layers: Descriptor[] }).layers;
  const layers = await Promise.all(
    base.layers.map(async (source, i): Promise<Layer> => {
      const desc = descriptors[i]!;
      const codec = CODEC_OF[desc.mediaType] ?? 'none';
      const compressed: Partial<Record<Codec, CompressedBlob>> = codec === 'none' ? {} : { [codec]: { codec, digest: desc.digest, size: desc.size } };
      const size = codec === 'gzip' ? await gzipInputSize(layout.blobPath(desc.digest)) : await source.size();
      return { source, diffId: config.rootfs.diff_ids[i] as Digest, size, built: false, compressed, ...(desc.annotations && { annotations: desc.annotations }) };
    }),
  );
  const configDesc = (manifest as { config: Descriptor }).config;
  const configBytes = await readBlob(layout, configDesc.digest);
  const [repo, tag] = splitName(name);
  return { name: repo, tag, layers, config, configBytes, configDigest: configDesc.digest };
}

/**
 * A gzip member's uncompressed size from its trailer (ISIZE), without decompressing: exact below
 * 4 GiB (it is stored modulo 2^32). Pushing a gzip layer never uses it.
 */
async function gzipInputSize(path: string): Promise<number> {
  const file = await open(path, 'r');
  try {
    const { size } = await file.stat();
    const trailer = Buffer.alloc(4);
    await file.read(trailer, 0, 4, size - 4);
    return trailer.readUInt32LE(0);
  } finally {
    await file.close();
  }
}

async function readBlob(layout: OciLayout, digest: Digest): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of layout.openBlob(digest)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function splitName(name: string): [string, string] {
  const colon = name.lastIndexOf(':');
  return colon > name.lastIndexOf('/') ? [name.slice(0, colon), name.slice(colon + 1)] : [name, 'latest'];
}
