/**
 * After-build actions of an image spec: push to every `push` reference and load into every
 * engine in `load`. Runs once the image's outputs are written, with layers that can be opened
 * again (blob-backed from the OCI layout, or the plan's sources).
 *
 * Engine extra arguments come from the environment, `NIXDOCK_PODMAN_ARGS` / `NIXDOCK_DOCKER_ARGS`
 * (split on whitespace, placed before `load`), e.g.
 *   NIXDOCK_PODMAN_ARGS='--root /tmp/p/root --runroot /tmp/p/run --storage-driver vfs'
 * so tests and CI can load into a private store instead of the machine's own images.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { ImageSpec } from './config/types.js';
import { NixdockError } from './errors.js';
import type { EventBus } from './events.js';
import type { BuildCache } from './cache/cache.js';
import { writeDockerArchive } from './formats/docker-archive/write.js';
import { pushImage } from './registry/push.js';
import { pushPlan, type PlannedImage } from './registry/push-plan.js';
import { assemblePlanned } from './build/assemble.js';
import type { ImagePlan } from './build/plan.js';
import type { ResolvedConfig } from './config/types.js';
import { loadedName } from './reference.js';
import type { Image, Layer, OutputResult } from './types.js';
import { killProcessGroup } from './util/process.js';

export interface PublishContext {
  /** Remembers diff_id → compressed digest, so a push skips blobs the registry has without recompressing. */
  index: BuildCache;
  bus: EventBus;
  buildId: string;
  signal?: AbortSignal;
  /** Allow plain HTTP to registries that are not on localhost. */
  insecure?: boolean;
}

export type Engine = ImageSpec['load'][number];

/** Where to get each engine, for the TOOL_MISSING hint. */
const ENGINE_PACKAGES: Record<Engine, string> = {
  podman: 'install the Debian package podman (or podman from podman.io)',
  docker: 'install the Debian package docker.io (or Docker Engine from docker.com)',
};

/** How much of an engine's stderr goes into a LOAD_FAILED message. */
const STDERR_KEEP_BYTES = 16 * 1024;

/**
 * Pushes to every `spec.push` reference, then loads into every `spec.load` engine; one OutputResult
 * each. `firstPushed`: the first reference was pushed already (pushPlannedFirst), as this result.
 */
export async function publish(spec: ImageSpec, image: Image, ctx: PublishContext, firstPushed?: OutputResult): Promise<OutputResult[]> {
  const outputs: OutputResult[] = [];
  const written = (output: OutputResult): void => {
    outputs.push(output);
    ctx.bus.emit({ type: 'output:written', image: spec.name, buildId: ctx.buildId, output });
  };
  if (firstPushed) written(firstPushed);
  for (const ref of spec.push.slice(firstPushed ? 1 : 0)) written(await pushTo(image, ref, spec.compression, ctx));
  for (const engine of spec.load) written(await loadInto(engine, image, ctx.signal));
  return outputs;
}

/** Pushes with the image's own `compression` (zstd in the layout → zstd in the registry). */
async function pushTo(image: Image, ref: string, codec: ImageSpec['compression'], ctx: PublishContext): Promise<OutputResult> {
  const result = await pushImage({ image, codec }, ref, { cache: ctx.index, insecure: ctx.insecure, signal: ctx.signal });
  return { format: 'registry', ref: result.ref, manifestDigest: result.manifestDigest };
}

/** The plan as push-plan.ts takes it: its sources, how to assemble them, and its platform. */
export function plannedImage(plan: ImagePlan): PlannedImage {
  const platform = { os: 'linux' as const, architecture: plan.architecture, ...(plan.variant !== undefined && { variant: plan.variant }) };
  return { sources: plan.sources, assemble: (layers) => assemblePlanned(plan, layers), platform };
}

/**
 * An image with no file output and `push` targets: the first push places each layer the way
 * `nixdock push` does (the local cache, then verified registry claims at the reference and the
 * config's cache.from/cache.registry, and only then tar + compress + upload), so layers the
 * registry holds are never tarred. Its layers (diff_ids known) then serve the other pushes and loads.
 */
export async function pushPlannedFirst(plan: ImagePlan, spec: ImageSpec, config: ResolvedConfig, index: BuildCache, signal?: AbortSignal): Promise<{ layers: Layer[]; output: OutputResult }> {
  const { cache } = config;
  const { result, image } = await pushPlan(plannedImage(plan), spec.compression, spec.push[0]!, { cache: index, cacheFrom: cache.from, cacheTo: cache.registry, signal });
  return { layers: image.layers, output: { format: 'registry', ref: result.ref, manifestDigest: result.manifestDigest } };
}

/** `ENGINE load` reading the docker-archive from its stdin: no temporary file. */
async function loadInto(engine: Engine, image: Image, signal?: AbortSignal): Promise<OutputResult> {
  signal?.throwIfAborted();
  // Own process group, so an abort stops the engine and anything it started.
  const child = spawn(engine, [...engineArgs(engine), 'load'], { stdio: ['pipe', 'ignore', 'pipe'], detached: true });
  const onAbort = () => killProcessGroup(child.pid);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const [written, exited] = await Promise.allSettled([writeDockerArchive([image], child.stdin!, signal), engineExit(child, engine)]);
    if (exited.status === 'rejected') throw exited.reason;
    // A broken pipe only echoes the engine's own failure; any other write error is the cause.
    if (written.status === 'rejected' && !isBrokenPipe(written.reason)) throw written.reason;
    if (exited.value.code !== 0) throw loadFailed(engine, image, exited.value.code, exited.value.stderr);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  return { format: engine, ref: loadedName(engine, image.name, image.tag) };
}

/** The engine's global arguments from NIXDOCK_<ENGINE>_ARGS (placed before the subcommand); `watch`'s `run` uses them too. */
export function engineArgs(engine: Engine): string[] {
  return (process.env[`NIXDOCK_${engine.toUpperCase()}_ARGS`] ?? '').split(/\s+/).filter(Boolean);
}

function engineExit(child: ChildProcess, engine: Engine): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_KEEP_BYTES);
  });
  return new Promise((resolve, reject) => {
    child.on('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? toolMissing(engine) : err));
    child.on('close', (code) => resolve({ code: code ?? 1, stderr }));
  });
}

function isBrokenPipe(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ERR_STREAM_PREMATURE_CLOSE';
}

export function toolMissing(engine: Engine): NixdockError {
  return new NixdockError('TOOL_MISSING', `Cannot load the image into ${engine}: \`${engine}\` was not found on PATH`, {
    found: `no \`${engine}\` on PATH`,
    expected: `the ${engine} command-line tool (the image spec's \`load\` names it)`,
    hint: `${ENGINE_PACKAGES[engine]}, or remove "${engine}" from \`load\`.`,
  });
}

function loadFailed(engine: Engine, image: Image, code: number, stderr: string): NixdockError {
  return new NixdockError('LOAD_FAILED', `\`${engine} load\` of ${image.name}:${image.tag} failed (exit code ${code}):\n${stderr.trimEnd()}`, {
    hint: `Check that ${engine} works here (\`${engine} images\`); extra ${engine} arguments can be given in NIXDOCK_${engine.toUpperCase()}_ARGS.`,
  });
}

