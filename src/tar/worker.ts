/**
 * The tar worker thread. A `ring` job does the blocking opens, reads and closes of a planned
 * entry list (filler.ts) into the worker's shared ring, blocking in Atomics.wait while the ring is
 * full; a `drain` job, in another worker, hashes and writes that ring's chunks into a file
 * descriptor. One job at a time; the worker is reused for the next layer. The protocol is in
 * worker-protocol.ts.
 */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { toNixdockError } from '../errors.js';
import { writeAll } from '../util/fd.js';
import { TarFiller } from './filler.js';
import { HeaderTemplate } from './header.js';
import { CHUNK_SIZE, CONTROL, PROGRESS_EVERY, RING_SLOTS, WAKE_AFTER, type DrainJob, type RingJob, type TarJob, type TarWorkerMessage } from './worker-protocol.js';

type Send = (message: TarWorkerMessage) => void;

parentPort?.on('message', (job: TarJob) => runJob(job, (message) => parentPort!.postMessage(message)));

function runJob(job: TarJob, send: Send): void {
  try {
    if (job.kind === 'ring') fillRing(job, send);
    else drainRing(job, send);
  } catch (err) {
    send({ type: 'error', error: toNixdockError(err).toJSON() });
  }
}

function fillRing(job: RingJob, send: Send): void {
  if (job.drainHere) return fillAndDrain(job, job.drainHere, send);
  const filler = new TarFiller(job.entries, new HeaderTemplate(job.settings));
  const control = new Int32Array(job.control);
  const ring = Buffer.from(job.ring);
  try {
    for (let produced = 0; waitForFreeSlot(control, produced); produced++) {
      const slot = produced % RING_SLOTS;
      const length = filler.fill(ring.subarray(slot * CHUNK_SIZE, (slot + 1) * CHUNK_SIZE));
      Atomics.store(control, CONTROL.lengths + slot, length);
      Atomics.store(control, CONTROL.produced, produced + 1);
      // A drain sleeps until enough chunks are ready (or the end is): wake it only then.
      if (length === 0 || produced + 1 >= Atomics.load(control, CONTROL.drainWaitsFor)) Atomics.notify(control, CONTROL.produced);
      if (length === 0) {
        send({ type: 'done' });
        return;
      }
      if (job.postChunks) send({ type: 'chunk', length });
    }
  } finally {
    filler.close();
  }
}

/**
 * Blocks until the slot for chunk number `produced` is free; false when the job was cancelled.
 * Once it has to wait, it waits for WAKE_AFTER free slots (the reader wakes it only then).
 */
function waitForFreeSlot(control: Int32Array, produced: number): boolean {
  for (let waitsFor = produced - RING_SLOTS + 1; ; ) {
    if (Atomics.load(control, CONTROL.cancelled) !== 0) return false;
    const consumed = Atomics.load(control, CONTROL.consumed);
    if (consumed >= waitsFor) return true;
    waitsFor = produced - RING_SLOTS + WAKE_AFTER;
    Atomics.store(control, CONTROL.producerWaitsFor, waitsFor);
    // Checked again after saying so: a reader that consumed in between may not have seen it.
    if (Atomics.load(control, CONTROL.consumed) >= waitsFor) return true;
    Atomics.wait(control, CONTROL.consumed, consumed);
  }
}

/** Reads, hashes and writes in one loop, one chunk at a time (in the ring's first slot). */
function fillAndDrain(job: RingJob, sink: { fd: number | null; hash: boolean }, send: Send): void {
  const filler = new TarFiller(job.entries, new HeaderTemplate(job.settings));
  const control = new Int32Array(job.control);
  const chunk = Buffer.from(job.ring, 0, CHUNK_SIZE);
  const hash = sink.hash ? createHash('sha256') : undefined;
  const progress = new Progress(send);
  try {
    for (let length = filler.fill(chunk); length > 0; length = filler.fill(chunk)) {
      if (Atomics.load(control, CONTROL.cancelled) !== 0) return;
      hash?.update(chunk.subarray(0, length));
      if (sink.fd !== null) writeAll(sink.fd, chunk.subarray(0, length));
      progress.add(length);
    }
  } finally {
    filler.close();
  }
  progress.flush();
  send({ type: 'done', ...(hash && { digest: `sha256:${hash.digest('hex')}` }) });
}

/** Bytes written, reported every PROGRESS_EVERY bytes. */
class Progress {
  private written = 0;
  private reported = 0;

  constructor(private readonly send: Send) {}

  add(bytes: number): void {
    this.written += bytes;
    if (this.written - this.reported >= PROGRESS_EVERY) this.flush();
  }

  flush(): void {
    if (this.written > this.reported) this.send({ type: 'progress', bytes: this.written - this.reported });
    this.reported = this.written;
  }
}

function drainRing(job: DrainJob, send: Send): void {
  const control = new Int32Array(job.control);
  const ring = Buffer.from(job.ring);
  const hash = job.hash ? createHash('sha256') : undefined;
  const progress = new Progress(send);
  for (let consumed = 0; waitForFilledSlot(control, consumed); consumed++) {
    const slot = consumed % RING_SLOTS;
    const length = Atomics.load(control, CONTROL.lengths + slot);
    if (length === 0) {
      progress.flush();
      send({ type: 'done', ...(hash && { digest: `sha256:${hash.digest('hex')}` }) });
      return;
    }
    const chunk = ring.subarray(slot * CHUNK_SIZE, slot * CHUNK_SIZE + length);
    hash?.update(chunk);
    if (job.fd !== null) writeAll(job.fd, chunk);
    Atomics.store(control, CONTROL.consumed, consumed + 1);
    if (consumed + 1 >= Atomics.load(control, CONTROL.producerWaitsFor)) Atomics.notify(control, CONTROL.consumed);
    progress.add(length);
  }
}

/**
 * Blocks until chunk number `consumed` has been produced; false when the job was cancelled. Once
 * it has to wait, it waits for WAKE_AFTER chunks (or the end: the producer wakes it then too).
 */
function waitForFilledSlot(control: Int32Array, consumed: number): boolean {
  for (let waitsFor = consumed + 1; ; ) {
    if (Atomics.load(control, CONTROL.cancelled) !== 0) return false;
    const produced = Atomics.load(control, CONTROL.produced);
    if (produced >= waitsFor || (produced > consumed && lastIsEnd(control, produced))) return true;
    waitsFor = consumed + WAKE_AFTER;
    Atomics.store(control, CONTROL.drainWaitsFor, waitsFor);
    // Checked again after saying so: a producer that filled a slot in between may not have seen it.
    const now = Atomics.load(control, CONTROL.produced);
    if (now >= waitsFor || (now > consumed && lastIsEnd(control, now))) return true;
    Atomics.wait(control, CONTROL.produced, now);
  }
}

/** Whether the last produced chunk is the end of the archive (nothing more will come to wait for). */
function lastIsEnd(control: Int32Array, produced: number): boolean {
  return Atomics.load(control, CONTROL.lengths + ((produced - 1) % RING_SLOTS)) === 0;
}
