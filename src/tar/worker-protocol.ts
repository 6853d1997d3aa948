/**
 * What the main thread (src/tar/layer-tar.ts) and a tar worker thread (worker.ts) share.
 * Kept apart from the worker's entry module, which must not be imported anywhere but in its own
 * thread. Every big layer is produced by a `ring` job: a worker reads the files and fills the
 * RING_SLOTS chunks of its ring in shared memory, waiting for a free slot when the ring is full.
 * Who empties the ring depends on where the bytes go:
 *
 * - into a file descriptor (a stdout pipe, a blob file) or only into a hash: with a core to spare,
 *   a second worker runs a `drain` job on the same ring — it hashes each chunk and writes it out;
 *   on two cores the reading worker does that itself (`drainHere`). Reading (open, read,
 *   close of tens of thousands of small files) and hashing plus writing then run on two cores,
 *   slot by slot, with the ring (RING_SLOTS × CHUNK_SIZE) as the only buffer between them; nothing
 *   crosses to the main thread per chunk, so it stays free to walk the next layer. With the bytes'
 *   digest already known (a cached recipe), the drain only counts them.
 * - into a Readable (gzip, HTTP uploads): the main thread, told of each filled slot by a `chunk`
 *   message, copies it out (a Readable's consumer never says when it is done with a chunk).
 *
 * Producer and drain talk through the job's control block only (Atomics.wait/notify): the
 * producer publishes a slot's length, then counts it produced; the drain counts it consumed once
 * written, which frees the slot. A slot of length 0 ends the archive. A thread that must wait says
 * which count it waits for, and the other wakes it only once that count is reached (WAKE_AFTER).
 */
import type { SerializedError } from '../errors.js';
import type { Digest, TarSettings } from '../types.js';
import type { TarEntry } from './walk.js';

/**
 * Bytes per ring slot, and per write of a drain. On the 1 GB / 80 000-file benchmark closure,
 * 64 KiB used less CPU and memory than 128 or 256 KiB for main-thread readers (their copies stay
 * below glibc's mmap threshold); 16 KiB costs more in messages. Into a pipe, one write fills the
 * pipe buffer (64 KiB on Linux): 32–64 KiB streamed into openssl in ~4.0 s, 256 KiB–1 MiB in
 * ~5.1 s (the writer blocks longer while the reader waits). It must hold the largest header (< 10 KiB).
 */
export const CHUNK_SIZE = 64 * 1024;
/**
 * 1 MiB between the reading thread and the draining one: enough to ride out a long read (a big
 * file on a slow disk) or a pipe whose reader is busy, small enough that memory stays bounded.
 */
export const RING_SLOTS = 16;
/** A drain reports progress after this many bytes (the progress bar's resolution). */
export const PROGRESS_EVERY = 8 << 20;

/** Int32 slots of a job's control block (shared memory, a fresh block per job). */
export const CONTROL = {
  /** Chunks the reader has written out or copied (the producer may refill a slot once its chunk is consumed). */
  consumed: 0,
  /** Set to 1 by the main thread when the job stops early (an abort, a failure on either side). */
  cancelled: 1,
  /** Chunks the producer has filled (their lengths are in the slots from `lengths` on). */
  produced: 2,
  /** A drain waiting for chunks: the `produced` count it waits for (the producer wakes it only then). */
  drainWaitsFor: 3,
  /** A producer waiting for free slots: the `consumed` count it waits for (the drain wakes it only then). */
  producerWaitsFor: 4,
  /** First of RING_SLOTS Int32s: the length of the chunk in each slot (0: the end of the archive). */
  lengths: 5,
  length: 5 + RING_SLOTS,
} as const;

/**
 * A drain or producer that has to wait sleeps until this many slots are ready for it, not one:
 * woken per chunk, the two threads handed over every 64 KiB with a futex wake and a context switch
 * each (33 700 futex calls for the 1 GB benchmark stream, against 5 100 with one thread, and more
 * CPU than the split saved); woken per half ring, they hand over 512 KiB at a time.
 */
export const WAKE_AFTER = RING_SLOTS / 2;

/** Read the files of `entries` into `ring` as tar bytes. */
export interface RingJob {
  kind: 'ring';
  entries: readonly TarEntry[];
  /** Owner and mtime of every entry (the worker builds its HeaderTemplate from them). */
  settings: TarSettings;
  control: SharedArrayBuffer;
  /** RING_SLOTS × CHUNK_SIZE bytes: the producing worker's own ring. */
  ring: SharedArrayBuffer;
  /** Post a `chunk` message per filled slot: the reader is the main thread (a drain watches `produced` instead). */
  postChunks: boolean;
  /** No other reader: this worker hashes and writes each chunk itself, as a drain would (see layer-tar.ts writeThroughRing). */
  drainHere?: { fd: number | null; hash: boolean };
}

/** Empty a ring job's ring from another worker: hash each chunk (unless `hash` is false) and write it into `fd` (null: only hash it). */
export interface DrainJob {
  kind: 'drain';
  control: SharedArrayBuffer;
  ring: SharedArrayBuffer;
  fd: number | null;
  hash: boolean;
}

export type TarJob = RingJob | DrainJob;

/**
 * What a worker sends back for a job: `chunk`s (ring jobs with postChunks, one per filled slot, in
 * slot order) or `progress` (drains), then exactly one `done` (a drain's carries the digest when
 * it hashed) or `error`; nothing more after a cancel.
 */
export type TarWorkerMessage =
  | { type: 'chunk'; length: number }
  | { type: 'progress'; bytes: number }
  | { type: 'done'; digest?: Digest }
  | { type: 'error'; error: SerializedError };
