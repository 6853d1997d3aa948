/**
 * Produces a planned entry list as tar bytes. Big layers are tarred by tar worker threads
 * (worker.ts: blocking opens and reads of every file), so the calling thread stays free.
 *
 * Two ways out:
 * - writeTar: the bytes go straight into a file descriptor (a stdout pipe, a blob file), or only
 *   into a hash. One worker reads the files into its ring and, with a core to spare, a second
 *   hashes and writes each chunk: nothing crosses to this thread per chunk, so it can walk the
 *   next layer meanwhile.
 * - TarStream: a Readable for everything else (gzip, HTTP uploads, pipelines). A Readable's
 *   consumer never says when it is done with a chunk, so each chunk is copied out of the worker's
 *   shared ring first.
 */
import { availableParallelism } from 'node:os';
import { Readable } from 'node:stream';
import { sha256 } from '../digest.js';
import { NixdockError, toNixdockError } from '../errors.js';
import type { Digest, TarSettings, WriteToFdOptions } from '../types.js';
import { writeAll } from '../util/fd.js';
import { TarFiller } from './filler.js';
import { HeaderTemplate, trailerSize } from './header.js';
import { idleTarWorker, TarWorker } from './worker-pool.js';
import { CHUNK_SIZE, CONTROL, RING_SLOTS, type TarJob, type TarWorkerMessage } from './worker-protocol.js';
import type { TarEntry } from './walk.js';

/** Everything needed to write a layer's bytes; `size` is exact. */
export interface TarPlan {
  entries: readonly TarEntry[];
  /** Owner and mtime of every entry (the worker builds its HeaderTemplate from them). */
  settings: TarSettings;
  size: number;
}

/** The exact archive size of these entries, trailer and record padding included. */
export function tarSize(entries: readonly TarEntry[], settings: TarSettings): number {
  const template = new HeaderTemplate(settings);
  let bytes = 0;
  for (const entry of entries) bytes += template.entrySize(entry);
  return bytes + trailerSize(bytes);
}

/**
 * Layers up to this size are tarred on the calling thread when no worker is idle: starting a
 * worker thread costs more than it saves for them (an app's 1.6 MB top-level path: 0.58 s rebuild
 * with 1 MiB here, 0.51 s with 8 MiB), and tarring 8 MiB holds the event loop for only a few ms.
 * With a worker idle (an image of many layers, after its first big one), every layer goes to it:
 * tarred inline, the small layers of the 1 GB benchmark stream kept the main thread busy 2.4 s
 * (all of their reads and writes), and it could not walk the next layers meanwhile.
 */
const INLINE_MAX_BYTES = 8 << 20;

/**
 * Writes the layer into `fd` with blocking writes (or only hashes it, when `fd` is undefined) and
 * resolves with its sha256 once all of it was written: the one computed on the way, or
 * `opts.knownDigest` when the caller already knows it (then only the byte count is checked).
 * Nothing else may write to `fd` until then. A failure of the files, the descriptor or `signal`
 * rejects, with the workers stopped.
 */
export async function writeTar(plan: TarPlan, fd: number | undefined, opts: WriteToFdOptions = {}): Promise<Digest> {
  opts.signal?.throwIfAborted();
  if (plan.size <= INLINE_MAX_BYTES && !idleTarWorker()) return writeInline(plan, fd, opts);
  return writeThroughRing(plan, fd, opts);
}

function writeInline(plan: TarPlan, fd: number | undefined, opts: WriteToFdOptions): Digest {
  const bytes = tarBuffer(plan);
  if (fd !== undefined) writeAll(fd, bytes);
  opts.onProgress?.(bytes.length);
  return opts.knownDigest ?? sha256(bytes);
}

/** The whole layer in one buffer, tarred on this thread. */
export function tarBuffer(plan: TarPlan): Buffer {
  const filler = new TarFiller(plan.entries, new HeaderTemplate(plan.settings));
  const bytes = Buffer.allocUnsafe(plan.size);
  let received = 0;
  try {
    for (let length = filler.fill(bytes); length > 0; length = filler.fill(bytes.subarray(received))) received += length;
  } finally {
    filler.close();
  }
  if (received !== plan.size) throw sizeMismatch(received, plan.size);
  return bytes;
}

/**
 * One worker reads the files into its ring (worker-protocol.ts); who hashes and writes the chunks
 * depends on the cores there are. With a spare core (more than two), a second worker drains the
 * ring: on the benchmark closure one thread spends ~0.4 s per GB in sha256 and ~0.5 s in
 * open/read/close, and split they overlap — the reads of a slow disk overlap the hash, and on a
 * fast one the syscalls do. On two cores, the consumer of the stream (openssl, podman, an upload)
 * needs one of them: there the handover cost more than it saved (measured on a loaded 2-core box:
 * 0.6–0.9 s more CPU per GB, slower wall time), so the reading worker hashes and writes each chunk
 * itself, as one loop. NIXDOCK_TAR_DRAIN=thread|inline overrides the choice (tests cover both).
 * The main thread only gets a progress message per PROGRESS_EVERY bytes either way.
 */
async function writeThroughRing(plan: TarPlan, fd: number | undefined, { signal, onProgress, knownDigest }: WriteToFdOptions): Promise<Digest> {
  const control = new Int32Array(new SharedArrayBuffer(CONTROL.length * Int32Array.BYTES_PER_ELEMENT));
  const producer = TarWorker.acquire();
  const drain = drainInThread() ? TarWorker.acquire() : undefined;
  const workers = drain ? [producer, drain] : [producer];
  const shared = { control: control.buffer as SharedArrayBuffer, ring: producer.ring };
  const sink = { fd: fd ?? null, hash: knownDigest === undefined };
  const ended = new Set<TarWorker>();
  let written = 0;
  const progress = (bytes: number) => {
    written += bytes;
    onProgress?.(bytes);
  };
  let onAbort = () => {};
  try {
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal!.reason);
      signal?.addEventListener('abort', onAbort);
    });
    const produce = { kind: 'ring', ...shared, entries: plan.entries, settings: plan.settings, postChunks: false } as const;
    const digests = await Promise.race([
      Promise.all(
        drain
          ? [runJob(drain, { kind: 'drain', ...shared, ...sink }, ended, progress), runJob(producer, produce, ended)]
          : [runJob(producer, { ...produce, drainHere: sink }, ended, progress)],
      ),
      aborted,
    ]);
    if (written !== plan.size) throw sizeMismatch(written, plan.size);
    return knownDigest ?? digests[0]!;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (ended.size < workers.length) {
      // Stopped early (an abort, a failure on either side): a worker may be mid-read, mid-write or
      // waiting for the other; wake both and end whichever is still in the job.
      Atomics.store(control, CONTROL.cancelled, 1);
      Atomics.notify(control, CONTROL.consumed);
      Atomics.notify(control, CONTROL.produced);
    }
    for (const worker of workers) {
      if (ended.has(worker)) worker.release();
      else await worker.stop().catch(() => undefined);
    }
  }
}

/** Whether a second worker hashes and writes (see writeThroughRing). */
function drainInThread(): boolean {
  const forced = process.env.NIXDOCK_TAR_DRAIN;
  if (forced === 'thread' || forced === 'inline') return forced === 'thread';
  return availableParallelism() > 2;
}

/** Runs one job: its `done` digest, or the job's failure; `ended` gets the worker once it may serve another job. */
function runJob(worker: TarWorker, job: TarJob, ended: Set<TarWorker>, onProgress?: (bytes: number) => void): Promise<Digest | undefined> {
  return new Promise((resolve, reject) => {
    worker.run(job, {
      message: (message) => {
        if (message.type === 'progress') {
          onProgress?.(message.bytes);
        } else if (message.type === 'done') {
          ended.add(worker);
          resolve(message.digest);
        } else if (message.type === 'error') {
          ended.add(worker);
          reject(new NixdockError(message.error.code, message.error.message, message.error));
        }
      },
      crashed: (error) => reject(workerCrashed(error)),
    });
  });
}

/**
 * The layer as a Readable (`load` runs once, before the first byte: the lstat walk, unless
 * cached). Big layers come from a worker's ring; each chunk is a copy of its slot, taken only
 * when the consumer asks for bytes.
 */
export class TarStream extends Readable {
  private readonly stop = new AbortController();
  private onWanted: (() => void) | undefined;
  private pumping: Promise<void> | undefined;

  constructor(private readonly load: () => Promise<TarPlan>) {
    super({ highWaterMark: CHUNK_SIZE });
  }

  override _read(): void {
    if (this.pumping === undefined) this.pumping = this.pump();
    const wanted = this.onWanted;
    this.onWanted = undefined;
    wanted?.();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.stop.abort();
    this.onWanted?.();
    const pumping = this.pumping ?? Promise.resolve();
    pumping.then(() => callback(err), () => callback(err));
  }

  private async pump(): Promise<void> {
    try {
      const plan = await this.load();
      if (plan.size <= INLINE_MAX_BYTES) this.push(tarBuffer(plan));
      else await this.pumpRing(plan);
      this.push(null);
    } catch (err) {
      if (!this.stop.signal.aborted) this.destroy(toNixdockError(err));
    }
  }

  /**
   * Copies slots out as they fill. The worker is only kept referenced while this waits for it:
   * while the consumer has enough (or dropped the stream without destroying it), the worker must
   * not keep the process alive.
   */
  private async pumpRing(plan: TarPlan): Promise<void> {
    const slots = new RingSlots(TarWorker.acquire(), plan, this.stop.signal);
    let received = 0;
    try {
      for (let chunk = await slots.next(); chunk !== undefined; chunk = await slots.next()) {
        received += chunk.length;
        const more = this.push(copyChunk(chunk));
        slots.release();
        if (!more && !this.stop.signal.aborted) await slots.idleWhile(new Promise<void>((resolve) => (this.onWanted = resolve)));
      }
    } finally {
      await slots.end();
    }
    if (received !== plan.size) throw sizeMismatch(received, plan.size);
  }
}

/** The reader's side of one ring job: filled slot lengths as the worker posts them, and slot bookkeeping. */
class RingSlots {
  private readonly ring: Uint8Array;
  private readonly control = new Int32Array(new SharedArrayBuffer(CONTROL.length * Int32Array.BYTES_PER_ELEMENT));
  /** Lengths of filled slots not yet handed out, oldest first. */
  private readonly filled: number[] = [];
  private consumed = 0;
  /** The worker finished the job (`done` or `error`): it can serve another. */
  private jobEnded = false;
  private done = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private readonly onAbort = () => this.wake?.();

  constructor(
    private readonly worker: TarWorker,
    plan: TarPlan,
    private readonly signal: AbortSignal,
  ) {
    // A plain view, copied out in bulk (TypedArray#set).
    this.ring = new Uint8Array(worker.ring);
    this.signal.addEventListener('abort', this.onAbort);
    const job: TarJob = { kind: 'ring', entries: plan.entries, settings: plan.settings, ring: worker.ring, control: this.control.buffer as SharedArrayBuffer, postChunks: true };
    worker.run(job, { message: (message) => this.onMessage(message), crashed: (error) => this.onCrash(error) });
  }

  /** The next filled slot, as a view into the ring, once there is one; undefined after the last. Throws on abort or a failed job. */
  async next(): Promise<Uint8Array | undefined> {
    while (this.filled.length === 0 && !this.done && this.failure === undefined && !this.signal.aborted) {
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
    this.signal.throwIfAborted();
    if (this.failure) throw this.failure;
    if (this.filled.length === 0) return undefined;
    const start = (this.consumed % RING_SLOTS) * CHUNK_SIZE;
    return this.ring.subarray(start, start + this.filled[0]!);
  }

  /** The current slot was copied out: the worker may refill it. */
  release(): void {
    this.filled.shift();
    this.consumed++;
    Atomics.store(this.control, CONTROL.consumed, this.consumed);
    Atomics.notify(this.control, CONTROL.consumed);
  }

  /** Waits for the consumer without the worker keeping the process alive. */
  async idleWhile(waiting: Promise<void>): Promise<void> {
    this.worker.keepAlive(false);
    await waiting;
    this.worker.keepAlive(true);
  }

  /**
   * Gives the worker back for the next layer once its job is over. Stopped early (an abort, a
   * destroyed stream), the worker may be in a read or waiting for a slot: wake it and end it.
   */
  async end(): Promise<void> {
    this.signal.removeEventListener('abort', this.onAbort);
    if (this.jobEnded) {
      this.worker.release();
      return;
    }
    Atomics.store(this.control, CONTROL.cancelled, 1);
    Atomics.notify(this.control, CONTROL.consumed);
    await this.worker.stop().catch(() => undefined);
  }

  private onMessage(message: TarWorkerMessage): void {
    if (message.type === 'chunk') {
      this.filled.push(message.length);
    } else if (message.type === 'done' || message.type === 'error') {
      this.jobEnded = true;
      if (message.type === 'done') {
        this.done = true;
      } else {
        this.failure = new NixdockError(message.error.code, message.error.message, message.error);
      }
    }
    this.wake?.();
  }

  /** The thread itself died: nothing to give back (stop() on an exited thread resolves at once). */
  private onCrash(error: Error): void {
    this.failure = workerCrashed(error);
    this.wake?.();
  }
}

/** A chunk of one's own (TypedArray#set copies in bulk; Buffer#copy and Buffer.from from shared memory go element by element). */
function copyChunk(chunk: Uint8Array): Buffer {
  const copy = Buffer.allocUnsafe(chunk.length);
  copy.set(chunk);
  return copy;
}

function workerCrashed(error: Error): NixdockError {
  return new NixdockError('INTERNAL', `The tar worker thread failed: ${error.message}`, { cause: error });
}

function sizeMismatch(written: number, planned: number): NixdockError {
  return new NixdockError('INTERNAL', `Layer tar came out ${written} bytes long, but ${planned} were planned`, {
    hint: 'This is a nixdock bug: please report it with the store paths of the layer.',
  });
}
