/**
 * Pull an image (dockerTools' pullImage): pinned by digest unless a tag is explicitly allowed,
 * platform chosen from an index, every blob verified before it is stored, the result cached as
 * an OCI layout at <cacheDir>/pulled/ and reused without network when everything is there.
 */
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { NixdockError } from '../errors.js';
import type { Descriptor, Digest, ImageConfigFile, Platform } from '../types.js';
import { RegistryClient } from './client.js';
import type { RegistryLimits } from './http.js';
import { MediaType } from '../image/manifest.js';
import { isDigest, sha256 } from '../digest.js';
import { checkDescriptor, checkDescriptors } from '../image/descriptor.js';
import { hostPlatform, selectPlatform } from '../image/platform.js';
import { PulledLayout } from '../formats/oci-layout/pulled.js';
import { formatTarget, registryTarget } from './target.js';
import type { AuthOptions } from './types.js';

export interface PullOptions {
  /** nixdock's cache directory; the layout is <cacheDir>/pulled. */
  cacheDir: string;
  /** Default: the host's. */
  platform?: Platform;
  /** Allow a reference without a digest (the digest it resolved to is reported). */
  allowTag?: boolean;
  insecure?: boolean;
  auth?: AuthOptions;
  signal?: AbortSignal;
  tries?: number;
  backoffMs?: number;
  /** Timeouts and size caps of the registry client (see RegistryLimits). */
  limits?: Partial<RegistryLimits>;
}

export interface PulledImage {
  layoutDir: string;
  /** The platform image's manifest (named by this digest in the layout's index.json). */
  manifestDigest: Digest;
  config: ImageConfigFile;
  layers: Descriptor[];
  /** For tag pulls: the reference as given … */
  resolvedFrom?: string;
  /** … and the digest the tag pointed to (an index's digest when it named an index). */
  resolvedDigest?: Digest;
}

const MANIFEST_TYPES: readonly string[] = [MediaType.ociManifest, MediaType.dockerManifest];
const INDEX_TYPES: readonly string[] = [MediaType.ociIndex, MediaType.dockerManifestList];

interface ManifestDoc {
  mediaType?: unknown;
  config?: unknown;
  layers?: unknown;
  manifests?: unknown;
}

interface FetchedManifest {
  digest: Digest;
  bytes: Buffer;
  mediaType: string;
  doc: ManifestDoc;
}

export async function pullImage(ref: string, opts: PullOptions): Promise<PulledImage> {
  const target = registryTarget(ref, opts.insecure);
  if (!target.digest && !opts.allowTag) {
    throw new NixdockError('REFERENCE_INVALID', `${ref} is not pinned to a digest`, {
      found: ref,
      expected: `${formatTarget({ ...target, tag: undefined }).replace(/:latest$/, '')}@sha256:<64 hex>`,
      hint: 'A tag can point at different images over time. Pin the digest, or allow the tag explicitly (--allow-tag / allowTag: true) and the digest it resolved to is reported.',
    });
  }
  const layout = new PulledLayout(join(opts.cacheDir, 'pulled'));
  const client = new RegistryClient(target, { auth: opts.auth, signal: opts.signal, actions: ['pull'], tries: opts.tries, backoffMs: opts.backoffMs, limits: opts.limits });
  const fetcher = new Fetcher(layout, client, opts.signal);
  try {
    const root = await fetcher.manifest(target.digest ?? target.tag!, target.digest, ref);
    const manifest = INDEX_TYPES.includes(root.mediaType)
      ? await fetcher.manifest(...platformEntry(root, opts.platform ?? hostPlatform(), ref))
      : root;
    const { config: configDesc, layers } = checkedManifest(manifest, ref);
    const config = parseConfig(await fetcher.read(configDesc, 'the image config'), layers.length, ref);
    for (const layer of layers) await fetcher.ensure(layer, `layer ${layer.digest}`);
    const name = `${target.registry}/${target.repository}@${manifest.digest}`;
    await layout.commit({ mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.length }, name);
    await layout.markUsed([root.digest, manifest.digest]);
    return {
      layoutDir: layout.dir,
      manifestDigest: manifest.digest,
      config,
      layers,
      ...(!target.digest && { resolvedFrom: formatTarget(target), resolvedDigest: root.digest }),
    };
  } catch (err) {
    await layout.discard();
    throw err;
  }
}

/** Reads manifests and blobs from the layout when present, else from the registry (verified, then staged). */
class Fetcher {
  constructor(
    private readonly layout: PulledLayout,
    private readonly client: RegistryClient,
    private readonly signal?: AbortSignal,
  ) {}

  /**
   * `expected` is the digest the bytes must have (pinned refs and index entries); a tag has none.
   * An index entry also declares the size, which then caps the download.
   */
  async manifest(reference: string, expected: Digest | undefined, ref: string, mustBeManifest = false, size?: number): Promise<FetchedManifest> {
    const pinned = expected ?? (isDigest(reference) ? reference : undefined);
    let bytes: Buffer;
    let contentType = '';
    if (pinned && this.layout.has(pinned)) {
      bytes = await this.layout.read(pinned);
    } else {
      const got = await this.client.getManifest(reference, [...MANIFEST_TYPES, ...INDEX_TYPES], size);
      bytes = got.bytes;
      contentType = got.contentType.split(';')[0].trim();
      await this.layout.stage(Readable.from([bytes]), pinned ?? sha256(bytes), `the manifest of ${ref}`, this.signal);
    }
    const doc = parseDocument(bytes, `the manifest of ${ref}`);
    const declared = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
    const mediaType = declared ?? (doc.manifests ? MediaType.ociIndex : doc.config ? MediaType.ociManifest : contentType);
    const allowed = mustBeManifest ? MANIFEST_TYPES : [...MANIFEST_TYPES, ...INDEX_TYPES];
    if (!allowed.includes(mediaType)) {
      throw new NixdockError('INPUT_INVALID', `${ref} is a kind of manifest nixdock cannot use${mustBeManifest && INDEX_TYPES.includes(mediaType) ? ' (an index inside an index)' : ''}`, {
        found: mediaType || 'no media type',
        expected: allowed.join(', '),
        hint: 'Use an image in OCI or Docker schema 2 format (e.g. copy it with `skopeo copy --format oci`).',
      });
    }
    return { digest: sha256(bytes), bytes, mediaType, doc };
  }

  /** Makes sure the blob is in the layout (or staged), downloading and verifying it when not. */
  async ensure(desc: Descriptor, what: string): Promise<void> {
    if (!this.layout.has(desc.digest)) await this.layout.stage(await this.client.openBlob(desc.digest, desc.size), desc.digest, what, this.signal);
  }

  async read(desc: Descriptor, what: string): Promise<Buffer> {
    await this.ensure(desc, what);
    return this.layout.read(desc.digest);
  }
}

/** The index entry for the platform, checked, as arguments of Fetcher.manifest. */
function platformEntry(index: FetchedManifest, platform: Platform, ref: string): Parameters<Fetcher['manifest']> {
  const entries = checkDescriptors(index.doc.manifests, `the index of ${ref} (${index.digest})`, 'manifests');
  const entry = selectPlatform(entries, platform, ref);
  return [entry.digest, entry.digest, ref, true, entry.size];
}

/** Config and layer descriptors, every field checked before any of them names a request or a file. */
function checkedManifest(manifest: FetchedManifest, ref: string): { config: Descriptor; layers: Descriptor[] } {
  const where = `the manifest of ${ref} (${manifest.digest})`;
  if (manifest.doc.config === undefined) throw new NixdockError('INPUT_INVALID', `${where} has no config`, { found: manifest.digest });
  return { config: checkDescriptor(manifest.doc.config, where, 'config'), layers: checkDescriptors(manifest.doc.layers, where, 'layers') };
}

/**
 * A JSON object from the registry; anything else is REGISTRY (the registry, or whatever answers in
 * its place, is broken: exit 1), never a SyntaxError quoting the bytes.
 */
function parseDocument(bytes: Buffer, what: string): ManifestDoc & Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    doc = undefined;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new NixdockError('REGISTRY', `The registry sent ${what} that is not a JSON object`, {
      found: `${bytes.length} bytes that do not parse as a JSON object`,
      expected: 'a JSON manifest, index or image config',
      hint: 'The registry is broken or not a registry (a proxy or login page answering instead?).',
    });
  }
  return doc as ManifestDoc & Record<string, unknown>;
}

function parseConfig(bytes: Buffer, layerCount: number, ref: string): ImageConfigFile {
  const config = parseDocument(bytes, `the image config of ${ref}`) as Partial<ImageConfigFile>;
  const diffIds = config.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || !diffIds.every(isDigest)) {
    throw new NixdockError('INPUT_INVALID', `The image config of ${ref} has diff_ids that are not digests`, {
      found: JSON.stringify(diffIds)?.slice(0, 120),
      expected: 'rootfs.diff_ids: an array of sha256:<64 hex>',
    });
  }
  if (diffIds.length !== layerCount) {
    throw new NixdockError('INPUT_INVALID', `The image config of ${ref} does not list one diff_id per layer`, {
      found: `${Array.isArray(diffIds) ? diffIds.length : 'no'} diff_ids`,
      expected: `${layerCount} (the manifest's layers)`,
    });
  }
  return config as ImageConfigFile;
}
