/**
 * Images from docker-archive tarballs: `docker save` (legacy `<id>/layer.tar` layout and the
 * Docker 25+ hybrid with `blobs/sha256/…`), skopeo's `docker-archive:`, and dockerTools'
 * buildImage/buildLayeredImage results — all described by `manifest.json`, gzip-compressed or not.
 *
 * An uncompressed archive is indexed once (member → offset, headers only) and layers are read in
 * place: no copy of a possibly large file. A compressed one cannot be seeked, so it is
 * decompressed once into the cache, keyed by the archive's sha256, and then served the same way.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { digestHex, sha256Of } from '../../digest.js';
import { NixdockError } from '../../errors.js';
import type { ImageSource } from '../../types.js';
import { withTempFile } from '../../util/atomic.js';
import { decompressor, sniffCompression, SNIFF_BYTES, type Compression } from '../decompress.js';
import { invalidBase, parseImageConfig, parseJson } from '../image-json.js';
import { BaseLayer } from '../stored-layer.js';
import { readTarMembers, openMember, readMember, resolveMember, type TarMembers, type TarMember } from '../../tar/members.js';

interface ArchiveManifestEntry {
  Config: string;
  Layers: string[];
  RepoTags?: string[] | null;
}

/** Which image of a multi-image archive (dockerTools' fromImageName/fromImageTag); default the first. */
export interface ArchiveImageChoice {
  name?: string;
  tag?: string;
}

export async function readDockerArchive(path: string, cacheDir: string, choice: ArchiveImageChoice = {}): Promise<ImageSource> {
  const description = `docker-archive:${path}`;
  const tarPath = await uncompressedArchive(path, cacheDir);
  const index = await readTarMembers(tarPath);
  const entry = await readArchiveManifest(tarPath, index, description, choice);
  return (await archiveImage(tarPath, index, entry, description, cacheDir)).image;
}

/** One image of an archive with the tags it carries and its config's bytes (whose sha256 is its id). */
export interface ArchiveImage {
  repoTags: string[];
  configBytes: Buffer;
  image: ImageSource;
}

/** Every image of a docker-archive (dockerTools mergeImages, `docker save a b`), in manifest.json order. */
export async function readDockerArchiveImages(path: string, cacheDir: string): Promise<ArchiveImage[]> {
  const description = `docker-archive:${path}`;
  const tarPath = await uncompressedArchive(path, cacheDir);
  const index = await readTarMembers(tarPath);
  await readArchiveManifest(tarPath, index, description, {});
  const manifest = parseJson(await readMember(tarPath, index.get('manifest.json')!), `${description} (manifest.json)`) as Array<Partial<ArchiveManifestEntry>>;
  return Promise.all(manifest.map((entry, i) => {
    if (typeof entry?.Config !== 'string' || !Array.isArray(entry.Layers) || !entry.Layers.every((l) => typeof l === 'string')) {
      throw invalidBase(description, `manifest.json[${i}]`, JSON.stringify(entry)?.slice(0, 200), '{"Config": "<file>", "Layers": ["<file>", …]}');
    }
    return archiveImage(tarPath, index, entry as ArchiveManifestEntry, description, cacheDir);
  }));
}

async function archiveImage(tarPath: string, index: TarMembers, entry: ArchiveManifestEntry, description: string, cacheDir: string): Promise<ArchiveImage> {
  const configMember = requireMember(index, entry.Config, description, 'Config');
  const configBytes = await readMember(tarPath, configMember);
  const config = parseImageConfig(configBytes, `${description} (${entry.Config})`, entry.Layers.length);
  const layers = await Promise.all(
    entry.Layers.map(async (name, i) => {
      const member = requireMember(index, name, description, `Layers[${i}]`);
      const compression = await sniffMember(tarPath, member);
      return new BaseLayer({
        diffId: config.rootfs.diff_ids[i]!,
        description: `layer ${i + 1}/${entry.Layers.length} (${name}) of ${description}`,
        openBlob: () => openMember(tarPath, member),
        ...(compression === 'none' && { uncompressedSize: member.size }),
        sizeCacheDir: join(cacheDir, 'base', 'sizes'),
      });
    }),
  );
  const repoTags = Array.isArray(entry.RepoTags) ? entry.RepoTags.filter((tag): tag is string => typeof tag === 'string') : [];
  return { repoTags, configBytes, image: { config, layers, description } };
}

/** The archive itself when it is a plain tar; otherwise its decompressed copy in the cache. */
async function uncompressedArchive(path: string, cacheDir: string): Promise<string> {
  const compression = await sniffFile(path);
  if (compression === 'none') return path;
  const key = digestHex(await sha256Of(createReadStream(path)));
  const cached = join(cacheDir, 'base', 'archives', `${key}.tar`);
  // The mtime says when it was last used: gc keeps what was used lately (src/cache/gc-files.ts).
  if (await utimes(cached, new Date(), new Date()).then(() => true, () => false)) return cached;
  await mkdir(join(cacheDir, 'base', 'archives'), { recursive: true });
  await withTempFile(cached, (tmp) => pipeline(createReadStream(path), decompressor(compression), createWriteStream(tmp)));
  return cached;
}

async function readArchiveManifest(tarPath: string, index: TarMembers, description: string, choice: ArchiveImageChoice): Promise<ArchiveManifestEntry> {
  const member = index.get('manifest.json');
  if (!member) {
    throw invalidBase(description, 'manifest.json', 'no manifest.json in the archive', 'a docker-archive with manifest.json (docker ≥ 1.10, skopeo, dockerTools)');
  }
  const manifest = parseJson(await readMember(tarPath, member), `${description} (manifest.json)`);
  // Like dockerTools' fromImage, a multi-image archive contributes its first image unless fromImageName/fromImageTag choose.
  const first = Array.isArray(manifest) ? (chosenEntry(manifest, choice, description) as Partial<ArchiveManifestEntry> | undefined) : undefined;
  if (!first || typeof first.Config !== 'string' || !Array.isArray(first.Layers) || !first.Layers.every((l) => typeof l === 'string')) {
    throw invalidBase(description, 'manifest.json', JSON.stringify(manifest)?.slice(0, 200), '[{"Config": "<file>", "Layers": ["<file>", …]}]');
  }
  return first as ArchiveManifestEntry;
}

/** The entry whose RepoTags hold NAME:TAG (a name alone: any tag of it; a tag alone: any name with it). */
function chosenEntry(manifest: unknown[], choice: ArchiveImageChoice, description: string): unknown {
  if (choice.name === undefined && choice.tag === undefined) return manifest[0];
  const matches = (repoTag: string) => {
    const colon = repoTag.lastIndexOf(':');
    const [name, tag] = colon > repoTag.lastIndexOf('/') ? [repoTag.slice(0, colon), repoTag.slice(colon + 1)] : [repoTag, 'latest'];
    const sameName = choice.name === undefined || name === choice.name || name.endsWith(`/${choice.name}`);
    return sameName && (choice.tag === undefined || tag === choice.tag);
  };
  const found = manifest.find((entry) => ((entry as { RepoTags?: unknown }).RepoTags as unknown[] | undefined)?.some((t) => typeof t === 'string' && matches(t)));
  if (found) return found;
  const tags = manifest.flatMap((entry) => ((entry as { RepoTags?: unknown }).RepoTags as string[] | undefined) ?? []);
  throw new NixdockError('INPUT_INVALID', `${description} holds no image ${choice.name ?? '*'}:${choice.tag ?? '*'}`, {
    location: { field: 'fromImageName' },
    found: tags.length > 0 ? tags.join(', ') : 'images without RepoTags',
    expected: `an image tagged ${choice.name ?? '<any name>'}:${choice.tag ?? '<any tag>'}`,
    hint: 'Pick one of the RepoTags found with fromImageName/fromImageTag, or leave them out for the first image.',
  });
}

function requireMember(index: TarMembers, name: string, description: string, field: string): TarMember {
  const member = resolveMember(index, name);
  if (!member) throw invalidBase(description, `manifest.json ${field}`, `${name} (missing from the archive)`, 'a file inside the archive');
  return member;
}

async function sniffMember(tarPath: string, member: TarMember): Promise<Compression> {
  return sniffCompression(await readMember(tarPath, { ...member, size: Math.min(member.size, SNIFF_BYTES) }));
}

async function sniffFile(path: string): Promise<Compression> {
  const file = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
    throw new NixdockError('INPUT_INVALID', `Cannot read the base image ${path}`, {
      location: { file: path },
      found: err.code,
      expected: 'a readable docker-archive tarball',
      hint: 'Check the fromImage path (relative paths are resolved from the project root).',
      cause: err,
    });
  });
  try {
    const head = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await file.read(head, 0, SNIFF_BYTES, 0);
    return sniffCompression(head.subarray(0, bytesRead));
  } finally {
    await file.close();
  }
}
