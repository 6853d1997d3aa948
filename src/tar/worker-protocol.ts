/**
 * What the main thread (src/tar/layer-tar.ts) and a tar worker thread (worker.ts) share.
 * Kept apart from the worker's entry module, which must not be imported anywhere but in its own
 * thread. A worker runs one of two kinds of job:
 *
 * - `fd`: the worker writes the layer into a file descriptor itself (or only hashes it), hashing
 *   on the way, and reports progress and the digest. Nothing crosses threads per chunk, and the
 *   main thread stays free (to walk the next layer). The fast path: stdout pipes and blob files.
 * - `ring`: the bytes travel through a ring of RING_SLOTS chunks in shared memory, owned by the
 *   worker and reused for every layer: the worker fills a slot and posts its length; the reader
 *   uses the slot and counts it consumed, which frees the slot. A Readable copies each slot out
 *   (its consumer never says when it is done with a chunk); a file writer writes the slot itself,
 *   so reading files (worker) and writing the blob (main thread) run side by side.
 */
import type { SerializedError } from '../errors.js';
import type { Digest, TarSettings } from '../types.js';
import type { TarEntry } from './walk.js';

/**
 * Bytes per ring slot, and per write of an `fd` job. On the 1 GB / 80 000-file benchmark closure,
 * 64 KiB used less CPU and memory than 128 or 256 KiB for ring jobs (the reader's copies stay
 * below glibc's mmap threshold); 16 KiB costs more in messages. For `fd` jobs into a pipe, one
 * write fills the pipe buffer: 32–64 KiB streamed into openssl in ~4.0 s, 256 KiB–1 MiB in ~5.1 s
 * (the writer blocks longer while the reader waits). It must hold the largest header (< 10 KiB).
 */
export const CHUNK_SIZE = 64 * 1024;
/** Enough slots to keep the reader busy while the worker is in a long read; few, to bound memory. */
export const RING_SLOTS = 8;
/** An `fd` job reports progress after this many bytes (the progress bar's resolution). */
export const PROGRESS_EVERY = 8 << 20;

/** Int32 slots of a job's control block (shared memory, a fresh block per job). */
export const CONTROL = {
  /** Ring jobs: chunks the reader has copied out (the worker may refill a slot once its chunk is consumed). */
  consumed: 0,
  /** Set to 1 by the reader when it stops early. */
  cancelled: 1,
  length: 2,
} as const;

interface JobBase {
  entries: readonly TarEntry[];
  /** Owner and mtime of every entry (the worker builds its HeaderTemplate from them). */
  settings: TarSettings;
  control: SharedArrayBuffer;
}

/** Write the tar into `fd` with blocking writes (null: only hash it); `done` carries the digest. */
export interface FdJob extends JobBase {
  kind: 'fd';
  fd: number | null;
}

export interface RingJob extends JobBase {
  kind: 'ring';
  /** RING_SLOTS × CHUNK_SIZE bytes: the worker's own ring. */
  ring: SharedArrayBuffer;
  /** Hash the bytes too (`done` carries the digest): for a reader that only writes them out. */
  hash: boolean;
}

export type TarJob = FdJob | RingJob;

/**
 * What the worker sends back for a job: `chunk`s (ring jobs, one per filled slot, in slot order)
 * or `progress` (fd jobs), then exactly one `done` or `error` (nothing more after a cancel).
 */
export type TarWorkerMessage =
  | { type: 'chunk'; length: number }
  | { type: 'progress'; bytes: number }
  | { type: 'done'; digest?: Digest }
  | { type: 'error'; error: SerializedError };
