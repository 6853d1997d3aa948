/**
 * The orchestrator in-process on the `dir` store (examples/store, no Nix needed): a temp project
 * whose image is the example's hello-static, its loaded config, its build cache, and every event
 * of its bus. Outputs are checked by reading the OCI layout back and hashing every blob.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { buildImage, streamImage, type BuildSummary } from '../../src/build/build.js';
import { BuildCache } from '../../src/cache/cache.js';
import { loadConfig } from '../../src/config/load.js';
import type { ImageSpec, ResolvedConfig } from '../../src/config/types.js';
import { EventBus, type BuildEvent } from '../../src/events.js';
import type { Image } from '../../src/types.js';
import { sha256, sha256Hex } from '../helpers/bytes.js';
import { REPO } from '../helpers/cli.js';
import { tempProject, type Project } from '../helpers/project.js';
import type { Cleanup } from '../helpers/tmp.js';

export const EXAMPLE_STORE = join(REPO, 'examples', 'store');
export const HELLO = '/nix/store/lmyy4dl2bzjln51xcr9cjadm3x1nq9fm-hello-static';
export const GREETING = '/nix/store/2cbx68g0aaqllvk0bwl3kkf782lm67ab-hello-greeting';
/** Two store layers (hello-static, hello-greeting) and the customisation layer. */
export const LAYERS = 3;

export interface Orchestrated {
  project: Project;
  config: ResolvedConfig;
  spec: ImageSpec;
  cache: BuildCache;
  /** Every event the bus carried, in order. */
  events: BuildEvent[];
  build(options?: { signal?: AbortSignal; onEvent?: (event: BuildEvent) => void }): Promise<BuildSummary>;
  stream(out: Writable, options?: { onEvent?: (event: BuildEvent) => void }): Promise<Image>;
  /** Rewrites the image of the project (fields over the example's) and loads the config again. */
  reconfigure(image: object): Promise<void>;
}

/** A project building hello-static from examples/store into an OCI layout and a docker-archive. */
export async function exampleProject(t: Cleanup, image: object = {}): Promise<Orchestrated> {
  const project = tempProject(t, { 'nixdock.config.json': projectConfig(image) });
  const events: BuildEvent[] = [];
  let config = await loadConfig({ cwd: project.dir });
  const cache = BuildCache.open(config.cacheDir);
  t.after(() => cache.close());
  const bus = (onEvent?: (event: BuildEvent) => void): EventBus => {
    const created = new EventBus();
    created.on((event) => {
      events.push(event);
      onEvent?.(event);
    });
    return created;
  };
  const orchestrated: Orchestrated = {
    project,
    config,
    spec: config.images[0]!,
    cache,
    events,
    build: (options = {}) => buildImage(orchestrated.spec, { config, bus: bus(options.onEvent), index: cache, signal: options.signal, reason: 'test' }),
    stream: (out, options = {}) => streamImage(orchestrated.spec, { config, bus: bus(options.onEvent), index: cache, reason: 'test' }, out),
    async reconfigure(changed) {
      project.write('nixdock.config.json', projectConfig(changed));
      config = await loadConfig({ cwd: project.dir });
      orchestrated.config = config;
      orchestrated.spec = config.images[0]!;
    },
  };
  return orchestrated;
}

function projectConfig(image: object): object {
  return {
    store: { type: 'dir', path: EXAMPLE_STORE },
    formats: ['oci', 'docker-archive'],
    images: [{ name: 'hello', tag: 'v1', contents: [HELLO], config: { Cmd: [`${HELLO}/bin/hello`] }, ...image }],
  };
}

export function layoutDir(o: Orchestrated): string {
  return join(o.config.outDir, 'oci');
}

export function blobFile(layout: string, digest: string): string {
  return join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

/**
 * What is wrong with `tag` in the layout, read back from the files: a blob missing, of another
 * size or hashing to another digest, or a layer whose bytes are not the config's diff_id. Empty: valid.
 */
export function layoutProblems(layout: string, tag: string): string[] {
  const problems: string[] = [];
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; size: number; annotations?: Record<string, string> }> };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!entry) return [`no manifest tagged ${tag}`];
  const blob = (d: { digest: string; size: number }, what: string): Buffer | undefined => {
    const file = blobFile(layout, d.digest);
    if (!existsSync(file)) return void problems.push(`${what} ${d.digest} is missing`);
    const bytes = readFileSync(file);
    if (bytes.length !== d.size) problems.push(`${what} ${d.digest} has ${bytes.length} bytes, not ${d.size}`);
    if (sha256(bytes) !== d.digest) problems.push(`${what} ${d.digest} hashes to ${sha256(bytes)}`);
    return bytes;
  };
  const manifest = JSON.parse(String(blob(entry, 'manifest') ?? '{}')) as { config: { digest: string; size: number }; layers: Array<{ digest: string; size: number; mediaType: string }> };
  const config = JSON.parse(String(blob(manifest.config, 'config') ?? '{}')) as { rootfs: { diff_ids: string[] } };
  manifest.layers.forEach((layer, i) => {
    const bytes = blob(layer, `layer ${i}`);
    // Uncompressed layouts (the default): the layer blob is the tar itself.
    if (bytes && layer.mediaType.endsWith('.tar') && sha256(bytes) !== config.rootfs.diff_ids[i]) problems.push(`layer ${i} is not diff_id ${config.rootfs.diff_ids[i]}`);
  });
  return problems;
}

/** Every file below `dir` by relative path with its content hash: equal snapshots, nothing changed. */
export function fileHashes(dir: string): Record<string, string> {
  const hashes: Record<string, string> = {};
  for (const rel of readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort()) {
    const path = join(dir, rel);
    if (statSync(path).isFile()) hashes[rel] = sha256Hex(readFileSync(path));
  }
  return hashes;
}

/** Names GNU tar lists in an archive. */
export function tarNames(file: string): string[] {
  return execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).trim().split('\n');
}

/** A Writable that keeps what it is given. */
export function collect(): { out: Writable; bytes(): Buffer } {
  const chunks: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk);
      done();
    },
  });
  return { out, bytes: () => Buffer.concat(chunks) };
}
