/**
 * Run on save: `watch` keeps one container per image with `run:` going, from the image's latest
 * successful build (which the build already loaded into the engine, see daemon.ts). A new build
 * stops the old container and starts a new one; the container's output goes to the daemon's
 * clients line by line; `watch` stops it when it exits.
 *
 * The container runs attached (`ENGINE run --rm --name NAME …`) in its own process group, so its
 * stdout/stderr are the pipes of that process and a Ctrl-C meant for `watch` never reaches it
 * directly: watch stops it with `ENGINE stop`, which gives it StopSignal and STOP_SECONDS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { RunSpec } from '../config/types.js';
import { NixdockError, toNixdockError } from '../errors.js';
import { engineArgs, toolMissing } from '../publish.js';
import type { ContainerLogLine, ContainerSnapshot, ContainerStatus, ServerMessage } from './protocol.js';

/** Seconds `ENGINE stop` waits after StopSignal before it kills the container. */
export const STOP_SECONDS = 5;
/** Log lines kept per container for a joining client's snapshot. */
const LOG_TAIL_LINES = 200;
/** A longer line (a binary blob, a minified dump) is cut: one message must stay small. */
const MAX_LINE_CHARS = 8 * 1024;

export type RunnerMessage = Extract<ServerMessage, { type: 'container' | 'container-log' }>;

interface Running {
  child: ChildProcess;
  status: ContainerStatus;
  /** Resolves when the `ENGINE run` process has exited. */
  exited: Promise<void>;
  stopping: boolean;
}

export class ContainerRunner {
  private readonly running = new Map<string, Running>();
  private readonly last = new Map<string, ContainerSnapshot>();
  /** One replace/stop at a time per image; a newer request overtakes queued ones. */
  private readonly queue = new Map<string, Promise<void>>();
  private readonly wanted = new Map<string, string>();
  /** Images whose stale container (a killed watch's) was already removed. */
  private readonly cleaned = new Set<string>();

  constructor(
    private readonly root: string,
    private readonly publish: (message: RunnerMessage) => void,
  ) {}

  /** Stops the image's container (if any) and starts one from `ref`; resolves once it is started. */
  replace(image: string, run: RunSpec, ref: string, buildId: string): Promise<void> {
    this.wanted.set(image, buildId);
    return this.serialise(image, async () => {
      if (this.wanted.get(image) !== buildId) return; // a newer build's image is on its way
      await this.stopContainer(image);
      await this.start(image, run, ref, buildId);
    });
  }

  /** Stops the image's container; resolves once it is gone. */
  stop(image: string): Promise<void> {
    this.wanted.delete(image);
    return this.serialise(image, () => this.stopContainer(image));
  }

  async stopAll(): Promise<void> {
    await Promise.all([...new Set([...this.running.keys(), ...this.queue.keys()])].map((image) => this.stop(image)));
  }

  /** For the snapshot: the status and last lines of the image's container. */
  snapshot(image: string): ContainerSnapshot | undefined {
    return this.last.get(image);
  }

  /** nixdock-IMAGE-<project>: one container per image and project, found again after a killed watch. */
  containerName(image: string): string {
    const project = createHash('sha256').update(this.root).digest('hex').slice(0, 8);
    return `nixdock-${image.replace(/[^a-zA-Z0-9_.-]/g, '_')}-${project}`;
  }

  private serialise(image: string, step: () => Promise<void>): Promise<void> {
    const next = (this.queue.get(image) ?? Promise.resolve()).then(step).finally(() => {
      if (this.queue.get(image) === next) this.queue.delete(image);
    });
    this.queue.set(image, next);
    return next;
  }

  private async start(image: string, run: RunSpec, ref: string, buildId: string): Promise<void> {
    const name = this.containerName(image);
    if (!this.cleaned.has(image)) {
      // A container of this name left by a killed watch would make `run --name` fail.
      await engine(run.engine, ['rm', '--force', name]).catch(() => undefined);
      this.cleaned.add(image);
    }
    const args = [...engineArgs(run.engine), 'run', '--rm', '--name', name, '--pull', 'never', ...run.ports.flatMap((p) => ['--publish', p]), ...run.args, ref];
    const child = spawn(run.engine, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const status: ContainerStatus = { state: 'started', engine: run.engine, name, ref, buildId, since: Date.now() };
    const entry: Running = { child, status, stopping: false, exited: Promise.resolve() };
    entry.exited = new Promise<void>((resolve) => {
      child.once('error', (err: NodeJS.ErrnoException) => {
        const error = err.code === 'ENOENT' ? toolMissing(run.engine) : toNixdockError(err);
        this.setStatus(image, { ...status, state: 'failed', since: Date.now(), error: error.toJSON() });
        resolve();
      });
      child.once('close', (code) => {
        if (this.running.get(image) === entry) this.running.delete(image);
        if (this.last.get(image)?.state === 'failed') return resolve();
        const state = entry.stopping ? 'stopped' : 'exited';
        this.setStatus(image, { ...status, state, since: Date.now(), ...(code !== null && { exitCode: code }) });
        resolve();
      });
    });
    this.running.set(image, entry);
    this.last.set(image, { ...status, log: [] });
    this.publish({ type: 'container', image, container: status });
    this.pipeLines(image, name, child, 'stdout');
    this.pipeLines(image, name, child, 'stderr');
  }

  private pipeLines(image: string, name: string, child: ChildProcess, stream: 'stdout' | 'stderr'): void {
    const lines = createInterface({ input: child[stream]!, crlfDelay: Infinity });
    lines.on('line', (text) => {
      const line: ContainerLogLine = { stream, line: text.length > MAX_LINE_CHARS ? `${text.slice(0, MAX_LINE_CHARS)}… (cut)` : text, time: Date.now() };
      const snap = this.last.get(image);
      if (snap?.name === name) snap.log = [...snap.log.slice(-(LOG_TAIL_LINES - 1)), line];
      this.publish({ type: 'container-log', image, name, ...line });
    });
  }

  private async stopContainer(image: string): Promise<void> {
    const entry = this.running.get(image);
    if (!entry) return;
    entry.stopping = true;
    const { engine: tool, name } = entry.status;
    await engine(tool, ['stop', '--time', String(STOP_SECONDS), name]).catch(() => undefined);
    // `stop` returns once the container is down; the attached `run` process then exits. If it
    // does not (the engine hung), its process group is killed.
    const timer = setTimeout(() => killGroup(entry.child.pid), 5_000);
    await entry.exited;
    clearTimeout(timer);
  }

  private setStatus(image: string, status: ContainerStatus): void {
    const snap = this.last.get(image);
    this.last.set(image, { ...status, log: snap?.name === status.name ? snap.log : [] });
    this.publish({ type: 'container', image, container: status });
  }
}

/** Runs `ENGINE [NIXDOCK_<ENGINE>_ARGS] args` to its end; rejects with its stderr when it fails. */
function engine(tool: RunSpec['engine'], args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, [...engineArgs(tool), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-4096)));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new NixdockError('DAEMON', `${tool} ${args[0]} failed (exit code ${code}): ${stderr.trim()}`))));
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}
