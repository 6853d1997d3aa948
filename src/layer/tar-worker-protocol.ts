/**
 * What the main thread (TarStream) and a tar worker thread (tar-worker.ts) share. Kept apart from
 * the worker's entry module, which must not be imported anywhere but in its own thread.
 *
 * The tar bytes travel through a ring of RING_SLOTS chunks in shared memory, owned by the worker
 * and reused for every layer it writes: the worker fills a slot and posts its length; the reader
 * copies the slot into a buffer of its own (whoever reads the stream — hash, pipe, file, gzip —
 * never says when it is done with a buffer, so handing out the slot itself is not safe) and counts
 * it consumed, which frees the slot. Transferring a fresh ArrayBuffer per chunk instead was tried:
 * no faster, and ~40 MB more peak RSS (page faults on every chunk, garbage in two heaps).
 */
import type { SerializedError } from '../errors.js';
import type { TarSettings } from '../types.js';
import type { TarEntry } from './walk.js';

/**
 * Bytes per ring slot (one chunk of the stream). On the 1 GB / 80 000-file benchmark closure,
 * 64 KiB used less CPU and memory than 128 or 256 KiB (the reader's copies stay below glibc's
 * mmap threshold, and one chunk fills a pipe buffer); 16 KiB costs more in messages.
 */
export const CHUNK_SIZE = 64 * 1024;
/** Enough slots to keep the reader busy while the worker is in a long read; few, to bound memory. */
export const RING_SLOTS = 8;

/** Int32 slots of a job's control block (shared memory, a fresh block per job). */
export const CONTROL = {
  /** Chunks the reader has copied out (the worker may refill a slot once its chunk is consumed). */
  consumed: 0,
  /** Set to 1 by the reader when it stops early. */
  cancelled: 1,
  length: 2,
} as const;

/** What the main thread sends to start a layer. */
export interface TarJob {
  entries: readonly TarEntry[];
  settings: TarSettings;
  /** RING_SLOTS × CHUNK_SIZE bytes: the worker's own ring. */
  ring: SharedArrayBuffer;
  control: SharedArrayBuffer;
}

/**
 * What the worker sends back for a job: one `chunk` per filled slot, in slot order, then exactly
 * one `done` or `error` (nothing more after a cancel).
 */
export type TarWorkerMessage =
  | { type: 'chunk'; length: number }
  | { type: 'done' }
  | { type: 'error'; error: SerializedError };
