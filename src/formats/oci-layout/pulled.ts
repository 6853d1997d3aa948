/**
 * The pull cache: an OCI image layout (blobs by digest, index.json naming each pulled manifest
 * by its digest). Blobs are downloaded into a staging dir, verified against their digest, and
 * moved into blobs/ only when the whole image checked out, so a bad pull caches nothing.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { NixdockError } from '../../errors.js';
import { digestHex } from '../../digest.js';
import type { Descriptor, Digest } from '../../types.js';
import { BLOBS_DIR, blobPath } from './blobs.js';
import { spool } from '../../util/spool.js';

interface LayoutIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
}

export const REF_NAME = 'org.opencontainers.image.ref.name';
export const CONTAINERD_NAME = 'io.containerd.image.name';

export class PulledLayout {
  private staging?: string;
  private readonly staged = new Set<Digest>();

  constructor(readonly dir: string) {}

  blobPath(digest: Digest): string {
    return blobPath(this.dir, digest);
  }

  has(digest: Digest): boolean {
    return this.staged.has(digest) || existsSync(this.blobPath(digest));
  }

  async read(digest: Digest): Promise<Buffer> {
    return readFile(this.staged.has(digest) ? this.stagedPath(digest) : this.blobPath(digest));
  }

  /** Stores `bytes` in staging if their digest is `expected`; otherwise DIGEST_MISMATCH and nothing kept. */
  async stage(bytes: Readable, expected: Digest, what: string, signal?: AbortSignal): Promise<void> {
    this.staging ??= await this.makeStagingDir();
    const blob = await spool(bytes, { dir: this.staging, signal });
    if (blob.digest !== expected) {
      await blob.remove();
      throw new NixdockError('DIGEST_MISMATCH', `The registry sent ${what} whose content does not match its digest`, {
        found: blob.digest,
        expected,
        hint: 'Nothing was cached. The registry (or something between it and you) is serving corrupted data; try again or report it to the registry operator.',
      });
    }
    await rename(blob.path, this.stagedPath(expected));
    this.staged.add(expected);
  }

  /** Moves every staged blob into blobs/ and names the manifest in index.json (both atomic renames). */
  async commit(manifest: Descriptor, imageName: string): Promise<void> {
    await mkdir(join(this.dir, BLOBS_DIR), { recursive: true });
    for (const digest of this.staged) await rename(this.stagedPath(digest), this.blobPath(digest));
    this.staged.clear();
    await this.discard();
    await this.writeIfChanged('oci-layout', JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const index = await this.readIndex();
    const entry: Descriptor = { ...manifest, annotations: { [REF_NAME]: manifest.digest, [CONTAINERD_NAME]: imageName } };
    index.manifests = [...index.manifests.filter((m) => m.annotations?.[REF_NAME] !== manifest.digest), entry];
    await atomicWrite(join(this.dir, 'index.json'), JSON.stringify(index));
  }

  /** Sets the mtime of these blobs to now: gc keeps what was used lately (src/cache/gc-files.ts). */
  async markUsed(digests: Digest[]): Promise<void> {
    const now = new Date();
    for (const digest of digests) await utimes(this.blobPath(digest), now, now).catch(() => undefined);
  }

  /** Drops whatever is staged (after a failure). */
  async discard(): Promise<void> {
    if (this.staging) await rm(this.staging, { recursive: true, force: true });
    this.staging = undefined;
    this.staged.clear();
  }

  private stagedPath(digest: Digest): string {
    return join(this.staging!, digestHex(digest));
  }

  private async makeStagingDir(): Promise<string> {
    await mkdir(this.dir, { recursive: true });
    return mkdtemp(join(this.dir, '.staging-'));
  }

  private async readIndex(): Promise<LayoutIndex> {
    try {
      return JSON.parse(await readFile(join(this.dir, 'index.json'), 'utf8')) as LayoutIndex;
    } catch {
      return { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] };
    }
  }

  private async writeIfChanged(name: string, content: string): Promise<void> {
    const path = join(this.dir, name);
    if (!existsSync(path)) await atomicWrite(path, content);
  }
}

async function atomicWrite(path: string, content: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, content);
  await rename(tmp, path);
}
