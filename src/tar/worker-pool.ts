/**
 * The tar worker threads (worker.ts), kept between layers: an image streams up to ~100 store
 * layers back to back, and starting a thread per layer would cost more than the smaller layers.
 * A worker is lent to one stream at a time; an idle one does not keep the process alive and is
 * ended after IDLE_MS, so a long-running daemon holds no threads between builds.
 */
import { Worker } from 'node:worker_threads';
import { CHUNK_SIZE, RING_SLOTS, type TarJob, type TarWorkerMessage } from './worker-protocol.js';

/** Long enough to carry a worker from one layer to the next, short enough not to linger. */
const IDLE_MS = 2000;
/** Idle workers kept for reuse; more run only while several layers stream at once (the daemon). */
const MAX_IDLE = 2;

/**
 * The worker's only garbage is each job's copy of its entry list, so a small young generation
 * suffices; V8's default (sized for a main thread) added ~15 MB to the benchmark's peak RSS.
 */
const RESOURCE_LIMITS = { maxYoungGenerationSizeMb: 4 };

/** Compiled: the worker is the .js file beside this one. From source under tsx (tests): the .ts file. */
const WORKER_MODULE = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url);

export interface TarJobHandlers {
  message(message: TarWorkerMessage): void;
  /** The thread itself failed (could not load, ran out of memory) or exited mid-job. */
  crashed(error: Error): void;
}

/** One worker thread, its chunk ring, and the job it runs, if any. */
export class TarWorker {
  /** Written by the worker, copied out by the reader; reused for every job. */
  readonly ring = new SharedArrayBuffer(RING_SLOTS * CHUNK_SIZE);
  private handlers: TarJobHandlers | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private exited = false;

  private constructor(private readonly thread: Worker) {
    live.add(this);
    thread.on('message', (message: TarWorkerMessage) => this.handlers?.message(message));
    thread.on('error', (err) => this.fail(err));
    thread.on('exit', (code) => {
      this.exited = true;
      live.delete(this);
      removeIdle(this);
      this.fail(new Error(`tar worker exited with code ${code}`));
    });
  }

  /** An idle worker, or a new one. */
  static acquire(): TarWorker {
    const worker = idle.pop() ?? new TarWorker(spawnThread());
    clearTimeout(worker.idleTimer);
    worker.keepAlive(true);
    return worker;
  }

  /**
   * Whether the worker keeps the process alive: yes while it has work to do; not while it only
   * waits for a reader that may never come back (a consumer that failed and dropped the stream
   * without destroying it must not keep a CLI running, blocked on a full ring).
   */
  keepAlive(alive: boolean): void {
    if (alive) this.thread.ref();
    else this.thread.unref();
  }

  run(job: TarJob, handlers: TarJobHandlers): void {
    this.handlers = handlers;
    this.thread.postMessage(job);
  }

  /** The job ended with `done` or `error`: the worker is free for another stream. */
  release(): void {
    this.handlers = undefined;
    if (this.exited || idle.length >= MAX_IDLE) {
      void this.thread.terminate();
      return;
    }
    this.keepAlive(false);
    idle.push(this);
    this.idleTimer = setTimeout(() => {
      removeIdle(this);
      void this.thread.terminate();
    }, IDLE_MS).unref();
  }

  /** Stops the worker mid-job (it may be in a read or waiting for a free slot); resolves once it has exited. */
  async stop(): Promise<void> {
    this.handlers = undefined;
    await this.thread.terminate();
  }

  private fail(error: Error): void {
    const handlers = this.handlers;
    this.handlers = undefined;
    handlers?.crashed(error);
  }
}

const idle: TarWorker[] = [];
const live = new Set<TarWorker>();

function removeIdle(worker: TarWorker): void {
  const at = idle.indexOf(worker);
  if (at >= 0) idle.splice(at, 1);
}

/** Whether a worker is idle in the pool: a job for it starts without starting a thread. */
export function idleTarWorker(): boolean {
  return idle.length > 0;
}

/** Worker threads alive (busy or idle): for tests and diagnostics. */
export function liveTarWorkers(): number {
  return live.size;
}

function spawnThread(): Worker {
  if (!WORKER_MODULE.pathname.endsWith('.ts')) return new Worker(WORKER_MODULE, { resourceLimits: RESOURCE_LIMITS });
  // On Node 20, tsx installs its loader on the main thread only, so the worker installs it itself
  // before importing the TypeScript module. Only reached when running src/ under tsx.
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const entry = JSON.stringify(WORKER_MODULE.href);
  return new Worker(`import(${tsx}).then((tsx) => { tsx.register(); return import(${entry}); });`, { eval: true, resourceLimits: RESOURCE_LIMITS });
}
