/**
 * Streams a planned entry list as tar bytes. The bytes are produced in a tar worker thread
 * (tar-worker.ts: blocking opens and reads of every file); this Readable on the calling thread
 * only passes the worker's chunks on, so reading files overlaps with hashing and writing them.
 */
import { Readable } from 'node:stream';
import { NixdockError, toNixdockError } from '../errors.js';
import { TarFiller } from './tar-filler.js';
import type { TarSettings } from '../types.js';
import { HeaderTemplate, trailerSize } from './tar-header.js';
import { TarWorker } from './tar-worker-pool.js';
import { CHUNK_SIZE, CONTROL, RING_SLOTS, type TarWorkerMessage } from './tar-worker-protocol.js';
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

/** Layers up to this size are tarred on the calling thread (see TarStream.fillInline). */
const INLINE_MAX_BYTES = 1 << 20;

export class TarStream extends Readable {
  private worker: TarWorker | undefined;
  private ring: Uint8Array | undefined;
  private readonly control = new Int32Array(new SharedArrayBuffer(CONTROL.length * Int32Array.BYTES_PER_ELEMENT));
  /** Lengths of filled slots not yet copied out, oldest first (its slot: consumed % RING_SLOTS). */
  private readonly filled: number[] = [];
  private consumed = 0;
  /** The consumer asked for bytes (_read) and no push has said "enough" since. */
  private wanted = false;
  private workerDone = false;
  private received = 0;
  private size = 0;

  /** `load` runs once, before the first byte (e.g. the lstat walk, unless already cached). */
  constructor(private readonly load: () => Promise<TarPlan>) {
    super({ highWaterMark: CHUNK_SIZE });
  }

  override _construct(callback: (error?: Error | null) => void): void {
    this.load().then(
      (plan) => {
        this.size = plan.size;
        this.start(plan);
        callback();
      },
      (err: Error) => callback(err),
    );
  }

  override _read(): void {
    this.wanted = true;
    this.drain();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    const worker = this.worker;
    this.worker = undefined;
    if (worker === undefined || this.workerDone) {
      worker?.release();
      callback(err);
      return;
    }
    // Stopped before the worker finished (an abort, a failed consumer): wake it if it waits for a slot, and end it.
    Atomics.store(this.control, CONTROL.cancelled, 1);
    Atomics.notify(this.control, CONTROL.consumed);
    worker.stop().then(() => callback(err), () => callback(err));
  }

  private start(plan: TarPlan): void {
    if (plan.size <= INLINE_MAX_BYTES) {
      this.fillInline(plan);
      return;
    }
    const worker = TarWorker.acquire();
    this.worker = worker;
    // A plain view: Buffer#copy from shared memory goes element by element; TypedArray#set copies in bulk.
    this.ring = new Uint8Array(worker.ring);
    worker.run(
      { entries: plan.entries, settings: plan.settings, ring: worker.ring, control: this.control.buffer as SharedArrayBuffer },
      { message: (message) => this.onMessage(message), crashed: (error) => this.onCrash(error) },
    );
  }

  /**
   * Small layers (the customisation layer, an app's own path) are tarred right here: handing them
   * to a worker thread costs more than it saves, and every rebuild writes at least one.
   */
  private fillInline(plan: TarPlan): void {
    const filler = new TarFiller(plan.entries, new HeaderTemplate(plan.settings));
    const bytes = Buffer.allocUnsafe(plan.size);
    try {
      for (let length = filler.fill(bytes); length > 0; length = filler.fill(bytes.subarray(this.received))) this.received += length;
    } catch (err) {
      this.destroy(toNixdockError(err));
      return;
    } finally {
      filler.close();
    }
    this.push(bytes.subarray(0, this.received));
    this.workerDone = true;
    this.finish();
  }

  private onMessage(message: TarWorkerMessage): void {
    switch (message.type) {
      case 'chunk':
        this.filled.push(message.length);
        this.drain();
        return;
      case 'done':
        // The worker is released only once every slot is copied out: the next stream it serves reuses the ring.
        this.workerDone = true;
        this.drain();
        return;
      case 'error':
        this.releaseWorker();
        this.destroy(new NixdockError(message.error.code, message.error.message, message.error));
        return;
    }
  }

  /** Copies filled slots out while the consumer wants bytes (each copy frees its slot); ends the stream after the last. */
  private drain(): void {
    while (this.wanted && this.filled.length > 0) {
      const length = this.filled.shift()!;
      const start = (this.consumed % RING_SLOTS) * CHUNK_SIZE;
      const chunk = Buffer.allocUnsafe(length);
      chunk.set(this.ring!.subarray(start, start + length));
      this.consumed++;
      Atomics.store(this.control, CONTROL.consumed, this.consumed);
      Atomics.notify(this.control, CONTROL.consumed);
      this.received += length;
      this.wanted = this.push(chunk);
    }
    if (this.workerDone && this.filled.length === 0) this.finish();
    // A full ring nobody reads: the worker is blocked until a reader comes back, which only a live consumer can do.
    this.worker?.keepAlive(this.wanted || this.filled.length < RING_SLOTS);
  }

  private finish(): void {
    this.workerDone = false;
    this.releaseWorker();
    if (this.received !== this.size) this.destroy(sizeMismatch(this.received, this.size));
    else this.push(null);
  }

  private onCrash(error: Error): void {
    this.worker = undefined;
    this.destroy(new NixdockError('INTERNAL', `The tar worker thread failed: ${error.message}`, { cause: error }));
  }

  private releaseWorker(): void {
    this.worker?.release();
    this.worker = undefined;
  }
}

function sizeMismatch(written: number, planned: number): NixdockError {
  return new NixdockError('INTERNAL', `Layer tar came out ${written} bytes long, but ${planned} were planned`, {
    hint: 'This is a nixdock bug: please report it with the store paths of the layer.',
  });
}
